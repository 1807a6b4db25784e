// The servers' metrics, as an embedder reads them from their own MetricRegistry (and as Prometheus reads them:
// through Effect's PrometheusMetrics format): every series at 0 before the first event; each request counted once,
// by transport and result, with its duration and sizes; connections by how they end; datagrams by why they were
// refused; two servers in one registry summed; no label per peer.
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric } from "effect"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Dgram from "node:dgram"
import type * as Net from "node:net"
import * as TcpServer from "../src/TcpServer.ts"
import * as Transform from "../src/Transform.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { makePki } from "./support/Certificates.ts"
import { logCapture } from "./support/Logs.ts"
import { tcpServer, udpServer } from "./support/Servers.ts"
import { closedByPeer, connection, sleep, tcpConnect, tcpExchange, udpExchange, waitUntil } from "./support/Sockets.ts"

const pki = makePki()
afterAll(() => pki.remove())

/** The exposition text parsed: `name{labels}` as printed, to its value. */
const parse = (text: string): Map<string, number> => {
  const samples = new Map<string, number>()
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const space = line.lastIndexOf(" ")
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

/** A fresh registry, as an embedder provides one, and a way to read it. */
const isolated = () => {
  const registry: Metric.MetricRegistry = new Map()
  const read = () =>
    parse(Effect.runSync(PrometheusMetrics.format().pipe(Effect.provideService(Metric.MetricRegistry, registry))))
  const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.provideService(effect, Metric.MetricRegistry, registry)
  return { registry, read, provide }
}

const value = (samples: Map<string, number>, series: string): number => {
  const found = samples.get(series)
  assert.isDefined(found, `${series} is exported; got:\n${[...samples.keys()].join("\n")}`)
  return found!
}

/** Upper-cases line by line (the default `upper` answers whatever each read brings). */
const upperLines: Transform.TransformShape = { name: "upper-lines", framing: "line", apply: (t) => t.toUpperCase() }

/** Line transform that throws on "boom", and answers "amplify" with a reply too long for UDP's guard. */
const picky: Transform.TransformShape = {
  name: "picky",
  framing: "line",
  apply: (text) => {
    if (text === "boom") throw new Error("the plug-in blew up")
    return text === "amplify" ? "A".repeat(100) : text.toUpperCase()
  },
}

const EVERY_SERIES_AT_ZERO = [
  'caps_requests_total{transport="tcp",result="answered"}',
  'caps_requests_total{transport="tcp",result="failed"}',
  'caps_requests_total{transport="tcp",result="refused"}',
  'caps_requests_total{transport="udp",result="answered"}',
  'caps_requests_total{transport="udp",result="failed"}',
  'caps_requests_total{transport="udp",result="refused"}',
  'caps_request_duration_seconds_count{transport="tcp"}',
  'caps_request_duration_seconds_bucket{transport="udp",le="0.00025"}',
  'caps_request_size_bytes_count{transport="udp"}',
  'caps_reply_size_bytes_sum{transport="tcp"}',
  'caps_invalid_utf8_sequences_total{transport="tcp"}',
  'caps_invalid_utf8_sequences_total{transport="udp"}',
  "caps_tcp_connections_active",
  "caps_tcp_connections_total",
  "caps_tcp_connections_rejected_total",
  ...["peer", "idle", "drain", "cut", "error", "too_long"].map((r) =>
    `caps_tcp_connections_closed_total{reason="${r}"}`
  ),
  "caps_tcp_accept_errors_total",
  "caps_tls_handshake_failures_total",
  ...["loop_guard", "rate_limit", "amplification", "too_large", "truncated", "overloaded"].map((r) =>
    `caps_udp_datagrams_refused_total{reason="${r}"}`
  ),
  "caps_udp_send_errors_total",
]

describe("metrics in the embedder's registry", () => {
  it.live("every series reads 0 before the first request, and caps_build_info names the runtime", () => {
    const { read, provide } = isolated()
    return Effect.gen(function* () {
      yield* Layer.build(Layer.mergeAll(tcpServer(), udpServer()))
      const samples = read()
      for (const series of EVERY_SERIES_AT_ZERO) assert.strictEqual(value(samples, series), 0, series)
      const info = [...samples.entries()].find(([series]) => series.startsWith("caps_build_info{"))
      assert.isDefined(info, "caps_build_info is exported")
      assert.strictEqual(info![1], 1)
      assert.match(info![0], /version="\d+\.\d+\.\d+",runtime="(node|deno)",runtime_version="[\d.]+/)
    }).pipe(Effect.scoped, provide)
  })

  it.live("TCP: a reply's size is its UTF-8 bytes; a transform's keepsAscii is taken at its word for ASCII requests only", () => {
    const { read, provide } = isolated()
    const replyBytes = () => value(read(), 'caps_reply_size_bytes_sum{transport="tcp"}')
    // Answers ASCII with non-ASCII: it does not declare keepsAscii, so its replies are measured.
    const umlauts: Transform.TransformShape = { name: "umlauts", framing: "line", apply: (t) => t.replaceAll("a", "ä") }
    return Effect.gen(function* () {
      // The built-in upper keeps ASCII; "é" is not ASCII, and its reply "É" is two bytes.
      const upper = Context.get(yield* Layer.build(tcpServer()), TcpServer.TcpServer)
      const replies = yield* Effect.promise(() =>
        tcpExchange(upper.address.port, ["abc\n", "straße\n", "é\n"], { pauseMs: 20, halfClose: true })
      )
      assert.strictEqual(replies.data.toString(), "ABC\nSTRASSE\nÉ\n")
      yield* Effect.promise(() => waitUntil(() => replyBytes() === 4 + 8 + 3, 3000, "15 reply bytes counted"))
      const own = Context.get(yield* Layer.build(tcpServer({}, umlauts)), TcpServer.TcpServer)
      const umlauted = yield* Effect.promise(() => tcpExchange(own.address.port, ["aa\n"], { halfClose: true }))
      assert.strictEqual(umlauted.data.toString(), "ää\n")
      yield* Effect.promise(() => waitUntil(() => replyBytes() === 15 + 5, 3000, "5 more reply bytes counted"))
    }).pipe(Effect.scoped, provide)
  })

  it.live("TCP: lines answered with their sizes and durations, a too-long line refused, a throwing transform failed; connections by how they end", () => {
    const { read, provide } = isolated()
    return Effect.gen(function* () {
      const server = Context.get(yield* Layer.build(tcpServer({ maxLineBytes: 16 }, picky)), TcpServer.TcpServer)
      const port = server.address.port
      const invalid = Buffer.from([0xff, 0xfe, 0x21, 0x0a])
      const replies = yield* Effect.promise(() => tcpExchange(port, ["hello\nworld\n", invalid], { halfClose: true }))
      assert.strictEqual(replies.data.toString(), "HELLO\nWORLD\n\uFFFD\uFFFD!\n")
      yield* Effect.promise(() => tcpExchange(port, ["x".repeat(40) + "\n"]))
      yield* Effect.promise(() => tcpExchange(port, ["ok\nboom\n"]))
      yield* Effect.promise(() =>
        waitUntil(
          () =>
            value(read(), "caps_tcp_connections_total") === 3 &&
            value(read(), "caps_tcp_connections_active") === 0,
          3000,
          "three connections ended",
        )
      )
      const samples = read()
      assert.strictEqual(value(samples, 'caps_requests_total{transport="tcp",result="answered"}'), 4)
      assert.strictEqual(value(samples, 'caps_requests_total{transport="tcp",result="refused"}'), 1)
      assert.strictEqual(value(samples, 'caps_requests_total{transport="tcp",result="failed"}'), 1)
      // "hello\n", "world\n", the two invalid bytes and "!\n" (its reply: two U+FFFD of 3 bytes, "!", newline),
      // and "ok\n".
      assert.strictEqual(value(samples, 'caps_request_size_bytes_sum{transport="tcp"}'), 6 + 6 + 4 + 3)
      assert.strictEqual(value(samples, 'caps_reply_size_bytes_sum{transport="tcp"}'), 6 + 6 + 8 + 3)
      assert.strictEqual(value(samples, 'caps_request_size_bytes_bucket{transport="tcp",le="16"}'), 4)
      assert.strictEqual(value(samples, 'caps_request_duration_seconds_count{transport="tcp"}'), 4)
      assert.strictEqual(value(samples, 'caps_request_duration_seconds_bucket{transport="tcp",le="+Inf"}'), 4)
      const sum = value(samples, 'caps_request_duration_seconds_sum{transport="tcp"}')
      assert.isTrue(sum > 0 && sum < 4, `a plausible total duration: ${sum} s`)
      assert.strictEqual(value(samples, 'caps_invalid_utf8_sequences_total{transport="tcp"}'), 2)
      assert.strictEqual(value(samples, 'caps_tcp_connections_closed_total{reason="peer"}'), 1)
      assert.strictEqual(value(samples, 'caps_tcp_connections_closed_total{reason="too_long"}'), 1)
      assert.strictEqual(value(samples, 'caps_tcp_connections_closed_total{reason="error"}'), 1)
      // The server's own counters are the same ones.
      const stats = Effect.runSync(server.stats)
      assert.strictEqual(stats.connectionsTotal, 3)
      assert.strictEqual(stats.failedConnections, 1)
      assert.strictEqual(stats.malformedConnections, 1)
    }).pipe(Effect.scoped, provide, Effect.provide(logCapture().layer))
  })

  it.live("TCP with the default transform (each read answered as it comes): a request per line, or per bare sentence", () => {
    const { read, provide } = isolated()
    return Effect.gen(function* () {
      const port = Context.get(yield* Layer.build(tcpServer()), TcpServer.TcpServer).address.port
      const pipelined = yield* Effect.promise(() => tcpExchange(port, ["one\ntwo\nthree\n"], { halfClose: true }))
      assert.strictEqual(pipelined.data.toString(), "ONE\nTWO\nTHREE\n")
      yield* Effect.promise(() => tcpExchange(port, ["textbook"], { halfClose: true }))
      // One sentence over three reads, each answered as it comes: still one request.
      const split = yield* Effect.promise(() =>
        tcpExchange(port, ["sp", "li", "t\n"], { pauseMs: 100, halfClose: true })
      )
      assert.strictEqual(split.data.toString(), "SPLIT\n")
      // An invalid byte before a newline, and a character split over reads after one: two lines.
      const mixed = yield* Effect.promise(() =>
        tcpExchange(port, [Buffer.from("a\xff\nb\xc3", "latin1"), Buffer.from("\xa9\n", "latin1")], {
          pauseMs: 100,
          halfClose: true,
        })
      )
      assert.strictEqual(mixed.data.toString(), "A\uFFFD\nB\u00C9\n")
      yield* Effect.promise(() => waitUntil(() => value(read(), "caps_tcp_connections_total") === 4, 3000, "all four"))
      yield* Effect.promise(() => sleep(50))
      const samples = read()
      assert.strictEqual(value(samples, 'caps_requests_total{transport="tcp",result="answered"}'), 7)
      // A sentence split over reads is counted, with its size, at its first read.
      assert.strictEqual(value(samples, 'caps_request_size_bytes_sum{transport="tcp"}'), 14 + 8 + 2 + 5)
      assert.strictEqual(value(samples, 'caps_request_duration_seconds_count{transport="tcp"}'), 7)
    }).pipe(Effect.scoped, provide)
  })

  it.live("TCP: the active gauge follows open connections; idle, drained and cut connections are counted apart", () => {
    const { read, provide } = isolated()
    const never: Transform.TransformShape = { name: "never", framing: "line", apply: () => Effect.never }
    return Effect.gen(function* () {
      // One server whose connections go idle; a second one is drained with a connection that waits for nothing,
      // and a third is cut at its drain deadline, its transform never answering.
      yield* Effect.scoped(Effect.gen(function* () {
        const port = Context.get(yield* Layer.build(tcpServer({ idleTimeout: "100 millis" })), TcpServer.TcpServer)
          .address.port
        const idle = yield* connection(port)
        yield* Effect.promise(() => waitUntil(() => value(read(), "caps_tcp_connections_active") === 1, 3000, "open"))
        yield* Effect.promise(() => closedByPeer(idle))
        yield* Effect.promise(() =>
          waitUntil(() => value(read(), 'caps_tcp_connections_closed_total{reason="idle"}') === 1, 3000, "idle")
        )
        assert.strictEqual(value(read(), "caps_tcp_connections_active"), 0)
      }))
      // The clients outlive the servers' scopes: a connection closed by its client first would be the peer's.
      const clients: Array<Net.Socket> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => clients.forEach((client) => client.destroy())))
      yield* Effect.scoped(Effect.gen(function* () {
        const port = Context.get(yield* Layer.build(tcpServer({ drainTimeout: "500 millis" })), TcpServer.TcpServer)
          .address.port
        clients.push(yield* Effect.promise(() => tcpConnect(port)))
        yield* Effect.promise(() => waitUntil(() => value(read(), "caps_tcp_connections_active") === 1, 3000, "open"))
      }))
      assert.strictEqual(value(read(), 'caps_tcp_connections_closed_total{reason="drain"}'), 1)
      yield* Effect.scoped(Effect.gen(function* () {
        const port =
          Context.get(yield* Layer.build(tcpServer({ drainTimeout: "100 millis" }, never)), TcpServer.TcpServer)
            .address.port
        const waiting = yield* Effect.promise(() => tcpConnect(port))
        clients.push(waiting)
        waiting.write("answer me\n")
        yield* Effect.promise(() => waitUntil(() => value(read(), "caps_tcp_connections_active") === 1, 3000, "open"))
        yield* Effect.promise(() => sleep(50))
      }))
      const samples = read()
      assert.strictEqual(value(samples, 'caps_tcp_connections_closed_total{reason="cut"}'), 1)
      assert.strictEqual(value(samples, "caps_tcp_connections_active"), 0)
      assert.strictEqual(value(samples, "caps_tcp_connections_total"), 3)
    }).pipe(Effect.scoped, provide, Effect.provide(logCapture().layer))
  })

  it.live("TCP: a failed TLS handshake and a connection rejected at the limit are counted", () => {
    const { read, provide } = isolated()
    return Effect.gen(function* () {
      const secure = Context.get(yield* Layer.build(tcpServer({ tls: pki.server })), TcpServer.TcpServer)
      const plaintext = yield* connection(secure.address.port)
      plaintext.on("error", () => {})
      plaintext.write("plaintext\n")
      yield* Effect.promise(() =>
        waitUntil(() => value(read(), "caps_tls_handshake_failures_total") === 1, 5000, "the failed handshake")
      )
      const limited = Context.get(yield* Layer.build(tcpServer({ maxConnections: 1 })), TcpServer.TcpServer)
      yield* connection(limited.address.port)
      yield* Effect.promise(() => waitUntil(() => value(read(), "caps_tcp_connections_active") === 1, 3000, "one open"))
      const second = yield* connection(limited.address.port)
      yield* Effect.promise(() => closedByPeer(second))
      assert.strictEqual(value(read(), "caps_tcp_connections_rejected_total"), 1)
      assert.strictEqual(value(read(), "caps_tcp_connections_total"), 1, "a rejected connection is not served")
    }).pipe(Effect.scoped, provide, Effect.provide(logCapture().layer))
  })

  it.live("UDP: datagrams answered, failed, and refused by reason; invalid UTF-8 counted; sizes of each answer", () => {
    const { read, provide } = isolated()
    return Effect.gen(function* () {
      const limited = yield* Layer.build(udpServer({ rateLimit: { perSecond: 0.001, burst: 1 } }, picky))
      const limitedPort = Context.get(limited, UdpServer.UdpServer).address.port
      const context = yield* Layer.build(udpServer({ maxDatagramBytes: 32 }, picky))
      const port = Context.get(context, UdpServer.UdpServer).address.port
      const exchange = (target: number, payload: string | Uint8Array) =>
        Effect.promise(() => udpExchange(target, payload, { timeoutMs: 300 }).then(() => true, () => false))
      assert.isTrue(yield* exchange(port, "hello"))
      assert.isTrue(yield* exchange(port, new Uint8Array([0x68, 0xff, 0x69])))
      assert.isFalse(yield* exchange(port, "boom"))
      assert.isFalse(yield* exchange(port, "amplify"))
      assert.isFalse(yield* exchange(port, "y".repeat(40)))
      assert.isTrue(yield* exchange(limitedPort, "first"))
      assert.isFalse(yield* exchange(limitedPort, "second"))
      // From a reserved port (binding one needs root, as in CI): the loop guard.
      const reserved = yield* Effect.promise(() => reservedPortSocket())
      if (reserved !== undefined) {
        reserved.send("from a service port", port, "127.0.0.1")
        yield* Effect.promise(() =>
          waitUntil(() => value(read(), 'caps_udp_datagrams_refused_total{reason="loop_guard"}') === 1, 3000, "guard")
        )
        reserved.close()
      } else console.warn("Metrics.test.ts: cannot bind a port below 1024 (not root): the loop guard is not checked")
      const samples = read()
      assert.strictEqual(value(samples, 'caps_requests_total{transport="udp",result="answered"}'), 3)
      assert.strictEqual(value(samples, 'caps_requests_total{transport="udp",result="failed"}'), 1)
      assert.strictEqual(
        value(samples, 'caps_requests_total{transport="udp",result="refused"}'),
        reserved === undefined ? 3 : 4,
      )
      assert.strictEqual(value(samples, 'caps_udp_datagrams_refused_total{reason="amplification"}'), 1)
      assert.strictEqual(value(samples, 'caps_udp_datagrams_refused_total{reason="too_large"}'), 1)
      assert.strictEqual(value(samples, 'caps_udp_datagrams_refused_total{reason="rate_limit"}'), 1)
      assert.strictEqual(value(samples, 'caps_invalid_utf8_sequences_total{transport="udp"}'), 1)
      // "hello" (5), h\xffi (3) and "first" (5); replies "HELLO", "H\uFFFDI" (5 bytes) and "FIRST".
      assert.strictEqual(value(samples, 'caps_request_size_bytes_sum{transport="udp"}'), 13)
      assert.strictEqual(value(samples, 'caps_reply_size_bytes_sum{transport="udp"}'), 15)
      assert.strictEqual(value(samples, 'caps_request_duration_seconds_count{transport="udp"}'), 3)
      // No series carries a peer's address.
      assert.notInclude([...samples.keys()].join("\n"), "127.0.0.1")
    }).pipe(Effect.scoped, provide, Effect.provide(logCapture().layer))
  })

  it.live("two servers in one registry are summed; each server's stats keep its own share", () => {
    const { read, provide } = isolated()
    return Effect.gen(function* () {
      const first = Context.get(yield* Layer.build(tcpServer({}, upperLines)), TcpServer.TcpServer)
      const second = Context.get(yield* Layer.build(tcpServer({}, upperLines)), TcpServer.TcpServer)
      yield* Effect.promise(() => tcpExchange(first.address.port, ["a\nb\n"], { halfClose: true }))
      yield* Effect.promise(() => tcpExchange(second.address.port, ["c\n"], { halfClose: true }))
      yield* Effect.promise(() =>
        waitUntil(() => value(read(), 'caps_tcp_connections_closed_total{reason="peer"}') === 2, 3000, "both ended")
      )
      assert.strictEqual(value(read(), 'caps_requests_total{transport="tcp",result="answered"}'), 3)
      assert.strictEqual(value(read(), "caps_tcp_connections_total"), 2)
      assert.strictEqual(Effect.runSync(first.stats).connectionsTotal, 1)
      assert.strictEqual(Effect.runSync(second.stats).connectionsTotal, 1)
    }).pipe(Effect.scoped, provide)
  })
})

/** A UDP socket on a port below 1024 of 127.0.0.1, or undefined when this process may not bind one. */
const reservedPortSocket = async (): Promise<Dgram.Socket | undefined> => {
  for (const port of [7, 13, 19, 37, 1001, 1013, 1022]) {
    const socket = Dgram.createSocket("udp4")
    const bound = await new Promise<boolean>((resolve) => {
      socket.once("error", () => resolve(false))
      socket.bind({ address: "127.0.0.1", port }, () => resolve(true))
    })
    if (bound) return socket
    socket.close()
  }
  return undefined
}
