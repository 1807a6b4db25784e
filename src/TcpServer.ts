/**
 * The textbook's TCPServer.py, rebuilt: listens (port 12000 by default, all
 * interfaces), serves every connection at once, each in its own fiber, and
 * answers with the transformed byte stream of the connection.
 *
 * The options are decoded first (`InvalidOption` names a bad one, and nothing
 * is bound); the layer binds while it is built, so a bind error fails the
 * layer and no connection is missed; the accept loop is a fiber in the
 * layer's scope. Time (the idle sweep, the drain deadline) follows Effect's
 * `Clock`, so a test can drive it with `TestClock`.
 *
 * Shutdown, when the scope closes (SIGINT/SIGTERM for the CLI), step by step:
 * 1. stop accepting: the listening socket is closed, new connections are refused;
 * 2. close idle connections (waiting for bytes) at once, flushing what they owe;
 * 3. let busy connections write the replies they owe, then close them;
 * 4. wait for closed connections to finish lingering (until their peers close:
 *    an earlier exit would reset them and lose unread replies); after the drain
 *    deadline (5 s by default), interrupt what remains, which closes its socket
 *    at once;
 * 5. log one line saying how many connections finished and how many were cut.
 *
 * Each connection is one `TcpServer.connection` span, a root span of kind
 * server: who connected and where (`SpanAttributes.served`), and at its end
 * how it ended and how many sentences it served. Its cost is per connection:
 * no request makes a span.
 *
 * With `tls` (certificate and key files, read and checked before binding),
 * every connection is TLS and is served exactly as a plaintext one once its
 * handshake is done. `reloadTls` reads the files again for new connections;
 * open ones keep the certificate they were set up with. TLS has no half-close
 * of its own: a client that ends its side sends close_notify, then FIN. TLS
 * 1.3 lets the other side go on writing after a close_notify (RFC 8446 6.1),
 * and the server does, so such a client still gets its replies, as over plain
 * TCP; a TLS 1.2 client may take its close_notify as the end of both
 * directions. The server's own close is close_notify then FIN, lingering.
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CapsError from "./CapsError.ts"
import * as DescriptorBudget from "./DescriptorBudget.ts"
import * as Endpoint from "./Endpoint.ts"
import * as LogAnnotations from "./LogAnnotations.ts"
import * as ListenAddress from "./ListenAddress.ts"
import * as Metrics from "./Metrics.ts"
import * as Options from "./Options.ts"
import * as Protocol from "./Protocol.ts"
import * as SpanAttributes from "./SpanAttributes.ts"
import * as TcpConnection from "./TcpConnection.ts"
import * as TcpListener from "./TcpListener.ts"
import * as Tls from "./Tls.ts"
import * as TlsOptions from "./TlsOptions.ts"
import { Transform } from "./Transform.ts"

/** How to run a TCP server; every field has a default. */
export interface TcpServerOptions {
  /** Interface to listen on (an address or a name); all interfaces (IPv6 and IPv4 where the host has it) by default. */
  readonly host?: string | undefined
  /** Port, 12000 by default; 0 picks a free one (see `address`). */
  readonly port?: number | undefined
  /** Longest line a line transform accepts, 64 KiB by default. */
  readonly maxLineBytes?: number | undefined
  /**
   * Connections served at once, 10,000 by default, and never more than the descriptor limit
   * leaves (see `DescriptorBudget`); more are accepted and closed at once.
   */
  readonly maxConnections?: number | undefined
  /**
   * A connection with no bytes in either direction for this long is closed (checked every eighth
   * of it); 60 s by default, `Duration.infinity` for never.
   */
  readonly idleTimeout?: Duration.Input | undefined
  /** How long shutdown waits for busy connections before cutting them; 5 s by default. */
  readonly drainTimeout?: Duration.Input | undefined
  /** Length of the kernel's queue of connections not yet accepted. */
  readonly backlog?: number | undefined
  /**
   * Serve TLS with the certificate and key in these PEM files (paths, so that `reloadTls` can read them
   * again); plaintext by default. A handshake must be done within the idle timeout (120 s without one).
   */
  readonly tls?: TlsOptions.ServerTls | undefined
}

/** The options as `make` checks them. */
export const TcpServerOptions = Schema.Struct({
  host: Schema.optional(Options.Host),
  port: Schema.optional(Options.ServerPort),
  maxLineBytes: Schema.optional(Options.PositiveInt),
  maxConnections: Schema.optional(Options.PositiveInt),
  idleTimeout: Schema.optional(Options.PositiveDuration({ infinite: true })),
  drainTimeout: Schema.optional(Options.PositiveDuration()),
  backlog: Schema.optional(Options.PositiveInt),
  tls: Schema.optional(TlsOptions.ServerTls),
})

/** Counters of a running server. */
export interface TcpServerStats {
  readonly connectionsOpen: number
  readonly connectionsTotal: number
  /** Closed at once because the connection limit was reached. */
  readonly connectionsRejected: number
  readonly idleTimeouts: number
  readonly malformedConnections: number
  /** Closed because their transform failed or threw, or a callback raised. */
  readonly failedConnections: number
  readonly acceptErrors: number
  /** TLS handshakes that failed: plaintext clients, clients that refused the certificate, timeouts. */
  readonly tlsHandshakeFailures: number
}

/** A running TCP server. */
export class TcpServer extends Context.Service<TcpServer, {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: Endpoint.Endpoint
  readonly stats: Effect.Effect<TcpServerStats>
  /** The certificate new connections are served with; `undefined` without TLS. */
  readonly tlsCertificate: Effect.Effect<TlsOptions.CertificateInfo | undefined>
  /**
   * Reads the `tls` files again and serves new connections with them (open ones keep theirs), returning the
   * new certificate; on failure the previous one stays. Without TLS it does nothing and returns `undefined`.
   */
  readonly reloadTls: Effect.Effect<TlsOptions.CertificateInfo | undefined, CapsError.TlsFileError>
}>()("caps/TcpServer") {}

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024
export const DEFAULT_MAX_CONNECTIONS = 10_000
export const DEFAULT_IDLE_TIMEOUT = Duration.seconds(60)
export const DEFAULT_DRAIN_TIMEOUT = Duration.seconds(5)

/** Everything `make` can fail with. */
export type TcpServerError =
  | CapsError.BindError
  | CapsError.NameNotResolved
  | CapsError.InvalidOption
  | CapsError.TlsFileError

const decodeOptions = Options.decode(TcpServerOptions, "TcpServer")

// How a connection's end is counted in `caps_tcp_connections_closed_total`.
const closeReason: Record<TcpConnection.End, Metrics.CloseReason> = {
  eof: "peer",
  reset: "peer",
  idle: "idle",
  "too-long": "too_long",
  drained: "drain",
  error: "error",
}

/** Binds, then serves in a fiber of the current scope; drains when the scope closes. */
export const make: (options?: TcpServerOptions) => Effect.Effect<TcpServer["Service"], TcpServerError, Scope.Scope> =
  Effect.fn("TcpServer.make")(function* (given: TcpServerOptions = {}) {
    const options = yield* decodeOptions(given)
    let credentials = options.tls === undefined ? undefined : yield* Tls.loadServer(options.tls)
    const transform = yield* Transform
    const clock = yield* Clock.Clock
    const requested = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    const descriptors = DescriptorBudget.connections()
    // An assumed descriptor limit caps only the default; a limit given explicitly is taken as known to fit.
    const maxConnections = descriptors.known || options.maxConnections === undefined
      ? Math.min(requested, descriptors.budget)
      : requested
    const idleTimeout = Options.duration(given.idleTimeout, DEFAULT_IDLE_TIMEOUT)
    const listener = yield* ListenAddress.bind(
      options.host,
      (host) =>
        TcpListener.make({
          host,
          port: options.port ?? Protocol.DEFAULT_PORT,
          backlog: options.backlog,
          maxConnections,
          tls: credentials && {
            context: credentials.context,
            handshakeTimeoutMillis: Duration.isFinite(idleTimeout) ? Duration.toMillis(idleTimeout) : 120_000,
          },
        }),
    )
    const drainTimeout = Options.duration(given.drainTimeout, DEFAULT_DRAIN_TIMEOUT)
    // Counted here and in each connection, read by `stats` and by the metrics (Metrics.ts).
    const counts = new Metrics.TcpCounters()
    counts.rejected = listener.rejected
    counts.acceptErrors = listener.acceptErrors
    counts.handshakeFailures = listener.handshakeFailures
    Metrics.track(counts, yield* Effect.context<never>())
    const connectionOptions: TcpConnection.ConnectionOptions = {
      maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
      idleMillis: Duration.toMillis(idleTimeout),
      counters: counts,
    }
    const tracked = new Set<TcpConnection.ConnectionControl>()
    // Once the drain has begun, and how many connections it has had to end (those open, and any accepted as it began).
    const drainState = { started: false, connections: 0 }
    // Resumed when the last tracked connection ends, while a drain waits for that.
    let onAllEnded: (() => void) | undefined

    const handle = ({ peer, socket }: TcpListener.Connection) =>
      Effect.suspend(() => {
        // A connection accepted as the drain began starts its fiber after it: it is drained from its start.
        const control: TcpConnection.ConnectionControl = { draining: drainState.started }
        if (drainState.started) drainState.connections++
        tracked.add(control)
        const connection = ++counts.accepted
        counts.active++
        return TcpConnection.serve(
          socket,
          peer,
          transform,
          connectionOptions,
          control,
          clock.currentTimeMillisUnsafe(),
        ).pipe(
          Effect.tap(({ end, malformed, requests }) =>
            Effect.annotateCurrentSpan({
              "caps.connection.end": end,
              "caps.connection.requests": requests,
              "caps.connection.malformed": malformed,
            })
          ),
          // One span per connection, never per request: the bytes are answered in socket callbacks (the hot path).
          Effect.withSpan("TcpServer.connection", {
            kind: "server",
            root: true,
            attributes: {
              ...SpanAttributes.served(peer, { address: socket.localAddress ?? "", port: socket.localPort ?? 0 }),
              "caps.tls": credentials !== undefined,
            },
          }),
          Effect.tap(({ end, malformed }) =>
            Effect.suspend(() => {
              if (malformed > 0) counts.malformedConnections++
              counts.closed[closeReason[end]]++
              if (end !== "idle") return Effect.void
              return Effect.logInfo(
                `closed idle connection from ${Endpoint.format(peer)} after ${connectionOptions.idleMillis} ms`,
              )
            })
          ),
          Effect.catchCause((cause) =>
            Effect.logWarning(`connection from ${Endpoint.format(peer)} failed`, cause).pipe(
              Effect.annotateLogs(LogAnnotations.ofCause(cause)),
            )
          ),
          // Interrupted: cut at the drain deadline, or the scope closed.
          Effect.onInterrupt(() => Effect.sync(() => counts.closed.cut++)),
          Effect.ensuring(Effect.sync(() => {
            counts.active--
            tracked.delete(control)
            if (tracked.size === 0) onAllEnded?.()
          })),
          Effect.asVoid,
          // Whatever this connection logs names it: its peer, and its number on this server.
          Effect.annotateLogs({ ...LogAnnotations.ofPeer(peer), connection }),
        )
      })

    const allEnded = Effect.callback<void>((resume) => {
      if (tracked.size === 0) return resume(Effect.void)
      onAllEnded = () => resume(Effect.void)
      return Effect.sync(() => {
        onAllEnded = undefined
      })
    })

    // One timer for all connections: each tick, a connection with no activity for the idle timeout is closed.
    const sweepIdle = Effect.gen(function* () {
      const tick = Duration.millis(Math.max(1, connectionOptions.idleMillis / 8))
      while (true) {
        yield* Effect.sleep(tick)
        const now = clock.currentTimeMillisUnsafe()
        for (const control of tracked) control.sweep?.(now)
      }
    })

    const address = listener.address
    const drain = Effect.gen(function* () {
      const started = clock.currentTimeMillisUnsafe()
      yield* listener.stopAccepting
      drainState.started = true
      drainState.connections = tracked.size
      for (const control of tracked) control.drain?.()
      // Wait for the connections, and then for their sockets, which linger until the peers close theirs:
      // exiting earlier would reset them and lose replies the peers have not read yet.
      yield* Effect.andThen(allEnded, listener.allClosed).pipe(
        Effect.timeoutOrElse({ duration: drainTimeout, orElse: () => Effect.void }),
      )
      const cut = tracked.size
      const open = drainState.connections
      yield* Effect.logInfo(
        `tcp-server on ${Endpoint.format(address)} stopped in ${clock.currentTimeMillisUnsafe() - started} ms: ` +
          `${open - cut} of ${open} open connections closed cleanly, ${cut} cut at the ` +
          `${Duration.toMillis(drainTimeout)} ms drain deadline; ${counts.accepted} served in all`,
      ).pipe(Effect.annotateLogs({ transport: "tcp" }))
    })

    if (maxConnections < requested) {
      const limit = descriptors.known
        ? `descriptor limit (ulimit -n) is ${descriptors.limit}`
        : `descriptor limit unknown here, ${descriptors.limit} assumed (give --max-connections to set it)`
      yield* Effect.logWarning(
        `${limit}: ${Endpoint.format(listener.address)} serves at most ${maxConnections} connections at once, ` +
          `not ${requested}, and closes more at once, so that accept never fails with EMFILE`,
      ).pipe(Effect.annotateLogs({ transport: "tcp" }))
    }
    yield* Effect.forkScoped(listener.run(handle))
    if (Duration.isFinite(idleTimeout)) yield* Effect.forkScoped(sweepIdle)
    // Added after the forks, so it runs first when the scope closes: drain, then interrupt what is left.
    yield* Effect.addFinalizer(() => drain)
    const files = options.tls
    return TcpServer.of({
      address,
      stats: Effect.sync((): TcpServerStats => ({
        connectionsTotal: counts.accepted,
        idleTimeouts: counts.closed.idle,
        malformedConnections: counts.malformedConnections,
        failedConnections: counts.closed.error,
        connectionsOpen: tracked.size,
        connectionsRejected: listener.rejected(),
        acceptErrors: listener.acceptErrors(),
        tlsHandshakeFailures: listener.handshakeFailures(),
      })),
      tlsCertificate: Effect.sync(() => credentials?.certificate),
      reloadTls: files === undefined ? Effect.undefined : Tls.loadServer(files).pipe(
        Effect.map((loaded) => {
          listener.setSecureContext(loaded.context)
          credentials = loaded
          return loaded.certificate
        }),
        Effect.withSpan("TcpServer.reloadTls"),
      ),
    })
  })

/** A layer that runs a TCP server for as long as it is in use. */
export const layer = (options: TcpServerOptions = {}): Layer.Layer<TcpServer, TcpServerError> =>
  Layer.effect(TcpServer, make(options))

/**
 * The server's settings from the environment, as the CLI reads them: `CAPS_PORT`, `CAPS_IDLE_TIMEOUT` (seconds),
 * ..., `CAPS_TLS_CERT` and `CAPS_TLS_KEY` (TLS when either is set; `make` refuses one without the other).
 */
export const config: Config.Config<TcpServerOptions> = Config.all({
  host: Config.option(Config.String(Options.envVarOf("host"))).pipe(Config.map(Option.getOrUndefined)),
  port: Config.Int(Options.envVarOf("port")).pipe(Config.withDefault(Protocol.DEFAULT_PORT)),
  maxLineBytes: Config.Int(Options.envVarOf("max-line-bytes")).pipe(Config.withDefault(DEFAULT_MAX_LINE_BYTES)),
  maxConnections: Config.Int(Options.envVarOf("max-connections")).pipe(Config.withDefault(DEFAULT_MAX_CONNECTIONS)),
  idleTimeout: Options.secondsConfig("idle-timeout", DEFAULT_IDLE_TIMEOUT),
  drainTimeout: Options.secondsConfig("drain-timeout", DEFAULT_DRAIN_TIMEOUT),
  tls: TlsOptions.serverConfig,
})

/** A layer that runs a TCP server configured by `config` (the `CAPS_*` variables, through the `ConfigProvider`). */
export const layerConfig: Layer.Layer<TcpServer, TcpServerError | Config.ConfigError> = Layer.effect(
  TcpServer,
  Effect.flatMap(config, make),
)
