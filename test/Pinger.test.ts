// The book's UDP pinger lab: `Ping <seq> <time>` datagrams one interval apart,
// one attempt each, a lost one reported as "Request timed out" and the next
// one sent anyway, and the summary ping users know; against caps's server, a
// lossy peer and the textbook's UDPServer.py, in the library and as `caps ping`.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CapsError from "../src/CapsError.ts"
import * as Endpoint from "../src/Endpoint.ts"
import * as ExitCode from "../src/ExitCode.ts"
import * as Pinger from "../src/Pinger.ts"
import { hasPython, lines, runCaps, startPeer } from "./support/Process.ts"
import { withUdpServer } from "./support/Servers.ts"
import { udpPeer, unusedPort } from "./support/Sockets.ts"

const server = Endpoint.make("127.0.0.1", 12000, "udp")

/** A UDP peer that answers every ping upper-cased, except those whose sequence number is in `lost`. */
const lossy = (lost: ReadonlyArray<number>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      udpPeer((message) => {
        const seq = Number(message.toString().split(" ")[1])
        return lost.includes(seq) ? undefined : { payload: message.toString().toUpperCase() }
      })
    ),
    (peer) => Effect.sync(peer.close),
  )

describe("Pinger", () => {
  it("sends the lab's message: Ping, the sequence number, the time in seconds", () => {
    assert.strictEqual(Pinger.message(3, 1_764_579_630_123), "Ping 3 1764579630.123")
  })

  it("summarises as ping does: transmitted, received, loss, min/avg/max of the round trips", () => {
    const results: ReadonlyArray<Pinger.PingResult> = [
      { _tag: "Reply", seq: 1, reply: "x", rttMillis: 1 },
      { _tag: "Lost", seq: 2, error: new CapsError.Timeout({ endpoint: server, attempts: 1, attemptMillis: 1000 }) },
      { _tag: "Reply", seq: 3, reply: "x", rttMillis: 4 },
    ]
    const summary = Pinger.summarise(server, results)
    assert.deepStrictEqual(Pinger.formatSummary(summary), [
      "--- 127.0.0.1:12000/udp ping statistics ---",
      "3 packets transmitted, 2 received, 33% packet loss",
      "rtt min/avg/max = 1.000/2.500/4.000 ms",
    ])
    assert.strictEqual(
      Pinger.formatSummary(Pinger.summarise(server, []))[1],
      "0 packets transmitted, 0 received, 0% packet loss",
    )
  })

  it.live("a lost ping is reported and the next one is sent anyway, one interval after the previous [failure: udp-lost-reply]", () =>
    Effect.gen(function* () {
      const peer = yield* lossy([2])
      const seen: Array<string> = []
      const started = Date.now()
      const summary = yield* Pinger.run(
        { host: "127.0.0.1", port: peer.port, count: 4, interval: "100 millis", timeout: "150 millis" },
        (result) =>
          Effect.sync(() => seen.push(Pinger.formatResult(Endpoint.make("127.0.0.1", peer.port, "udp"), result))),
      )
      const elapsed = Date.now() - started
      assert.strictEqual(seen.length, 4)
      assert.match(seen[0], /^Reply from 127\.0\.0\.1:\d+\/udp: PING 1 \d+\.\d{3} \(seq 1, rtt \d+\.\d{3} ms\)$/)
      assert.strictEqual(seen[1], "Request timed out (seq 2)")
      assert.match(seen[3], /\(seq 4, rtt /)
      assert.deepStrictEqual([summary.transmitted, summary.received], [4, 3])
      // Each datagram went once: a lost ping is not resent.
      assert.deepStrictEqual(peer.received.map((m) => Number(m.toString().split(" ")[1])), [1, 2, 3, 4])
      // Three intervals of 100 ms; the lost ping's 150 ms wait delays only its own successor's start.
      assert.isAtLeast(elapsed, 300)
    }))

  it.live("after a ping that timed out, the next ones still go one interval apart, not back to back", () =>
    Effect.gen(function* () {
      const peer = yield* lossy([1])
      const sent: Array<number> = []
      yield* Pinger.run(
        { host: "127.0.0.1", port: peer.port, count: 4, interval: "200 millis", timeout: "600 millis" },
        () => Effect.void,
      )
      // The peer saw the four pings; the gaps between the 2nd, 3rd and 4th are one interval each.
      for (const message of peer.received) sent.push(Number(message.toString().split(" ")[2]) * 1000)
      const gaps = sent.slice(1).map((at, i) => at - sent[i])
      assert.isAtLeast(gaps[0], 550, "the lost ping waited its timeout")
      assert.isAtLeast(gaps[1], 180, `gaps ${gaps.join(", ")}`)
      assert.isAtLeast(gaps[2], 180, `gaps ${gaps.join(", ")}`)
    }))

  it.live("an option out of range fails at once with InvalidOption, before any ping", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Pinger.run({ port: 12000, count: 0 }, () => Effect.void))
      assert.strictEqual(error._tag, "InvalidOption")
      if (error._tag === "InvalidOption") assert.strictEqual(error.option, "Pinger.count")
    }))
})

describe("caps ping", () => {
  it.live(
    "against caps's server: every ping answered, the summary, exit 0",
    () =>
      withUdpServer((udp) =>
        Effect.gen(function* () {
          const port = String(udp.address.port)
          const finished = yield* runCaps([
            "ping",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--count",
            "3",
            "--interval",
            "0.1",
          ])
          assert.strictEqual(finished.code, 0, finished.stderr)
          const out = lines(finished.stdout)
          assert.strictEqual(
            out[0],
            `PING 127.0.0.1:${port}/udp: 3 datagrams, 0.1 s apart, each waiting 1 s for its reply`,
          )
          assert.match(out[3], /^Reply from .*: PING 3 \d+\.\d{3} \(seq 3, rtt \d+\.\d{3} ms\)$/)
          assert.strictEqual(out[4], `--- 127.0.0.1:${port}/udp ping statistics ---`)
          assert.strictEqual(out[5], "3 packets transmitted, 3 received, 0% packet loss")
          assert.match(out[6], /^rtt min\/avg\/max = \d+\.\d{3}\/\d+\.\d{3}\/\d+\.\d{3} ms$/)
        })
      ),
    30_000,
  )

  it.live(
    "a lossy server: 'Request timed out' for the lost ones, their share as packet loss, exit 0",
    () =>
      Effect.gen(function* () {
        const peer = yield* lossy([1, 3])
        const finished = yield* runCaps([
          "ping",
          "--host",
          "127.0.0.1",
          "--port",
          String(peer.port),
          "--count",
          "4",
          "--interval",
          "0.1",
          "--timeout",
          "0.2",
        ])
        assert.strictEqual(finished.code, 0, finished.stderr)
        const out = lines(finished.stdout)
        assert.deepStrictEqual([out[1], out[3]], ["Request timed out (seq 1)", "Request timed out (seq 3)"])
        assert.strictEqual(out[6], "4 packets transmitted, 2 received, 50% packet loss")
      }),
    30_000,
  )

  it.live(
    "nothing listening: no reply at all exits non-zero with the last ping's error code",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.promise(unusedPort)
        const finished = yield* runCaps([
          "ping",
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          "--count",
          "2",
          "--interval",
          "0.1",
          "--timeout",
          "0.2",
        ])
        // Node reports ICMP port unreachable; Deno's node:dgram does not, so there it is a timeout.
        assert.oneOf(finished.code, [ExitCode.ofError.ConnectionRefused, ExitCode.ofError.Timeout])
        assert.include(lines(finished.stdout), "2 packets transmitted, 0 received, 100% packet loss")
        assert.strictEqual(lines(finished.stderr).at(-1), "caps: no reply to any of 2 pings")
      }),
    30_000,
  )

  it.live.skipIf(!hasPython)("against the textbook's UDPServer.py", () =>
    Effect.gen(function* () {
      const book = yield* startPeer("UDPServer.py")
      const finished = yield* runCaps([
        "ping",
        "--host",
        "127.0.0.1",
        "--port",
        String(book.port),
        "--count",
        "2",
        "--interval",
        "0.1",
      ])
      assert.strictEqual(finished.code, 0, finished.stderr)
      assert.include(lines(finished.stdout), "2 packets transmitted, 2 received, 0% packet loss")
    }), 30_000)
})
