/**
 * One TCP connection, served from first byte to close: the `Handler` of the
 * accept loop in `TcpListener`.
 *
 * The reply is the transformed byte stream of the connection. A "stream"
 * transform answers each piece as it arrives, so input without a newline is
 * answered at once (the textbook client sends a bare sentence and waits); a
 * "line" transform answers each `\n`-terminated line with one line, and a
 * final line without newline when the peer half-closes.
 *
 * The connection is owned by a fiber: `serve` completes when the connection
 * ends, and interrupting it detaches everything (and interrupts a transform
 * effect still running) so the scope can close the socket. Bytes are answered
 * in the socket's own `data` callback, synchronously, with one write per
 * read: this is the hot path, and a fiber hop per read costs about 10% of
 * throughput (bench/). A transform that returns an `Effect` is run in a
 * fiber; replies after it wait in `queued`, so replies keep request order.
 *
 * Backpressure is the classic one: while a write is not taken at once, or too
 * many replies wait for a transform effect, reading pauses, so a peer that
 * stops reading stops being read and memory stays bounded.
 *
 * The peer closing is normal flow. An over-long line, a transform that
 * throws or fails, or any other exception in a callback ends only this
 * connection, logged once with the peer and the cause; invalid UTF-8 is
 * replaced, logged and answered.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Net from "node:net"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import { LineFramer } from "./LineFramer.ts"
import * as LogAnnotations from "./LogAnnotations.ts"
import type * as Metrics from "./Metrics.ts"
import type { TransformShape } from "./Transform.ts"
import * as Utf8 from "./Utf8.ts"

/** Limits applied to each connection. */
export interface ConnectionOptions {
  /** The longest line a "line" transform accepts, in bytes. */
  readonly maxLineBytes: number
  /** Closed after this long with no bytes in either direction; `Infinity` for never. */
  readonly idleMillis: number
  /** The server's counters, which every request updates. */
  readonly counters: Metrics.TcpCounters
}

/**
 * How the server steers a running connection: `drain()` (graceful shutdown)
 * ends it at once when it owes nothing, or as soon as the replies it owes are
 * written; `sweep(now)` (the idle sweeper, on the server's `Clock`) closes it
 * when nothing moved for the idle timeout.
 */
export interface ConnectionControl {
  /** Set by the server for a connection that starts after its drain began: it is drained from its start. */
  readonly draining?: boolean | undefined
  /** Set by the connection while it runs. */
  drain?: (() => void) | undefined
  sweep?: ((nowMillis: number) => void) | undefined
}

/**
 * How a connection ended: the peer closed it (`eof`) or broke it (`reset`), it was idle, its line was
 * too long, the server drained it, or something failed in it (a transform or a callback: `error`).
 */
export type End = "eof" | "reset" | "idle" | "too-long" | "drained" | "error"

/** What `serve` reports when the connection ends. */
export interface Outcome {
  readonly end: End
  /** Invalid UTF-8 sequences replaced with U+FFFD. */
  readonly malformed: number
  /** Sentences the transform was given: lines for a "line" transform, reads for a "stream" one. */
  readonly requests: number
}

// How long a draining connection that owes nothing waits for bytes already on their way to it.
const DRAIN_QUIET_MILLIS = 50

// Replies waiting behind a transform effect before reading pauses.
const MAX_QUEUED_REPLIES = 1024

type Reply = string | Effect.Effect<string, unknown>

// A reply owed, with what the metrics need: when its request arrived (`performance.now()`, ms), its size, how
// many requests it answers (the lines in a piece of a "stream" transform), and whether the request was ASCII.
interface Owed {
  readonly reply: Reply
  readonly arrived: number
  readonly size: number
  readonly count: number
  readonly ascii: boolean
}

const NEWLINE = 0x0a

// Counted in the decoded text, where V8 searches without leaving JavaScript (a Buffer's indexOf is a call into C++
// per line, three times as long on a read of 16 lines). The counts agree: UTF-8 uses the byte 0x0A for nothing else,
// a character the decoder holds back holds none, and the byte after an invalid sequence is decoded as itself.
const newlinesIn = (text: string): number => {
  let lines = 0
  for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) lines++
  return lines
}

/** The state of one served connection; its methods are the socket's callbacks. */
class Served {
  readonly #decoder = new Utf8.StreamDecoder()
  readonly #framer: LineFramer
  // Replies behind a running transform effect, in request order; `undefined` when none runs.
  #queued: Array<Owed> | undefined
  #running: Fiber.Fiber<string, unknown> | undefined
  #malformed = 0
  #requests = 0
  #reported = false
  #writing = false
  #draining = false
  #quiet: ReturnType<typeof setTimeout> | undefined
  #peerEnded = false
  // A "stream" transform's last piece ended inside a sentence, already counted as a request.
  #openSentence = false
  #finished = false
  #active = false
  #lastActive: number

  readonly conn: Net.Socket
  readonly peer: Endpoint.Endpoint
  readonly transform: TransformShape
  readonly options: ConnectionOptions
  readonly control: ConnectionControl
  readonly runFork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  readonly resume: (outcome: Outcome) => void
  readonly #keepsAscii: boolean

  constructor(
    conn: Net.Socket,
    peer: Endpoint.Endpoint,
    transform: TransformShape,
    options: ConnectionOptions,
    control: ConnectionControl,
    runFork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>,
    resume: (outcome: Outcome) => void,
    nowMillis: number,
  ) {
    this.conn = conn
    this.peer = peer
    this.transform = transform
    this.options = options
    this.control = control
    this.runFork = runFork
    this.resume = resume
    this.#framer = new LineFramer(options.maxLineBytes)
    this.#lastActive = nowMillis
    this.#keepsAscii = transform.keepsAscii === true
  }

  readonly onData = (chunk: Buffer): void => {
    const arrived = performance.now()
    this.#active = true
    try {
      if (this.transform.framing === "stream") this.#replyToPiece(chunk, arrived)
      else this.#replyToLines(chunk, arrived)
      this.#reportMalformed()
      this.#endIfDone()
    } catch (defect) {
      this.#fail("failed while answering", Cause.die(defect))
    }
  }

  readonly onDrain = (): void => {
    this.#active = true
    this.#writing = false
    if (this.#draining) return this.#endIfDone()
    this.#resumeReading()
  }

  readonly onEnd = (): void => {
    // The peer half-closed: answer what is left; our side is ended when the scope closes.
    try {
      const arrived = performance.now()
      if (this.transform.framing === "stream") {
        const rest = this.#decoder.end()
        // Bytes left of an incomplete UTF-8 sequence: part of a sentence already counted.
        if (rest.length > 0) this.#reply(this.transform.apply(rest), "", arrived, 0, 0, false)
      } else {
        const last = this.#framer.end()
        if (last !== undefined) {
          this.#requests++
          const decoded = this.#decodeLine(last)
          this.#reply(this.transform.apply(decoded.text), "", arrived, last.length, 1, decoded.ascii)
        }
      }
      this.#reportMalformed()
    } catch (defect) {
      return this.#fail("failed while answering", Cause.die(defect))
    }
    // With a transform effect still running, the connection ends once its reply is written.
    this.#peerEnded = true
    this.#endIfDone()
  }

  readonly onBroken = (): void => this.#finish("reset")

  readonly drain = (): void => {
    this.#draining = true
    // Bytes that reached the socket before the shutdown began are still answered. They are read in a later
    // poll phase of the event loop, and a loaded Deno can take a few of those to deliver them: the connection
    // ends after a short quiet spell (an immediate after the timer, so that a poll phase lies in between).
    this.#quiet = setTimeout(() => setImmediate(() => this.#endIfDone()), DRAIN_QUIET_MILLIS)
  }

  readonly sweep = (nowMillis: number): void => {
    if (this.#active || this.#running !== undefined) {
      this.#active = false
      this.#lastActive = nowMillis
    } else if (nowMillis - this.#lastActive >= this.options.idleMillis) {
      this.conn.destroy()
      this.#finish("idle")
    }
  }

  attach(): void {
    const conn = this.conn
    conn.on("data", this.onData)
    conn.on("drain", this.onDrain)
    conn.on("end", this.onEnd)
    conn.on("error", this.onBroken)
    conn.on("close", this.onBroken)
    this.control.drain = this.drain
    if (Number.isFinite(this.options.idleMillis)) this.control.sweep = this.sweep
    conn.resume()
    if (this.control.draining === true) this.drain()
  }

  detach(): void {
    clearTimeout(this.#quiet)
    const conn = this.conn
    conn.off("data", this.onData)
    conn.off("drain", this.onDrain)
    conn.off("end", this.onEnd)
    conn.off("error", this.onBroken)
    conn.off("close", this.onBroken)
    this.control.drain = undefined
    this.control.sweep = undefined
    const running = this.#running
    this.#running = undefined
    this.#queued = undefined
    running?.interruptUnsafe()
  }

  #decodeLine(line: Uint8Array): Utf8.Decoded {
    const decoded = Utf8.decodeWhole(line)
    if (decoded.malformed > 0) {
      this.#malformed += decoded.malformed
      this.options.counters.invalidUtf8 += decoded.malformed
    }
    return decoded
  }

  // A reply's size in bytes: its length when it is known to be ASCII (see `TransformShape.keepsAscii`).
  #sizeOf(reply: string, asciiRequest: boolean): number {
    return asciiRequest && this.#keepsAscii ? reply.length : Buffer.byteLength(reply)
  }

  // A "stream" transform: each piece read is a request.
  #replyToPiece(chunk: Buffer, arrived: number): void {
    const before = this.#decoder.malformed
    const text = this.#decoder.decode(chunk)
    this.options.counters.invalidUtf8 += this.#decoder.malformed - before
    const count = this.#requestsIn(chunk, text)
    this.#requests += count
    this.#reply(this.transform.apply(text), "", arrived, chunk.length, count, this.#decoder.ascii)
  }

  // The requests a piece brings: its lines, and a sentence it leaves open (the textbook's client sends no
  // newline and waits), each counted once even when a read splits it; so a pipelining client is counted per
  // line, as with a "line" transform.
  #requestsIn(piece: Uint8Array, text: string): number {
    const wasOpen = this.#openSentence
    this.#openSentence = piece[piece.length - 1] !== NEWLINE
    return newlinesIn(text) + (this.#openSentence ? 1 : 0) - (wasOpen ? 1 : 0)
  }

  #replyToLines(bytes: Uint8Array, arrived: number): void {
    const framed = this.#framer.push(bytes)
    if (framed._tag === "TooLong") {
      this.options.counters.tooLong++
      const error = new CapsError.MessageTooLarge({
        transport: "tcp",
        size: framed.size,
        limit: this.options.maxLineBytes,
      })
      this.#log(Effect.logWarning(`${error.message}; closing the connection from ${Endpoint.format(this.peer)}`), {
        error: error._tag,
      })
      return this.#finish("too-long")
    }
    // Replies to the lines of one read go out in one write, unless a transform effect comes between; they share
    // the write's duration in the metrics.
    const counters = this.options.counters
    let out = ""
    let answered = 0
    try {
      for (const line of framed.lines) {
        this.#requests++
        const decoded = this.#decodeLine(line)
        const reply = this.transform.apply(decoded.text)
        if (typeof reply === "string" && this.#queued === undefined) {
          out += reply + "\n"
          answered++
          counters.requestBytes.observe(line.length + 1)
          counters.replyBytes.observe(this.#sizeOf(reply, decoded.ascii) + 1)
          continue
        }
        this.#write(out)
        out = ""
        this.#reply(reply, "\n", arrived, line.length + 1, 1, decoded.ascii)
      }
    } finally {
      // Written even when a later line's transform throws: those replies are owed.
      this.#write(out)
      if (answered > 0) {
        counters.answered += answered
        counters.duration.observe((performance.now() - arrived) / 1000, answered)
      }
    }
  }

  // Writes a reply now, or queues it behind a transform effect still running, so replies keep request order.
  #reply(reply: Reply, terminator: string, arrived: number, size: number, count: number, ascii: boolean): void {
    if (this.#finished) return
    const next = typeof reply === "string"
      ? reply + terminator
      : terminator === ""
      ? reply
      : Effect.map(reply, (text) => text + terminator)
    if (this.#queued !== undefined) {
      this.#queued.push({ reply: next, arrived, size, count, ascii })
      if (this.#queued.length >= MAX_QUEUED_REPLIES) this.conn.pause()
      return
    }
    if (typeof next === "string") return this.#answer(next, arrived, size, count, ascii)
    this.#queued = []
    this.#run(next, arrived, size, count, ascii)
  }

  #run(effect: Effect.Effect<string, unknown>, arrived: number, size: number, count: number, ascii: boolean): void {
    const fiber = this.runFork(effect)
    this.#running = fiber
    fiber.addObserver((exit) => {
      if (this.#running !== fiber) return // detached meanwhile
      this.#running = undefined
      if (Exit.isFailure(exit)) return this.#fail("transform failed", exit.cause)
      this.#answer(exit.value, arrived, size, count, ascii)
      this.#flushQueued()
    })
  }

  // Writes one reply, and counts the requests it answers (sizes spread evenly over them); none when it only
  // continues a sentence already counted.
  #answer(reply: string, arrived: number, size: number, count: number, ascii: boolean): void {
    this.#write(reply)
    if (count === 0) return
    const counters = this.options.counters
    counters.answered += count
    counters.duration.observe((performance.now() - arrived) / 1000, count)
    counters.requestBytes.observe(size / count, count)
    counters.replyBytes.observe(this.#sizeOf(reply, ascii) / count, count)
  }

  // Writes the replies that waited, up to the next transform effect, which is then run.
  #flushQueued(): void {
    const queued = this.#queued
    if (queued === undefined || this.#finished) return
    while (queued.length > 0) {
      const next = queued.shift()!
      if (typeof next.reply !== "string") return this.#run(next.reply, next.arrived, next.size, next.count, next.ascii)
      this.#answer(next.reply, next.arrived, next.size, next.count, next.ascii)
    }
    this.#queued = undefined
    this.#resumeReading()
    this.#endIfDone()
  }

  #write(reply: string): void {
    if (reply.length === 0 || this.#finished) return
    this.#active = true
    if (!this.conn.write(reply)) {
      // Not taken at once: stop reading this peer until its replies are on their way.
      this.#writing = true
      this.conn.pause()
    }
  }

  #resumeReading(): void {
    if (this.#finished || this.#writing || (this.#queued?.length ?? 0) >= MAX_QUEUED_REPLIES) return
    this.conn.resume()
  }

  // The peer's end of input ends the connection once no transform effect runs; a drain, once replies are written.
  #endIfDone(): void {
    if (this.#queued !== undefined) return
    if (this.#peerEnded) this.#finish("eof")
    else if (this.#draining && !this.#writing) this.#finish("drained")
  }

  #reportMalformed(): void {
    if (this.#reported || this.#decoder.malformed + this.#malformed === 0) return
    this.#reported = true
    this.#log(Effect.logWarning(
      `invalid UTF-8 from ${Endpoint.format(this.peer)}: replaced with U+FFFD and answered; still serving`,
    ))
  }

  // Something failed inside this connection: logged once with the peer and the cause, and only it ends.
  #fail(what: string, cause: Cause.Cause<unknown>): void {
    if (this.#finished) return
    this.options.counters.failed++
    this.#log(
      Effect.logError(`${what} for ${Endpoint.format(this.peer)}: closing its connection`, cause),
      LogAnnotations.ofCause(cause),
    )
    this.#finish("error")
  }

  // The server's annotations (the connection's number) come with the fiber's context; the peer is added here.
  #log(effect: Effect.Effect<void>, annotations: LogAnnotations.LogAnnotations = {}): void {
    this.runFork(Effect.annotateLogs(effect, { ...LogAnnotations.ofPeer(this.peer), ...annotations }))
  }

  #finish(end: End): void {
    if (this.#finished) return
    this.#finished = true
    this.detach()
    this.resume({ end, malformed: this.#decoder.malformed + this.#malformed, requests: this.#requests })
  }
}

/** Serves one connection until the peer closes it, it fails, it is drained or idle, or the fiber is interrupted. */
export const serve = (
  conn: Net.Socket,
  peer: Endpoint.Endpoint,
  transform: TransformShape,
  options: ConnectionOptions,
  control: ConnectionControl = {},
  nowMillis = 0,
): Effect.Effect<Outcome> =>
  Effect.flatMap(Effect.context<never>(), (context) => {
    const runFork = Effect.runForkWith(context)
    return Effect.callback<Outcome>((resume) => {
      const served = new Served(
        conn,
        peer,
        transform,
        options,
        control,
        runFork,
        (outcome) => resume(Effect.succeed(outcome)),
        nowMillis,
      )
      served.attach()
      return Effect.sync(() => served.detach())
    })
  })
