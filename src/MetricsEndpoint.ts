/**
 * The operators' HTTP endpoint of the CLI's servers (`--metrics-port`):
 * `/metrics` in Prometheus's text format (Effect's `PrometheusMetrics`, read
 * from the program's `MetricRegistry`), `/livez` (200 while the process
 * runs) and `/readyz` (200 while the servers are bound and not draining, 503
 * before and during a drain). Scrapes are not logged.
 *
 * Serving HTTP is the CLI's business, not the library's: an embedder reads
 * the same metrics from their own registry (Metrics.ts). The CLI imports
 * this module only when `--metrics-port` is given, and takes what `start`
 * returns, plain values and promises: the bundle holds it as a file of its
 * own with its own copy of Effect (scripts/bundle.mjs, as `TraceExport.ts`),
 * so a plain `caps serve` loads neither `effect/http` nor `node:http`. The
 * two copies meet at the registry, a `Map` whose series are read by their
 * own hooks.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Scope from "effect/Scope"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as NetAddress from "effect/net/NetAddress"
import * as Http from "node:http"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"

/** Where the endpoint listens, what it serves, and when the servers are ready. */
export interface EndpointOptions {
  readonly host: string
  readonly port: number
  /** The program's `MetricRegistry`. */
  readonly registry: Metric.MetricRegistry
  /** Whether the servers serve: true once they are bound, false again when their drain begins. */
  readonly ready: () => boolean
}

/** What `start` gives: where it listens and how to stop it, or the bind error. */
export type Started =
  | { readonly _tag: "Started"; readonly address: Endpoint.Endpoint; readonly shutdown: () => Promise<void> }
  | { readonly _tag: "Refused"; readonly error: CapsError.BindError }

const text = (status: number, body: string) => HttpServerResponse.text(body, { status })

const routes = (options: EndpointOptions) => {
  const metrics = Context.make(Metric.MetricRegistry, options.registry)
  return Layer.mergeAll(
    HttpRouter.add(
      "GET",
      "/metrics",
      Effect.sync(() =>
        HttpServerResponse.text(PrometheusMetrics.formatUnsafe(metrics), {
          contentType: "text/plain; version=0.0.4; charset=utf-8",
        })
      ),
    ),
    HttpRouter.add("GET", "/livez", text(200, "ok\n")),
    HttpRouter.add(
      "GET",
      "/readyz",
      Effect.sync(() => options.ready() ? text(200, "ready\n") : text(503, "not ready\n")),
    ),
  )
}

/** Serves the endpoint in the current scope, returning where it listens; a port in use is a `BindError`. */
export const serve = (options: EndpointOptions): Effect.Effect<Endpoint.Endpoint, CapsError.BindError, Scope.Scope> =>
  Effect.gen(function* () {
    const requested = Endpoint.make(options.host, options.port, "tcp")
    const context = yield* Layer.build(
      HttpRouter.serve(routes(options), { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provideMerge(
          NodeHttpServer.layerServer(() => Http.createServer(), { host: options.host, port: options.port }),
        ),
      ),
    ).pipe(Effect.mapError((error) => CapsError.fromBindFailure(error.cause, requested)))
    const address = Context.get(context, HttpServer.HttpServer).address
    return address._tag === "UnixPathAddress"
      ? requested
      : Endpoint.make(NetAddress.formatIp(address.address), address.port, "tcp")
  })

/** Starts the endpoint in a scope of its own, for a program that may run on another copy of Effect. */
export const start = (options: EndpointOptions): Promise<Started> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const address = yield* serve(options).pipe(
        Scope.provide(scope),
        Effect.onError(() => Scope.close(scope, Exit.void)),
      )
      return {
        _tag: "Started" as const,
        address,
        shutdown: () => Effect.runPromise(Scope.close(scope, Exit.void)),
      }
    }).pipe(Effect.catch((error) => Effect.succeed({ _tag: "Refused" as const, error }))),
  )
