/**
 * The operators' HTTP endpoint of the CLI's servers (`--metrics-port`):
 * `/metrics` in Prometheus's text format (Effect's `PrometheusMetrics`, read
 * from the program's `MetricRegistry`), `/livez` (200 while the process
 * runs) and `/readyz` (200 while the servers are bound and not draining, 503
 * before and during a drain). Scrapes are not logged.
 *
 * Serving HTTP is the CLI's business, not the library's: an embedder reads
 * the same metrics from their own registry (Metrics.ts). Three read-only
 * routes need no router, so this is a `node:net` server in a scope, as
 * TcpListener's is, answering HTTP/1.1 itself (HttpResponder.ts): Effect's
 * HTTP server and its platform layer cost a server's start 70 ms and more
 * when they were loaded for it, and `node:http`'s requests slowed the TCP
 * server they were scraped beside by 5% (bench/README.md).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import type * as Net from "node:net"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as HttpResponder from "./HttpResponder.ts"

/** Where the endpoint listens, and when the servers are ready. */
export interface EndpointOptions {
  readonly host: string
  readonly port: number
  /** Whether the servers serve: true once they are bound, false again when their drain begins. */
  readonly ready: () => boolean
}

/** Prometheus's text exposition format, the version its scrapers ask for. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/** What one request is answered. */
export type Reply = HttpResponder.Reply

/**
 * Connections the endpoint holds at once; more are closed as they arrive. Scrapers and probes need a few, and
 * the descriptors they take come out of the few that the TCP server's connection limit leaves free
 * (DescriptorBudget.RESERVE), so that no number of them can make its accept fail.
 */
export const MAX_CONNECTIONS = 8

const plain = (status: number, body: string): Reply => ({ status, body })

/** What the routes read: the metrics in Prometheus's format, and whether the servers serve. */
export interface RouteOptions {
  readonly metrics: () => string
  readonly ready: () => boolean
}

const ROUTES: Record<string, (options: RouteOptions) => Reply> = {
  "/metrics": (options) => ({ status: 200, body: options.metrics(), contentType: PROMETHEUS_CONTENT_TYPE }),
  "/livez": () => plain(200, "ok\n"),
  "/readyz": (options) => options.ready() ? plain(200, "ready\n") : plain(503, "not ready\n"),
}

/** The reply to one request: what a path serves, to GET and HEAD only; a 500 if serving it throws. */
export const route = (method: string, url: string, options: RouteOptions): Reply => {
  const path = url.split("?", 1)[0]
  const serve = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined
  if (serve === undefined) return plain(404, "not found\n")
  if (method !== "GET" && method !== "HEAD") return { status: 405, body: "method not allowed\n", allow: "GET, HEAD" }
  try {
    return serve(options)
  } catch {
    // It runs in a socket callback, where no fiber catches: a scrape that fails must not take the servers down.
    return plain(500, "internal error\n")
  }
}

/** Serves the endpoint in the current scope, returning where it listens; a port in use is a `BindError`. */
export const serve = Effect.fn("MetricsEndpoint.serve")(function* (options: EndpointOptions) {
  const requested = Endpoint.make(options.host, options.port, "tcp")
  const registry = Context.make(Metric.MetricRegistry, yield* Metric.MetricRegistry)
  const routes = { metrics: () => PrometheusMetrics.formatUnsafe(registry), ready: options.ready }
  yield* Builtins.load("node:net")
  // Made as TcpListener makes the servers' own, so that its sockets have the same shape (HttpResponder.ts).
  const server = Builtins.net().createServer({ allowHalfOpen: true, noDelay: true })
  server.maxConnections = MAX_CONNECTIONS
  const connections = new Set<Net.Socket>()
  server.on("connection", (conn: Net.Socket) => {
    connections.add(conn)
    conn.once("close", () => connections.delete(conn))
    HttpResponder.serve(conn, (method, target) => route(method, target, routes))
  })
  yield* Effect.acquireRelease(
    Effect.callback<void, CapsError.BindError>((resume) => {
      const onError = (error: Error) => resume(Effect.fail(CapsError.fromBindFailure(error, requested)))
      server.once("error", onError)
      server.listen({ host: options.host, port: options.port }, () => {
        server.off("error", onError)
        // After listening, an error is one failed accept; the endpoint goes on.
        server.on("error", () => {})
        resume(Effect.void)
      })
    }),
    () =>
      Effect.callback<void>((resume) => {
        if (!server.listening) return resume(Effect.void)
        server.close(() => resume(Effect.void))
        // Scrapers keep their connections open between scrapes: close them, or close would wait for them.
        for (const conn of connections) conn.destroy()
      }),
  )
  const bound = server.address() as Net.AddressInfo
  return Endpoint.make(bound.address, bound.port, "tcp")
})
