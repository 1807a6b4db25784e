/**
 * The textbook's UDPServer.py, rebuilt: binds (port 12000 by default, all
 * interfaces), and for every datagram sends the transformed sentence back to
 * its sender. One datagram is one sentence; invalid UTF-8 is replaced, logged
 * with the sender, and answered.
 *
 * The options are decoded first (`InvalidOption` names a bad one, and nothing
 * is bound); the layer binds while it is built, so a bind error fails the
 * layer; the serve loop is a fiber in the layer's scope: interrupting it
 * (closing the scope) stops serving, and the scope closes the socket.
 * Datagrams that arrive before the fiber takes over are held, so the first
 * one is never lost.
 *
 * A transform that throws, or whose effect fails, costs only its datagram:
 * it is logged with the sender and the cause, not answered, and every other
 * datagram is served. A transform effect runs in a fiber of its own, at most
 * `MAX_IN_FLIGHT` at once (a datagram past that is not answered, and
 * counted), interrupted when the server stops. The rate limiter and the
 * warning throttle read Effect's `Clock`.
 *
 * Each datagram is answered in the socket's own `message` callback, with no
 * queue of our own and no waiting for the send: a fiber step per datagram
 * (park, wake) cost up to a quarter of the throughput of a hand-written
 * `node:dgram` server (bench/). The kernel's receive buffer, sized by
 * `receiveBufferBytes`, is the bounded receive queue; what overflows it the
 * kernel drops and counts (`UdpDrops`). On Deno, which cannot size that
 * queue, reads are sized instead (`UdpSocket`): a datagram that filled its
 * read is not answered, since it may have been cut short, and the reads
 * become whole.
 *
 * With `traceDatagrams` each datagram is a `UdpServer.datagram` span (the
 * sender, and what became of it: `DatagramSpans`); without, the message
 * callback is the untraced one, so tracing off costs the hot path nothing.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Buffer } from "node:buffer"
import type * as Dgram from "node:dgram"
import * as CapsError from "./CapsError.ts"
import * as DatagramSpans from "./DatagramSpans.ts"
import * as Endpoint from "./Endpoint.ts"
import * as ListenAddress from "./ListenAddress.ts"
import * as LogAnnotations from "./LogAnnotations.ts"
import * as Metrics from "./Metrics.ts"
import * as Options from "./Options.ts"
import * as Protocol from "./Protocol.ts"
import { Transform, type TransformShape } from "./Transform.ts"
import * as UdpDrops from "./UdpDrops.ts"
import * as UdpGuard from "./UdpGuard.ts"
import * as UdpSocket from "./UdpSocket.ts"
import * as Utf8 from "./Utf8.ts"
import { WarningThrottle } from "./WarningThrottle.ts"

/** The largest payload a UDP datagram can carry over IPv4. */
export const MAX_UDP_PAYLOAD = Protocol.MAX_UDP_PAYLOAD

/** How to run a UDP server; every field has a default. */
export interface UdpServerOptions {
  /** Interface to bind; all interfaces (IPv6 and IPv4 where the host has it) by default. */
  readonly host?: string | undefined
  /** Port, 12000 by default; 0 picks a free one (see `address`). */
  readonly port?: number | undefined
  /** Datagrams longer than this are logged and not answered; 65,507 by default. */
  readonly maxDatagramBytes?: number | undefined
  /**
   * The kernel's receive buffer for the socket (the receive queue), in bytes; the system's default if not given.
   * Not on Deno, which cannot size it (`InvalidOption`).
   */
  readonly receiveBufferBytes?: number | undefined
  /** Per-source-IP limit on datagrams served; off by default (see `UdpGuard`). */
  readonly rateLimit?: UdpGuard.RateLimit | undefined
  /**
   * One `UdpServer.datagram` span per datagram, with the sender and what became of it; off by default, since a
   * span per datagram costs the hot path (a span per datagram is as many spans as requests).
   */
  readonly traceDatagrams?: boolean | undefined
}

/** The options as `make` checks them. */
export const UdpServerOptions = Schema.Struct({
  host: Schema.optional(Options.Host),
  port: Schema.optional(Options.ServerPort),
  maxDatagramBytes: Schema.optional(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: Protocol.MAX_UDP_PAYLOAD })),
  ),
  receiveBufferBytes: Schema.optional(Options.PositiveInt.check(Schema.makeFilter(() =>
    UdpSocket.sizesReceiveQueue ||
    "not settable on Deno: its node:dgram sizes the buffer each datagram is read into, not the kernel's " +
      "receive queue; leave it unset, or set the system's default (sysctl net.core.rmem_default)"
  ))),
  rateLimit: Schema.optional(Schema.Struct({
    perSecond: Schema.Finite.check(Schema.isGreaterThan(0)),
    burst: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(1)),
  })),
  traceDatagrams: Schema.optional(Schema.Boolean),
})

/** Counters of a running server. */
export interface UdpServerStats {
  readonly received: number
  readonly answered: number
  /** Dropped by the kernel because the receive buffer was full; `undefined` where the platform does not say. */
  readonly dropped: number | undefined
  /** Not answered: the datagram was longer than `maxDatagramBytes`, or its reply longer than a datagram can carry. */
  readonly tooLarge: number
  /**
   * Not answered: the datagram filled its read, and may have been cut short (Deno only, whose reads start at
   * `UdpSocket.FIRST_READ_BYTES`; the first such datagram makes them whole up to `maxDatagramBytes`).
   */
  readonly truncated: number
  readonly malformed: number
  readonly sendErrors: number
  /** Not answered: from a reserved port or the server's own port (loop guard). */
  readonly loopGuarded: number
  readonly rateLimited: number
  /** Not answered: the reply would have been more than 3x the request. */
  readonly amplificationGuarded: number
  /** Not answered: the transform threw or its effect failed. */
  readonly failed: number
  /** Not answered: `MAX_IN_FLIGHT` transform effects were already running. */
  readonly overloaded: number
}

/** A running UDP server. */
export class UdpServer extends Context.Service<UdpServer, {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: Endpoint.Endpoint
  readonly stats: Effect.Effect<UdpServerStats>
}>()("caps/UdpServer") {}

/** Transform effects running at once; a datagram past that is not answered. */
export const MAX_IN_FLIGHT = 4096

/** Everything `make` can fail with. */
export type UdpServerError = CapsError.BindError | CapsError.NameNotResolved | CapsError.InvalidOption

const decodeOptions = Options.decode(UdpServerOptions, "UdpServer")

const refusalReason: Record<UdpGuard.Refusal, string> = {
  ReservedPort: "its source port is a reserved service port (below 1024), a reply could start a loop",
  OwnPort: "its source port is this server's own port, a reply could start a loop",
  RateLimited: "its source exceeds the per-source rate limit",
}

/** Binds, then serves in a fiber of the current scope. */
export const make: (options?: UdpServerOptions) => Effect.Effect<UdpServer["Service"], UdpServerError, Scope.Scope> =
  Effect.fn("UdpServer.make")(function* (given: UdpServerOptions = {}) {
    const options = yield* decodeOptions(given)
    const transform: TransformShape = yield* Transform
    const clock = yield* Clock.Clock
    const port = options.port ?? Protocol.DEFAULT_PORT
    const maxBytes = options.maxDatagramBytes ?? MAX_UDP_PAYLOAD
    const bound = yield* ListenAddress.bind(
      options.host,
      (host) =>
        UdpSocket.bind(host, port, { receiveBufferBytes: options.receiveBufferBytes, maxDatagramBytes: maxBytes }),
    )
    const { socket } = bound
    const local = socket.address()
    const address = Endpoint.make(local.address, local.port, "udp")
    // Counted here, read by `stats` and by the metrics (Metrics.ts).
    const counts = new Metrics.UdpCounters()
    const { refused } = counts
    let malformedDatagrams = 0
    const now = () => clock.currentTimeMillisUnsafe()
    const guard = new UdpGuard.UdpGuard({ serverPort: address.port, rateLimit: options.rateLimit })
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const throttle = new WarningThrottle(
      (message, annotations) => runFork(Effect.annotateLogs(Effect.logWarning(message), annotations)),
      now,
    )
    const endpointOf = (from: Dgram.RemoteInfo) => Endpoint.make(from.address, from.port, "udp")
    const peerOf = (from: Dgram.RemoteInfo) => Endpoint.format(endpointOf(from))
    const annotationsOf = (from: Dgram.RemoteInfo) => () => LogAnnotations.ofPeer(endpointOf(from))
    const inFlight = new Set<Fiber.Fiber<string, unknown>>()

    // A transform that failed costs its datagram only: logged (throttled) with the sender and the cause.
    const failed = (from: Dgram.RemoteInfo, cause: Cause.Cause<unknown>) => {
      counts.failed++
      const suppressed = throttle.take("TransformFailed")
      if (suppressed === undefined) return
      const more = suppressed > 0 ? ` (and ${suppressed} more like it since the last such line)` : ""
      runFork(
        Effect.logError(`transform failed for ${peerOf(from)}: datagram not answered${more}`, cause).pipe(
          Effect.annotateLogs({
            ...LogAnnotations.ofPeer(endpointOf(from)),
            ...LogAnnotations.ofCause(cause),
            kind: "TransformFailed",
            ...(suppressed > 0 ? { suppressed } : {}),
          }),
        ),
      )
    }

    // `arrived` is the request's arrival on `performance.now()`'s clock, in milliseconds.
    const send = (text: string, size: number, from: Dgram.RemoteInfo, arrived: number) => {
      // Buffer.from takes a slice of a shared pool; TextEncoder allocates a buffer per reply, six times as long.
      const reply = Buffer.from(text, "utf8")
      if (!guard.replyFits(size, reply.length)) {
        refused.amplification++
        return throttle.warn(
          "Amplification",
          () =>
            `not answering ${peerOf(from)}: a ${reply.length}-byte reply to ${size} bytes exceeds the ` +
            `${UdpGuard.AMPLIFICATION_FACTOR}x amplification bound`,
          annotationsOf(from),
        )
      }
      // Within the amplification bound a reply can still outgrow a datagram (3 x 21,836 bytes of "ΐ"): the send
      // would fail with EMSGSIZE after the reply was counted as answered.
      if (reply.length > MAX_UDP_PAYLOAD) {
        refused.too_large++
        return throttle.warn(
          "ReplyTooLarge",
          () =>
            `not answering ${peerOf(from)}: the ${reply.length}-byte reply exceeds the ${MAX_UDP_PAYLOAD} bytes ` +
            `a datagram can carry`,
          annotationsOf(from),
        )
      }
      socket.send(reply, from.port, from.address)
      counts.answered++
      counts.duration.observe((performance.now() - arrived) / 1000)
      counts.requestBytes.observe(size)
      counts.replyBytes.observe(reply.length)
    }

    const spans = options.traceDatagrams === true
      ? new DatagramSpans.DatagramSpans(counts, yield* Effect.tracer, clock, local)
      : undefined

    const runTransform = (
      effect: Effect.Effect<string, unknown>,
      size: number,
      from: Dgram.RemoteInfo,
      arrived: number,
    ) => {
      if (inFlight.size >= MAX_IN_FLIGHT) {
        refused.overloaded++
        return throttle.warn(
          "Overloaded",
          () => `not answering ${peerOf(from)}: ${MAX_IN_FLIGHT} transform effects are already running`,
          annotationsOf(from),
        )
      }
      const span = spans?.takeOver()
      const fiber = runFork(effect)
      inFlight.add(fiber)
      fiber.addObserver((exit) => {
        if (!inFlight.delete(fiber)) return span?.interrupted(exit) // interrupted at shutdown
        const settle = () => Exit.isSuccess(exit) ? send(exit.value, size, from, arrived) : failed(from, exit.cause)
        if (span === undefined) settle()
        else span.settle(settle)
      })
    }

    // Every datagram passes here: guard, decode, transform, guard again, reply.
    const answer = (payload: Buffer, from: Dgram.RemoteInfo) => {
      const arrived = performance.now()
      counts.received++
      // The clock is read only for the rate limiter.
      const refusal = guard.admit(from.address, from.port, options.rateLimit === undefined ? 0 : now())
      if (refusal !== undefined) {
        if (refusal === "RateLimited") refused.rate_limit++
        else refused.loop_guard++
        return throttle.warn(
          refusal,
          () => `not answering ${peerOf(from)}: ${refusalReason[refusal]}`,
          annotationsOf(from),
        )
      }
      const size = payload.length
      // Deno: a datagram that filled its read may have been cut short (UdpSocket); never answered as a piece.
      const cut = bound.mayBeCut(payload)
      if (cut && size <= maxBytes) {
        refused.truncated++
        bound.widenReads()
        return throttle.warn(
          "Truncated",
          () =>
            `not answering ${peerOf(from)}: its datagram filled the ${size}-byte read and may have been cut short; ` +
            `datagrams are read whole up to ${maxBytes} bytes from now on, so a resend is answered`,
          () => ({ ...LogAnnotations.ofPeer(endpointOf(from)), error: "Truncated" }),
        )
      }
      if (size > maxBytes) {
        refused.too_large++
        const error = new CapsError.MessageTooLarge({ transport: "udp", size, limit: maxBytes, atLeast: cut })
        return throttle.warn(
          "TooLarge",
          () => `${error.message} from ${peerOf(from)}; not answered`,
          () => ({ ...LogAnnotations.ofPeer(endpointOf(from)), error: error._tag }),
        )
      }
      const decoded = Utf8.decodeWhole(payload)
      if (decoded.malformed > 0) {
        malformedDatagrams++
        counts.invalidUtf8 += decoded.malformed
        throttle.warn(
          "Malformed",
          () => `invalid UTF-8 from ${peerOf(from)}: replaced with U+FFFD and answered`,
          annotationsOf(from),
        )
      }
      const reply = transform.apply(decoded.text)
      if (typeof reply === "string") send(reply, size, from, arrived)
      else runTransform(reply, size, from, arrived)
    }

    // A callback must never throw into the event loop: whatever goes wrong costs this datagram only.
    const onMessage = (payload: Buffer, from: Dgram.RemoteInfo) => {
      try {
        answer(payload, from)
      } catch (defect) {
        failed(from, Cause.die(defect))
      }
    }

    const receive = spans === undefined ? onMessage : spans.traced(onMessage)

    const onSendError = (error: Error) => {
      counts.sendErrors++
      throttle.warn(
        "SendError",
        () => `sending a reply from ${Endpoint.format(address)} failed: ${error.message}`,
        () => ({ transport: "udp" }),
      )
    }

    // The serve loop: runs until interrupted, which detaches it; the scope then closes the socket.
    const serve = Effect.callback<never>(() => {
      socket.off("message", bound.hold)
      socket.on("message", receive)
      socket.on("error", onSendError)
      for (const [payload, from] of bound.held.splice(0)) receive(payload, from)
      return Effect.sync(() => {
        socket.off("message", receive)
        socket.off("error", onSendError)
        // Anything arriving until the socket closes is not served.
        socket.on("message", () => {})
        socket.on("error", () => {})
        const running = [...inFlight]
        inFlight.clear()
        for (const fiber of running) fiber.interruptUnsafe()
      })
    })

    const dropped = () => UdpDrops.dropped(local.address, local.port)
    counts.dropped = dropped
    Metrics.track(counts, yield* Effect.context<never>())
    yield* Effect.forkScoped(serve)
    // Runs first when the scope closes (added after the fork); the serve fiber is interrupted next.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        // Where the kernel's count cannot be read (Deno without --allow-all), the summary says nothing of it.
        const drops = dropped()
        const kernel = drops === undefined ? "" : `, ${drops} dropped by the kernel (receive buffer full)`
        return Effect.logInfo(
          `udp-server on ${Endpoint.format(address)} stopped: ${counts.received} datagrams received, ` +
            `${counts.answered} answered${kernel}`,
        ).pipe(Effect.annotateLogs({ transport: "udp" }))
      })
    )
    const stats = Effect.sync((): UdpServerStats => ({
      received: counts.received,
      answered: counts.answered,
      dropped: dropped(),
      tooLarge: refused.too_large,
      truncated: refused.truncated,
      malformed: malformedDatagrams,
      sendErrors: counts.sendErrors,
      loopGuarded: refused.loop_guard,
      rateLimited: refused.rate_limit,
      amplificationGuarded: refused.amplification,
      failed: counts.failed,
      overloaded: refused.overloaded,
    }))
    return UdpServer.of({ address, stats })
  })

/** A layer that runs a UDP server for as long as it is in use. */
export const layer = (options: UdpServerOptions = {}): Layer.Layer<UdpServer, UdpServerError> =>
  Layer.effect(UdpServer, make(options))

const zeroMeansUnset = (value: number): number | undefined => value === 0 ? undefined : value

/**
 * The server's settings from the environment, as the CLI reads them: `CAPS_HOST`, `CAPS_PORT`,
 * `CAPS_MAX_DATAGRAM_BYTES`, `CAPS_RECEIVE_BUFFER_BYTES`, `CAPS_RATE_LIMIT` (0 for the default, no limit) and
 * `CAPS_TRACE_DATAGRAMS` (`true` for a span per datagram).
 */
export const config: Config.Config<UdpServerOptions> = Config.all({
  host: Config.option(Config.String(Options.envVarOf("host"))).pipe(Config.map(Option.getOrUndefined)),
  port: Config.Int(Options.envVarOf("port")).pipe(Config.withDefault(Protocol.DEFAULT_PORT)),
  maxDatagramBytes: Config.Int(Options.envVarOf("max-datagram-bytes")).pipe(Config.withDefault(MAX_UDP_PAYLOAD)),
  receiveBufferBytes: Config.Int(Options.envVarOf("receive-buffer-bytes")).pipe(
    Config.withDefault(0),
    Config.map(zeroMeansUnset),
  ),
  rateLimit: Config.Int(Options.envVarOf("rate-limit")).pipe(
    Config.withDefault(0),
    Config.map((perSecond) => perSecond === 0 ? undefined : rateLimitOf(perSecond)),
  ),
  traceDatagrams: Config.Boolean(Options.envVarOf("trace-datagrams")).pipe(Config.withDefault(false)),
})

/** The CLI's rate limit: `perSecond` sustained, bursts of twice that. */
export const rateLimitOf = (perSecond: number): UdpGuard.RateLimit => ({ perSecond, burst: 2 * perSecond })

/** A layer that runs a UDP server configured by `config` (the `CAPS_*` variables, through the `ConfigProvider`). */
export const layerConfig: Layer.Layer<UdpServer, UdpServerError | Config.ConfigError> = Layer.effect(
  UdpServer,
  Effect.flatMap(config, make),
)
