// The UDP client against caps's server and against raw peers that lose,
// delay or refuse: every failure is a typed error, lost datagrams are resent,
// a late reply is never taken for the answer to a later sentence, and each
// address of a name is tried while ICMP says nothing listens at the last.
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import * as Resolver from "../src/Resolver.ts"
import * as UdpClient from "../src/UdpClient.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { isDeno } from "./support/Process.ts"
import { openSockets, socketsBackTo, udpPeer, unusedPort } from "./support/Sockets.ts"
import { udpServer } from "./support/Servers.ts"
import { recordingTracer } from "./support/Spans.ts"

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
      const udp = yield* client({ port: server.address.port })
      assert.strictEqual(yield* udp.request("hello"), "HELLO")
      assert.strictEqual(yield* udp.request("straße ﬃ"), "STRASSE FFI")
      assert.strictEqual(yield* udp.request(""), "")
    }).pipe(
      Effect.provide(
        udpServer(),
      ),
    ))

  it.live("times out with the number of attempts made, having sent the sentence each time [failure: udp-no-server]", () =>
    Effect.gen(function* () {
      const silent = yield* peer(() => undefined)
      const udp = yield* client({ port: silent.port, attemptTimeout: "100 millis", attempts: 3 })
      const error = yield* udp.request("anyone?").pipe(Effect.flip)
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(error.message, `no answer from 127.0.0.1:${silent.port}/udp after 3 attempts of 100 ms`)
      assert.strictEqual(silent.received.length, 3)
    }).pipe(Effect.scoped))

  it.live("resends a lost datagram and returns the answer to the resend [failure: udp-lost-request]", () =>
    Effect.gen(function* () {
      // The first datagram is "lost": the peer answers only from the second on.
      const lossy = yield* peer((message, index) =>
        index === 0 ? undefined : { payload: message.toString().toUpperCase() }
      )
      const udp = yield* client({ port: lossy.port, attemptTimeout: "100 millis", attempts: 3 })
      const reply = yield* udp.request("again")
      assert.strictEqual(reply, "AGAIN")
      assert.strictEqual(lossy.received.length, 2)
    }).pipe(Effect.scoped))

  it.live("never takes a late reply to an earlier sentence for the answer to a later one [failure: udp-late-reply]", () =>
    Effect.gen(function* () {
      const slowFirst = yield* peer((message, index) => ({
        payload: message.toString().toUpperCase(),
        delayMs: index === 0 ? 300 : 0,
      }))
      const udp = yield* client({ port: slowFirst.port, attemptTimeout: "100 millis", attempts: 1 })
      const first = yield* udp.request("first").pipe(Effect.flip)
      assert.strictEqual(first._tag, "Timeout")
      yield* Effect.sleep("250 millis") // the late FIRST is now on its way
      assert.strictEqual(yield* udp.request("second"), "SECOND")
    }).pipe(Effect.scoped))

  it.live.skipIf(isDeno)(
    "fails fast with ConnectionRefused when ICMP says nothing listens on the port [failure: udp-no-server]",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.promise(unusedPort)
        const started = Date.now()
        const udp = yield* client({ port, attemptTimeout: "2 seconds", attempts: 3 })
        const error = yield* udp.request("hello").pipe(Effect.flip)
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
        const udp = yield* client({ port, attemptTimeout: "100 millis", attempts: 2 })
        const error = yield* udp.request("hello").pipe(Effect.flip)
        assert.strictEqual(error._tag, "Timeout")
      }),
  )

  it.live("refuses a sentence larger than a datagram can carry, before sending anything [failure: oversize-datagram]", () =>
    Effect.gen(function* () {
      const udp = yield* client({ port: 9 })
      const error = yield* udp.request("x".repeat(UdpServer.MAX_UDP_PAYLOAD + 1)).pipe(Effect.flip)
      assert.strictEqual(error._tag, "MessageTooLarge")
      assert.strictEqual(error.message, "UDP datagram of 65508 bytes exceeds the limit of 65507 bytes")
    }))

  it.live("fails with NameNotResolved for a host name that has no address", () =>
    Effect.gen(function* () {
      // A label over 63 characters fails in the local resolver, so no DNS query leaves the machine.
      const host = `${"a".repeat(70)}.invalid`
      const udp = yield* UdpClient.make({ host, port: 12000 })
      const error = yield* udp.request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "NameNotResolved")
      assert.include(error.message, "cannot resolve host name")
    }))

  it.live("leaves no socket open after requests, whatever their outcome", () =>
    Effect.gen(function* () {
      const echo = yield* peer((message) => ({ payload: message }))
      const before = openSockets()
      const udp = yield* client({ port: echo.port, attemptTimeout: "100 millis", attempts: 1 })
      for (let i = 0; i < 50; i++) assert.strictEqual(yield* udp.request(`n${i}`), `n${i}`)
      const port = yield* Effect.promise(unusedPort)
      const refused = yield* client({ port, attempts: 1 })
      yield* refused.request("x").pipe(Effect.flip)
      yield* Effect.promise(() => socketsBackTo(before))
    }).pipe(Effect.scoped))
})

describe("UdpClient: addresses", () => {
  // This host's /etc/hosts gives localhost 127.0.0.1 only; many give it ::1 too, which the resolver here says.
  const dualStack = Resolver.fixed({
    localhost: [{ address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }],
  })

  it.live.skipIf(isDeno)(
    "a client of localhost reaches a server on ::1 only: 127.0.0.1 answers port unreachable, ::1 is tried next",
    () =>
      Effect.gen(function* () {
        const server = yield* UdpServer.UdpServer
        const udp = yield* UdpClient.make({ host: "localhost", port: server.address.port, attemptTimeout: "2 seconds" })
        const started = Date.now()
        assert.strictEqual(yield* udp.request("over six"), "OVER SIX")
        assert.isBelow(Date.now() - started, 1500)
      }).pipe(Effect.provide(udpServer({ host: "::1" })), Effect.provideService(Resolver.Resolver, dualStack)),
  )

  it.live.runIf(isDeno)(
    "on Deno, where no port unreachable is reported, a client of localhost waits out 127.0.0.1 and does not go on",
    () =>
      Effect.gen(function* () {
        const server = yield* UdpServer.UdpServer
        const udp = yield* UdpClient.make({
          host: "localhost",
          port: server.address.port,
          attemptTimeout: "100 millis",
          attempts: 2,
        })
        assert.strictEqual((yield* udp.request("over six").pipe(Effect.flip))._tag, "Timeout")
      }).pipe(Effect.provide(udpServer({ host: "::1" })), Effect.provideService(Resolver.Resolver, dualStack)),
  )
})

describe("UdpClient: the library surface", () => {
  const invalid: ReadonlyArray<[keyof UdpClient.UdpClientOptions, unknown]> = [
    ["port", 0],
    ["port", 65536],
    ["host", "two words"],
    ["attemptTimeout", 0],
    ["attemptTimeout", Duration.infinity],
    ["attempts", 0],
    ["attempts", 1.5],
    ["maxDatagramBytes", 0],
    ["maxDatagramBytes", UdpServer.MAX_UDP_PAYLOAD + 1],
  ]
  for (const [option, value] of invalid) {
    it.effect(`make fails with InvalidOption naming UdpClient.${option} for ${String(value)}`, () =>
      Effect.gen(function* () {
        const error = yield* UdpClient.make({ [option]: value }).pipe(Effect.flip)
        assert.strictEqual(error._tag, "InvalidOption")
        assert.strictEqual(error.option, `UdpClient.${option}`)
      }))
  }

  const inMillis = (options: UdpClient.UdpClientOptions) => ({
    ...options,
    attemptTimeout: Duration.toMillis(Duration.fromInputUnsafe(options.attemptTimeout!)),
  })

  it.effect("config reads CAPS_HOST, CAPS_PORT, CAPS_TIMEOUT (seconds) and CAPS_ATTEMPTS, with the CLI's defaults", () =>
    Effect.gen(function* () {
      const read = yield* UdpClient.config.parse(ConfigProvider.fromEnv({
        env: { CAPS_HOST: "::1", CAPS_PORT: "4000", CAPS_TIMEOUT: "0.25", CAPS_ATTEMPTS: "2" },
      }))
      assert.deepStrictEqual(inMillis(read), { host: "::1", port: 4000, attemptTimeout: 250, attempts: 2 })
      const defaults = yield* UdpClient.config.parse(ConfigProvider.fromUnknown({}))
      assert.deepStrictEqual(inMillis(defaults), { host: "localhost", port: 12000, attemptTimeout: 1000, attempts: 3 })
      const bad = yield* UdpClient.config.parse(ConfigProvider.fromUnknown({ CAPS_ATTEMPTS: "0" })).pipe(Effect.flip)
      assert.include(bad.message, "CAPS_ATTEMPTS")
    }))

  it.live("layerConfig builds a client from CAPS_* settings that talks to the server they name", () =>
    Effect.gen(function* () {
      const upper = yield* peer((message) => ({ payload: message.toString().toUpperCase() }))
      const reply = yield* UdpClient.UdpClient.use((udp) => udp.request("configured")).pipe(
        Effect.provide(UdpClient.layerConfig),
        Effect.provide(ConfigProvider.layer(
          ConfigProvider.fromUnknown({ CAPS_HOST: "127.0.0.1", CAPS_PORT: String(upper.port) }),
        )),
      )
      assert.strictEqual(reply, "CONFIGURED")
    }))

  it.live("a request is traced as a UdpClient.request span with one event per attempt", () =>
    Effect.gen(function* () {
      const { spans, tracer } = recordingTracer()
      const silent = yield* peer(() => undefined)
      const udp = yield* client({ port: silent.port, attemptTimeout: "50 millis", attempts: 3 })
      yield* udp.request("anyone?").pipe(Effect.flip, Effect.withTracer(tracer))
      const request = spans.find((span) => span.name === "UdpClient.request")
      assert.isDefined(request)
      assert.deepStrictEqual(
        request.events.map(([name, , attributes]) => [name, attributes.attempt]),
        [["attempt", 1], ["attempt", 2], ["attempt", 3]],
      )
      assert.strictEqual(request.attributes.get("caps.attempts"), 3)
    }))

  it.live("the request span names the server and the address reached, in OpenTelemetry's attribute names", () =>
    Effect.gen(function* () {
      const { spans, tracer } = recordingTracer()
      // Silent to the first datagram: the reply comes to the resend.
      const second = yield* peer((message, index) => index === 0 ? undefined : { payload: message })
      const udp = yield* client({ port: second.port, attemptTimeout: "100 millis", attempts: 3 })
      assert.strictEqual(yield* udp.request("again").pipe(Effect.withTracer(tracer)), "again")
      const request = spans.find((span) => span.name === "UdpClient.request")!
      assert.strictEqual(request.kind, "client")
      assert.deepInclude(Object.fromEntries(request.attributes), {
        "server.address": "127.0.0.1",
        "server.port": second.port,
        "network.transport": "udp",
        "network.peer.address": "127.0.0.1",
        "network.peer.port": second.port,
        "caps.attempts": 2,
      })
      assert.deepStrictEqual(request.events.map(([name, , attributes]) => [name, attributes.attempt]), [
        ["attempt", 1],
        ["attempt", 2],
      ])
    }))
})
