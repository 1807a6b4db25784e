/**
 * `caps proxy`: a relay that stands between any client and any server, UDP
 * and TCP on one port number (like `caps serve`), and injects the failures
 * the textbook's programs ignore, on purpose and reproducibly: lost,
 * late, doubled and reordered datagrams; TCP bytes that come late, in
 * pieces, slowly, or not at all; connections reset or closed mid-stream.
 * With no fault it is a plain relay.
 *
 * The faults are a seeded plan (`Faults`): the same options give the same
 * faults every run. Each one injected is counted (`stats`) and logged,
 * throttled per kind to one line a second; when the proxy's scope closes it
 * logs one summary line of the counts.
 *
 * As the servers: the options are decoded first (`InvalidOption` names a
 * bad one, and nothing is bound), and so is a target that is the proxy's own
 * address (it would relay to itself); `make` binds both sockets while it
 * runs, so a bind error fails it and nothing is missed; the relays run in
 * fibers of its scope, and closing the scope closes every socket, the
 * upstream ones included. It listens on 127.0.0.1 unless told otherwise: a
 * relay open to the network forwards anyone's traffic to its target.
 *
 * The relays themselves: `UdpRelay` (the flow table, the datagram faults) and
 * `TcpRelay` (one connection, the byte-stream faults); `TcpListener` accepts;
 * `ProxyStats` is what they count, and the summary line.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as Net from "node:net"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as DescriptorBudget from "./DescriptorBudget.ts"
import * as Endpoint from "./Endpoint.ts"
import * as LogAnnotations from "./LogAnnotations.ts"
import * as Faults from "./Faults.ts"
import * as ListenAddress from "./ListenAddress.ts"
import * as Options from "./Options.ts"
import * as Protocol from "./Protocol.ts"
import * as ProxyStats from "./ProxyStats.ts"
import * as Resolver from "./Resolver.ts"
import * as TcpListener from "./TcpListener.ts"
import * as TcpRelay from "./TcpRelay.ts"
import * as UdpRelay from "./UdpRelay.ts"
import * as UdpSocket from "./UdpSocket.ts"
import { WarningThrottle } from "./WarningThrottle.ts"

/** How to run a proxy: a target, and the faults to inject; every other field has a default. */
export interface FaultProxyOptions {
  /** The server to relay to: `"host:port"` (`"[::1]:12000"`) or `{ host, port }`. */
  readonly target: string | { readonly host: string; readonly port: number }
  /** Interface to listen on; 127.0.0.1 by default. */
  readonly host?: string | undefined
  /** Port for both UDP and TCP, 12000 by default; 0 picks one free for both (see `address`). */
  readonly port?: number | undefined
  /** Where the faults apply: to `requests` (client to server), `replies`, or `both` (the default). */
  readonly direction?: Faults.Applies | undefined
  /** Seeds the random faults; 1 by default. */
  readonly seed?: number | undefined
  /** UDP: the share of datagrams dropped, 0 to 1. */
  readonly drop?: number | undefined
  /** UDP: the share of datagrams sent twice. */
  readonly duplicate?: number | undefined
  /** UDP: the share of datagrams held back and sent after the next one (or after 1 s). */
  readonly reorder?: number | undefined
  /** UDP and TCP: added to every datagram's and every chunk's way. */
  readonly delay?: Duration.Input | undefined
  /** UDP: each datagram's delay varies uniformly by up to this much either way. */
  readonly jitter?: Duration.Input | undefined
  /** UDP: receive, never forward. TCP: accept, never forward (both directions: the target is not even asked). */
  readonly blackhole?: boolean | undefined
  /** TCP: forward in pieces of at most this many bytes, each written on its own after a short pause. */
  readonly slice?: number | undefined
  /** TCP: reset both sides once this many bytes were relayed in a faulted direction. */
  readonly resetAfter?: number | undefined
  /** TCP: close both sides cleanly once this many bytes were relayed in a faulted direction. */
  readonly closeAfter?: number | undefined
  /** TCP: at most this many bytes a second in a faulted direction. */
  readonly bandwidth?: number | undefined
  /** A UDP flow or TCP connection silent this long is closed; 60 s by default, `Duration.infinity` for never. */
  readonly idleTimeout?: Duration.Input | undefined
  /** TCP connections relayed at once (each holds two descriptors); more are accepted and closed at once. */
  readonly maxConnections?: number | undefined
  /** UDP clients relayed at once (each holds an upstream socket); datagrams of more are not relayed. */
  readonly maxFlows?: number | undefined
}

/** `host:port`, or `[ipv6]:port`, as `--target` takes it; `undefined` if it is not one. */
export const parseHostPort = (text: string): { readonly host: string; readonly port: number } | undefined => {
  const match = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text)
  if (match === null) return undefined
  const port = Number(match[3])
  if (port < 1 || port > 65535) return undefined
  return { host: match[1] ?? match[2], port }
}

const TargetText = Schema.String.check(
  Schema.makeFilter((s) =>
    parseHostPort(s) !== undefined || `expected host:port (or [ipv6]:port), got ${JSON.stringify(s)}`
  ),
)

const Rate = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))

// A delay may be zero (no delay), unlike the servers' timeouts.
const Delay = Schema.Unknown.check(
  Schema.makeFilter((input) => {
    const duration = input === undefined || input === null || Number.isNaN(input)
      ? undefined
      : Duration.fromInput(input as Duration.Input)
    if (duration === undefined || duration._tag === "None") return `expected a duration, got ${String(input)}`
    if (!Duration.isFinite(duration.value)) return "expected a finite duration, got infinity"
    return Duration.toMillis(duration.value) >= 0 || `expected a duration of 0 or more, got ${String(input)}`
  }),
)

/** The options as `make` checks them. */
export const FaultProxyOptions = Schema.Struct({
  target: Schema.Union([TargetText, Schema.Struct({ host: Options.Host, port: Options.ClientPort })]),
  host: Schema.optional(Options.Host),
  port: Schema.optional(Options.ServerPort),
  direction: Schema.optional(Schema.Literals(["requests", "replies", "both"])),
  seed: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 0xffffffff }))),
  drop: Schema.optional(Rate),
  duplicate: Schema.optional(Rate),
  reorder: Schema.optional(Rate),
  delay: Schema.optional(Delay),
  jitter: Schema.optional(Delay),
  blackhole: Schema.optional(Schema.Boolean),
  slice: Schema.optional(Options.PositiveInt),
  resetAfter: Schema.optional(Options.NonNegativeInt),
  closeAfter: Schema.optional(Options.NonNegativeInt),
  bandwidth: Schema.optional(Options.PositiveInt),
  idleTimeout: Schema.optional(Options.PositiveDuration({ infinite: true })),
  maxConnections: Schema.optional(Options.PositiveInt),
  maxFlows: Schema.optional(Options.PositiveInt),
})

/** A running proxy. */
export class FaultProxy extends Context.Service<FaultProxy, {
  /** Where it listens, UDP and TCP on this one port (the real one when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number }
  /** Where it relays to: the host as given, the address it resolved to. */
  readonly target: { readonly host: string; readonly address: string; readonly port: number }
  /** The faults in a few words, as the ready line says them (`drop 0.3 (replies), seed 1`, or `none`). */
  readonly faults: string
  readonly stats: Effect.Effect<ProxyStats.ProxyStats>
}>()("caps/FaultProxy") {}

export const DEFAULT_HOST = "127.0.0.1"
export const DEFAULT_PORT = Protocol.DEFAULT_PORT
export const DEFAULT_IDLE_TIMEOUT = Duration.seconds(60)
export const DEFAULT_MAX_CONNECTIONS = 1000
export const DEFAULT_MAX_FLOWS = 1024

/** Everything `make` can fail with. */
export type FaultProxyError = CapsError.BindError | CapsError.NameNotResolved | CapsError.InvalidOption

const decodeOptions = Options.decode(FaultProxyOptions, "FaultProxy")

// Tries for one port free on both transports, when port 0 lets the system pick the UDP one.
const PORT_ATTEMPTS = 8

const unmapped = (address: string) => Endpoint.make(address, 0, "udp").host

// Whether a datagram or connection sent to `address` reaches a socket bound to `listen` (same port).
const reaches = (address: string, listen: string): boolean => {
  const to = unmapped(address)
  if (to === unmapped(listen) || to === "0.0.0.0" || to === "::") return true
  if (listen !== "::" && listen !== "0.0.0.0") return false
  if (listen === "0.0.0.0" && Endpoint.ipVersion(to) === 6) return false
  if (to === "::1" || to.startsWith("127.")) return true
  return Object.values(Builtins.os().networkInterfaces()).some((list) => list?.some((i) => unmapped(i.address) === to))
}

const refuseLoop = (listen: string, port: number, target: { readonly address: string; readonly port: number }) =>
  target.port === port && reaches(target.address, listen)
    ? Effect.fail(
      new CapsError.InvalidOption({
        option: "FaultProxy.target",
        detail: `${Endpoint.formatHostPort(target.address, target.port)} is the proxy's own address ` +
          `(${Endpoint.formatHostPort(listen, port)}): it would relay to itself`,
      }),
    )
    : Effect.void

// Binds UDP, then TCP on the same port number; with port 0, tries again if that number is taken for TCP.
const bindBoth = Effect.fnUntraced(function* (host: string, port: number, maxConnections: number) {
  const outer = yield* Effect.scope
  for (let attempt = 1;; attempt++) {
    const scope = yield* Scope.fork(outer)
    const exit = yield* Effect.exit(
      Effect.gen(function* () {
        const udp = yield* UdpSocket.bind(host, port)
        const tcp = yield* TcpListener.make({ host, port: udp.socket.address().port, maxConnections })
        return { udp, tcp }
      }).pipe(Scope.provide(scope)),
    )
    if (Exit.isSuccess(exit)) return exit.value
    yield* Scope.close(scope, exit)
    const taken = Exit.findErrorOption(exit)
    const again = port === 0 && attempt < PORT_ATTEMPTS && taken._tag === "Some" &&
      taken.value._tag === "AddressInUse"
    if (!again) return yield* exit
  }
})

/** Binds on UDP and TCP, then relays in fibers of the current scope until it closes. */
export const make: (options: FaultProxyOptions) => Effect.Effect<FaultProxy["Service"], FaultProxyError, Scope.Scope> =
  Effect.fn("FaultProxy.make")(function* (given: FaultProxyOptions) {
    const options = yield* decodeOptions(given)
    if (options.resetAfter !== undefined && options.closeAfter !== undefined) {
      return yield* new CapsError.InvalidOption({
        option: "FaultProxy.closeAfter",
        detail: "give either resetAfter or closeAfter, not both",
      })
    }
    const settings: Faults.FaultSettings = {
      direction: options.direction ?? "both",
      seed: options.seed ?? 1,
      drop: options.drop ?? 0,
      duplicate: options.duplicate ?? 0,
      reorder: options.reorder ?? 0,
      delayMillis: Math.round(Duration.toMillis(Options.duration(given.delay, Duration.zero))),
      jitterMillis: Math.round(Duration.toMillis(Options.duration(given.jitter, Duration.zero))),
      blackhole: options.blackhole ?? false,
      slice: options.slice,
      resetAfter: options.resetAfter,
      closeAfter: options.closeAfter,
      bandwidth: options.bandwidth,
    }
    const plan = new Faults.FaultPlan(settings)
    const wanted = typeof options.target === "string" ? parseHostPort(options.target)! : options.target
    // The target's first address, IPv4 first, as the clients pick it.
    const resolved = (yield* Resolver.resolve(wanted.host))[0]
    const target = { host: wanted.host, address: resolved.address, port: wanted.port }
    const host = yield* ListenAddress.addressOf(options.host ?? DEFAULT_HOST)
    const port = options.port ?? DEFAULT_PORT
    if (port !== 0) yield* refuseLoop(host, port, target)
    const idleMillis = Duration.toMillis(Options.duration(given.idleTimeout, DEFAULT_IDLE_TIMEOUT))
    const maxConnections = options.maxConnections ??
      Math.min(DEFAULT_MAX_CONNECTIONS, Math.max(1, Math.floor(DescriptorBudget.connections().budget / 2)))

    const bound = yield* bindBoth(host, port, maxConnections)
    const front = bound.udp.socket
    const listener = bound.tcp
    const address = { host: unmapped(front.address().address), port: front.address().port }
    yield* refuseLoop(host, address.port, target)

    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const runLog = Effect.runForkWith(yield* Effect.context<never>())
    const throttle = new WarningThrottle(() => {}, now)
    const report: ProxyStats.Report = (level, kind, peer, message) => {
      const suppressed = throttle.take(kind)
      if (suppressed === undefined) return
      const more = suppressed > 0 ? ` (and ${suppressed} more like it since the last such line)` : ""
      const log = level === "info" ? Effect.logInfo : Effect.logWarning
      runLog(
        log(message() + more).pipe(Effect.annotateLogs(LogAnnotations.ofPeer(peer))),
      )
    }

    const delays = yield* FiberSet.make<void>()
    const runDelay = yield* FiberSet.runtime(delays)()
    const udp = new UdpRelay.UdpRelay({
      front,
      target: { address: resolved.address, port: target.port, family: resolved.family },
      plan,
      idleMillis,
      maxFlows: options.maxFlows ?? DEFAULT_MAX_FLOWS,
      report,
      runFork: runDelay,
    }, now())
    const onFrontError = (error: Error) =>
      report(
        "warning",
        "FrontError",
        Endpoint.make(address.host, address.port, "udp"),
        () => `the proxy's UDP socket reported ${CapsError.errno(error) ?? "an error"} (${error.message})`,
      )
    front.off("message", bound.udp.hold)
    front.on("message", udp.onClientDatagram)
    front.on("error", onFrontError)
    for (const [payload, from] of bound.udp.held.splice(0)) udp.onClientDatagram(payload, from)

    const upstreams = new Set<Net.Socket>()
    const tcpStats: TcpRelayOptionsStats = {
      connections: 0,
      open: 0,
      bytesRelayed: 0,
      delayed: 0,
      slices: 0,
      throttled: 0,
      blackholedBytes: 0,
      resets: 0,
      closes: 0,
      connectFailures: 0,
      idleClosed: 0,
    }
    const relayOptions: TcpRelay.TcpRelayOptions = {
      target: { address: resolved.address, port: target.port },
      plan,
      idleMillis,
      report,
      upstreams,
      stats: tcpStats,
    }
    const controls = new Set<TcpRelay.RelayControl>()
    const handle = (connection: TcpListener.Connection) =>
      Effect.suspend(() => {
        const control: TcpRelay.RelayControl = {}
        controls.add(control)
        const number = ++tcpStats.connections
        return TcpRelay.relay(connection, relayOptions, control).pipe(
          Effect.catchCause((cause) =>
            Effect.logWarning(`relaying the connection from ${Endpoint.format(connection.peer)} failed`, cause).pipe(
              Effect.annotateLogs(LogAnnotations.ofCause(cause)),
            )
          ),
          Effect.ensuring(Effect.sync(() => controls.delete(control))),
          Effect.asVoid,
          Effect.annotateLogs({ ...LogAnnotations.ofPeer(connection.peer), connection: number }),
        )
      })

    // One timer for every flow and connection: each tick, what was silent for the idle timeout is closed.
    const sweepIdle = Effect.gen(function* () {
      const tick = Duration.millis(Math.max(1, idleMillis / 8))
      while (true) {
        yield* Effect.sleep(tick)
        const at = now()
        udp.sweep(at)
        for (const control of controls) control.sweep?.(at)
      }
    })

    const stats = Effect.sync((): ProxyStats.ProxyStats => ({
      udp: udp.stats,
      tcp: { ...tcpStats, open: controls.size, rejected: listener.rejected(), acceptErrors: listener.acceptErrors() },
    }))

    // Runs after the relays stop (added before them): the upstream sockets go, UDP and TCP.
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        udp.close,
        Effect.sync(() => {
          front.off("message", udp.onClientDatagram)
          front.on("message", () => {})
          for (const socket of upstreams) socket.destroy()
        }),
      )
    )
    yield* Effect.forkScoped(listener.run(handle))
    if (Number.isFinite(idleMillis)) yield* Effect.forkScoped(sweepIdle)
    // Runs first when the scope closes: the counts as they stand.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(stats, (counts) =>
        Effect.logInfo(
          `caps proxy on ${Endpoint.formatHostPort(address.host, address.port)} stopped: ${ProxyStats.summary(counts)}`,
        ))
    )
    return FaultProxy.of({ address, target, faults: Faults.describe(settings), stats })
  })

type TcpRelayOptionsStats = TcpRelay.TcpRelayOptions["stats"]

/** A layer that runs a proxy for as long as it is in use. */
export const layer = (options: FaultProxyOptions): Layer.Layer<FaultProxy, FaultProxyError> =>
  Layer.effect(FaultProxy, make(options))
