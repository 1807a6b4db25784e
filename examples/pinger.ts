// The book's UDP pinger lab, written against the library: ten datagrams
// `Ping <seq> <time>`, one interval apart, each waiting a bounded time for its
// reply, printed with its round-trip time or `Request timed out`, then ping's
// summary. It is a loop over `UdpClient` with one attempt per ping (a lost
// datagram is a lost ping, not a resend) and time read from Effect's `Clock`
// (so a test could run it on a `TestClock`). `caps ping` does the same from
// the command line, with the library's `Pinger.run` (src/Pinger.ts).
//
// In the lab, the server itself drops about 30% of the replies, at random.
// Here a caps UDP server sits behind a FaultProxy that drops 30% of the
// datagrams both ways, seeded, as `caps proxy --drop 0.3 --seed 1` does, so
// every run loses the same pings: the third request and the eighth reply.
// The lab's 1 s interval and timeout are shortened to keep the run short.
// caps's own log lines (the proxy logs what it drops) go to stderr.
//
// Run: node examples/pinger.ts
//      deno run --allow-net --allow-env examples/pinger.ts
//
// prints:
// PING 127.0.0.1:<n>/udp through drop 0.3 (both), seed 1: 10 datagrams, 100 ms apart, each waiting 500 ms
// Reply from 127.0.0.1:<n>/udp: PING 1 <n> (rtt <n> ms)
// Reply from 127.0.0.1:<n>/udp: PING 2 <n> (rtt <n> ms)
// Request timed out (seq 3)
// Reply from 127.0.0.1:<n>/udp: PING 4 <n> (rtt <n> ms)
// Reply from 127.0.0.1:<n>/udp: PING 5 <n> (rtt <n> ms)
// Reply from 127.0.0.1:<n>/udp: PING 6 <n> (rtt <n> ms)
// Reply from 127.0.0.1:<n>/udp: PING 7 <n> (rtt <n> ms)
// Request timed out (seq 8)
// Reply from 127.0.0.1:<n>/udp: PING 9 <n> (rtt <n> ms)
// Reply from 127.0.0.1:<n>/udp: PING 10 <n> (rtt <n> ms)
//
// --- 127.0.0.1:<n>/udp ping statistics ---
// 10 packets transmitted, 8 received, 20% packet loss
// rtt min/avg/max = <n>/<n>/<n> ms
import { NodeRuntime } from "@effect/platform-node"
import { Clock, Console, Duration, Effect, Layer, Logger } from "effect"
import { Endpoint, FaultProxy, UdpClient, UdpServer } from "../src/index.ts"

const COUNT = 10
const INTERVAL = Duration.millis(100)
const TIMEOUT = Duration.millis(500)

const ms = (millis: number) => millis.toFixed(3)

const program = Effect.gen(function* () {
  const server = yield* UdpServer.make({ host: "127.0.0.1", port: 0 })
  const proxy = yield* FaultProxy.make({
    host: "127.0.0.1",
    port: 0,
    target: { host: "127.0.0.1", port: server.address.port },
    drop: 0.3,
    seed: 1,
  })
  const client = yield* UdpClient.make({
    host: "127.0.0.1",
    port: proxy.address.port,
    attempts: 1,
    attemptTimeout: TIMEOUT,
  })
  const target = Endpoint.format(client.server)
  yield* Console.log(
    `PING ${target} through ${proxy.faults}: ${COUNT} datagrams, ${Duration.toMillis(INTERVAL)} ms apart, ` +
      `each waiting ${Duration.toMillis(TIMEOUT)} ms`,
  )

  const rtts: Array<number> = []
  for (let seq = 1; seq <= COUNT; seq++) {
    const sentAt = yield* Clock.currentTimeNanos
    // The lab's message: the sequence number and the time it was sent, in seconds.
    const ping = `Ping ${seq} ${(Number(sentAt / 1_000_000n) / 1000).toFixed(3)}`
    const outcome = yield* Effect.result(client.request(ping))
    const rtt = Number((yield* Clock.currentTimeNanos) - sentAt) / 1e6
    if (outcome._tag === "Success") {
      rtts.push(rtt)
      yield* Console.log(`Reply from ${target}: ${outcome.success} (rtt ${ms(rtt)} ms)`)
    } else if (outcome.failure._tag === "Timeout") {
      yield* Console.log(`Request timed out (seq ${seq})`)
    } else {
      yield* Console.log(`Request failed (seq ${seq}): ${outcome.failure.message}`)
    }
    // The next ping goes one interval after this one was sent, however long its reply took.
    const wait = Number(sentAt / 1_000_000n) + Duration.toMillis(INTERVAL) - (yield* Clock.currentTimeMillis)
    if (seq < COUNT && wait > 0) yield* Effect.sleep(Duration.millis(wait))
  }

  const loss = Math.round(100 * (COUNT - rtts.length) / COUNT)
  yield* Console.log(`\n--- ${target} ping statistics ---`)
  yield* Console.log(`${COUNT} packets transmitted, ${rtts.length} received, ${loss}% packet loss`)
  yield* Console.log(
    rtts.length === 0
      ? "rtt min/avg/max = -/-/- ms"
      : `rtt min/avg/max = ${ms(Math.min(...rtts))}/${ms(rtts.reduce((a, b) => a + b, 0) / rtts.length)}/` +
        `${ms(Math.max(...rtts))} ms`,
  )
}).pipe(Effect.scoped)

NodeRuntime.runMain(program.pipe(Effect.provide(Layer.succeed(Logger.LogToStderr, true))))
