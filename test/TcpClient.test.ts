// The TCP client against caps's server and raw peers that close, reset,
// stall or dribble: replies are framed (never one read), connections are
// reused and transparently reopened, and every failure is a typed error.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import * as TcpClient from "../src/TcpClient.ts"
import * as TcpServer from "../src/TcpServer.ts"
import { openSockets, socketsBackTo, unusedPort } from "./support/Sockets.ts"
import { statsOf, tcpServer } from "./support/Servers.ts"

/** A raw TCP server on 127.0.0.1 whose connections are handled by `onConnection`; closed with the scope. */
const rawServer = (onConnection: (socket: Net.Socket, index: number) => void) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ port: number; server: Net.Server; connections: Array<Net.Socket> }>((resolve) => {
        const connections: Array<Net.Socket> = []
        const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
          connections.push(socket)
          socket.on("error", () => {})
          // Close our side when the client closes its side, so only the client's sockets are counted.
          socket.on("end", () => socket.end())
          onConnection(socket, connections.length - 1)
        })
        server.listen(
          { host: "127.0.0.1", port: 0 },
          () => resolve({ port: (server.address() as Net.AddressInfo).port, server, connections }),
        )
      })
    ),
    ({ connections, server }) =>
      Effect.sync(() => {
        for (const socket of connections) socket.destroy()
        server.close()
      }),
  )

/** Answers each complete line, upper-cased, like caps; `then` decides what happens after each reply. */
const lineServer = (after: (socket: Net.Socket) => void = () => {}) =>
  rawServer((socket) => {
    let buffered = ""
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString()
      let at: number
      while ((at = buffered.indexOf("\n")) !== -1) {
        socket.write(buffered.slice(0, at).toUpperCase() + "\n")
        buffered = buffered.slice(at + 1)
        after(socket)
      }
    })
  })

const clientOf = (port: number, options: TcpClient.TcpClientOptions = {}) =>
  TcpClient.make({ host: "127.0.0.1", port, ...options })

describe("TcpClient", () => {
  it.live("sends many sentences over one connection to a caps server", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const tcp = yield* clientOf(server.address.port)
      assert.strictEqual(yield* tcp.request("one"), "ONE")
      assert.strictEqual(yield* tcp.request("two straße"), "TWO STRASSE")
      assert.strictEqual(yield* tcp.request(""), "")
      assert.strictEqual(statsOf(server).connectionsTotal, 1)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        tcpServer(),
      ),
    ))

  it.live("assembles a reply that arrives one byte at a time", () =>
    Effect.gen(function* () {
      const dribble = yield* rawServer((socket) =>
        socket.once("data", async () => {
          for (const byte of Buffer.from("SLOW ß\n")) {
            socket.write(Buffer.from([byte]))
            await new Promise((resolve) => setTimeout(resolve, 5))
          }
        })
      )
      const tcp = yield* clientOf(dribble.port)
      assert.strictEqual(yield* tcp.request("slow ß"), "SLOW ß")
    }).pipe(Effect.scoped))

  it.live("takes end of stream as the end of a reply without newline (the textbook server's way)", () =>
    Effect.gen(function* () {
      const textbook = yield* rawServer((socket) =>
        socket.once("data", (chunk: Buffer) => socket.end(chunk.toString().trim().toUpperCase()))
      )
      const tcp = yield* clientOf(textbook.port)
      assert.strictEqual(yield* tcp.request("bare"), "BARE")
      // The server closed the connection: the next sentence goes over a new one, transparently.
      assert.strictEqual(yield* tcp.request("again"), "AGAIN")
      assert.strictEqual(textbook.connections.length, 2)
    }).pipe(Effect.scoped))

  it.live("reopens a connection the server closed after its last reply", () =>
    Effect.gen(function* () {
      const oneShot = yield* lineServer((socket) => socket.end())
      const tcp = yield* clientOf(oneShot.port)
      for (const word of ["a", "b", "c"]) assert.strictEqual(yield* tcp.request(word), word.toUpperCase())
      assert.strictEqual(oneShot.connections.length, 3)
    }).pipe(Effect.scoped))

  it.live("fails with ConnectionRefused when nothing listens", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      const tcp = yield* clientOf(port)
      const error = yield* tcp.request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionRefused")
      assert.strictEqual(error.message, `connection refused by 127.0.0.1:${port}/tcp`)
    }).pipe(Effect.scoped))

  it.live("fails with Timeout when the server accepts but never answers", () =>
    Effect.gen(function* () {
      const mute = yield* rawServer(() => {})
      const tcp = yield* clientOf(mute.port, { replyTimeout: "150 millis" })
      const error = yield* tcp.request("hello?").pipe(Effect.flip)
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(error.message, `no answer from 127.0.0.1:${mute.port}/tcp after 1 attempt of 150 ms`)
    }).pipe(Effect.scoped))

  it.live("fails with ConnectionClosed when a fresh connection is closed before any reply", () =>
    Effect.gen(function* () {
      const rude = yield* rawServer((socket) => socket.once("data", () => socket.end()))
      const tcp = yield* clientOf(rude.port)
      const error = yield* tcp.request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, "Closed")
    }).pipe(Effect.scoped))

  it.live("fails with ConnectionClosed (Reset) when the server resets the connection", () =>
    Effect.gen(function* () {
      const resetting = yield* rawServer((socket) => socket.once("data", () => socket.resetAndDestroy()))
      const tcp = yield* clientOf(resetting.port)
      const error = yield* tcp.request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.include(error.message, "reset")
    }).pipe(Effect.scoped))

  it.live("a reply that comes after its timeout is never read as the answer to the next sentence", () =>
    Effect.gen(function* () {
      const slowFirst = yield* rawServer((socket, index) =>
        socket.on("data", (chunk: Buffer) => {
          const reply = chunk.toString().toUpperCase()
          if (index === 0) setTimeout(() => socket.writable && socket.write(reply), 300)
          else socket.write(reply)
        })
      )
      const tcp = yield* clientOf(slowFirst.port, { replyTimeout: "100 millis" })
      assert.strictEqual((yield* tcp.request("first").pipe(Effect.flip))._tag, "Timeout")
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* tcp.request("second"), "SECOND")
    }).pipe(Effect.scoped))

  it.live("refuses a sentence with a line break in it as MalformedInput", () =>
    Effect.gen(function* () {
      const tcp = yield* clientOf(9)
      const error = yield* tcp.request("two\nlines").pipe(Effect.flip)
      assert.strictEqual(error._tag, "MalformedInput")
    }).pipe(Effect.scoped))

  it.live("fails with NameNotResolved for a host name that has no address", () =>
    Effect.gen(function* () {
      const tcp = yield* TcpClient.make({ host: `${"b".repeat(70)}.invalid`, port: 12000 })
      assert.strictEqual((yield* tcp.request("x").pipe(Effect.flip))._tag, "NameNotResolved")
    }).pipe(Effect.scoped))

  it.live("closes its connection when its scope closes, leaking no descriptors", () =>
    Effect.gen(function* () {
      const server = yield* lineServer()
      const before = openSockets()
      yield* Effect.gen(function* () {
        const tcp = yield* clientOf(server.port)
        for (let i = 0; i < 20; i++) assert.strictEqual(yield* tcp.request(`n${i}`), `N${i}`)
      }).pipe(Effect.scoped)
      yield* Effect.promise(() => socketsBackTo(before))
    }).pipe(Effect.scoped))
})
