/**
 * The textbook's UDPServer.py, rebuilt: binds (port 12000 by default, all
 * interfaces), and for every datagram sends the transformed sentence back to
 * its sender. One datagram is one sentence; invalid UTF-8 is replaced, logged
 * with the sender, and answered.
 *
 * The layer binds while it is built (a bind error fails the layer, and the
 * first datagram is never lost: it waits in the socket's receive queue), then
 * runs the serve loop as a fiber in the layer's scope. Datagrams are read in
 * batches and answered with one batched write. The receive queue is bounded;
 * what overflows it is dropped and counted.
 */
import * as NodeDatagramSocket from "@effect/platform-node/NodeDatagramSocket"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as NetAddress from "effect/net/NetAddress"
import type * as Scope from "effect/Scope"
import type * as DatagramSocket from "effect/socket/DatagramSocket"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as ListenAddress from "./ListenAddress.ts"
import { Transform, type TransformShape } from "./Transform.ts"
import * as UdpGuard from "./UdpGuard.ts"
import * as Utf8 from "./Utf8.ts"

/** The largest payload a UDP datagram can carry over IPv4. */
export const MAX_UDP_PAYLOAD = 65_507

/** Datagrams queued before serving, by default. */
export const DEFAULT_RECEIVE_QUEUE = 4096

/** How to run a UDP server; every field has a default. */
export interface UdpServerOptions {
  /** Interface to bind; all interfaces (IPv6 and IPv4 where the host has it) by default. */
  readonly host?: string | undefined
  /** Port, 12000 by default; 0 picks a free one (see `address`). */
  readonly port?: number | undefined
  /** Datagrams longer than this are logged and not answered; 65,507 by default. */
  readonly maxDatagramBytes?: number | undefined
  /** Datagrams received but not yet served; past it they are dropped and counted. 4,096 by default. */
  readonly receiveQueue?: number | undefined
  /** Per-source-IP limit on datagrams served; off by default (see `UdpGuard`). */
  readonly rateLimit?: UdpGuard.RateLimit | undefined
}

/** Counters of a running server. */
export interface UdpServerStats {
  readonly received: number
  readonly answered: number
  /** Dropped because the receive queue was full. */
  readonly dropped: number
  readonly tooLarge: number
  readonly malformed: number
  readonly sendErrors: number
  /** Not answered: from a reserved port or the server's own port (loop guard). */
  readonly loopGuarded: number
  readonly rateLimited: number
  /** Not answered: the reply would have been more than 3x the request. */
  readonly amplificationGuarded: number
}

/** A running UDP server. */
export class UdpServer extends Context.Service<UdpServer, {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: Endpoint.Endpoint
  readonly stats: () => UdpServerStats
}>()("caps/UdpServer") {}

const encoder = new TextEncoder()

const openError = (error: DatagramSocket.DatagramSocketError, endpoint: Endpoint.Endpoint): CapsError.BindError => {
  const reason = error.reason
  if (reason._tag === "DatagramSocketOpenError") {
    switch (reason.kind) {
      case "AddressInUse":
        return new CapsError.AddressInUse({ endpoint })
      case "AddressNotAvailable":
        return new CapsError.AddressNotAvailable({ endpoint })
      case "PermissionDenied":
        return new CapsError.PermissionDenied({ endpoint })
    }
  }
  return CapsError.fromBindFailure("cause" in reason ? reason.cause : error, endpoint)
}

const bindSocket = (host: string, port: number, receiveQueue: number) => {
  const endpoint = Endpoint.make(host, port, "udp")
  return Effect.gen(function* () {
    const socket = yield* NodeDatagramSocket.make({
      bind: { address: host, port },
      receiveBuffer: { capacity: receiveQueue, strategy: "dropping" },
    })
    const reader = yield* socket.reader.pipe(Effect.mapError((error) => openError(error, endpoint)))
    const writer = yield* socket.writer
    return { reader, writer }
  })
}

const peerOf = (datagram: DatagramSocket.Datagram): string =>
  Endpoint.format(Endpoint.make(NetAddress.formatHost(datagram.address), datagram.address.port, "udp"))

// The platform's datagrams carry the sender's native host and port; reading them spares
// building an `InetAddress` for every datagram on the hot path.
const sourceOf = (datagram: DatagramSocket.Datagram): { readonly host: string; readonly port: number } => {
  const native = datagram as unknown as { readonly host?: unknown; readonly port?: unknown }
  return typeof native.host === "string" && typeof native.port === "number"
    ? { host: native.host, port: native.port }
    : { host: NetAddress.formatHost(datagram.address), port: datagram.address.port }
}

/** Warnings by kind, at most one line a second each, so a flood of bad datagrams cannot flood the log. */
class WarningThrottle {
  readonly #last = new Map<string, { at: number; suppressed: number }>()
  take(kind: string, message: string, now: number, out: Array<string>): void {
    const entry = this.#last.get(kind)
    if (entry !== undefined && now - entry.at < 1000) {
      entry.suppressed++
      return
    }
    const suppressed = entry?.suppressed ?? 0
    out.push(suppressed > 0 ? `${message} (and ${suppressed} more like it in the last second)` : message)
    this.#last.set(kind, { at: now, suppressed: 0 })
  }
}

const refusalReason: Record<UdpGuard.Refusal, string> = {
  ReservedPort: "its source port is a reserved service port (below 1024), a reply could start a loop",
  OwnPort: "its source port is this server's own port, a reply could start a loop",
  RateLimited: "its source exceeds the per-source rate limit",
}

/** One datagram's answer, or why there is none. */
type Answer =
  | { readonly _tag: "Reply"; readonly payload: Uint8Array; readonly malformed: boolean }
  | { readonly _tag: "TooLarge" }

const answer = (transform: TransformShape, payload: Uint8Array, maxBytes: number): Answer => {
  if (payload.length > maxBytes) return { _tag: "TooLarge" }
  const decoded = Utf8.decodeWhole(payload)
  return { _tag: "Reply", payload: encoder.encode(transform.apply(decoded.text)), malformed: decoded.malformed > 0 }
}

/** Binds, then serves in a fiber of the current scope. */
export const make = (
  options: UdpServerOptions = {},
): Effect.Effect<UdpServer["Service"], CapsError.BindError, Scope.Scope | Transform> =>
  Effect.gen(function* () {
    const transform = yield* Transform
    const port = options.port ?? 12000
    const maxBytes = Math.min(options.maxDatagramBytes ?? MAX_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
    const { reader, writer } = yield* ListenAddress.bind(
      options.host,
      (host) => bindSocket(host, port, options.receiveQueue ?? DEFAULT_RECEIVE_QUEUE),
    )
    const address = Endpoint.make(NetAddress.formatHost(reader.address), reader.address.port, "udp")
    const stats = {
      received: 0,
      answered: 0,
      tooLarge: 0,
      malformed: 0,
      sendErrors: 0,
      loopGuarded: 0,
      rateLimited: 0,
      amplificationGuarded: 0,
    }
    const guard = new UdpGuard.UdpGuard({ serverPort: address.port, rateLimit: options.rateLimit })
    const throttle = new WarningThrottle()

    // Every datagram passes here: guard, decode, transform, guard again.
    const serveBatch = (batch: ReadonlyArray<DatagramSocket.Datagram>) => {
      const replies: Array<DatagramSocket.OutgoingDatagram> = []
      const warnings: Array<string> = []
      const now = Date.now()
      for (const datagram of batch) {
        stats.received++
        const source = sourceOf(datagram)
        const refusal = guard.admit(source.host, source.port, now)
        if (refusal !== undefined) {
          if (refusal === "RateLimited") stats.rateLimited++
          else stats.loopGuarded++
          throttle.take(refusal, `not answering ${peerOf(datagram)}: ${refusalReason[refusal]}`, now, warnings)
          continue
        }
        const size = datagram.payload.length
        const result = answer(transform, datagram.payload, maxBytes)
        if (result._tag === "TooLarge") {
          stats.tooLarge++
          const error = new CapsError.MessageTooLarge({ transport: "udp", size, limit: maxBytes })
          throttle.take("TooLarge", `${error.message} from ${peerOf(datagram)}; not answered`, now, warnings)
          continue
        }
        if (result.malformed) {
          stats.malformed++
          throttle.take("Malformed", `invalid UTF-8 from ${peerOf(datagram)}: replaced with U+FFFD`, now, warnings)
        }
        if (!guard.replyFits(size, result.payload.length)) {
          stats.amplificationGuarded++
          throttle.take(
            "Amplification",
            `not answering ${peerOf(datagram)}: a ${result.payload.length}-byte reply to ${size} bytes ` +
              `exceeds the ${UdpGuard.AMPLIFICATION_FACTOR}x amplification bound`,
            now,
            warnings,
          )
          continue
        }
        replies.push({ payload: result.payload, address: datagram })
      }
      return { replies, warnings }
    }

    const serve = Effect.gen(function* () {
      while (true) {
        const { replies, warnings } = serveBatch(yield* reader.pull)
        for (const warning of warnings) yield* Effect.logWarning(warning)
        if (replies.length === 0) continue
        yield* writer.writeAll(replies as [DatagramSocket.OutgoingDatagram, ...Array<DatagramSocket.OutgoingDatagram>])
          .pipe(
            Effect.tap(() => Effect.sync(() => stats.answered += replies.length)),
            Effect.catch((error) =>
              Effect.sync(() => stats.sendErrors++).pipe(
                Effect.andThen(Effect.logWarning(`sending replies from ${Endpoint.format(address)} failed`, error)),
              )
            ),
          )
      }
    }).pipe(
      Effect.catchCause((cause) => Effect.logError(`UDP server on ${Endpoint.format(address)} stopped`, cause)),
    )

    yield* Effect.forkScoped(serve)
    // Runs first when the scope closes (added after the fork); the serve fiber is interrupted next.
    yield* Effect.addFinalizer(() =>
      Effect.logInfo(
        `udp-server on ${Endpoint.format(address)} stopped: ${stats.received} datagrams received, ` +
          `${stats.answered} answered, ${reader.dropped()} dropped (queue full)`,
      )
    )
    return UdpServer.of({ address, stats: () => ({ ...stats, dropped: reader.dropped() }) })
  })

/** A layer that runs a UDP server for as long as it is in use. */
export const layer = (options: UdpServerOptions = {}): Layer.Layer<UdpServer, CapsError.BindError, Transform> =>
  Layer.effect(UdpServer, make(options))
