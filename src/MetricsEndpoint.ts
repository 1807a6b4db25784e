/**
 * The operators' HTTP endpoint of the CLI's servers (`--metrics-port`):
 * `/metrics` in Prometheus's text format (Effect's `PrometheusMetrics`, read
 * from the program's `MetricRegistry`), `/livez` (200 while the process
 * runs) and `/readyz` (200 while the servers are bound and not draining, 503
 * before and during a drain). Scrapes are not logged.
 *
 * Serving HTTP is the CLI's business, not the library's: an embedder reads
 * the same metrics from their own registry (Metrics.ts). The CLI loads this
 * module only when `--metrics-port` is given, so a plain `caps serve` loads
 * neither `effect/http` nor `node:http`.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import type * as Scope from "effect/Scope"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as NetAddress from "effect/net/NetAddress"
import type * as Http from "node:http"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"

/** Whether the servers serve: set by the CLI once they are bound, cleared when their drain begins. */
export interface Readiness {
  ready: boolean
}

/** Where the endpoint listens. */
export interface EndpointOptions {
  readonly host: string
  readonly port: number
}

const nodeHttp = () => process.getBuiltinModule("node:http") as typeof Http

const text = (status: number, body: string) => HttpServerResponse.text(body, { status })

const routes = (readiness: Readiness) =>
  Layer.mergeAll(
    PrometheusMetrics.layerHttp({ path: "/metrics" }),
    HttpRouter.add("GET", "/livez", text(200, "ok\n")),
    HttpRouter.add(
      "GET",
      "/readyz",
      Effect.sync(() => readiness.ready ? text(200, "ready\n") : text(503, "not ready\n")),
    ),
  )

/** Serves the endpoint in the current scope, returning where it listens; a port in use is a `BindError`. */
export const serve = (
  options: EndpointOptions,
  readiness: Readiness,
): Effect.Effect<Endpoint.Endpoint, CapsError.BindError, Scope.Scope> =>
  Effect.gen(function* () {
    const requested = Endpoint.make(options.host, options.port, "tcp")
    const context = yield* Layer.build(
      HttpRouter.serve(routes(readiness), { disableLogger: true, disableListenLog: true }).pipe(
        // node:http is looked up here, not imported: the bundle would load it at every start (scripts/bundle.mjs).
        Layer.provideMerge(NodeHttpServer.layerServer(() => nodeHttp().createServer(), options)),
      ),
    ).pipe(Effect.mapError((error) => CapsError.fromBindFailure(error.cause, requested)))
    const address = Context.get(context, HttpServer.HttpServer).address
    return address._tag === "UnixPathAddress"
      ? requested
      : Endpoint.make(NetAddress.formatIp(address.address), address.port, "tcp")
  })
