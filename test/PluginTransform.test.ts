// Plug-in transforms on both servers, as an embedder writes them: a server with
// none provided upper-cases; an effectful transform is answered, in request
// order on one TCP connection; a transform that throws, dies or fails costs
// only its datagram or its connection, is logged once with the peer and the
// cause, and every other client is still served.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as TcpServer from "../src/TcpServer.ts"
import type * as Transform from "../src/Transform.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { logCapture } from "./support/Logs.ts"
import { statsOf, withTcpServer, withUdpServer } from "./support/Servers.ts"
import { closedByPeer, readAtLeast, tcpConnect, tcpExchange, udpExchange } from "./support/Sockets.ts"

/** A line transform that throws on the sentence "boom" and upper-cases the rest. */
const throwing: Transform.TransformShape = {
  name: "throwing",
  framing: "line",
  apply: (text) => {
    if (text === "boom") throw new Error("the plug-in blew up")
    return text.toUpperCase()
  },
}

/** An effectful line transform: replies after a delay that shrinks with each sentence, fails on "fail". */
const delayed = (delays: ReadonlyArray<number>): Transform.TransformShape => {
  let index = 0
  return {
    name: "delayed",
    framing: "line",
    apply: (text) =>
      text === "fail"
        ? Effect.fail(new Error("the other service said no"))
        : Effect.sleep(`${delays[index++ % delays.length]} millis`).pipe(Effect.as(text.toUpperCase())),
  }
}

const noReply = (port: number, payload: string) =>
  Effect.promise(() => udpExchange(port, payload, { timeoutMs: 300 }).then(() => "answered", () => "no reply"))

describe("a server with no transform provided", () => {
  it.live("TcpServer.layer() and UdpServer.layer() alone upper-case, as the textbook's servers do", () =>
    Effect.gen(function* () {
      const tcp = yield* TcpServer.TcpServer
      const udp = yield* UdpServer.UdpServer
      const overTcp = yield* Effect.promise(() => tcpExchange(tcp.address.port, ["straße"], { halfClose: true }))
      const overUdp = yield* Effect.promise(() => udpExchange(udp.address.port, "straße"))
      assert.strictEqual(overTcp.data.toString(), "STRASSE")
      assert.strictEqual(overUdp.toString(), "STRASSE")
    }).pipe(Effect.provide(Layer.mergeAll(
      TcpServer.layer({ host: "127.0.0.1", port: 0 }),
      UdpServer.layer({ host: "127.0.0.1", port: 0 }),
    ))))
})

describe("a transform that throws", () => {
  it.live("TCP: closes only that connection, logs it once with the peer and the cause; others are served", () => {
    const logs = logCapture()
    return withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const port = server.address.port
          const bystander = yield* Effect.promise(() => tcpConnect(port))
          const victim = yield* Effect.promise(() => tcpExchange(port, ["fine\nboom\nnever\n"]))
          // The line before the throw is still answered; the connection then closes.
          assert.strictEqual(victim.data.toString(), "FINE\n")
          assert.isTrue(victim.ended)
          const reading = readAtLeast(bystander, "STILL HERE\n".length)
          bystander.write("still here\n")
          assert.strictEqual((yield* Effect.promise(() => reading)).toString(), "STILL HERE\n")
          bystander.destroy()
          const errors = logs.logged.filter((line) => line.startsWith("Error"))
          assert.strictEqual(errors.length, 1, logs.logged.join("\n"))
          assert.match(errors[0], /^Error failed while answering for 127\.0\.0\.1:\d+\/tcp: closing its connection/)
          assert.strictEqual(statsOf(server).failedConnections, 1)
        }),
      {},
      throwing,
    ).pipe(Effect.provide(logs.layer))
  })

  it.live("UDP: that datagram is not answered, the failure is counted and logged; the next one is answered", () => {
    const logs = logCapture()
    return withUdpServer(
      (server) =>
        Effect.gen(function* () {
          assert.strictEqual(yield* noReply(server.address.port, "boom"), "no reply")
          const reply = yield* Effect.promise(() => udpExchange(server.address.port, "after"))
          assert.strictEqual(reply.toString(), "AFTER")
          assert.strictEqual(statsOf(server).failed, 1)
          const errors = logs.logged.filter((line) => line.startsWith("Error"))
          assert.strictEqual(errors.length, 1, logs.logged.join("\n"))
          assert.match(errors[0], /^Error transform failed for 127\.0\.0\.1:\d+\/udp: datagram not answered/)
        }),
      {},
      throwing,
    ).pipe(Effect.provide(logs.layer))
  })
})

describe("an effectful transform", () => {
  it.live("TCP: replies keep request order on one connection although later effects finish first", () =>
    withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const sentences = ["one", "two", "three", "four", "five"]
          const expected = sentences.map((s) => s.toUpperCase() + "\n").join("")
          const reply = yield* Effect.promise(() =>
            tcpExchange(server.address.port, [sentences.join("\n") + "\n"], { expectBytes: expected.length })
          )
          assert.strictEqual(reply.data.toString(), expected)
        }),
      {},
      delayed([80, 40, 20, 10, 0]),
    ))

  it.live("TCP: a half-closed peer still gets every reply before the connection ends", () =>
    withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const reply = yield* Effect.promise(() => tcpExchange(server.address.port, ["a\nb"], { halfClose: true }))
          assert.strictEqual(reply.data.toString(), "A\nB")
          assert.isTrue(reply.ended)
        }),
      {},
      delayed([30, 0]),
    ))

  it.live("TCP: a failed effect closes only its connection, after the replies owed before it", () => {
    const logs = logCapture()
    return withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const victim = yield* Effect.promise(() => tcpExchange(server.address.port, ["ok\nfail\nlater\n"]))
          assert.strictEqual(victim.data.toString(), "OK\n")
          assert.isTrue(victim.ended)
          const other = yield* Effect.promise(() =>
            tcpExchange(server.address.port, ["next\n"], { expectBytes: "NEXT\n".length })
          )
          assert.strictEqual(other.data.toString(), "NEXT\n")
          const errors = logs.logged.filter((line) => line.startsWith("Error"))
          assert.strictEqual(errors.length, 1, logs.logged.join("\n"))
          assert.match(errors[0], /^Error transform failed for 127\.0\.0\.1:\d+\/tcp: closing its connection/)
          assert.include(errors[0], "the other service said no")
        }),
      {},
      delayed([10]),
    ).pipe(Effect.provide(logs.layer))
  })

  it.live("TCP: shutdown interrupts an effect that never ends, and the connection is closed", () =>
    Effect.gen(function* () {
      const forever: Transform.TransformShape = { name: "forever", framing: "line", apply: () => Effect.never }
      const socket = yield* withTcpServer(
        (server) =>
          Effect.gen(function* () {
            const socket = yield* Effect.promise(() => tcpConnect(server.address.port))
            socket.write("hang\n")
            yield* Effect.sleep("50 millis")
            return socket
          }),
        { drainTimeout: "200 millis" },
        forever,
      )
      yield* Effect.promise(() => closedByPeer(socket, 2000))
      socket.destroy()
    }))

  it.live("UDP: answered; a failed effect leaves its datagram unanswered, and the server goes on", () =>
    withUdpServer(
      (server) =>
        Effect.gen(function* () {
          const port = server.address.port
          const replies = yield* Effect.promise(() =>
            Promise.all(["a", "b", "c"].map((s) => udpExchange(port, s).then(String)))
          )
          assert.deepStrictEqual(replies, ["A", "B", "C"])
          assert.strictEqual(yield* noReply(port, "fail"), "no reply")
          assert.strictEqual((yield* Effect.promise(() => udpExchange(port, "d"))).toString(), "D")
          assert.strictEqual(statsOf(server).failed, 1)
        }),
      {},
      delayed([30, 10, 0]),
    ))
})
