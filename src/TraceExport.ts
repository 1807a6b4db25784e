/**
 * The CLI's traces: every span of a `caps` command (the clients' requests,
 * the servers' connections, opt-in datagrams) exported over OTLP/HTTP with
 * Effect's own exporter, configured by OpenTelemetry's standard variables:
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (spans go to `/v1/traces` under it) or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), `OTEL_SERVICE_NAME`
 * (`caps` by default), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
 * default, or `http/json`; or its `_TRACES_` form), and the rest that `OtlpTracer.layerFromConfig` reads
 * (headers, compression, timeouts, batch size, `OTEL_SDK_DISABLED`,
 * `OTEL_TRACES_EXPORTER`).
 *
 * `main.ts` imports this module only when one of the endpoint variables is
 * set: the exporter and its HTTP client cost nothing at start-up otherwise.
 * It takes what `start` returns, plain values and promises: the bundle
 * (scripts/bundle.mjs) holds this module as a file of its own, with its own
 * copy of Effect, because a module that the main bundle imported lazily
 * would make every module it shares with the rest be initialised lazily,
 * at a cost to every start. The two meet at the `Tracer` interface, which
 * Effect defines by shape. The exporter runs until `shutdown`, which
 * `main.ts` calls when the program's scope closes, so the spans still
 * buffered are sent after a one-shot command and after a signal's shutdown
 * alike (within `OTEL_EXPORTER_OTLP_TIMEOUT`, 3 s by default).
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import type * as OtlpExporter from "effect/observability/OtlpExporter"
import * as OtlpSerialization from "effect/observability/OtlpSerialization"
import * as OtlpTracer from "effect/observability/OtlpTracer"
import * as CapsError from "./CapsError.ts"

/** The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one. */
export const DEFAULT_SERVICE_NAME = "caps"

/** The variables that turn exporting on, most specific first. */
export const ENDPOINT_VARIABLES = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] as const

/** Whether the environment asks for traces to be exported. */
export const isRequested = (env: Record<string, string | undefined>): boolean =>
  ENDPOINT_VARIABLES.some((name) => (env[name] ?? "") !== "")

// OpenTelemetry's defaults that Effect's exporter leaves to the program: the exporter is "otlp" unless
// OTEL_TRACES_EXPORTER says otherwise, and the service is named.
const defaults = (env: Record<string, string | undefined>, version: string): Record<string, string> => {
  const named = /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? "")
  const versioned = /(^|,)\s*service\.version\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? "")
  return {
    OTEL_TRACES_EXPORTER: "otlp",
    ...(named ? {} : { OTEL_SERVICE_NAME: DEFAULT_SERVICE_NAME }),
    ...(versioned ? {} : { OTEL_SERVICE_VERSION: version }),
  }
}

const PROTOCOL_VARIABLES = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] as const

// A malformed endpoint or an unknown protocol is the user's mistake, said in one line (Effect's layer would die
// with a defect on the first, and know nothing of the second).
const serializationOf = (
  env: Record<string, string | undefined>,
): Effect.Effect<Layer.Layer<OtlpSerialization.OtlpSerialization>, CapsError.InvalidOption> => {
  for (const name of ENDPOINT_VARIABLES) {
    const value = env[name]
    if (value !== undefined && value !== "" && !URL.canParse(value)) {
      return Effect.fail(
        new CapsError.InvalidOption({ option: name, detail: `expected a URL, got ${JSON.stringify(value)}` }),
      )
    }
  }
  const name = PROTOCOL_VARIABLES.find((name) => (env[name] ?? "") !== "")
  const protocol = name === undefined ? "http/protobuf" : env[name]!.trim()
  if (protocol === "http/protobuf") return Effect.succeed(OtlpSerialization.layerProtobuf)
  if (protocol === "http/json") return Effect.succeed(OtlpSerialization.layerJson)
  return Effect.fail(
    new CapsError.InvalidOption({
      option: name!,
      detail: `caps exports traces over OTLP/HTTP: expected http/protobuf or http/json, got ${
        JSON.stringify(protocol)
      }`,
    }),
  )
}

const defined = (env: Record<string, string | undefined>): Record<string, string> =>
  Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))

/**
 * The tracer that exports the program's spans as the environment says, and flushes them when its scope closes.
 * `env` is the environment the exporter's settings are read from; `version` is the `service.version` unless
 * the environment gives one.
 */
export const layer = (
  env: Record<string, string | undefined>,
  version: string,
): Layer.Layer<OtlpExporter.Flusher, CapsError.InvalidOption> =>
  Layer.unwrap(Effect.map(serializationOf(env), (serialization) =>
    OtlpTracer.layerFromConfig().pipe(
      Layer.provide([FetchHttpClient.layer, serialization]),
      Layer.provide(ConfigProvider.layer(
        ConfigProvider.orElse(
          ConfigProvider.fromEnv({ env: defined(env) }),
          ConfigProvider.fromUnknown(defaults(env, version)),
        ),
      )),
    )))

/**
 * What `start` gives: the tracer (`undefined` when the environment turns exporting off, e.g.
 * `OTEL_TRACES_EXPORTER=none`) and `shutdown`, which flushes it; or the settings refused.
 */
export type Started =
  | { readonly _tag: "Started"; readonly tracer: Tracer.Tracer | undefined; readonly shutdown: () => Promise<void> }
  | { readonly _tag: "Refused"; readonly error: CapsError.InvalidOption }

/** Starts the exporter of `layer` in a scope of its own, for a program that may run on another copy of Effect. */
export const start = (env: Record<string, string | undefined>, version: string): Promise<Started> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(layer(env, version), scope).pipe(
        Effect.onError(() => Scope.close(scope, Exit.void)),
      )
      return {
        _tag: "Started" as const,
        tracer: context.mapUnsafe.has(Tracer.Tracer.key) ? Context.get(context, Tracer.Tracer) : undefined,
        shutdown: () => Effect.runPromise(Scope.close(scope, Exit.void)),
      }
    }).pipe(Effect.catch((error) => Effect.succeed({ _tag: "Refused" as const, error }))),
  )
