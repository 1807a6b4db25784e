// caps's metrics in an embedder's own MetricRegistry: the servers count every
// request there, so the embedding program reads them as it reads its own
// metrics (Metric.value, Metric.snapshot) and exports them however it likes
// (here, Effect's Prometheus text format, as `caps serve --metrics-port`
// serves it). Every series exists at 0 from the servers' start; there is no
// label per peer. The names, types and labels are listed in README.md,
// "Running caps".
//
// Run: node examples/metrics.ts
//      deno run --allow-net --allow-env examples/metrics.ts
//
// prints:
// before any request: 0 TCP requests answered
// after four requests: 2 UDP and 1 TCP answered, 1 UDP datagram refused as too large
// caps_requests_total{transport="tcp",result="answered"} 1
// caps_requests_total{transport="tcp",result="failed"} 0
// caps_requests_total{transport="udp",result="answered"} 2
// caps_requests_total{transport="udp",result="failed"} 0
// caps_requests_total{transport="tcp",result="refused"} 0
// caps_requests_total{transport="udp",result="refused"} 1
// caps_request_duration_seconds_count{transport="udp"} 2
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Logger, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Metrics, TcpClient, TcpServer, UdpClient, UdpServer } from "../src/index.ts"

const CapsServers = Layer.mergeAll(
  UdpServer.layer({ host: "127.0.0.1", port: 0, maxDatagramBytes: 100 }),
  TcpServer.layer({ host: "127.0.0.1", port: 0, maxConnections: 100 }),
)

// One series of a caps metric, read like any other Effect metric.
const answered = (transport: "tcp" | "udp") =>
  Metric.value(Metrics.requests.pipe(Metric.withAttributes({ transport, result: "answered" }))).pipe(
    Effect.map((state) => state.count),
  )

const app = Effect.gen(function* () {
  const udp = yield* UdpServer.UdpServer
  const tcp = yield* TcpServer.TcpServer
  yield* Console.log(`before any request: ${yield* answered("tcp")} TCP requests answered`)

  const overUdp = yield* UdpClient.make({ host: "127.0.0.1", port: udp.address.port, attempts: 1 })
  const overTcp = yield* TcpClient.make({ host: "127.0.0.1", port: tcp.address.port })
  yield* overUdp.request("hello")
  yield* overUdp.request("world")
  yield* overTcp.request("over tcp")
  // Too large for maxDatagramBytes: not answered, and counted as refused.
  yield* Effect.ignore(overUdp.request("x".repeat(200)).pipe(Effect.timeout("300 millis")))
  const refused = yield* Metric.value(Metrics.udpDatagramsRefused.pipe(Metric.withAttributes({ reason: "too_large" })))
  yield* Console.log(
    `after four requests: ${yield* answered("udp")} UDP and ${yield* answered("tcp")} TCP answered, ` +
      `${refused.count} UDP datagram refused as too large`,
  )

  // The registry as Prometheus would scrape it, a few of its lines.
  const text = yield* PrometheusMetrics.format()
  const shown = text.split("\n").filter((line) =>
    line.startsWith("caps_requests_total") || line.startsWith('caps_request_duration_seconds_count{transport="udp"}')
  )
  yield* Console.log(shown.join("\n"))
})

app.pipe(
  Effect.scoped,
  Effect.provide(CapsServers),
  // The embedder's own registry (a fresh one here); the servers register their series in it.
  Effect.provideService(Metric.MetricRegistry, new Map()),
  // Quiet: the servers' shutdown lines are not what this example shows.
  Effect.provide(Logger.layer([])),
  NodeRuntime.runMain,
)
