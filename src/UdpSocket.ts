/**
 * A UDP socket bound in a scope, for a server (and the proxy's front): it is
 * bound before the effect returns, so a bind error is a typed failure of the
 * layer, and every datagram that arrives before the serve fiber takes over is
 * held (up to `MAX_HELD`), so the first one is never lost. The scope closes
 * it, and waits for its 'close': Deno frees the port only then, and an
 * embedder may bind it again at once.
 *
 * `setRecvBufferSize` means two things. On Node it sizes the kernel's receive
 * queue (SO_RCVBUF). Deno's `node:dgram` leaves the kernel's queue as it is and
 * reads every datagram into a new buffer of that size (twice it on Linux), 64
 * KiB unless set: a smaller value cuts every longer datagram short, silently.
 * So on Deno a receive queue size is refused (`sizesReceiveQueue`), and reads
 * are sized here instead. 64 KiB a datagram, allocated and zeroed, halves the
 * throughput of a Deno server and doubles its memory under load, so reads
 * start at `FIRST_READ_BYTES` (or the longest datagram served plus one byte,
 * if less). A datagram that fills its read may have been cut short
 * (`mayBeCut`); the server does not answer it, and widens the reads to the
 * longest datagram served plus one byte (`widenReads`), so a resend is read
 * whole, and a longer one still shows as longer.
 */
import * as Effect from "effect/Effect"
import type * as Dgram from "node:dgram"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as Runtime from "./Runtime.ts"

/** Datagrams held between binding and serving; a handful at most in practice. */
export const MAX_HELD = 1024

/** Whether a socket's receive queue (the kernel's receive buffer) can be sized here: not on Deno. */
export const sizesReceiveQueue = !Runtime.isDeno

/** Where reads are sized (Deno), the size of the first ones: 4 times the textbook's `recvfrom(2048)`. */
export const FIRST_READ_BYTES = 8192

/** How a server's socket reads. */
export interface BindOptions {
  /** The kernel's receive buffer, in bytes (where `sizesReceiveQueue`). */
  readonly receiveBufferBytes?: number | undefined
  /**
   * The longest datagram the caller serves. Given, reads are sized on Deno: they start at `FIRST_READ_BYTES` (or
   * this plus one byte, if less), and the caller checks `mayBeCut` and calls `widenReads`. Not given, reads are
   * Deno's 64 KiB, every datagram whole.
   */
  readonly maxDatagramBytes?: number | undefined
}

/** A bound socket and what arrived before it was served. */
export interface Bound {
  readonly socket: Dgram.Socket
  /** Datagrams received before the server took over, oldest first. */
  readonly held: Array<readonly [Buffer, Dgram.RemoteInfo]>
  /** The 'message' listener that holds them; the server removes it when it takes over. */
  readonly hold: (payload: Buffer, from: Dgram.RemoteInfo) => void
  /**
   * Whether `payload` filled the buffer it was read into, and so may have been cut short: never on Node, whose
   * reads are whole; on Deno, a datagram as long as its read.
   */
  readonly mayBeCut: (payload: Buffer) => boolean
  /** Reads the next datagrams whole up to the longest served, and a longer one as longer. */
  readonly widenReads: () => void
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

// On Deno: the size of the buffers the next datagrams are read into, at least `bytes`. Deno
// doubles the value on Linux only, so the size is checked after setting it. A read already waiting keeps its size;
// the next one starts after the 'message' listeners of this one have run.
const sizeReads = (socket: Dgram.Socket, bytes: number): void => {
  socket.setRecvBufferSize(Math.ceil(bytes / 2))
  if (socket.getRecvBufferSize() < bytes) socket.setRecvBufferSize(bytes)
}

// Deno reads into a new buffer each time, and the payload is a view of all of it, so a payload that fills its
// buffer filled the read (the first read, sized before binding, is 64 KiB: no datagram fills it).
const filledItsRead = (payload: Buffer): boolean => payload.length === payload.buffer.byteLength

// Binds, node:dgram loaded.
const open = (host: string, port: number, options: BindOptions) => {
  const { receiveBufferBytes, maxDatagramBytes } = options
  const sizedReads = !sizesReceiveQueue && maxDatagramBytes !== undefined
  const endpoint = Endpoint.make(host, port, "udp")
  return Effect.acquireRelease(
    Effect.callback<Bound, CapsError.BindError>((resume) => {
      let socket: Dgram.Socket
      const family = Endpoint.ipVersion(host) === 6 ? 6 : 4
      try {
        socket = Builtins.dgram().createSocket({ type: family === 6 ? "udp6" : "udp4", lookup: literalLookup(family) })
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
          if (sizesReceiveQueue && receiveBufferBytes !== undefined) socket.setRecvBufferSize(receiveBufferBytes)
          if (sizedReads) sizeReads(socket, Math.min(maxDatagramBytes + 1, FIRST_READ_BYTES))
        } catch (error) {
          return onError(error as Error)
        }
        resume(Effect.succeed({
          socket,
          held,
          hold,
          mayBeCut: sizesReceiveQueue ? () => false : filledItsRead,
          widenReads: () => {
            if (sizedReads) sizeReads(socket, maxDatagramBytes + 1)
          },
        }))
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

/** Binds `host` (an IP literal) and `port`, the socket reading as `options` say. */
export const bind = (host: string, port: number, options: BindOptions = {}) =>
  Effect.andThen(Builtins.load("node:dgram"), open(host, port, options))
