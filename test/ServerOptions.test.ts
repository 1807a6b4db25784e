// The servers' options as an embedder gives them: every bad one fails `make`
// with an InvalidOption naming it, before anything is bound; an infinite idle
// timeout means "never"; `layerConfig` reads the same CAPS_* settings as the
// CLI; host names are resolved and bound on both servers; and time inside the
// servers follows Effect's Clock, so TestClock drives it.
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as TcpServer from "../src/TcpServer.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { isDeno } from "./support/Process.ts"
import { statsOf, tcpServer } from "./support/Servers.ts"
import { closedByPeer, connection, readAtLeast, tcpConnect, udpExchange, unusedPort } from "./support/Sockets.ts"
import { recordingTracer } from "./support/Spans.ts"

const tcpCases: ReadonlyArray<readonly [string, TcpServer.TcpServerOptions]> = [
  ["TcpServer.port", { port: 70_000 }],
  ["TcpServer.port", { port: 1.5 }],
  ["TcpServer.host", { host: "" }],
  ["TcpServer.maxLineBytes", { maxLineBytes: 0 }],
  ["TcpServer.maxConnections", { maxConnections: -1 }],
  ["TcpServer.idleTimeout", { idleTimeout: 0 }],
  ["TcpServer.drainTimeout", { drainTimeout: Duration.infinity }],
  ["TcpServer.drainTimeout", { drainTimeout: "soon" as Duration.Input }],
  ["TcpServer.drainTimeout", { drainTimeout: -5 }],
  ["TcpServer.backlog", { backlog: 0 }],
]

const udpCases: ReadonlyArray<readonly [string, UdpServer.UdpServerOptions]> = [
  ["UdpServer.port", { port: -1 }],
  ["UdpServer.maxDatagramBytes", { maxDatagramBytes: 70_000 }],
  ["UdpServer.receiveBufferBytes", { receiveBufferBytes: 0 }],
  ["UdpServer.rateLimit.perSecond", { rateLimit: { perSecond: 0, burst: 1 } }],
  ["UdpServer.rateLimit.burst", { rateLimit: { perSecond: 10, burst: 0.5 } }],
  // Deno cannot size the receive queue: asking for a size is refused rather than ignored.
  ...(isDeno ? [["UdpServer.receiveBufferBytes", { receiveBufferBytes: 4096 }] as const] : []),
]

describe("server options are decoded before anything is bound", () => {
  it.live.runIf(isDeno)(
    "on Deno, a receive queue size is refused, saying why (Deno's node:dgram cannot set it)",
    () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Effect.scoped(UdpServer.make({ host: "127.0.0.1", port: 0, receiveBufferBytes: 4096 })),
        )
        assert.strictEqual(error._tag, "InvalidOption")
        assert.include(
          error.message,
          "invalid option UdpServer.receiveBufferBytes: not settable on Deno",
        )
      }),
  )

  it.live("every bad TcpServer option fails with InvalidOption naming it, and the port stays free", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      for (const [option, given] of tcpCases) {
        const error = yield* Effect.flip(Effect.scoped(TcpServer.make({ host: "127.0.0.1", port, ...given })))
        assert.strictEqual(error._tag, "InvalidOption", option)
        if (error._tag === "InvalidOption") assert.strictEqual(error.option, option)
      }
      // Nothing was bound on the way: the port is still free for a server with good options.
      const server = yield* TcpServer.make({ host: "127.0.0.1", port })
      assert.strictEqual(server.address.port, port)
    }).pipe(Effect.scoped))

  it.live("every bad UdpServer option fails with InvalidOption naming it, and the port stays free", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      for (const [option, given] of udpCases) {
        const error = yield* Effect.flip(Effect.scoped(UdpServer.make({ host: "127.0.0.1", port, ...given })))
        assert.strictEqual(error._tag, "InvalidOption", option)
        if (error._tag === "InvalidOption") assert.strictEqual(error.option, option)
      }
      const server = yield* UdpServer.make({ host: "127.0.0.1", port })
      assert.strictEqual(server.address.port, port)
    }).pipe(Effect.scoped))

  it.live("idleTimeout: Duration.infinity keeps an idle connection open, and shutdown is still prompt", () =>
    Effect.gen(function* () {
      const started = Date.now()
      const socket = yield* Effect.gen(function* () {
        const server = yield* TcpServer.TcpServer
        const socket = yield* Effect.promise(() => tcpConnect(server.address.port))
        socket.on("end", () => socket.end()) // as real clients do
        yield* Effect.sleep("300 millis")
        const reading = readAtLeast(socket, 2)
        socket.write("hi")
        assert.strictEqual((yield* Effect.promise(() => reading)).toString(), "HI")
        return socket
      }).pipe(Effect.provide(tcpServer({ idleTimeout: Duration.infinity, drainTimeout: "3 seconds" })))
      yield* Effect.promise(() => closedByPeer(socket, 1000))
      socket.destroy()
      assert.isBelow(Date.now() - started, 2500, "the drain did not wait for its deadline")
    }))
})

describe("layerConfig reads the CLI's CAPS_* settings through Config", () => {
  it.live("TcpServer.layerConfig and UdpServer.layerConfig bind CAPS_HOST and CAPS_PORT", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      const provider = ConfigProvider.fromUnknown({
        CAPS_HOST: "127.0.0.1",
        CAPS_PORT: String(port),
        CAPS_IDLE_TIMEOUT: "0.5",
        CAPS_MAX_DATAGRAM_BYTES: "100",
      })
      const program = Effect.gen(function* () {
        const tcp = yield* TcpServer.TcpServer
        const udp = yield* UdpServer.UdpServer
        assert.deepStrictEqual([tcp.address.host, tcp.address.port], ["127.0.0.1", port])
        assert.deepStrictEqual([udp.address.host, udp.address.port], ["127.0.0.1", port])
        assert.strictEqual((yield* Effect.promise(() => udpExchange(port, "ok"))).toString(), "OK")
      })
      yield* program.pipe(
        Effect.provide(Layer.mergeAll(TcpServer.layerConfig, UdpServer.layerConfig)),
        Effect.provide(ConfigProvider.layer(provider)),
      )
    }))

  it.effect("a bad CAPS_* value fails the layer with InvalidOption, as the CLI would refuse it", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.provide(TcpServer.TcpServer.use(() => Effect.void), TcpServer.layerConfig).pipe(
          Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ CAPS_DRAIN_TIMEOUT: "-1" }))),
        ),
      )
      assert.strictEqual(error._tag, "InvalidOption")
    }))

  it.effect("the config's defaults are the CLI's", () =>
    Effect.gen(function* () {
      const tcp = yield* TcpServer.config
      const udp = yield* UdpServer.config
      assert.strictEqual(tcp.port, 12000)
      assert.strictEqual(tcp.host, undefined)
      assert.strictEqual(Duration.toMillis(Duration.fromInputUnsafe(tcp.idleTimeout!)), 60_000)
      assert.strictEqual(udp.maxDatagramBytes, UdpServer.MAX_UDP_PAYLOAD)
      assert.strictEqual(udp.rateLimit, undefined)
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))))
})

describe("host names", () => {
  it.live("both servers bind --host localhost (resolved first, IPv4 first) and say which address they bound", () =>
    Effect.gen(function* () {
      const tcp = yield* TcpServer.TcpServer
      const udp = yield* UdpServer.UdpServer
      assert.strictEqual(tcp.address.host, "127.0.0.1")
      assert.strictEqual(udp.address.host, "127.0.0.1")
      assert.strictEqual((yield* Effect.promise(() => udpExchange(udp.address.port, "name"))).toString(), "NAME")
    }).pipe(Effect.provide(Layer.mergeAll(
      TcpServer.layer({ host: "localhost", port: 0 }),
      UdpServer.layer({ host: "localhost", port: 0 }),
    ))))

  it.live("an IPv6 literal binds too", () =>
    Effect.gen(function* () {
      const udp = yield* UdpServer.UdpServer
      assert.strictEqual(udp.address.host, "::1")
      const reply = yield* Effect.promise(() => udpExchange(udp.address.port, "six", { host: "::1" }))
      assert.strictEqual(reply.toString(), "SIX")
    }).pipe(Effect.provide(UdpServer.layer({ host: "::1", port: 0 }))))

  it.live("a name that does not resolve fails with NameNotResolved, for both servers", () =>
    Effect.gen(function* () {
      const host = "no-such-host.invalid"
      const tcp = yield* Effect.flip(Effect.scoped(TcpServer.make({ host, port: 0 })))
      const udp = yield* Effect.flip(Effect.scoped(UdpServer.make({ host, port: 0 })))
      assert.strictEqual(tcp._tag, "NameNotResolved")
      assert.strictEqual(udp._tag, "NameNotResolved")
    }))
})

describe("an embedder's tracer", () => {
  it.live("sees TcpServer.make and UdpServer.make as spans", () =>
    Effect.gen(function* () {
      const { spans, tracer } = recordingTracer()
      yield* Effect.all([
        TcpServer.make({ host: "127.0.0.1", port: 0 }),
        UdpServer.make({ host: "127.0.0.1", port: 0 }),
      ]).pipe(Effect.withTracer(tracer))
      assert.includeMembers(spans.map((span) => span.name), ["TcpServer.make", "UdpServer.make"])
    }).pipe(Effect.scoped))
})

describe("time inside the servers follows Effect's Clock", () => {
  it.effect("the idle timeout closes a silent connection when the TestClock reaches it, not before", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const socket = yield* connection(server.address.port)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      yield* TestClock.adjust("50 seconds")
      assert.strictEqual(statsOf(server).idleTimeouts, 0)
      assert.strictEqual(statsOf(server).connectionsOpen, 1)
      // The sweep runs every eighth of the timeout (7.5 s), so its eighth run falls on exactly 60 s.
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual(statsOf(server).connectionsOpen, 1)
      yield* TestClock.adjust("1 millis")
      yield* Effect.promise(() => closedByPeer(socket, 2000))
      assert.strictEqual(statsOf(server).idleTimeouts, 1)
    }).pipe(Effect.provide(tcpServer({ idleTimeout: "60 seconds" }))))

  it.effect("the rate limiter refills by the TestClock: a drained bucket serves again once time passes", () =>
    Effect.gen(function* () {
      const server = yield* UdpServer.make({ host: "127.0.0.1", port: 0, rateLimit: { perSecond: 1, burst: 1 } })
      const send = (text: string) =>
        Effect.promise(() => udpExchange(server.address.port, text, { timeoutMs: 200 }).then(String, () => "no reply"))
      assert.strictEqual(yield* send("one"), "ONE")
      assert.strictEqual(yield* send("two"), "no reply") // no real second passes for the server's Clock
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* send("three"), "THREE")
      assert.strictEqual(statsOf(server).rateLimited, 1)
    }).pipe(Effect.scoped))
})
