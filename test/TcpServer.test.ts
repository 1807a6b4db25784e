// The TCP server against raw loopback clients: it answers bare sentences,
// reassembles split characters, serves many connections at once, frames
// lines for `count`, contains each connection's failures, and releases
// everything when its scope closes.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as TcpServer from "../src/TcpServer.ts"
import * as Transform from "../src/Transform.ts"
import {
  closedByPeer,
  openSockets,
  readAtLeast,
  refused,
  socketsBackTo,
  tcpConnect,
  tcpExchange,
} from "./support/Sockets.ts"
import { statsOf, withTcpServer } from "./support/Servers.ts"

const utf8 = (s: string) => new TextEncoder().encode(s)

describe("TcpServer", () => {
  it.live("answers a sentence without newline at once, as the textbook client expects [failure: sentence-split-across-reads]", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const reply = yield* Effect.promise(() =>
          tcpExchange(server.address.port, ["hello world"], { expectBytes: 11 })
        )
        assert.strictEqual(reply.data.toString(), "HELLO WORLD")
      })
    ))

  it.live("reassembles a multi-byte character split across two writes [failure: utf8-split-across-reads]", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const bytes = utf8("straße é 😀")
        for (const cut of [5, 6, 9, 12, 13]) {
          const reply = yield* Effect.promise(() =>
            tcpExchange(server.address.port, [bytes.subarray(0, cut), bytes.subarray(cut)], {
              pauseMs: 20,
              halfClose: true,
            })
          )
          assert.strictEqual(reply.data.toString(), "STRASSE É 😀", `cut at byte ${cut}`)
          assert.isTrue(reply.ended)
        }
      })
    ))

  it.live("serves 150 connections at the same time, each in its own fiber [failure: second-client-while-slow]", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const sockets = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 150 }, () => tcpConnect(server.address.port)))
        )
        try {
          // Every connection is open before any is answered: no one-client-at-a-time.
          const replies = yield* Effect.promise(() =>
            Promise.all(sockets.map((socket, i) => {
              const reading = readAtLeast(socket, `CLIENT ${i}\n`.length)
              socket.write(`client ${i}\n`)
              return reading
            }))
          )
          replies.forEach((reply, i) => assert.strictEqual(reply.toString(), `CLIENT ${i}\n`))
          assert.strictEqual(statsOf(server).connectionsOpen, 150)
        } finally {
          for (const socket of sockets) socket.destroy()
        }
      })
    ))

  it.live("count answers each line with a line, and a final line without newline on half-close [failure: half-close]", () =>
    withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const reply = yield* Effect.promise(() =>
            tcpExchange(server.address.port, ["she sells\nsea sh", "ells\nss"], { pauseMs: 10, halfClose: true })
          )
          assert.strictEqual(reply.data.toString(), "3\n3\n2")
          assert.isTrue(reply.ended)
        }),
      {},
      Transform.count("s"),
    ))

  it.live("closes only the connection whose line is too long; others go on", () =>
    withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const good = yield* Effect.promise(() => tcpConnect(server.address.port))
          const flood = yield* Effect.promise(() =>
            tcpExchange(server.address.port, ["s".repeat(64), "s".repeat(64)], { pauseMs: 5 })
          )
          assert.isTrue(flood.ended)
          assert.strictEqual(flood.data.length, 0)
          const reading = readAtLeast(good, 2)
          good.write("ss\n")
          assert.strictEqual((yield* Effect.promise(() => reading)).toString(), "2\n")
          good.destroy()
        }),
      { maxLineBytes: 100 },
      Transform.count("s"),
    ))

  it.live("answers invalid UTF-8 with U+FFFD and keeps serving [failure: invalid-utf8]", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const bad = yield* Effect.promise(() =>
          tcpExchange(server.address.port, [new Uint8Array([0x61, 0xff, 0xfe, 0x62])], { halfClose: true })
        )
        assert.strictEqual(bad.data.toString(), "A\uFFFD\uFFFDB")
        const good = yield* Effect.promise(() => tcpExchange(server.address.port, ["ok"], { halfClose: true }))
        assert.strictEqual(good.data.toString(), "OK")
        assert.strictEqual(statsOf(server).malformedConnections, 1)
      })
    ))

  it.live("a peer that resets mid-request does not disturb the server", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const socket = yield* Effect.promise(() => tcpConnect(server.address.port))
        socket.write("half a sen")
        socket.resetAndDestroy()
        const reply = yield* Effect.promise(() => tcpExchange(server.address.port, ["still here"], { halfClose: true }))
        assert.strictEqual(reply.data.toString(), "STILL HERE")
      })
    ))

  it.live("closing the scope stops listening, closes open connections, frees the port and leaks no descriptors", () =>
    Effect.gen(function* () {
      const before = openSockets()
      const scope = yield* Scope.make()
      const server = yield* TcpServer.make({ host: "127.0.0.1", port: 0 }).pipe(
        Scope.provide(scope),
        Effect.provide(Transform.layer(Transform.upper)),
      )
      const clients = yield* Effect.promise(() =>
        Promise.all([tcpConnect(server.address.port), tcpConnect(server.address.port)])
      )
      const reply = yield* Effect.promise(() => tcpExchange(server.address.port, ["x"], { halfClose: true }))
      assert.strictEqual(reply.data.toString(), "X")
      yield* Scope.close(scope, Exit.void)
      // The same port can be bound again the moment the scope is closed.
      const again = yield* TcpServer.make({ host: "127.0.0.1", port: server.address.port }).pipe(
        Effect.provide(Transform.layer(Transform.upper)),
        Effect.scoped,
      )
      assert.strictEqual(again.address.port, server.address.port)
      yield* Effect.promise(() => Promise.all(clients.map((client) => closedByPeer(client))))
      for (const client of clients) client.destroy()
      assert.isTrue(yield* Effect.promise(() => refused(server.address.port)))
      yield* Effect.promise(() => socketsBackTo(before))
    }))

  it.live("fails to bind an address in use with AddressInUse", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const error = yield* TcpServer.make({ host: "127.0.0.1", port: server.address.port }).pipe(
          Effect.provide(Transform.layer(Transform.upper)),
          Effect.scoped,
          Effect.flip,
        )
        assert.strictEqual(error._tag, "AddressInUse")
        assert.include(error.message, `127.0.0.1:${server.address.port}/tcp`)
      })
    ))

  it.live("fails to bind an address this host does not have with AddressNotAvailable", () =>
    Effect.gen(function* () {
      // 192.0.2.1 is TEST-NET-1: never assigned to a host. Binding sends nothing.
      const error = yield* TcpServer.make({ host: "192.0.2.1", port: 0 }).pipe(
        Effect.provide(Transform.layer(Transform.upper)),
        Effect.scoped,
        Effect.flip,
      )
      assert.strictEqual(error._tag, "AddressNotAvailable")
    }))

  it.live("by default listens on all interfaces, answering over IPv4 and IPv6", () =>
    withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const v4 = yield* Effect.promise(() => tcpExchange(server.address.port, ["four"], { halfClose: true }))
          const v6 = yield* Effect.promise(() =>
            tcpExchange(server.address.port, ["six"], { host: "::1", halfClose: true })
          )
          assert.strictEqual(v4.data.toString(), "FOUR")
          assert.strictEqual(v6.data.toString(), "SIX")
        }),
      { host: undefined },
    ))
})
