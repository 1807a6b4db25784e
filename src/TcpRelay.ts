/**
 * The TCP half of `caps proxy`: one accepted connection relayed to the target
 * and back, with the fault plan applied to the bytes of each faulted
 * direction. The accept loop is `TcpListener`'s; this is the handler.
 *
 * Each direction is a pump: the source socket's `data` callback only queues
 * the chunk (with its arrival time), and a fiber writes it on, after the
 * delay, in slices, at the bandwidth, up to the byte budget. The queue is
 * bounded by bytes: past `HIGH_WATER_BYTES` the source is paused until the
 * pump catches up, and the pump waits for each write to be taken by the
 * kernel, so a slow reader on one side slows the writer on the other instead
 * of filling memory. Half-closes are relayed: a client that shuts down
 * writing still reads its reply, as through no proxy.
 *
 * A relay ends when both directions ended, when either side breaks (the
 * other is then reset, as a peer behind a middlebox would see it), when a
 * fault cuts it (reset or clean close), or when nothing moved for the idle
 * timeout (closed cleanly, by the proxy's sweep). Time (delays, bandwidth,
 * the pause between slices, connecting) is Effect's `Clock`. Socket callbacks
 * never throw into the event loop: they only queue and signal.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Cause from "effect/Cause"
import type * as Net from "node:net"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import type * as Faults from "./Faults.ts"
import type * as ProxyStats from "./ProxyStats.ts"
import type * as TcpListener from "./TcpListener.ts"

/** Bytes queued in one direction before its source is paused. */
export const HIGH_WATER_BYTES = 64 * 1024

/** The pause after each slice, so that the receiver reads each slice on its own. */
export const SLICE_PAUSE_MILLIS = 10

/** How long connecting to the target may take before the client's connection is reset. */
export const CONNECT_TIMEOUT_MILLIS = 5_000

// A lingering close, as the TCP server's: FIN once the writes are out, then read and discard until the
// peer closes too (closing with unread bytes would reset it), bounded.
const LINGER_MILLIS = 5_000

/** The target, resolved. */
export interface Target {
  readonly address: string
  readonly port: number
}

/** What every relay needs from the proxy. */
export interface TcpRelayOptions {
  readonly target: Target
  readonly plan: Faults.FaultPlan
  readonly idleMillis: number
  readonly report: ProxyStats.Report
  /** Upstream sockets not closed yet: the proxy destroys what is left when its scope closes. */
  readonly upstreams: Set<Net.Socket>
  readonly stats: { -readonly [K in keyof ProxyStats.TcpStats]: ProxyStats.TcpStats[K] }
}

/** How the proxy's idle sweep reaches a running relay. */
export interface RelayControl {
  sweep?: ((nowMillis: number) => void) | undefined
}

/** How a relay ended. */
export type End = "eof" | "broken" | "reset" | "closed" | "idle" | "unreachable"

interface Chunk {
  readonly bytes: Buffer
  readonly at: number
}

/** One direction of a relay. */
interface Side {
  readonly direction: Faults.Direction
  readonly from: Net.Socket
  readonly to: Net.Socket
  readonly faults: Faults.TcpFaults | undefined
  readonly queue: Queue.Queue<Chunk, Cause.Done>
  queued: number
  paused: boolean
  sourceEnded: boolean
  endForwarded: boolean
  relayed: number
  nextFree: number
  reported: boolean
}

const reset = (socket: Net.Socket): void => {
  if (socket.destroyed) return
  if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy()
  else socket.destroy()
}

const linger = (socket: Net.Socket): void => {
  if (socket.destroyed) return
  socket.on("data", () => {})
  socket.once("end", () => socket.destroy())
  socket.end()
  socket.resume()
  const timer = setTimeout(() => socket.destroy(), LINGER_MILLIS)
  timer.unref()
  socket.once("close", () => clearTimeout(timer))
}

// The next chunk of a direction, or `undefined` once its source has ended and every chunk is taken.
const nextChunk = (queue: Queue.Queue<Chunk, Cause.Done>): Effect.Effect<Chunk | undefined> =>
  Effect.catch(Queue.take(queue), () => Effect.succeed(undefined))

const describeBytes = (n: number) => n === 1 ? "1 byte" : `${n} bytes`

/** Connects to the target, failing with a typed error; the socket is closed (lingering) with the scope. */
const connect = (options: TcpRelayOptions) => {
  const endpoint = Endpoint.make(options.target.address, options.target.port, "tcp")
  return Effect.acquireRelease(
    Effect.callback<Net.Socket, CapsError.ConnectError | CapsError.Timeout>((resume) => {
      const socket = Builtins.net().connect({
        host: options.target.address,
        port: options.target.port,
        allowHalfOpen: true,
        noDelay: true,
      })
      const onError = (error: Error) => {
        socket.destroy()
        resume(Effect.fail(CapsError.fromConnectFailure(error, endpoint)))
      }
      socket.once("error", onError)
      socket.once("connect", () => {
        socket.off("error", onError)
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => socket.destroy())
    }).pipe(
      Effect.timeoutOrElse({
        duration: CONNECT_TIMEOUT_MILLIS,
        orElse: () =>
          Effect.fail(new CapsError.Timeout({ endpoint, attempts: 1, attemptMillis: CONNECT_TIMEOUT_MILLIS })),
      }),
      Effect.tap((socket) =>
        Effect.sync(() => {
          options.upstreams.add(socket)
          socket.once("close", () => options.upstreams.delete(socket))
        })
      ),
    ),
    (socket) => Effect.sync(() => linger(socket)),
  )
}

/** Relays one accepted connection until it ends; never fails. */
export const relay = (
  connection: TcpListener.Connection,
  options: TcpRelayOptions,
  control: RelayControl,
): Effect.Effect<End> =>
  Effect.gen(function* () {
    const { socket: client, peer } = connection
    const { stats, report, plan } = options
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const finished = yield* Deferred.make<End>()
    let done = false
    const finish = (end: End) => {
      done = true
      Deferred.doneUnsafe(finished, Exit.succeed(end))
    }
    let active = false
    let lastActive = now()
    let pending = () => false
    let onIdle = (): void => {
      client.end()
    }
    if (Number.isFinite(options.idleMillis)) {
      control.sweep = (nowMillis) => {
        if (active || pending()) {
          active = false
          lastActive = nowMillis
        } else if (nowMillis - lastActive >= options.idleMillis && !done) {
          stats.idleClosed++
          report("info", "Idle", peer, () => `closing the idle connection from ${Endpoint.format(peer)}`)
          onIdle()
          finish("idle")
        }
      }
    }
    // Until the relay runs, a client that breaks (or an error event, which must always have a listener) ends it.
    const early = () => {
      if (!done) finish("broken")
    }
    client.on("error", early)
    client.once("close", early)

    const requestFaults = plan.tcp("requests")
    const replyFaults = plan.tcp("replies")
    if (requestFaults?.blackhole === true && replyFaults?.blackhole === true) {
      // Accept, never forward: the target is not even asked; the client's bytes vanish.
      report("info", "Blackholed", peer, () => `blackholing the connection from ${Endpoint.format(peer)}`)
      client.on("data", (chunk: Buffer) => {
        active = true
        stats.blackholedBytes += chunk.length
      })
      client.resume()
      return yield* Deferred.await(finished)
    }

    const upstream = yield* connect(options).pipe(
      Effect.map((socket): Net.Socket | undefined => socket),
      Effect.catch((error) =>
        Effect.sync(() => {
          stats.connectFailures++
          report(
            "warning",
            "Unreachable",
            peer,
            () => `cannot relay ${Endpoint.format(peer)}: ${error.message}; resetting its connection`,
          )
          reset(client)
          return undefined
        })
      ),
      // A client that goes away while the target is being reached ends the relay at once.
      Effect.raceFirst(Deferred.await(finished).pipe(Effect.as(undefined))),
    )
    if (upstream === undefined) return done ? yield* Deferred.await(finished) : "unreachable"

    const queues = [yield* Queue.unbounded<Chunk, Cause.Done>(), yield* Queue.unbounded<Chunk, Cause.Done>()]
    const side = (direction: Faults.Direction, from: Net.Socket, to: Net.Socket): Side => ({
      direction,
      from,
      to,
      faults: direction === "requests" ? requestFaults : replyFaults,
      queue: queues[direction === "requests" ? 0 : 1],
      queued: 0,
      paused: false,
      sourceEnded: false,
      endForwarded: false,
      relayed: 0,
      nextFree: 0,
      reported: false,
    })
    const requests = side("requests", client, upstream)
    const replies = side("replies", upstream, client)
    let writing = 0
    pending = () => writing > 0 || requests.queued > 0 || replies.queued > 0
    onIdle = () => {
      client.end()
      upstream.end()
    }

    // A side broke (reset, or closed without its FINs): the other is reset too.
    const broken = () => {
      if (done) return
      reset(client)
      reset(upstream)
      finish("broken")
    }
    const closedNormally = (socket: Net.Socket) =>
      socket === client ? requests.sourceEnded && replies.endForwarded : replies.sourceEnded && requests.endForwarded
    for (const s of [requests, replies]) {
      const onData = (chunk: Buffer) => {
        active = true
        Queue.offerUnsafe(s.queue, { bytes: chunk, at: now() })
        s.queued += chunk.length
        if (s.queued >= HIGH_WATER_BYTES && !s.paused) {
          s.paused = true
          s.from.pause()
        }
      }
      s.from.on("data", onData)
      s.from.once("end", () => {
        s.sourceEnded = true
        Queue.endUnsafe(s.queue)
      })
      // Once the relay ends, what still arrives is the lingering close's to discard, not ours to queue.
      yield* Effect.addFinalizer(() => Effect.sync(() => s.from.off("data", onData)))
    }
    client.off("error", early)
    client.off("close", early)
    for (const socket of [client, upstream]) {
      socket.on("error", broken)
      socket.once("close", () => {
        if (!closedNormally(socket)) broken()
      })
    }

    const write = (to: Net.Socket, bytes: Buffer) =>
      Effect.callback<boolean>((resume) => {
        if (to.destroyed || !to.writable) return resume(Effect.succeed(false))
        writing++
        to.write(bytes, (error) => {
          writing--
          active = true
          resume(Effect.succeed(error === null || error === undefined))
        })
      })

    const cut = (s: Side, then: "reset" | "close") =>
      Effect.sync(() => {
        if (done) return
        const what = `${describeBytes(s.relayed)} of ${s.direction}`
        if (then === "reset") {
          stats.resets++
          report("info", "Reset", peer, () => `reset the connection from ${Endpoint.format(peer)} after ${what}`)
          reset(client)
          reset(upstream)
          return finish("reset")
        }
        stats.closes++
        report("info", "Closed", peer, () => `closed the connection from ${Endpoint.format(peer)} after ${what}`)
        requests.endForwarded = true
        replies.endForwarded = true
        client.end()
        upstream.end()
        finish("closed")
      })

    // Writes one chunk on with the side's faults; says whether the side goes on.
    const forward = Effect.fnUntraced(function* (s: Side, chunk: Chunk) {
      const f = s.faults
      if (f === undefined) {
        if (!(yield* write(s.to, chunk.bytes))) return false
        s.relayed += chunk.bytes.length
        stats.bytesRelayed += chunk.bytes.length
        return true
      }
      if (f.blackhole) {
        stats.blackholedBytes += chunk.bytes.length
        if (!s.reported) {
          s.reported = true
          report("info", "Blackholed", peer, () => `blackholing the ${s.direction} of ${Endpoint.format(peer)}`)
        }
        return true
      }
      if (f.delayMillis > 0) {
        stats.delayed++
        report("info", "Delayed", peer, () =>
          `delaying ${s.direction} of ${Endpoint.format(peer)} by ${f.delayMillis} ms`)
        const wait = chunk.at + f.delayMillis - now()
        if (wait > 0) {
          yield* Effect.sleep(wait)
        }
      }
      let bytes = chunk.bytes
      let then: "reset" | "close" | undefined
      if (f.budget !== undefined && bytes.length >= f.budget.bytes - s.relayed) {
        bytes = bytes.subarray(0, Math.max(0, f.budget.bytes - s.relayed))
        then = f.budget.then
      }
      const pieceBytes = Math.min(
        f.slice ?? Infinity,
        f.bandwidth !== undefined ? Math.max(1, Math.floor(f.bandwidth / 10)) : Infinity,
      )
      if (f.slice !== undefined && bytes.length > f.slice && !s.reported) {
        s.reported = true
        report("info", "Sliced", peer, () =>
          `slicing ${s.direction} of ${Endpoint.format(peer)} into ${f.slice}-byte writes`)
      }
      for (let offset = 0; offset < bytes.length; offset += pieceBytes) {
        const piece = bytes.subarray(offset, offset + pieceBytes)
        if (f.bandwidth !== undefined) {
          const at = now()
          const start = Math.max(at, s.nextFree)
          if (start > at) {
            stats.throttled++
            yield* Effect.sleep(start - at)
          }
          s.nextFree = start + (piece.length * 1000) / f.bandwidth
        }
        if (!(yield* write(s.to, piece))) {
          return false
        }
        s.relayed += piece.length
        stats.bytesRelayed += piece.length
        if (f.slice !== undefined) {
          stats.slices++
          yield* Effect.sleep(SLICE_PAUSE_MILLIS)
        }
      }
      if (then === undefined) {
        return true
      }
      yield* cut(s, then)
      return false
    })

    const pump = (s: Side) =>
      Effect.gen(function* () {
        while (!done) {
          const chunk = yield* nextChunk(s.queue)
          if (chunk === undefined) {
            // The source half-closed: so does its destination. A blackhole forwards not even that.
            if (s.faults?.blackhole === true) {
              return yield* Effect.never
            }
            if (!s.to.destroyed) {
              s.endForwarded = true
              s.to.end()
            }
            return
          }
          const goOn = yield* forward(s, chunk)
          s.queued -= chunk.bytes.length
          if (s.paused && s.queued < HIGH_WATER_BYTES) {
            s.paused = false
            s.from.resume()
          }
          if (!goOn) {
            return
          }
        }
      })

    client.resume()
    upstream.resume()
    yield* Effect.forkScoped(
      Effect.all([pump(requests), pump(replies)], { concurrency: 2, discard: true }).pipe(
        Effect.andThen(Effect.sync(() => {
          if (!done) {
            finish("eof")
          }
        })),
      ),
    )
    return yield* Deferred.await(finished)
  }).pipe(
    Effect.scoped,
    Effect.ensuring(Effect.sync(() => {
      control.sweep = undefined
    })),
  )
