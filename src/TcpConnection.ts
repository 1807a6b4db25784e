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
 * ends, and interrupting it detaches everything so the scope can close the
 * socket. Inside, bytes are answered in the socket's own `data` callback,
 * synchronously, with one write per read: this is the hot path, and going
 * through a fiber for every read costs a scheduler hop each time (measured in
 * bench/: about 10% of throughput). Backpressure is the classic one: when a
 * write is not taken at once, reading pauses until the socket drains, so a
 * peer that stops reading stops being read and server memory stays bounded.
 *
 * The peer closing is normal flow; a reset, an over-long line or invalid
 * UTF-8 is logged with the peer and ends or affects only this connection.
 */
import * as Effect from "effect/Effect"
import type * as Net from "node:net"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import { LineFramer } from "./LineFramer.ts"
import type { TransformShape } from "./Transform.ts"
import * as Utf8 from "./Utf8.ts"

/** Limits applied to each connection. */
export interface ConnectionOptions {
  /** The longest line a "line" transform accepts, in bytes. */
  readonly maxLineBytes: number
}

/**
 * How the server drains a connection in a graceful shutdown: `drain()` ends
 * it at once when it owes nothing, or, when replies are still waiting to be
 * written (reading is paused then), as soon as they are.
 */
export interface ConnectionControl {
  /** Set by the connection while it runs. */
  drain?: (() => void) | undefined
}

/** How a connection ended: the peer closed it, it broke, its line was too long, or the server drained it. */
export type End = "eof" | "reset" | "too-long" | "drained"

/** What `serve` reports when the connection ends. */
export interface Outcome {
  readonly end: End
  /** Invalid UTF-8 sequences replaced with U+FFFD. */
  readonly malformed: number
}

/** Serves one connection until the peer closes it, it fails, it is drained, or the fiber is interrupted. */
export const serve = (
  conn: Net.Socket,
  peer: Endpoint.Endpoint,
  transform: TransformShape,
  options: ConnectionOptions,
  control: ConnectionControl = {},
): Effect.Effect<Outcome> =>
  Effect.flatMap(Effect.context<never>(), (context) => {
    const runLog = Effect.runForkWith(context)
    return Effect.callback<Outcome>((resume) => {
      const decoder = new Utf8.StreamDecoder()
      const framer = new LineFramer(options.maxLineBytes)
      let malformed = 0
      let reported = false
      let writing = false
      let draining = false
      let finished = false

      const report = () => {
        const invalid = decoder.malformed + malformed
        if (invalid === 0 || reported) return
        reported = true
        runLog(Effect.logWarning(
          `invalid UTF-8 from ${Endpoint.format(peer)}: replaced with U+FFFD and answered; still serving`,
        ))
      }

      const finish = (end: End) => {
        if (finished) return
        finished = true
        detach()
        resume(Effect.succeed({ end, malformed: decoder.malformed + malformed }))
      }

      const answerLine = (line: Uint8Array): string => {
        const decoded = Utf8.decodeWhole(line)
        malformed += decoded.malformed
        return transform.apply(decoded.text)
      }

      const lineReplies = (bytes: Uint8Array): string | undefined => {
        const framed = framer.push(bytes)
        if (framed._tag === "TooLong") {
          const error = new CapsError.MessageTooLarge({
            transport: "tcp",
            size: framed.size,
            limit: options.maxLineBytes,
          })
          runLog(Effect.logWarning(`${error.message}; closing the connection from ${Endpoint.format(peer)}`))
          finish("too-long")
          return undefined
        }
        let out = ""
        for (const line of framed.lines) out += answerLine(line) + "\n"
        return out
      }

      const write = (reply: string) => {
        if (reply.length === 0) return
        if (!conn.write(reply)) {
          // Not taken at once: stop reading this peer until its replies are on their way.
          writing = true
          conn.pause()
        }
      }

      const onData = (chunk: Buffer) => {
        const reply = transform.framing === "stream" ? transform.apply(decoder.decode(chunk)) : lineReplies(chunk)
        report()
        if (reply === undefined) return
        write(reply)
        if (draining && !writing) finish("drained")
      }

      const onDrain = () => {
        writing = false
        if (draining) return finish("drained")
        if (!finished) conn.resume()
      }

      const onEnd = () => {
        // The peer half-closed: answer what is left; our side is ended when the scope closes.
        if (transform.framing === "stream") {
          const rest = decoder.end()
          if (rest.length > 0) write(transform.apply(rest))
        } else {
          const last = framer.end()
          if (last !== undefined) write(answerLine(last))
        }
        report()
        finish("eof")
      }

      const onBroken = () => finish("reset")

      const detach = () => {
        conn.off("data", onData)
        conn.off("drain", onDrain)
        conn.off("end", onEnd)
        conn.off("error", onBroken)
        conn.off("close", onBroken)
        control.drain = undefined
      }

      control.drain = () => {
        draining = true
        // Bytes that reached the socket before the shutdown began are still answered: they are read in the
        // event loop's next poll phase, which a timer followed by an immediate is sure to include (on Node the
        // timer alone may run before it; on Deno an immediate alone does).
        setTimeout(() =>
          setImmediate(() => {
            if (!writing) finish("drained")
          }), 0)
      }
      conn.on("data", onData)
      conn.on("drain", onDrain)
      conn.on("end", onEnd)
      conn.on("error", onBroken)
      conn.on("close", onBroken)
      conn.resume()
      return Effect.sync(detach)
    })
  })
