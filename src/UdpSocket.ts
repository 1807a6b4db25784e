/**
 * A UDP socket bound in a scope, for a server (and the proxy's front): it is
 * bound before the effect returns, so a bind error is a typed failure of the
 * layer, and every datagram that arrives before the serve fiber takes over is
 * held (up to `MAX_HELD`), so the first one is never lost. The scope closes
 * it, and waits for its 'close': Deno frees the port only then, and an
 * embedder may bind it again at once.
 */
import * as Effect from "effect/Effect"
import * as Dgram from "node:dgram"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"

/** Datagrams held between binding and serving; a handful at most in practice. */
export const MAX_HELD = 1024

/** A bound socket and what arrived before it was served. */
export interface Bound {
  readonly socket: Dgram.Socket
  /** Datagrams received before the server took over, oldest first. */
  readonly held: Array<readonly [Buffer, Dgram.RemoteInfo]>
  /** The 'message' listener that holds them; the server removes it when it takes over. */
  readonly hold: (payload: Buffer, from: Dgram.RemoteInfo) => void
}

// Every destination is the IP literal a datagram came from: answer at once, sparing the
// `process.nextTick` that Node's default lookup adds to every send. dgram reads only the address
// (Node 24 and Deno 2.9 send to it whatever family is returned); the socket's own family is given, which is
// every destination's (a udp6 socket sees IPv4 peers as IPv4-mapped IPv6), so no send matches a pattern.
const literalLookup = (family: 4 | 6) =>
(
  hostname: string,
  _options: unknown,
  callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void,
) => callback(null, hostname, family)

/** Binds `host` (an IP literal) and `port`; `receiveBufferBytes` sizes the kernel's receive queue. */
export const bind = (
  host: string,
  port: number,
  receiveBufferBytes?: number | undefined,
) => {
  const endpoint = Endpoint.make(host, port, "udp")
  return Effect.acquireRelease(
    Effect.callback<Bound, CapsError.BindError>((resume) => {
      let socket: Dgram.Socket
      const family = Endpoint.ipVersion(host) === 6 ? 6 : 4
      try {
        socket = Dgram.createSocket({ type: family === 6 ? "udp6" : "udp4", lookup: literalLookup(family) })
      } catch (error) {
        return resume(Effect.fail(CapsError.fromBindFailure(error, endpoint)))
      }
      const held: Bound["held"] = []
      const hold = (payload: Buffer, from: Dgram.RemoteInfo) => {
        if (held.length < MAX_HELD) held.push([payload, from])
      }
      const onError = (error: Error) => {
        socket.close()
        resume(Effect.fail(CapsError.fromBindFailure(error, endpoint)))
      }
      socket.once("error", onError)
      socket.on("message", hold)
      socket.bind({ address: host, port }, () => {
        socket.off("error", onError)
        try {
          if (receiveBufferBytes !== undefined) socket.setRecvBufferSize(receiveBufferBytes)
        } catch (error) {
          return onError(error as Error)
        }
        resume(Effect.succeed({ socket, held, hold }))
      })
    }),
    ({ socket }) =>
      Effect.callback<void>((resume) => {
        try {
          socket.close(() => resume(Effect.void))
        } catch {
          resume(Effect.void) // already closed
        }
      }),
  )
}
