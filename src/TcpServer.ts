/**
 * The textbook's TCPServer.py, rebuilt: listens (port 12000 by default, all
 * interfaces), serves every connection at once, each in its own fiber, and
 * answers with the transformed byte stream of the connection.
 *
 * The layer binds while it is built, so a bind error fails the layer and no
 * connection is missed; the accept loop is a fiber in the layer's scope, so
 * closing the scope stops accepting, interrupts every connection and closes
 * every socket.
 */
import { Context, Effect, Layer } from "effect"
import type * as Scope from "effect/Scope"
import type * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as ListenAddress from "./ListenAddress.ts"
import * as TcpConnection from "./TcpConnection.ts"
import * as TcpListener from "./TcpListener.ts"
import { Transform } from "./Transform.ts"

/** How to run a TCP server; every field has a default. */
export interface TcpServerOptions {
  /** Interface to listen on; all interfaces (IPv6 and IPv4 where the host has it) by default. */
  readonly host?: string | undefined
  /** Port, 12000 by default; 0 picks a free one (see `address`). */
  readonly port?: number | undefined
  /** Longest line a line transform accepts, 64 KiB by default. */
  readonly maxLineBytes?: number | undefined
  /** Length of the kernel's queue of connections not yet accepted. */
  readonly backlog?: number | undefined
}

/** Counters of a running server. */
export interface TcpServerStats {
  readonly connectionsOpen: number
  readonly connectionsTotal: number
  readonly malformedConnections: number
  readonly acceptErrors: number
}

/** A running TCP server. */
export class TcpServer extends Context.Service<TcpServer, {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: Endpoint.Endpoint
  readonly stats: () => TcpServerStats
}>()("caps/TcpServer") {}

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024

/** Binds, then serves in a fiber of the current scope. */
export const make = (
  options: TcpServerOptions = {},
): Effect.Effect<TcpServer["Service"], CapsError.BindError, Scope.Scope | Transform> =>
  Effect.gen(function* () {
    const transform = yield* Transform
    const listener = yield* ListenAddress.bind(
      options.host,
      (host) => TcpListener.make({ host, port: options.port ?? 12000, backlog: options.backlog }),
    )
    const connectionOptions = { maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES }
    let connectionsOpen = 0
    let connectionsTotal = 0
    let malformedConnections = 0

    const handle = ({ peer, socket }: TcpListener.Connection) =>
      Effect.suspend(() => {
        connectionsOpen++
        connectionsTotal++
        return TcpConnection.serve(socket, peer, transform, connectionOptions)
      }).pipe(
        Effect.tap(({ malformed }) =>
          Effect.sync(() => {
            if (malformed > 0) malformedConnections++
          })
        ),
        Effect.catchCause((cause) => Effect.logWarning(`connection from ${Endpoint.format(peer)} failed`, cause)),
        Effect.ensuring(Effect.sync(() => connectionsOpen--)),
        Effect.asVoid,
      )

    yield* Effect.forkScoped(listener.run(handle))
    return TcpServer.of({
      address: listener.address,
      stats: () => ({ connectionsOpen, connectionsTotal, malformedConnections, acceptErrors: listener.acceptErrors() }),
    })
  })

/** A layer that runs a TCP server for as long as it is in use. */
export const layer = (options: TcpServerOptions = {}): Layer.Layer<TcpServer, CapsError.BindError, Transform> =>
  Layer.effect(TcpServer, make(options))
