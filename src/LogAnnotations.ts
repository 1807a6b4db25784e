/**
 * The facts a server's log line carries as annotations (`Effect.annotateLogs`), so
 * that `--log-format json|logfmt` and an embedder's own `Logger` get them as fields
 * instead of digging them out of the text: `peer` (`host:port`, IPv6 in brackets),
 * `transport` (`udp` or `tcp`), `connection` (a TCP connection's number on its
 * server, from 1), `error` (the `_tag` of the typed error, where there is one),
 * `kind` (a throttled warning's kind, one line a second each, see
 * `WarningThrottle`) and `suppressed` (how many of that kind were held back).
 */
import * as Cause from "effect/Cause"
import * as Predicate from "effect/Predicate"
import * as Endpoint from "./Endpoint.ts"

/** Annotations of a log line; every field is optional (a type, not an interface: `annotateLogs` takes a record). */
export type LogAnnotations = {
  readonly peer?: string
  readonly transport?: Endpoint.Transport
  readonly connection?: number
  /** The line of a client session's input that a failure is about, from 1. */
  readonly line?: number
  readonly error?: string
  readonly kind?: string
  readonly suppressed?: number
}

/** `peer` and `transport` of an endpoint. */
export const ofPeer = (peer: Endpoint.Endpoint): LogAnnotations => ({
  peer: Endpoint.formatHostPort(peer.host, peer.port),
  transport: peer.transport,
})

/** `error`: the tag of the cause's first typed failure; nothing for a defect or an interruption. */
export const ofCause = (cause: Cause.Cause<unknown>): LogAnnotations => {
  const error = Cause.findErrorOption(cause)
  if (error._tag === "None" || !Predicate.hasProperty(error.value, "_tag")) return {}
  const tag = error.value._tag
  return typeof tag === "string" ? { error: tag } : {}
}
