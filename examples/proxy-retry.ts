// The fault-injecting proxy between a client and a server, in one program:
// three layers, a UdpServer, a FaultProxy in front of it (as
// `caps proxy --drop 0.5 --direction requests --seed 3`), and a UdpClient that
// talks to the proxy. Seed 3 drops the first request datagram and relays the
// next ones, so the first sentence is answered only on the client's resend
// (its second attempt, after one attempt timeout), and the second sentence at
// once. The client's own resend policy does it (3 attempts; 300 ms each here).
// An embedder's tracer shows the attempts: each `UdpClient.request` span has
// one `attempt` event per datagram sent, and `caps.attempts`. The
// counts of the proxy and of the server show where the lost datagram went:
// it reached the proxy, never the server. caps's log lines go to stderr.
//
// Run: node examples/proxy-retry.ts
//      deno run --allow-net --allow-env examples/proxy-retry.ts
//
// prints:
// client -> proxy 127.0.0.1:<n> (drop 0.5 (requests), seed 3) -> server 127.0.0.1:<n>/udp
// "hello": HELLO
// "world": WORLD
// span UdpClient.request: 2 attempts (events: attempt 1, attempt 2)
// span UdpClient.request: 1 attempt (events: attempt 1)
// proxy: UDP: 5 datagrams received, 4 relayed, 1 dropped; TCP: 0 connections, 0 bytes relayed
// server: 2 datagrams received, 2 answered
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Logger, Tracer } from "effect"
import { FaultProxy, ProxyStats, UdpClient, UdpServer } from "../src/index.ts"

// The server, on a free port.
const Server = UdpServer.layer({ host: "127.0.0.1", port: 0 })

// The proxy, built from the server it stands in front of.
const Proxy = Layer.unwrap(Effect.gen(function* () {
  const server = yield* UdpServer.UdpServer
  return FaultProxy.layer({
    host: "127.0.0.1",
    port: 0,
    target: { host: server.address.host, port: server.address.port },
    drop: 0.5,
    direction: "requests",
    seed: 3,
  })
}))

// The client, pointed at the proxy: to it, the proxy is the server.
const Client = Layer.unwrap(Effect.gen(function* () {
  const proxy = yield* FaultProxy.FaultProxy
  return UdpClient.layer({ host: "127.0.0.1", port: proxy.address.port, attempts: 3, attemptTimeout: "300 millis" })
}))

const Stack = Client.pipe(Layer.provideMerge(Proxy), Layer.provideMerge(Server))

// A tracer that keeps the client's request spans.
const spans: Array<Tracer.NativeSpan> = []
const tracer = Tracer.make({
  span: (options) => {
    const span = new Tracer.NativeSpan(options)
    if (span.name === "UdpClient.request") spans.push(span)
    return span
  },
})

const program = Effect.gen(function* () {
  const server = yield* UdpServer.UdpServer
  const proxy = yield* FaultProxy.FaultProxy
  const client = yield* UdpClient.UdpClient
  yield* Console.log(
    `client -> proxy ${proxy.address.host}:${proxy.address.port} (${proxy.faults}) -> ` +
      `server ${server.address.host}:${server.address.port}/udp`,
  )
  for (const sentence of ["hello", "world"]) {
    yield* Console.log(
      `${JSON.stringify(sentence)}: ${yield* client.request(sentence).pipe(Effect.withTracer(tracer))}`,
    )
  }
  for (const span of spans) {
    const attempts = Number(span.attributes.get("caps.attempts"))
    const events = span.events.map(([name, , attributes]) => `${name} ${attributes.attempt}`)
    yield* Console.log(
      `span ${span.name}: ${attempts} ${attempts === 1 ? "attempt" : "attempts"} (events: ${events.join(", ")})`,
    )
  }
  yield* Console.log(`proxy: ${ProxyStats.summary(yield* proxy.stats)}`)
  const served = yield* server.stats
  yield* Console.log(`server: ${served.received} datagrams received, ${served.answered} answered`)
}).pipe(Effect.provide(Stack))

NodeRuntime.runMain(program.pipe(Effect.provide(Layer.succeed(Logger.LogToStderr, true))))
