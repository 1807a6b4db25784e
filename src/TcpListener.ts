/**
 * The TCP accept loop: a listening `node:net` server owned by a scope, handing
 * each accepted connection to a handler in a fiber of its own.
 *
 * It plays the part of `SocketServer` from `effect/socket`, written here
 * because caps needs what that adapter keeps inside: half-open connections (a
 * client may shut down writing and still read its reply), the peer address
 * for logs, and the server's accept errors (EMFILE), which a server must see
 * to report. Each connection is served on its `node:net` socket directly
 * (`TcpConnection`), which is the hot path.
 *
 * With `tls`, the server is `node:tls`'s, and a connection is handed over
 * once its handshake is done, as a `TLSSocket` (a `net.Socket` to
 * `TcpConnection`). The connection limit counts connections still in their
 * handshake; a failed handshake is counted and logged (throttled), and only
 * that connection ends. The secure context can be replaced while serving:
 * connections already open keep theirs.
 *
 * Guarantees: `make` returns only once the server listens, so no connection
 * is lost between binding and serving; connection fibers live in the scope of
 * `run`, so interrupting `run` (or closing the scope) interrupts them all and
 * closes their sockets; a failing handler is logged and contained.
 */
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Scope from "effect/Scope"
import type * as Net from "node:net"
import type * as NodeTls from "node:tls"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as LogAnnotations from "./LogAnnotations.ts"
import * as Runtime from "./Runtime.ts"
import * as Tls from "./Tls.ts"
import { WarningThrottle } from "./WarningThrottle.ts"

/** Where to listen, and how many connections to hold at most. */
export interface ListenOptions {
  readonly host: string
  readonly port: number
  readonly backlog?: number | undefined
  /**
   * Connections served at once. One past it is accepted and closed at once,
   * so its client learns at once instead of waiting in the kernel's queue,
   * and the server never runs out of descriptors because of clients.
   */
  readonly maxConnections?: number | undefined
  /** Serve TLS with this certificate and key; a handshake not done in `handshakeTimeoutMillis` fails. */
  readonly tls?: {
    readonly context: Tls.ServerCredentials["context"]
    readonly handshakeTimeoutMillis: number
  } | undefined
}

/** An accepted connection: the socket, closed with the handler's scope, and who is on the other end. */
export interface Connection {
  readonly socket: Net.Socket
  readonly peer: Endpoint.Endpoint
}

/** A listening server. */
export interface TcpListener {
  readonly address: Endpoint.Endpoint
  /** Serves connections until interrupted; each handler runs in its own fiber and scope. */
  readonly run: <R>(
    handler: (connection: Connection) => Effect.Effect<void, never, R>,
  ) => Effect.Effect<never, never, Exclude<R, Scope.Scope>>
  /** Stops accepting new connections; those already accepted go on. */
  readonly stopAccepting: Effect.Effect<void>
  /** Accept failures seen so far (EMFILE and the like). */
  readonly acceptErrors: () => number
  /** Connections closed at once because `maxConnections` were open. */
  readonly rejected: () => number
  /** Accepted sockets not closed yet, including those lingering after their handler ended. */
  readonly openSockets: () => number
  /** Completes once every accepted socket is closed (at once if none is open). */
  readonly allClosed: Effect.Effect<void>
  /** TLS handshakes that failed (none without TLS). */
  readonly handshakeFailures: () => number
  /** Serves new connections with another certificate and key (TLS only). */
  readonly setSecureContext: (context: Tls.ServerCredentials["context"]) => void
}

// A lingering close, as nginx's `lingering_close`: send our FIN once queued replies are flushed, then read
// and discard until the peer closes too. Closing a socket with unread bytes makes the kernel reset the
// connection and throw away replies the peer has not read yet. Bounded, so a peer that never closes
// (or never reads) cannot hold the socket.
const LINGER_MILLIS = 5_000
const release = (conn: Net.Socket): void => {
  if (conn.destroyed) return
  conn.on("data", () => {})
  conn.on("error", () => conn.destroy())
  conn.once("end", () => conn.destroy())
  conn.end()
  conn.resume()
  const timer = setTimeout(() => conn.destroy(), LINGER_MILLIS)
  timer.unref()
  conn.once("close", () => clearTimeout(timer))
}

const peerOf = (conn: Net.Socket): Endpoint.Endpoint =>
  Endpoint.make(conn.remoteAddress ?? "unknown", conn.remotePort ?? 0, "tcp")

/** Listens on `options`, failing with a typed error when the address cannot be bound. */
export const make = Effect.fnUntraced(function* (options: ListenOptions) {
  const wanted = Endpoint.make(options.host, options.port, "tcp")
  const tls = options.tls
  yield* Builtins.load(tls === undefined ? "node:net" : "node:tls")
  // Not half-open during the handshake: a client that closes then would hold its socket until the handshake
  // timeout. Each TLS socket is made half-open once secure.
  const tlsServer = tls === undefined ? undefined : Builtins.tls().createServer({
    noDelay: true,
    handshakeTimeout: tls.handshakeTimeoutMillis,
    ...tls.context,
  })
  const server: Net.Server = tlsServer ?? Builtins.net().createServer({ allowHalfOpen: true, noDelay: true })
  // Connections that arrive before `run` installs a handler wait here, paused.
  const waiting = new Set<Net.Socket>()
  let onConnection = (conn: Net.Socket) => {
    waiting.add(conn)
    conn.once("close", () => waiting.delete(conn))
  }
  let acceptErrors = 0
  let onAcceptError = (_error: Error) => {}
  const maxConnections = options.maxConnections ?? Infinity
  // Every accepted socket until it closes, lingering ones included: the scope destroys what is left.
  const accepted = new Set<Net.Socket>()
  const whenAllClosed = new Set<() => void>()
  const closed = (conn: Net.Socket) => {
    accepted.delete(conn)
    if (accepted.size > 0) return
    for (const resume of whenAllClosed) resume()
    whenAllClosed.clear()
  }
  let rejected = 0
  let onRejected = () => {}
  let handshakeFailures = 0
  const peers = new WeakMap<Net.Socket, Endpoint.Endpoint>()
  let onHandshakeFailure = (_error: Error, _peer: Endpoint.Endpoint) => {}
  const ready = (conn: Net.Socket) => {
    // Deno's node:net stops emitting `readable` after an explicit pause; its sockets start non-flowing anyway.
    if (!Runtime.isDeno) conn.pause()
    onConnection(conn)
  }
  // With TLS, the TCP connection is counted here, and served once its handshake is done.
  server.on("connection", (conn: Net.Socket) => {
    if (accepted.size >= maxConnections) {
      rejected++
      conn.destroy()
      return onRejected()
    }
    accepted.add(conn)
    conn.once("close", () => closed(conn))
    if (tls === undefined) ready(conn)
    else peers.set(conn, peerOf(conn))
  })
  if (tlsServer !== undefined) {
    tlsServer.on("secureConnection", (conn: NodeTls.TLSSocket) => {
      conn.allowHalfOpen = true
      ready(conn)
    })
    tlsServer.on("tlsClientError", (error: Error, conn: NodeTls.TLSSocket) => {
      // A TLS socket whose handshake failed may know no peer address any more (Deno's never knew it): the TCP
      // socket under it (`_parent`, on both runtimes) was asked when it was accepted.
      const tcp = (conn as { readonly _parent?: Net.Socket })._parent
      const peer = tcp === undefined ? peerOf(conn) : peers.get(tcp)
      // None: closed at once at the connection limit, counted there.
      if (peer === undefined) return
      handshakeFailures++
      onHandshakeFailure(error, peer)
    })
  }

  yield* Effect.acquireRelease(
    Effect.callback<void, CapsError.BindError>((resume) => {
      const onError = (error: Error) => resume(Effect.fail(CapsError.fromBindFailure(error, wanted)))
      server.once("error", onError)
      server.listen({ host: options.host, port: options.port, backlog: options.backlog ?? 511 }, () => {
        server.off("error", onError)
        // After listening, errors are accept failures: the server keeps listening and recovers.
        server.on("error", (error) => {
          acceptErrors++
          onAcceptError(error)
        })
        resume(Effect.void)
      })
    }),
    () =>
      Effect.callback<void>((resume) => {
        // Closing the scope closes every socket: lingering ones, and any a drain deadline cut.
        for (const conn of accepted) conn.destroy()
        if (!server.listening) return resume(Effect.void)
        server.close(() => resume(Effect.void))
      }),
  )

  const bound = server.address() as Net.AddressInfo
  const address = Endpoint.make(bound.address, bound.port, "tcp")

  const run = <R>(
    handler: (connection: Connection) => Effect.Effect<void, never, R>,
  ): Effect.Effect<never, never, Exclude<R, Scope.Scope>> =>
    Effect.scoped(Effect.gen(function* () {
      const fibers = yield* FiberSet.make<void, never>()
      const runFork = yield* FiberSet.runtime(fibers)<Exclude<R, Scope.Scope>>()
      const runLog = Effect.runForkWith(yield* Effect.context<never>())
      const throttle = new WarningThrottle((message, annotations) =>
        runLog(Effect.annotateLogs(Effect.logWarning(message), { transport: "tcp", ...annotations }))
      )
      const logAcceptError = (error: Error) =>
        throttle.warn("AcceptError", () =>
          `accept failed on ${Endpoint.format(address)}: ${CapsError.errno(error) ?? "error"} (${error.message}); ` +
          `still listening`)
      const logHandshakeFailure = (error: Error, peer: Endpoint.Endpoint) =>
        throttle.warn("TlsHandshake", () =>
          `TLS handshake failed from ${Endpoint.format(peer)} on ${Endpoint.format(address)}: ` +
          `${Tls.describeHandshakeFailure(error)}; closed it (${handshakeFailures} so far)`, () =>
          LogAnnotations.ofPeer(peer))
      const logRejected = () =>
        throttle.warn("ConnectionLimit", () =>
          `connection limit of ${maxConnections} reached on ${Endpoint.format(address)}: ` +
          `closing new connections at once (${rejected} so far)`)
      const serve = (conn: Net.Socket) => {
        const socket = Effect.acquireRelease(Effect.succeed(conn), (conn) =>
          Effect.sync(() =>
            release(conn)
          ))
        runFork(Effect.scoped(Effect.flatMap(socket, (socket) =>
          handler({ socket, peer: peerOf(socket) }))))
      }
      onConnection = serve
      onAcceptError = logAcceptError
      onRejected = logRejected
      onHandshakeFailure = logHandshakeFailure
      for (const conn of waiting) {
        serve(conn)
      }
      waiting.clear()
      yield* Scope.addFinalizer(
        yield* Effect.scope,
        Effect.sync(() => {
          onConnection = (conn) =>
            conn.destroy()
          onAcceptError = () => {}
          onRejected = () => {}
          onHandshakeFailure = () => {}
        }),
      )
      return yield* Effect.never
    }))

  const stopAccepting = Effect.sync(() => {
    if (server.listening) server.close()
  })

  const allClosed = Effect.callback<void>((resume) => {
    if (accepted.size === 0) return resume(Effect.void)
    const done = () => resume(Effect.void)
    whenAllClosed.add(done)
    return Effect.sync(() => whenAllClosed.delete(done))
  })

  return {
    address,
    run,
    stopAccepting,
    acceptErrors: () => acceptErrors,
    rejected: () => rejected,
    openSockets: () => accepted.size,
    allClosed,
    handshakeFailures: () => handshakeFailures,
    setSecureContext: (context) => tlsServer?.setSecureContext(context),
  } satisfies TcpListener
})
