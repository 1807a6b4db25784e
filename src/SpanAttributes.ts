/**
 * What caps's spans say about where they talk, in OpenTelemetry's semantic
 * attribute names (`server.address`, `client.port`, `network.transport`...),
 * so that a trace backend shows caps's endpoints the way it shows any
 * other program's, and every span spells them the same way.
 *
 * Spans are Effect's (`Effect.fn`, `Effect.withSpan`): whoever provides a
 * `Tracer` sees them, an embedder's own or the OTLP exporter the CLI sets up
 * (`TraceExport`).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Endpoint from "./Endpoint.ts"

/** A client's view of the server it asks: the host as given, its port and the transport. */
export const server = (endpoint: Endpoint.Endpoint): Record<string, unknown> => ({
  "server.address": endpoint.host,
  "server.port": endpoint.port,
  "network.transport": endpoint.transport,
})

/** The address a client actually reached (one of the host's addresses). */
export const peer = (address: string, port: number): Record<string, unknown> => ({
  "network.peer.address": address,
  "network.peer.port": port,
})

/** A server's view of one exchange: who asked (`client.*`, `network.peer.*`) and where it was answered. */
export const served = (
  from: Endpoint.Endpoint,
  local: { readonly address: string; readonly port: number },
): Record<string, unknown> => {
  const localHost = Endpoint.make(local.address, local.port, from.transport).host
  return {
    "network.transport": from.transport,
    "client.address": from.host,
    "client.port": from.port,
    "network.peer.address": from.host,
    "network.peer.port": from.port,
    "server.address": localHost,
    "server.port": local.port,
    "network.local.address": localHost,
    "network.local.port": local.port,
  }
}

/** Records an event on the current span, if there is one. */
export const event = (name: string, attributes: Record<string, unknown>): Effect.Effect<void> =>
  Effect.currentSpan.pipe(
    Effect.flatMap((span) => Effect.map(Clock.currentTimeNanos, (now) => span.event(name, now, attributes))),
    Effect.ignore,
  )
