/**
 * HTTP/1.1 for the operators' endpoint, answered by hand on a `node:net`
 * socket: one request head at a time, a reply with its length, keep-alive
 * by the version's default and the `Connection` header.
 *
 * Why not `node:http`: a server's TCP connections and an HTTP server's
 * share Node's stream and socket functions, and the first scrape gave them
 * objects of other shapes (`IncomingMessage`, sockets with a parser). V8
 * then deoptimised the whole read and write path of the TCP server, and
 * every later scrape some of it again: a server scraped once a second
 * answered 5% fewer requests (bench/README.md). Here the endpoint's sockets
 * come from a server made as TcpListener makes its own, get the same fields,
 * and carry strings as TcpConnection's do.
 *
 * What a scraper or a probe sends is all it needs to read: requests with
 * no body or one with a `Content-Length` (skipped). Anything else is
 * answered with its status and the connection closed: a malformed head
 * (or an HTTP/1.1 one without Host) 400, a head over 16 KiB 431, a body
 * over 64 KiB 413, a chunked body 501, HTTP/2 or 0.9 505.
 */
import { Buffer } from "node:buffer"
import type * as Net from "node:net"

/** What one request is answered. */
export interface Reply {
  readonly status: number
  readonly body: string
  readonly contentType?: string
  readonly allow?: string
}

/** A request head as the responder reads it. */
export interface Head {
  readonly method: string
  readonly target: string
  /** Whether the connection stays open after the reply (HTTP/1.1 unless `close`, HTTP/1.0 if `keep-alive`). */
  readonly keepAlive: boolean
  /** `Content-Length`: bytes of body that follow the head, read and thrown away. */
  readonly bodyBytes: number
}

/** A head longer than this, without its end, is refused (431), as Node's own limit of 16 KiB does. */
export const MAX_HEAD_BYTES = 16 * 1024
/** A body longer than this is refused (413): the endpoint's three routes take none. */
export const MAX_BODY_BYTES = 64 * 1024
/** A connection with no complete request for this long is closed: an idle scraper's, or a head sent too slowly. */
export const IDLE_MILLIS = 10_000
// Replies queued on a socket whose peer does not read: past this, the rest of its requests wait.
const MAX_QUEUED_BYTES = 1024 * 1024

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
}

// RFC 9112 §3: method SP request-target SP HTTP-version; the method is a token.
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^\s]+) HTTP\/(\d)\.(\d)$/
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const DIGITS = /^\d+$/

/** Reads a request head (without its blank line): the head, or the status that refuses it. */
export const parseHead = (text: string): Head | number => {
  const lines = text.split(/\r?\n/)
  const line = REQUEST_LINE.exec(lines[0])
  if (line === null) return 400
  if (line[3] !== "1") return 505
  let connection: Array<string> = []
  let bodyBytes: number | undefined
  let host = false
  let expectsContinue = false
  for (let i = 1; i < lines.length; i++) {
    const field = lines[i]
    const colon = field.indexOf(":")
    // No name, or whitespace before the colon, or a line folded onto the one before: RFC 9112 §5 says reject.
    if (colon <= 0 || !FIELD_NAME.test(field.slice(0, colon))) return 400
    const name = field.slice(0, colon).toLowerCase()
    const value = field.slice(colon + 1).trim()
    if (name === "transfer-encoding") return 501
    if (name === "host") host = true
    if (name === "expect") expectsContinue = value.toLowerCase() === "100-continue"
    if (name === "connection") connection = connection.concat(value.toLowerCase().split(",").map((t) => t.trim()))
    if (name === "content-length") {
      if (!DIGITS.test(value) || (bodyBytes !== undefined && Number(value) !== bodyBytes)) return 400
      bodyBytes = Number(value)
    }
  }
  if (bodyBytes !== undefined && bodyBytes > MAX_BODY_BYTES) return 413
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400 (as Node's own server does).
  if (line[4] === "1" && !host) return 400
  // A client that waits for "100 Continue" may send its body, or not, after our reply: close rather than guess.
  const keepAlive = (line[4] === "1" ? !connection.includes("close") : connection.includes("keep-alive")) &&
    !(expectsContinue && (bodyBytes ?? 0) > 0)
  return { method: line[1], target: line[2], keepAlive, bodyBytes: bodyBytes ?? 0 }
}

/** The text of a reply: status line, headers, and the body unless the request was HEAD. */
export const format = (reply: Reply, head: { readonly method: string; readonly keepAlive: boolean }): string => {
  // RFC 9110 §6.6.1: an origin server with a clock sends the date.
  let text = `HTTP/1.1 ${reply.status} ${REASONS[reply.status] ?? "Unknown"}\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Content-Type: ${reply.contentType ?? "text/plain; charset=utf-8"}\r\n` +
    `Content-Length: ${Buffer.byteLength(reply.body)}\r\n`
  if (reply.allow !== undefined) text += `Allow: ${reply.allow}\r\n`
  text += head.keepAlive ? "\r\n" : "Connection: close\r\n\r\n"
  return head.method === "HEAD" ? text : text + reply.body
}

const plain = (status: number): Reply => ({ status, body: `${REASONS[status].toLowerCase()}\n` })

// The end of a head: its blank line, CRLF or a bare LF as RFC 9112 §2.2 lets a recipient accept.
const HEAD_END = /\r?\n\r?\n/g

/**
 * Answers the requests that arrive on `conn`, in order, with `answer`'s replies, until the peer closes, a
 * request asks to close, one is refused, or no request completes for `idleMillis`.
 */
export const serve = (
  conn: Net.Socket,
  answer: (method: string, target: string) => Reply,
  idleMillis: number = IDLE_MILLIS,
): void => {
  // The servers' connections read their peer's address as they start (for logs and spans), which adds a field to
  // a Node socket: reading it here too gives these sockets the very same shape (test/support/socket-shapes.ts).
  void conn.remoteAddress
  let buffered = ""
  let skipping = 0
  let closing = false
  let peerEnded = false
  const timer = setTimeout(() => conn.destroy(), idleMillis)
  const close = (text: string) => {
    closing = true
    buffered = ""
    conn.end(text)
  }
  // How far `buffered` was searched for the end of a head, so that a head sent a byte at a time is scanned once.
  let scanned = 0
  // The next whole request head, taken from `buffered` (its body is skipped after it); a status that refuses it; or
  // undefined.
  const nextHead = (): Head | number | undefined => {
    // Empty lines before a request line are ignored (RFC 9112 §2.2).
    const start = buffered.search(/[^\r\n]/)
    if (start === -1) return void (buffered = "")
    HEAD_END.lastIndex = Math.max(start, scanned - 3)
    const end = HEAD_END.exec(buffered)
    if (end === null || end.index - start > MAX_HEAD_BYTES) {
      scanned = buffered.length
      return buffered.length - start > MAX_HEAD_BYTES ? 431 : undefined
    }
    const head = parseHead(buffered.slice(start, end.index))
    buffered = buffered.slice(end.index + end[0].length)
    scanned = 0
    if (typeof head === "number") return head
    skipping = head.bodyBytes
    return head
  }
  const pump = () => {
    while (!closing) {
      if (conn.writableLength >= MAX_QUEUED_BYTES) return void conn.pause()
      // A body, read and thrown away, in this chunk or in later ones.
      const skipped = Math.min(skipping, buffered.length)
      skipping -= skipped
      buffered = buffered.slice(skipped)
      const head = skipping > 0 ? undefined : nextHead()
      if (head === undefined) {
        // Nothing whole to answer: wait for more, or end once the peer has sent all it will.
        if (peerEnded) close("")
        return
      }
      if (typeof head === "number") return close(format(plain(head), { method: "GET", keepAlive: false }))
      timer.refresh()
      const text = format(answer(head.method, head.target), head)
      if (!head.keepAlive) return close(text)
      conn.write(text)
    }
  }
  conn.on("data", (chunk: Buffer) => {
    if (closing) return
    buffered += chunk.toString("latin1")
    pump()
  })
  conn.on("drain", () => {
    if (closing || !conn.isPaused()) return
    conn.resume()
    pump()
  })
  // The peer is done sending: our side ends once what it asked is answered (some may wait for a drain).
  conn.on("end", () => {
    peerEnded = true
    pump()
  })
  conn.on("error", () => conn.destroy())
  conn.once("close", () => clearTimeout(timer))
}
