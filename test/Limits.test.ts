// The TCP server's limits under abuse: past `maxConnections` new connections
// are closed at once (counted, logged at most once a second) and served again
// once a slot frees; connections without bytes in either direction are closed
// at the idle timeout while active ones stay; a `count:` line is answered up
// to exactly `maxLineBytes` and one byte more closes only its connection; a
// client that floods and never reads does not grow the server's memory; and
// more clients than descriptors (EMFILE, or a connection cap kept below it)
// is said on stderr, neither kills the server nor makes it spin, and passes
// once the clients close.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import * as DescriptorBudget from "../src/DescriptorBudget.ts"
import * as TcpServer from "../src/TcpServer.ts"
import * as Transform from "../src/Transform.ts"
import { CAPS_READY, capsCommand, isDeno, skipWithoutPython, start, startCaps } from "./support/Process.ts"
import {
  closedByPeer,
  connection,
  cpuTicksOf,
  memoryOf,
  openFdsOf,
  openSocketsOf,
  readAtLeast,
  sleep,
  spawnPeerProcess,
  tcpConnect,
  tcpExchange,
  waitUntil,
} from "./support/Sockets.ts"
import { logCapture } from "./support/Logs.ts"
import { statsOf, tcpServer, withTcpServer } from "./support/Servers.ts"

const noPython = skipWithoutPython("the slow-reader memory test of Limits.test.ts")

/** One request on a connection of its own, half-closed: the reply, or a failure if it does not come. */
const alive = (port: number) =>
  Effect.promise(() => tcpExchange(port, ["still alive"], { halfClose: true })).pipe(
    Effect.map((reply) => assert.strictEqual(reply.data.toString(), "STILL ALIVE")),
  )

/** Sends on an open connection and waits for the answer. */
const ask = (socket: Net.Socket, text: string) =>
  Effect.promise(() => {
    const reading = readAtLeast(socket, text.length, 2000)
    socket.write(text)
    return reading
  }).pipe(Effect.map((reply) => reply.toString()))

// A client process that sends up to 64 MiB as fast as the server takes it and never reads.
// It prints how much the kernel took every 200 ms, and gives up when nothing moves for 1.5 s.
const FLOOD = `
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(1.5)
chunk = b"a" * (1 << 20)
sent, last = 0, 0.0
try:
    while sent < 64 << 20:
        sent += s.send(chunk)
        if time.monotonic() - last > 0.2:
            print("sent", sent, flush=True)
            last = time.monotonic()
except socket.timeout:
    pass
print("stalled", sent, flush=True)
time.sleep(30)
`

describe("TcpServer connection limit", () => {
  it.live("past maxConnections new connections are closed at once, counted, logged once; a freed slot serves again [failure: too-many-connections]", () => {
    const logs = logCapture()
    return withTcpServer((server) =>
      Effect.gen(function* () {
        const port = server.address.port
        const held = [yield* connection(port), yield* connection(port), yield* connection(port)]
        assert.strictEqual(yield* ask(held[0], "one"), "ONE")
        yield* Effect.promise(() => waitUntil(() => statsOf(server).connectionsOpen === 3, 2000, "three open"))

        const started = Date.now()
        const turnedAway = yield* Effect.forEach(
          Array.from({ length: 10 }),
          () =>
            Effect.promise(async () => {
              const socket = await tcpConnect(port)
              const reply = await readAtLeast(socket, 1, 1000)
              socket.destroy()
              return reply.length
            }),
          { concurrency: 10 },
        )
        assert.isBelow(Date.now() - started, 1000, "closed at once, not left waiting")
        assert.deepStrictEqual(turnedAway, Array(10).fill(0), "each was closed without a byte")
        assert.strictEqual(statsOf(server).connectionsRejected, 10)
        const warnings = logs.logged.filter((line) => line.includes("connection limit of 3 reached"))
        assert.strictEqual(warnings.length, 1, `logged at most once a second:\n${logs.logged.join("\n")}`)

        // The connections being served were not disturbed.
        assert.strictEqual(yield* ask(held[1], "two"), "TWO")
        held[2].destroy()
        yield* Effect.promise(() => waitUntil(() => statsOf(server).connectionsOpen === 2, 2000, "a slot freed"))
        yield* alive(port)
        assert.strictEqual(statsOf(server).connectionsRejected, 10)
      }), { maxConnections: 3 }).pipe(Effect.provide(logs.layer))
  })
})

describe("TcpServer connection limit and the descriptor limit (in process)", () => {
  const limit = DescriptorBudget.softLimit()
  it.live.skipIf(limit === undefined)(
    "a maxConnections given above what the known descriptor limit leaves is capped to it, and said",
    () => {
      const logs = logCapture()
      return withTcpServer((server) =>
        Effect.sync(() => {
          const capped = logs.logged.find((line) => line.includes("serves at most")) ?? logs.logged.join("\n")
          assert.match(
            capped,
            new RegExp(
              `^Warn descriptor limit \\(ulimit -n\\) is ${limit}: 127\\.0\\.0\\.1:${server.address.port}/tcp ` +
                `serves at most \\d+ connections at once, not 10000000`,
            ),
          )
        }), { maxConnections: 10_000_000 }).pipe(Effect.provide(logs.layer))
    },
  )
})

describe("TcpServer idle timeout", () => {
  it.live("a connection with no bytes for idleTimeout is closed and counted; an active one stays open [failure: idle-peer]", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const port = server.address.port
        const idle = yield* connection(port)
        const active = yield* connection(port)
        const started = Date.now()
        const idleClosed = closedByPeer(idle, 3000).then(() => Date.now() - started)
        // One exchange every 100 ms for 900 ms: three times the timeout, never 300 ms quiet.
        for (let i = 0; i < 9; i++) {
          assert.strictEqual(yield* ask(active, `ping ${i}`), `PING ${i}`)
          yield* Effect.promise(() => sleep(100))
        }
        const idleMillis = yield* Effect.promise(() => idleClosed)
        assert.isAtLeast(idleMillis, 250)
        assert.isBelow(idleMillis, 1000)
        assert.strictEqual(yield* ask(active, "after"), "AFTER", "the active connection is still served")
        assert.strictEqual(statsOf(server).idleTimeouts, 1)
        yield* alive(port)
      }), { idleTimeout: "300 millis" }))

  it.live("a client that stopped reading, so no reply bytes move either, is closed at the idle timeout [failure: slow-reader]", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const stuck = yield* connection(server.address.port)
        stuck.on("error", () => {})
        stuck.pause()
        stuck.write(Buffer.alloc(8 * 1024 * 1024, 0x61))
        yield* Effect.promise(() => waitUntil(() => statsOf(server).idleTimeouts === 1, 3000, "the idle timeout"))
        yield* Effect.promise(() =>
          waitUntil(() => statsOf(server).connectionsOpen === 0, 1000, "the connection closed")
        )
        yield* alive(server.address.port)
      }), { idleTimeout: "300 millis" }))
})

describe("TcpServer idle timeout, with a transform effect", () => {
  it.live("a connection waiting for a transform effect longer than idleTimeout is not idle: it gets its reply", () => {
    const slow: Transform.TransformShape = {
      name: "slow",
      framing: "line",
      apply: (text) => Effect.sleep("900 millis").pipe(Effect.as(text.toUpperCase())),
    }
    return withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const client = yield* connection(server.address.port)
          assert.strictEqual(yield* ask(client, "slow\n"), "SLOW\n")
          assert.strictEqual(statsOf(server).idleTimeouts, 0)
          client.destroy() // so that the server's shutdown need not wait for it
        }),
      { idleTimeout: "300 millis" },
      slow,
    )
  })
})

describe("TcpServer backpressure behind transform effects (in process)", () => {
  /** Resolves once `count()` has not changed for 300 ms (at most 10 s); returns it. */
  const settled = (count: () => number) =>
    Effect.promise(async () => {
      let last = -1
      for (let i = 0; i < 100 && count() !== last; i++) {
        last = count()
        await sleep(300)
      }
      return count()
    })

  /** A line transform answering upper-cased through an effect (after `gate`, when given), counting the lines read. */
  const counted = (gate?: Promise<void>) => {
    let lines = 0
    const transform: Transform.TransformShape = {
      name: "counted",
      framing: "line",
      apply: (text) => {
        lines++
        return gate === undefined
          ? Effect.sync(() => text.toUpperCase())
          : Effect.promise(() => gate).pipe(Effect.as(text.toUpperCase()))
      },
    }
    return { transform, lines: () => lines }
  }

  const LINE = "x".repeat(999) + "\n" // 1,000 bytes

  it.live("a client that floods and never reads stops being read, though every reply goes through an effect", () => {
    const { transform, lines } = counted()
    return withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const flood = yield* connection(server.address.port)
          flood.on("error", () => {})
          flood.pause()
          // 32 MiB of lines: far more than the socket buffers of both sides and the server's queue hold.
          const sent = 32 * 1024
          flood.write(LINE.repeat(sent))
          const read = yield* settled(lines)
          assert.isAbove(read, 0)
          assert.isBelow(read, sent / 2, `the server read ${read} of ${sent} lines from a client that reads nothing`)
          yield* alive(server.address.port)
          flood.destroy()
        }),
      {},
      transform,
    )
  })

  it.live("replies waiting behind a transform effect pause reading at 1,024, and all come, in order, once it ends", () => {
    let open = () => {}
    const gate = new Promise<void>((resolve) => (open = resolve))
    const { transform, lines } = counted(gate)
    return withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const client = yield* connection(server.address.port)
          const sent = 8 * 1024
          const requests = Array.from({ length: sent }, (_, i) => `${i} `.padEnd(999, "x") + "\n").join("")
          const replies = readAtLeast(client, requests.length, 20_000)
          client.write(requests)
          const read = yield* settled(lines)
          // 1,024 queued, plus the rest of the read that filled the queue (64 KiB at most: 65 lines).
          assert.isAtLeast(read, 1024)
          assert.isBelow(read, 1024 + 200, `${read} of ${sent} lines read while the first transform effect ran`)
          open()
          const reply = (yield* Effect.promise(() => replies)).toString()
          assert.strictEqual(reply, requests.toUpperCase())
          client.destroy()
        }),
      {},
      transform,
    )
  })
})

describe("TcpServer line length bound (count:, default maxLineBytes of 64 KiB)", () => {
  it.live("a line of exactly 64 KiB is answered; one byte more, sent in 1 KiB pieces, closes only that connection", () =>
    TcpServer.TcpServer.use((server) =>
      Effect.gen(function* () {
        const port = server.address.port
        const limit = TcpServer.DEFAULT_MAX_LINE_BYTES
        const bystander = yield* connection(port)
        const atLimit = yield* Effect.promise(() =>
          tcpExchange(port, ["s".repeat(limit) + "\n"], { halfClose: true, timeoutMs: 5000 })
        )
        assert.strictEqual(atLimit.data.toString(), `${limit}\n`)
        const pieces = Array.from({ length: 64 }, () => "s".repeat(1024)).concat(["s", "s\n"])
        const over = yield* Effect.promise(() => tcpExchange(port, pieces, { pauseMs: 1, timeoutMs: 5000 }))
        assert.isTrue(over.ended, "the connection with the over-long line is closed")
        assert.strictEqual(over.data.length, 0, "without an answer")
        const answer = yield* Effect.promise(() => {
          const reading = readAtLeast(bystander, 2)
          bystander.write("sass\n")
          return reading
        })
        assert.strictEqual(answer.toString(), "3\n", "another connection is not disturbed")
        const after = yield* Effect.promise(() => tcpExchange(port, ["sis\n"], { halfClose: true }))
        assert.strictEqual(after.data.toString(), "2\n")
      })
    ).pipe(Effect.provide(tcpServer({}, Transform.count("s")))))
})

describe("caps tcp-server memory against a slow reader (child processes)", () => {
  it.live.skipIf(noPython)(
    "a client sending 64 MiB that never reads grows the server's resident memory by less than 16 MiB",
    () =>
      Effect.gen(function* () {
        const server = yield* startCaps(["tcp-server", "--host", "127.0.0.1", "--port", "0"])
        // Warm up the paths the flood takes (a client that reads its 8 MiB of replies), so that the heap the
        // server grows to for any busy connection does not count as growth caused by the slow reader.
        const warmUp = yield* Effect.promise(() =>
          tcpExchange(server.port, [Buffer.alloc(8 * 1024 * 1024, 0x61)], { halfClose: true, timeoutMs: 10_000 })
        )
        assert.strictEqual(warmUp.data.length, 8 * 1024 * 1024)
        yield* alive(server.port)
        const before = memoryOf(server.pid)
        const flood = yield* Effect.acquireRelease(
          Effect.sync(() => spawnPeerProcess("python3", ["-c", FLOOD, String(server.port)])),
          (peer) => Effect.promise(() => peer.kill()),
        )
        let peakKiB = before.rssKiB
        const deadline = Date.now() + 6000
        while (!flood.stdout().includes("stalled") && Date.now() < deadline) {
          peakKiB = Math.max(peakKiB, memoryOf(server.pid).rssKiB)
          yield* Effect.promise(() => sleep(50))
        }
        for (let i = 0; i < 5; i++) {
          peakKiB = Math.max(peakKiB, memoryOf(server.pid).rssKiB)
          yield* Effect.promise(() => sleep(50))
        }
        const after = memoryOf(server.pid)
        const sent = Number(/stalled (\d+)/.exec(flood.stdout())?.[1] ?? NaN)
        const growthMiB = (Math.max(peakKiB, after.hwmKiB) - Math.max(before.rssKiB, before.hwmKiB)) / 1024
        console.log(
          `slow reader: the flooder got ${(sent / 2 ** 20).toFixed(1)} MiB into the kernel before it stalled; ` +
            `server RSS ${(before.rssKiB / 1024).toFixed(1)} -> peak ${(peakKiB / 1024).toFixed(1)} MiB, ` +
            `VmHWM ${(before.hwmKiB / 1024).toFixed(1)} -> ${(after.hwmKiB / 1024).toFixed(1)} MiB ` +
            `(growth ${growthMiB.toFixed(1)} MiB)`,
        )
        assert.include(flood.stdout(), "stalled", `the flooder was never held back: ${flood.stdout()}`)
        assert.isBelow(sent, 64 * 2 ** 20, "the server stopped reading instead of taking all 64 MiB")
        assert.isBelow(growthMiB, 16)
        yield* alive(server.port)
      }),
    30_000,
  )
})

describe("caps tcp-server out of descriptors (child process under ulimit -n 64)", () => {
  if (isDeno) {
    console.warn(
      "Limits.test.ts: the out-of-descriptors test is skipped under Deno: Deno's runtime accepts connections in " +
        "its own loop before JavaScript sees them, and after one EMFILE it stops accepting for good (Deno 2.9.6), " +
        "whatever the server's connection limit; README says to keep ulimit -n well above --max-connections there",
    )
  }
  it.live.skipIf(isDeno)(
    "more clients than descriptors: said on stderr, no spinning, and a new client is served once they close [failure: out-of-descriptors]",
    () =>
      Effect.gen(function* () {
        const command = capsCommand(["tcp-server", "--host", "127.0.0.1", "--port", "0"])
        const quoted = command.map((part) => `'${part.replaceAll("'", "'\\''")}'`).join(" ")
        const server = yield* start(["bash", "-c", `ulimit -n 64 && exec ${quoted}`], { ready: CAPS_READY })
        yield* alive(server.port)
        const fdsBefore = openFdsOf(server.pid)
        const socketsBefore = openSocketsOf(server.pid)

        const clients: Array<Net.Socket> = []
        yield* Effect.addFinalizer(() => Effect.sync(() => clients.forEach((socket) => socket.destroy())))
        for (let i = 0; i < 100; i++) {
          const socket = Net.connect({ host: "127.0.0.1", port: server.port })
          socket.on("error", () => {})
          clients.push(socket)
        }
        yield* Effect.promise(() => sleep(500))
        const fdsFull = openFdsOf(server.pid)
        const cpuBefore = cpuTicksOf(server.pid)
        yield* Effect.promise(() => sleep(1000))
        const cpuTicks = cpuTicksOf(server.pid) - cpuBefore
        console.log(
          `out of descriptors: server descriptors ${fdsBefore} -> ${fdsFull} with 100 clients (limit 64); ` +
            `CPU over the next second: ${cpuTicks * 10} ms`,
        )
        assert.isBelow(cpuTicks, 20, "the server does not spin on a failing accept (under 200 ms CPU in 1 s)")

        for (const socket of clients) socket.destroy()
        yield* Effect.promise(() =>
          waitUntil(
            () => openSocketsOf(server.pid) <= socketsBefore + 2,
            5000,
            "the server's descriptors to be released",
          )
        )
        const served = yield* Effect.promise(() =>
          tcpExchange(server.port, ["still alive"], { halfClose: true }).then(
            (reply) => reply.data.toString(),
            (error: Error) => error.message,
          )
        )
        assert.strictEqual(
          served,
          "STILL ALIVE",
          "after running out of descriptors the server no longer answers" +
            (isDeno
              ? " (Deno's node:net stops accepting for good after EMFILE, and the descriptor budget that would " +
                "prevent it is unknown: Deno reads /proc/self/limits only with --allow-all)"
              : ""),
        )
        // Either accept failed and said so, or the server kept below its descriptor limit and said that.
        const stderr = server.stderr()
        const acceptFailed = /accept failed.*EMFILE/.test(stderr)
        const keptBelow = /descriptor limit \(ulimit -n\) is 64/.test(stderr) &&
          /connection limit of \d+ reached/.test(stderr)
        assert.isTrue(acceptFailed || keptBelow, `nothing on stderr says descriptors ran out:\n${stderr}`)
      }),
    30_000,
  )
})
