// The UDP client against caps's server and against raw peers that lose,
// delay or refuse: every failure is a typed error, lost datagrams are resent,
// and a late reply is never taken for the answer to a later sentence.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as UdpClient from "../src/UdpClient.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { isDeno } from "./support/Process.ts"
import { openSockets, socketsBackTo, udpPeer, unusedPort } from "./support/Sockets.ts"
import { udpServer } from "./support/Servers.ts"

if (isDeno) {
  console.warn("Deno: ICMP port unreachable is not reported to UDP sockets; checking the Timeout fallback instead")
}

const client = (options: UdpClient.UdpClientOptions) => UdpClient.make({ host: "127.0.0.1", ...options })

const peer = (reply: Parameters<typeof udpPeer>[0]) =>
  Effect.acquireRelease(Effect.promise(() => udpPeer(reply)), (peer) => Effect.sync(peer.close))

describe("UdpClient", () => {
  it.live("gets the reply from a caps server, for ASCII and for full Unicode upper-casing", () =>
    Effect.gen(function* () {
      const server = yield* UdpServer.UdpServer
      const udp = client({ port: server.address.port })
      assert.strictEqual(yield* udp.request("hello"), "HELLO")
      assert.strictEqual(yield* udp.request("straße ﬃ"), "STRASSE FFI")
      assert.strictEqual(yield* udp.request(""), "")
    }).pipe(
      Effect.provide(
        udpServer(),
      ),
    ))

  it.live("times out with the number of attempts made, having sent the sentence each time", () =>
    Effect.gen(function* () {
      const silent = yield* peer(() => undefined)
      const error = yield* client({ port: silent.port, attemptTimeout: "100 millis", attempts: 3 })
        .request("anyone?")
        .pipe(Effect.flip)
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(error.message, `no answer from 127.0.0.1:${silent.port}/udp after 3 attempts of 100 ms`)
      assert.strictEqual(silent.received.length, 3)
    }).pipe(Effect.scoped))

  it.live("resends a lost datagram and returns the answer to the resend", () =>
    Effect.gen(function* () {
      // The first datagram is "lost": the peer answers only from the second on.
      const lossy = yield* peer((message, index) =>
        index === 0 ? undefined : { payload: message.toString().toUpperCase() }
      )
      const reply = yield* client({ port: lossy.port, attemptTimeout: "100 millis", attempts: 3 }).request("again")
      assert.strictEqual(reply, "AGAIN")
      assert.strictEqual(lossy.received.length, 2)
    }).pipe(Effect.scoped))

  it.live("never takes a late reply to an earlier sentence for the answer to a later one", () =>
    Effect.gen(function* () {
      const slowFirst = yield* peer((message, index) => ({
        payload: message.toString().toUpperCase(),
        delayMs: index === 0 ? 300 : 0,
      }))
      const udp = client({ port: slowFirst.port, attemptTimeout: "100 millis", attempts: 1 })
      const first = yield* udp.request("first").pipe(Effect.flip)
      assert.strictEqual(first._tag, "Timeout")
      yield* Effect.sleep("250 millis") // the late FIRST is now on its way
      assert.strictEqual(yield* udp.request("second"), "SECOND")
    }).pipe(Effect.scoped))

  it.live.skipIf(isDeno)(
    "fails fast with ConnectionRefused when ICMP says nothing listens on the port",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.promise(unusedPort)
        const started = Date.now()
        const error = yield* client({ port, attemptTimeout: "2 seconds", attempts: 3 }).request("hello").pipe(
          Effect.flip,
        )
        assert.strictEqual(error._tag, "ConnectionRefused")
        assert.include(error.message, `127.0.0.1:${port}/udp`)
        assert.isBelow(Date.now() - started, 1500)
      }),
  )

  // Deno's node:dgram does not surface ICMP errors on a connected socket, so there the client can only time out.
  it.live.runIf(isDeno)(
    "on Deno, where ICMP errors are not reported, a closed port ends in Timeout",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.promise(unusedPort)
        const error = yield* client({ port, attemptTimeout: "100 millis", attempts: 2 }).request("hello").pipe(
          Effect.flip,
        )
        assert.strictEqual(error._tag, "Timeout")
      }),
  )

  it.live("refuses a sentence larger than a datagram can carry, before sending anything", () =>
    Effect.gen(function* () {
      const error = yield* client({ port: 9 }).request("x".repeat(UdpServer.MAX_UDP_PAYLOAD + 1)).pipe(Effect.flip)
      assert.strictEqual(error._tag, "MessageTooLarge")
      assert.strictEqual(error.message, "UDP datagram of 65508 bytes exceeds the limit of 65507 bytes")
    }))

  it.live("fails with NameNotResolved for a host name that has no address", () =>
    Effect.gen(function* () {
      // A label over 63 characters fails in the local resolver, so no DNS query leaves the machine.
      const host = `${"a".repeat(70)}.invalid`
      const error = yield* UdpClient.make({ host, port: 12000 }).request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "NameNotResolved")
      assert.include(error.message, "cannot resolve host name")
    }))

  it.live("leaves no socket open after requests, whatever their outcome", () =>
    Effect.gen(function* () {
      const echo = yield* peer((message) => ({ payload: message }))
      const before = openSockets()
      const udp = client({ port: echo.port, attemptTimeout: "100 millis", attempts: 1 })
      for (let i = 0; i < 50; i++) assert.strictEqual(yield* udp.request(`n${i}`), `n${i}`)
      const port = yield* Effect.promise(unusedPort)
      yield* client({ port, attempts: 1 }).request("x").pipe(Effect.flip)
      yield* Effect.promise(() => socketsBackTo(before))
    }).pipe(Effect.scoped))
})
