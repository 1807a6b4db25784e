// The HTTP/1.1 of the operators' endpoint, spoken to by hand over real sockets: pipelined and split requests,
// keep-alive by version and header, HEAD, bodies skipped, every refusal with its status and a closed connection,
// the idle timeout, and a peer that does not read. Prometheus and curl speak to the same code in
// MetricsEndpoint.test.ts, Operations.test.ts and `npm run test:prometheus`.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Net from "node:net"
import * as Path from "node:path"
import * as HttpResponder from "../src/HttpResponder.ts"
import { isDeno, projectRoot } from "./support/Process.ts"
import { closedByPeer, readAtLeast, sleep, tcpConnect, tcpExchange } from "./support/Sockets.ts"

interface Response {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** Splits what a connection received into responses, each body by its Content-Length (none after a HEAD). */
const responses = (data: string, heads: ReadonlyArray<boolean> = []): Array<Response> => {
  const parsed: Array<Response> = []
  let rest = data
  while (rest.length > 0) {
    const end = rest.indexOf("\r\n\r\n")
    assert.isAtLeast(end, 0, `a response head in ${JSON.stringify(rest.slice(0, 200))}`)
    const [statusLine, ...fields] = rest.slice(0, end).split("\r\n")
    const headers = Object.fromEntries(fields.map((field) => {
      const colon = field.indexOf(":")
      return [field.slice(0, colon).toLowerCase(), field.slice(colon + 1).trim()]
    }))
    const length = heads[parsed.length] ? 0 : Number(headers["content-length"])
    const body = rest.slice(end + 4, end + 4 + length)
    assert.strictEqual(Buffer.byteLength(body), length, "a whole body")
    parsed.push({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]), headers, body })
    rest = rest.slice(end + 4 + length)
  }
  return parsed
}

interface Responder {
  readonly port: number
  /** The most reply bytes any connection had queued when a request was answered. */
  readonly maxQueued: () => number
}

/** A `node:net` server answering with `HttpResponder`: each reply says what was asked, padded to `bodyBytes`. */
const responder = (options: { readonly idleMillis?: number; readonly bodyBytes?: number } = {}) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ server: Net.Server; connections: Set<Net.Socket>; queued: { max: number } }>((resolve) => {
        const connections = new Set<Net.Socket>()
        const queued = { max: 0 }
        const server = Net.createServer({ allowHalfOpen: true }, (conn) => {
          connections.add(conn)
          conn.once("close", () => connections.delete(conn))
          HttpResponder.serve(conn, (method, target) => {
            queued.max = Math.max(queued.max, conn.writableLength)
            const asked = `${method} ${target}\n`
            return target === "/missing"
              ? { status: 404, body: "not found\n" }
              : { status: 200, body: asked.padEnd(options.bodyBytes ?? 0, "."), contentType: "text/x-test" }
          }, options.idleMillis)
        })
        server.listen({ host: "127.0.0.1", port: 0 }, () => resolve({ server, connections, queued }))
      })
    ),
    ({ connections, server }) =>
      Effect.sync(() => {
        for (const conn of connections) conn.destroy()
        server.close()
      }),
  ).pipe(
    Effect.map(({ queued, server }): Responder => ({
      port: (server.address() as Net.AddressInfo).port,
      maxQueued: () => queued.max,
    })),
  )

/** What a connection received for `pieces` sent, until the server closed it or `waitMs` passed. */
const exchange = (
  port: number,
  pieces: ReadonlyArray<string>,
  options: { pauseMs?: number; halfClose?: boolean } = {},
) => Effect.promise(() => tcpExchange(port, pieces, { ...options, timeoutMs: 3000 }))

/** Sends `text` on a new connection and returns what arrived within `waitMs`, and whether it is still open. */
const keptOpen = (port: number, text: string, waitMs = 300) =>
  Effect.promise(async () => {
    const socket = await tcpConnect(port)
    const chunks: Array<Buffer> = []
    let ended = false
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("end", () => (ended = true))
    socket.write(text)
    await sleep(waitMs)
    socket.destroy()
    return { data: Buffer.concat(chunks).toString("latin1"), open: !ended }
  })

const GET = (target: string, fields = "") => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${fields}\r\n`

describe("HttpResponder.parseHead", () => {
  it("reads method, target and keep-alive: HTTP/1.1 unless close, HTTP/1.0 only if keep-alive", () => {
    assert.deepStrictEqual(HttpResponder.parseHead("GET /metrics?x=1 HTTP/1.1\r\nHost: a"), {
      method: "GET",
      target: "/metrics?x=1",
      keepAlive: true,
      bodyBytes: 0,
    })
    assert.isFalse(
      (HttpResponder.parseHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, Close") as HttpResponder.Head)
        .keepAlive,
    )
    assert.isFalse((HttpResponder.parseHead("GET / HTTP/1.0") as HttpResponder.Head).keepAlive)
    assert.isTrue((HttpResponder.parseHead("GET / HTTP/1.0\nConnection: Keep-Alive") as HttpResponder.Head).keepAlive)
    // A client waiting for 100 Continue may or may not send its body after the reply: the connection is closed.
    const expecting = "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: "
    assert.isFalse((HttpResponder.parseHead(expecting + "5") as HttpResponder.Head).keepAlive)
    assert.isTrue((HttpResponder.parseHead(expecting + "0") as HttpResponder.Head).keepAlive)
    assert.strictEqual(
      (HttpResponder.parseHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12") as HttpResponder.Head).bodyBytes,
      12,
    )
    assert.strictEqual(
      (HttpResponder.parseHead(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3",
      ) as HttpResponder.Head)
        .bodyBytes,
      3,
    )
  })

  it("refuses what it cannot read with the status that says why", () => {
    const refusals: Array<[string, number]> = [
      ["GET /", 400],
      ["GET  / HTTP/1.1", 400],
      ["G(T / HTTP/1.1", 400],
      ["GET / HTTP/1.1\r\nHost : a", 400],
      ["GET / HTTP/1.1\r\nHost: a\r\n folded", 400],
      ["GET / HTTP/1.1\r\nUser-Agent: no host", 400],
      ["GET / HTTP/1.1\r\n: empty name", 400],
      ["GET / HTTP/1.1\r\nno colon", 400],
      ["POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4", 400],
      ["POST / HTTP/1.1\r\nContent-Length: -1", 400],
      ["POST / HTTP/1.1\r\nContent-Length: 1e3", 400],
      [`POST / HTTP/1.1\r\nContent-Length: ${HttpResponder.MAX_BODY_BYTES + 1}`, 413],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked", 501],
      ["GET / HTTP/2.0", 505],
      ["GET / HTTP/0.9", 505],
    ]
    for (const [head, status] of refusals) assert.strictEqual(HttpResponder.parseHead(head), status, head)
    assert.isObject(HttpResponder.parseHead("GET / HTTP/1.0"), "HTTP/1.0 needs no Host")
    assert.isObject(
      HttpResponder.parseHead(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${HttpResponder.MAX_BODY_BYTES}`),
    )
  })
})

describe("HttpResponder.serve", () => {
  it.live("answers pipelined requests in order, each with its length, and keeps an HTTP/1.1 connection open", () =>
    Effect.gen(function* () {
      const { port } = yield* responder()
      // Empty lines before a request line are ignored (RFC 9112 §2.2).
      const got = yield* keptOpen(port, "\r\n" + GET("/a") + GET("/b?c=d") + "GET /c HTTP/1.1\nHost: a\n\n")
      assert.isTrue(got.open, "still open after three keep-alive requests")
      const replies = responses(got.data)
      assert.deepStrictEqual(replies.map((reply) => reply.body), ["GET /a\n", "GET /b?c=d\n", "GET /c\n"])
      const { date, ...headers } = replies[0].headers
      assert.deepStrictEqual(headers, { "content-type": "text/x-test", "content-length": "7" })
      assert.isBelow(Math.abs(Date.parse(date) - Date.now()), 5000, `Date: ${date}`)
    }).pipe(Effect.scoped))

  it.live("answers a request that arrives a byte at a time once its head is whole", () =>
    Effect.gen(function* () {
      const { port } = yield* responder()
      const got = yield* exchange(port, [...GET("/split", "Connection: close\r\n")], { pauseMs: 1 })
      assert.isTrue(got.ended)
      assert.deepStrictEqual(responses(got.data.toString()).map((reply) => reply.body), ["GET /split\n"])
    }).pipe(Effect.scoped))

  it.live("closes after the reply for HTTP/1.0, or for Connection: close; keeps HTTP/1.0 with keep-alive", () =>
    Effect.gen(function* () {
      const { port } = yield* responder()
      for (const request of ["GET /old HTTP/1.0\r\n\r\n", GET("/close", "Connection: close\r\n")]) {
        const got = yield* exchange(port, [request + GET("/after")])
        assert.isTrue(got.ended, request)
        const replies = responses(got.data.toString())
        assert.strictEqual(replies.length, 1, "nothing answered after a request that closes")
        assert.strictEqual(replies[0].headers["connection"], "close")
      }
      const kept = yield* keptOpen(port, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET("/next"))
      assert.isTrue(kept.open)
      assert.deepStrictEqual(responses(kept.data).map((reply) => reply.body), ["GET /old\n", "GET /next\n"])
    }).pipe(Effect.scoped))

  it.live("answers HEAD with the length of the body it leaves out, and the peer's half-close with the rest", () =>
    Effect.gen(function* () {
      const { port } = yield* responder()
      const got = yield* exchange(port, ["HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n" + GET("/g")], { halfClose: true })
      assert.isTrue(got.ended, "closed once the half-closed peer was answered")
      const replies = responses(got.data.toString(), [true, false])
      assert.deepStrictEqual(replies.map((reply) => [reply.headers["content-length"], reply.body]), [
        ["8", ""],
        ["7", "GET /g\n"],
      ])
    }).pipe(Effect.scoped))

  it.live("reads a body and throws it away, in the same write or in later ones, not taking it for a request", () =>
    Effect.gen(function* () {
      const { port } = yield* responder()
      const body = GET("/smuggled")
      const post = `POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`
      for (const pieces of [[post + body + GET("/next")], [post, body.slice(0, 5), body.slice(5), GET("/next")]]) {
        const got = yield* exchange(port, pieces, { pauseMs: 20, halfClose: true })
        assert.deepStrictEqual(responses(got.data.toString()).map((reply) => reply.body), ["POST /p\n", "GET /next\n"])
      }
    }).pipe(Effect.scoped))

  it.live("refuses with its status and closes: malformed, head too long, body too long, chunked, HTTP/2", () =>
    Effect.gen(function* () {
      const { port } = yield* responder()
      const refusals: Array<[string, number]> = [
        ["GET /\r\n\r\n", 400],
        ["GET / HTTP/1.1\r\nBad Field: x\r\n\r\n", 400],
        [GET("/", `X-Long: ${"a".repeat(HttpResponder.MAX_HEAD_BYTES)}\r\n`), 431],
        ["PUT / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", 413],
        ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501],
        ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505],
      ]
      for (const [request, status] of refusals) {
        const got = yield* exchange(port, [request + GET("/after")])
        assert.isTrue(got.ended, `closed after ${status}`)
        const replies = responses(got.data.toString())
        assert.deepStrictEqual(replies.map((reply) => reply.status), [status], request.slice(0, 40))
        assert.strictEqual(replies[0].headers["connection"], "close")
      }
      // A head that never ends is refused as soon as it is too long, not when it ends.
      const endless = yield* keptOpen(port, `GET / HTTP/1.1\r\nX: ${"a".repeat(HttpResponder.MAX_HEAD_BYTES + 10)}`)
      assert.isFalse(endless.open)
      assert.strictEqual(responses(endless.data)[0].status, 431)
    }).pipe(Effect.scoped))

  it.live("closes a connection on which no request completes for idleMillis, a half-sent one or an idle one", () =>
    Effect.gen(function* () {
      const { port } = yield* responder({ idleMillis: 200 })
      const halfSent = yield* Effect.promise(() => tcpConnect(port))
      halfSent.write("GET / HTTP/1.1\r\nHost: a\r\n")
      const idle = yield* Effect.promise(() => tcpConnect(port))
      idle.write(GET("/once"))
      assert.strictEqual(responses((yield* Effect.promise(() => readAtLeast(idle, 60))).toString()).length, 1)
      // A request every 100 ms keeps a connection open past the timeout.
      const busy = yield* Effect.promise(() => tcpConnect(port))
      let busyReplies = ""
      busy.on("data", (chunk: Buffer) => (busyReplies += chunk.toString()))
      for (let i = 0; i < 6; i++) {
        busy.write(GET(`/${i}`))
        yield* Effect.promise(() => sleep(100))
      }
      assert.isFalse(busy.readableEnded, "open while requests keep coming")
      assert.strictEqual(responses(busyReplies).length, 6)
      yield* Effect.promise(() =>
        Promise.all([closedByPeer(halfSent, 2000), closedByPeer(idle, 2000), closedByPeer(busy, 2000)])
      )
      for (const socket of [halfSent, idle, busy]) socket.destroy()
    }).pipe(Effect.scoped))

  it.live("a peer that does not read: its requests wait while 1 MiB of replies is queued, then all are answered, later ones and a half-close too", () =>
    Effect.gen(function* () {
      // Each half of the replies (16 MiB) is more than the kernel's socket buffers take on loopback.
      const bodyBytes = 256 * 1024
      const count = 128
      const server = yield* responder({ bodyBytes })
      const socket = yield* Effect.promise(() => tcpConnect(server.port))
      socket.pause()
      const requests = (from: number) => Array.from({ length: count / 2 }, (_, i) => GET(`/${from + i}`)).join("")
      socket.write(requests(0))
      yield* Effect.promise(() => sleep(300))
      // These arrive while the server reads no more: it reads them once its replies drain. The half-close after
      // them ends the connection only once they are answered.
      socket.end(requests(count / 2))
      socket.resume()
      // Only its length counts: a date is always 29 characters.
      const head = `HTTP/1.1 200 OK\r\nDate: ${
        new Date().toUTCString()
      }\r\nContent-Type: text/x-test\r\nContent-Length: ${bodyBytes}\r\n\r\n`
      const data = yield* Effect.promise(() => readAtLeast(socket, count * (head.length + bodyBytes), 10_000))
      yield* Effect.promise(() => closedByPeer(socket, 3000))
      socket.destroy()
      const replies = responses(data.toString())
      assert.deepStrictEqual(replies.map((reply) => reply.body.split("\n")[0]), replies.map((_, i) => `GET /${i}`))
      assert.strictEqual(replies.length, count)
      assert.isAtMost(server.maxQueued(), 1024 * 1024 + bodyBytes + 200, "queued replies stay bounded")
    }).pipe(Effect.scoped))

  it.live("a 404 from the answer is sent as it is", () =>
    Effect.gen(function* () {
      const { port } = yield* responder()
      const got = yield* exchange(port, [GET("/missing", "Connection: close\r\n")])
      assert.deepStrictEqual(responses(got.data.toString()).map((reply) => [reply.status, reply.body]), [[
        404,
        "not found\n",
      ]])
    }).pipe(Effect.scoped))

  it.live.skipIf(isDeno)(
    "the endpoint's sockets have the same shape in V8 as the TCP server's, so that a scrape deoptimises nothing",
    () =>
      Effect.sync(() => {
        const script = Path.join(projectRoot, "test", "support", "socket-shapes.ts")
        const out = ChildProcess.execFileSync(process.execPath, ["--allow-natives-syntax", script], {
          encoding: "utf8",
          timeout: 30_000,
        })
        assert.strictEqual(/^same shape: (\w+)$/m.exec(out)?.[1], "true", out)
      }),
    40_000,
  )
})
