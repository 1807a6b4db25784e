// The servers' spans as an embedder's tracer sees them: one TcpServer.connection span per connection (who
// connected, where, how it ended, how many sentences it served), and UdpServer.datagram spans only when
// `traceDatagrams` asks for them.
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit } from "effect"
import * as Transform from "../src/Transform.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { withTcpServer, withUdpServer } from "./support/Servers.ts"
import { tcpExchange, udpExchange, waitUntil } from "./support/Sockets.ts"
import { recordingTracer } from "./support/Spans.ts"

// Answers each line, so that a connection's sentences can be counted.
const upperLines: Transform.TransformShape = { name: "upper-lines", framing: "line", apply: (t) => t.toUpperCase() }

// Answers after a while, as a transform that calls another service would.
const later: Transform.TransformShape = {
  name: "later",
  framing: "stream",
  apply: (sentence) => Effect.as(Effect.sleep("30 millis"), sentence.toUpperCase()),
}

const named = (spans: ReturnType<typeof recordingTracer>["spans"], name: string) =>
  spans.filter((span) => span.name === name)

const attributesOf = (span: { readonly attributes: ReadonlyMap<string, unknown> }) =>
  Object.fromEntries(span.attributes)

describe("TcpServer's connection span", () => {
  it.live("names the peer and the local endpoint, and at its end how it ended and the sentences served", () => {
    const { spans, tracer } = recordingTracer()
    return withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const reply = yield* Effect.promise(() =>
            tcpExchange(server.address.port, ["one\ntwo\n", "three\n"], { halfClose: true, pauseMs: 20 })
          )
          assert.strictEqual(reply.data.toString(), "ONE\nTWO\nTHREE\n")
          yield* Effect.promise(() =>
            waitUntil(() => named(spans, "TcpServer.connection")[0]?.status._tag === "Ended", 3000, "the span's end")
          )
          const [connection] = named(spans, "TcpServer.connection")
          assert.strictEqual(connection.kind, "server")
          assert.isTrue(connection.parent._tag === "None", "a connection starts a trace of its own")
          const attributes = attributesOf(connection)
          assert.deepInclude(attributes, {
            "network.transport": "tcp",
            "client.address": "127.0.0.1",
            "network.peer.address": "127.0.0.1",
            "server.address": "127.0.0.1",
            "server.port": server.address.port,
            "network.local.port": server.address.port,
            "caps.tls": false,
            "caps.connection.end": "eof",
            "caps.connection.requests": 3,
            "caps.connection.malformed": 0,
          })
          assert.isAbove(attributes["client.port"] as number, 0)
          assert.strictEqual(attributes["network.peer.port"], attributes["client.port"])
        }),
      { maxLineBytes: 1024 },
      upperLines,
    ).pipe(Effect.withTracer(tracer))
  })

  it.live("one span per connection, none per request", () => {
    const { spans, tracer } = recordingTracer()
    return withTcpServer(
      (server) =>
        Effect.gen(function* () {
          for (let i = 0; i < 2; i++) {
            yield* Effect.promise(() => tcpExchange(server.address.port, ["a\nb\nc\n"], { halfClose: true }))
          }
          yield* Effect.promise(() =>
            waitUntil(
              () => named(spans, "TcpServer.connection").filter((span) => span.status._tag === "Ended").length === 2,
              3000,
              "two ended spans",
            )
          )
          assert.deepStrictEqual(
            spans.filter((span) => span.name !== "TcpServer.make" && span.name !== "Transform.make").map((span) =>
              span.name
            ).filter((name) => name !== "Resolver.resolve"),
            ["TcpServer.connection", "TcpServer.connection"],
          )
        }),
      {},
      upperLines,
    ).pipe(Effect.withTracer(tracer))
  })
})

describe("UdpServer's datagram spans (traceDatagrams)", () => {
  it.live("are made only when asked for: without the option, a datagram makes no span", () => {
    const { spans, tracer } = recordingTracer()
    return withUdpServer((server) =>
      Effect.gen(function* () {
        const reply = yield* Effect.promise(() => udpExchange(server.address.port, "quiet"))
        assert.strictEqual(reply.toString(), "QUIET")
        assert.deepStrictEqual(named(spans, "UdpServer.datagram"), [])
      })
    ).pipe(Effect.withTracer(tracer))
  })

  it.live("with traceDatagrams, each datagram is a span naming its sender and what became of it", () => {
    const { spans, tracer } = recordingTracer()
    return withUdpServer(
      (server) =>
        Effect.gen(function* () {
          assert.strictEqual(
            (yield* Effect.promise(() => udpExchange(server.address.port, "first"))).toString(),
            "FIRST",
          )
          // The burst of one is spent: the second datagram is refused by the rate limit.
          yield* Effect.tryPromise(() => udpExchange(server.address.port, "second", { timeoutMs: 200 })).pipe(
            Effect.ignore,
          )
          const datagrams = named(spans, "UdpServer.datagram")
          assert.strictEqual(datagrams.length, 2)
          assert.isTrue(datagrams.every((span) => span.status._tag === "Ended" && span.kind === "server"))
          assert.deepInclude(attributesOf(datagrams[0]), {
            "network.transport": "udp",
            "client.address": "127.0.0.1",
            "server.port": server.address.port,
            "caps.datagram.bytes": 5,
            "caps.datagram.result": "answered",
          })
          assert.strictEqual(datagrams[1].attributes.get("caps.datagram.result"), "rateLimited")
        }),
      { traceDatagrams: true, rateLimit: { perSecond: 0.001, burst: 1 } },
    ).pipe(Effect.withTracer(tracer))
  })

  it.live("a transform effect's datagram span ends when its reply is sent", () => {
    const { spans, tracer } = recordingTracer()
    return withUdpServer(
      (server) =>
        Effect.gen(function* () {
          assert.strictEqual((yield* Effect.promise(() => udpExchange(server.address.port, "slow"))).toString(), "SLOW")
          const [datagram] = named(spans, "UdpServer.datagram")
          assert.isTrue(datagram.status._tag === "Ended")
          assert.strictEqual(datagram.attributes.get("caps.datagram.result"), "answered")
          const { startTime, endTime } = datagram.status as { startTime: bigint; endTime: bigint }
          assert.isAtLeast(Number(endTime - startTime) / 1e6, 25, "the span covers the transform effect")
        }),
      { traceDatagrams: true },
      later,
    ).pipe(Effect.withTracer(tracer))
  })

  it.live("a transform effect still running when the server stops ends its datagram's span as interrupted", () => {
    const { spans, tracer } = recordingTracer()
    const never: Transform.TransformShape = { name: "never", framing: "stream", apply: () => Effect.never }
    return withUdpServer(
      (server) =>
        Effect.gen(function* () {
          // Never answered: the exchange gives up, its socket closed, once the span has been seen.
          const exchange = udpExchange(server.address.port, "hang", { timeoutMs: 200 }).catch(() => undefined)
          yield* Effect.promise(() => waitUntil(() => named(spans, "UdpServer.datagram").length > 0, 5000, "a span"))
          const [datagram] = named(spans, "UdpServer.datagram")
          assert.strictEqual(datagram.status._tag, "Started", "the span waits for the transform effect")
          yield* Effect.promise(() => exchange)
        }),
      { traceDatagrams: true },
      never,
    ).pipe(
      Effect.withTracer(tracer),
      Effect.andThen(Effect.sync(() => {
        const [datagram] = named(spans, "UdpServer.datagram")
        assert.strictEqual(datagram.status._tag, "Ended")
        const { exit } = datagram.status as { exit: Exit.Exit<unknown, unknown> }
        assert.isTrue(Exit.hasInterrupts(exit), "ended by the server's stop, as interrupted")
      })),
    )
  })

  it.live("CAPS_TRACE_DATAGRAMS turns them on in UdpServer.config", () =>
    Effect.gen(function* () {
      const on = yield* UdpServer.config.pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ CAPS_TRACE_DATAGRAMS: "true" }))),
      )
      const off = yield* UdpServer.config.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({}))))
      assert.isTrue(on.traceDatagrams)
      assert.isFalse(off.traceDatagrams)
    }))
})
