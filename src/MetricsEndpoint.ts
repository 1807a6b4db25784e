/**
 * The operators' HTTP endpoint of the CLI's servers (`--metrics-port`):
 * `/metrics` in Prometheus's text format (Effect's `PrometheusMetrics`, read
 * from the program's `MetricRegistry`), `/livez` (200 while the process
 * runs) and `/readyz` (200 while the servers are bound and not draining, 503
 * before and during a drain). Scrapes are not logged.
 *
 * Serving HTTP is the CLI's business, not the library's: an embedder reads
 * the same metrics from their own registry (Metrics.ts). Three read-only
 * routes need no router, so this is `node:http` in a scope, as TcpListener
 * is `node:net`: Effect's HTTP server and its platform layer cost a server's
 * start 70 ms and more when they were loaded for it (bench/README.md).
 * `node:http` itself is loaded only when the endpoint starts (Builtins.ts).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import { Buffer } from "node:buffer"
import type * as Http from "node:http"
import type * as Net from "node:net"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"

/** Where the endpoint listens, and when the servers are ready. */
export interface EndpointOptions {
  readonly host: string
  readonly port: number
  /** Whether the servers serve: true once they are bound, false again when their drain begins. */
  readonly ready: () => boolean
}

/** Prometheus's text exposition format, the version its scrapers ask for. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

// A scraper that sends its headers this slowly, or never finishes a request, is cut off: the endpoint is for
// probes that answer in milliseconds.
const REQUEST_TIMEOUT_MILLIS = 10_000

/** What one request is answered. */
export interface Reply {
  readonly status: number
  readonly body: string
  readonly contentType?: string
  readonly allow?: string
}

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

const respond = (request: Http.IncomingMessage, response: Http.ServerResponse, reply: Reply) => {
  const headers: Record<string, string | number> = {
    "content-type": reply.contentType ?? "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(reply.body),
  }
  if (reply.allow !== undefined) headers["allow"] = reply.allow
  response.writeHead(reply.status, headers)
  response.end(request.method === "HEAD" ? undefined : reply.body)
}

/** Serves the endpoint in the current scope, returning where it listens; a port in use is a `BindError`. */
export const serve = Effect.fn("MetricsEndpoint.serve")(function* (options: EndpointOptions) {
  const requested = Endpoint.make(options.host, options.port, "tcp")
  const registry = Context.make(Metric.MetricRegistry, yield* Metric.MetricRegistry)
  const routes = { metrics: () => PrometheusMetrics.formatUnsafe(registry), ready: options.ready }
  yield* Builtins.load("node:http")
  const server = Builtins.http().createServer({ requestTimeout: REQUEST_TIMEOUT_MILLIS }, (request, response) => {
    respond(request, response, route(request.method ?? "GET", request.url ?? "/", routes))
  })
  server.headersTimeout = REQUEST_TIMEOUT_MILLIS
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
        server.closeAllConnections?.()
      }),
  )
  const bound = server.address() as Net.AddressInfo
  return Endpoint.make(bound.address, bound.port, "tcp")
})
