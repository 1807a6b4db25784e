/**
 * One TCP connection, served from first byte to close: the `Handler` of the
 * accept loop in `TcpListener`.
 *
 * The reply is the transformed byte stream of the connection. A "stream"
 * transform answers each piece as it arrives, so input without a newline is
 * answered at once (the textbook client sends a bare sentence and waits); a
 * "line" transform answers each `\n`-terminated line with one line, and a
 * final line without newline when the peer half-closes. Reads and writes
 * alternate, so a peer that stops reading stops being read (backpressure).
 *
 * The peer closing is normal flow; a reset, an over-long line or invalid
 * UTF-8 is logged with the peer and ends or affects only this connection.
 */
import * as Effect from "effect/Effect"
import type * as Socket from "effect/socket/Socket"
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
 * What the server and the connection tell each other during a graceful
 * shutdown: a connection waiting for bytes is `idle` (it can be closed at
 * once); once `draining` is set, a busy connection stops after writing the
 * replies it owes.
 */
export interface ConnectionControl {
  idle: boolean
  draining: boolean
}

/** How a connection ended: the peer closed it, it broke, its line was too long, or the server drained it. */
export type End = "eof" | "reset" | "too-long" | "drained"

const encoder = new TextEncoder()

const bytesOf = (chunk: Uint8Array | string): Uint8Array => typeof chunk === "string" ? encoder.encode(chunk) : chunk

/** Maps one piece of a stream through a "stream" transform; replies are strings, encoded by the socket. */
const streamReplies = (
  transform: TransformShape,
  decoder: Utf8.StreamDecoder,
  chunks: ReadonlyArray<Uint8Array | string>,
): Array<string> => {
  const out: Array<string> = []
  for (const chunk of chunks) {
    const text = decoder.decode(bytesOf(chunk))
    if (text.length > 0) out.push(transform.apply(text))
  }
  return out
}

const lineReply = (transform: TransformShape, line: Uint8Array, malformed: { count: number }): string => {
  const decoded = Utf8.decodeWhole(line)
  malformed.count += decoded.malformed
  return transform.apply(decoded.text)
}

/** Serves one connection until the peer closes it, it fails, or the fiber is interrupted. */
export const serve = (
  socket: Socket.Socket,
  peer: Endpoint.Endpoint,
  transform: TransformShape,
  options: ConnectionOptions,
  control: ConnectionControl = { idle: false, draining: false },
) =>
  Effect.gen(function* () {
    const reader = yield* socket.reader
    const writer = yield* socket.writer
    const decoder = new Utf8.StreamDecoder()
    const framer = new LineFramer(options.maxLineBytes)
    const malformed = { count: 0 }
    let end: End = "eof"
    let reported = 0

    while (true) {
      control.idle = true
      const chunks = yield* reader.pull.pipe(
        Effect.catch((error) => {
          end = error.reason._tag === "SocketCloseError" && error.reason.code === 1000 ? "eof" : "reset"
          return Effect.succeed(undefined)
        }),
      )
      control.idle = false
      if (chunks === undefined) break
      let replies: Array<string>
      if (transform.framing === "stream") {
        replies = streamReplies(transform, decoder, chunks)
      } else {
        replies = []
        for (const chunk of chunks) {
          const framed = framer.push(bytesOf(chunk))
          if (framed._tag === "TooLong") {
            end = "too-long"
            yield* Effect.logWarning(
              new CapsError.MessageTooLarge({ transport: "tcp", size: framed.size, limit: options.maxLineBytes })
                .message + `; closing the connection from ${Endpoint.format(peer)}`,
            )
            break
          }
          for (const line of framed.lines) replies.push(lineReply(transform, line, malformed) + "\n")
        }
      }
      const invalid = decoder.malformed + malformed.count
      if (invalid > reported) {
        if (reported === 0) {
          yield* Effect.logWarning(
            `invalid UTF-8 from ${Endpoint.format(peer)}: replaced with U+FFFD and answered; still serving`,
          )
        }
        reported = invalid
      }
      if (replies.length > 0) {
        const written = yield* writer.writeAll(replies as [string, ...Array<string>]).pipe(
          Effect.as(true),
          Effect.catch(() => Effect.succeed(false)),
        )
        if (!written) {
          end = "reset"
          break
        }
      }
      if (end === "too-long") break
      if (control.draining) {
        end = "drained"
        break
      }
    }

    if (end === "eof") {
      // The peer half-closed: answer what is left, then the writer's release ends our side.
      const rest = transform.framing === "stream" ? decoder.end() : undefined
      const last = transform.framing === "line" ? framer.end() : undefined
      const tail = rest !== undefined && rest.length > 0
        ? transform.apply(rest)
        : last !== undefined
        ? lineReply(transform, last, malformed)
        : undefined
      if (tail !== undefined) yield* Effect.ignore(writer.write(tail))
    }
    return { end, malformed: decoder.malformed + malformed.count }
  })
