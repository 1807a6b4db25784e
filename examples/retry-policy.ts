// A client with its own retry policy. `UdpClient` resends on a fixed policy
// of its own (3 attempts of 1 s); configured with `attempts: 1`, each request
// is one datagram and one wait, and the caller decides what happens after a
// `Timeout`: here a `Schedule` of exponential backoff (50 ms, doubling) with
// jitter (each delay scaled by 0.8 to 1.2), at most 3 retries, and only for
// `Timeout` (any other error fails at once). The server sits behind a lossy
// proxy (FaultProxy dropping half the requests, seeded), and the jitter's
// random numbers are seeded too (`Random.withSeed`), so every run drops the
// same datagrams and waits the same delays. Each attempt is printed; caps's
// own log lines (the proxy logs the faults it injects) go to stderr.
//
// Run: node examples/retry-policy.ts
//      deno run --allow-net --allow-env examples/retry-policy.ts
//
// prints:
// proxy: drop 0.5 (requests), seed 4
// "one" attempt 1: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "one" retry 1 in 59 ms
// "one" attempt 2: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "one" retry 2 in 117 ms
// "one" attempt 3: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "one" retry 3 in 207 ms
// "one" attempt 4: ONE
// "two" attempt 1: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "two" retry 1 in 56 ms
// "two" attempt 2: TWO
// "three" attempt 1: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "three" retry 1 in 59 ms
// "three" attempt 2: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "three" retry 2 in 96 ms
// "three" attempt 3: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "three" retry 3 in 220 ms
// "three" attempt 4: Timeout, no answer from 127.0.0.1:<n>/udp after 1 attempt of 250 ms
// "three" gave up: Timeout
// proxy: UDP: 12 datagrams received, 4 relayed, 8 dropped; TCP: 0 connections, 0 bytes relayed
import { NodeRuntime } from "@effect/platform-node"
import { Console, Duration, Effect, Layer, Logger, Random, Schedule } from "effect"
import { CapsError, FaultProxy, ProxyStats, UdpClient, UdpServer } from "../src/index.ts"

// The policy: 50 ms, 100 ms, 200 ms, each jittered; retried only while the failure is a Timeout.
const policy = (sentence: string) =>
  Schedule.exponential("50 millis", 2).pipe(
    Schedule.jittered,
    Schedule.upTo({ times: 3 }),
    Schedule.setInputType<UdpClient.UdpClientError>(),
    Schedule.while(({ input }) => input._tag === "Timeout"),
    Schedule.tap(({ attempt, duration }) =>
      Console.log(`${JSON.stringify(sentence)} retry ${attempt} in ${Math.round(Duration.toMillis(duration))} ms`)
    ),
  )

const program = Effect.gen(function* () {
  const server = yield* UdpServer.make({ host: "127.0.0.1", port: 0 })
  const proxy = yield* FaultProxy.make({
    host: "127.0.0.1",
    port: 0,
    target: { host: "127.0.0.1", port: server.address.port },
    drop: 0.5,
    direction: "requests",
    seed: 4,
  })
  yield* Console.log(`proxy: ${proxy.faults}`)
  // One datagram per request, no resend of its own: the retries are the policy's.
  const client = yield* UdpClient.make({
    host: "127.0.0.1",
    port: proxy.address.port,
    attempts: 1,
    attemptTimeout: "250 millis",
  })

  for (const sentence of ["one", "two", "three"]) {
    let attempt = 0
    const once = Effect.suspend(() => {
      attempt++
      return client.request(sentence)
    }).pipe(
      Effect.tap((reply) => Console.log(`${JSON.stringify(sentence)} attempt ${attempt}: ${reply}`)),
      Effect.tapError((error) =>
        Console.log(`${JSON.stringify(sentence)} attempt ${attempt}: ${error._tag}, ${error.message}`)
      ),
    )
    yield* once.pipe(
      Effect.retry(policy(sentence)),
      Effect.catchTag(
        "Timeout",
        (error: CapsError.Timeout) => Console.log(`${JSON.stringify(sentence)} gave up: ${error._tag}`),
      ),
    )
  }
  yield* Console.log(`proxy: ${ProxyStats.summary(yield* proxy.stats)}`)
}).pipe(
  Effect.scoped,
  // The jitter draws from Effect's `Random`: seeded, it is the same every run.
  Random.withSeed("retry-policy"),
)

NodeRuntime.runMain(program.pipe(Effect.provide(Layer.succeed(Logger.LogToStderr, true))))
