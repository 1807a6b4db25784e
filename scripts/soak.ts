// scripts/soak.ts: `npm run soak [-- --duration <seconds>]`, a long run of mixed, partly hostile traffic
// against a `caps serve` child process on loopback, to see that its memory and descriptors stay flat.
//
// Traffic, each kind in its own loops until the end: TCP ping-pong connections, TCP connections pipelining
// batches of lines, UDP request/reply, connect/send/half-close churn, invalid UTF-8 over TCP (checked against
// TextDecoder), slow readers (send 1 MiB, never read, dropped after 5 s) and resets mid-request. Every reply
// is checked. Every 10 s it prints the server's RSS, open descriptors (/proc/PID/fd), its TCP connections by
// state (/proc/net/tcp), and the requests done and failed per kind.
//
// Verdict (exit 1 if any holds), measured after the traffic stops and the server has had 3 s of quiet:
// - memory grew without bound: over the second half of the run, once the heap has grown to its working
//   size, the server's RSS rose by more than 32 MiB (its last report against the first report of that half).
//   A bounded server levels off; a leak keeps climbing. Runs of fewer than 4 reports (under 40 s) are too
//   short to tell warm-up from growth, and get no memory verdict;
// - descriptors leaked: the server holds more descriptors than before the traffic started, plus 2;
// - the server died, did not stop on SIGTERM within 10 s with exit code 0, or a TCP request was answered
//   wrongly or not at all. UDP requests may be lost by the kernel under load: counted, not fatal.
//
// Runs with the project's pinned Node (`node scripts/soak.ts`, type stripping), no dependencies; run it
// with Deno (`deno run -A scripts/soak.ts`) to soak the server on Deno.

import * as Dgram from "node:dgram"
import * as Net from "node:net"
import process from "node:process"
import { exchangeOn, HOST, isDeno, memoryMiB, openFds, serverConnections, sleep, startCaps } from "./CapsServer.ts"
import { parseArgs } from "node:util"

const { values: flags } = parseArgs({
  options: {
    duration: { type: "string", default: "300" },
    interval: { type: "string", default: "10" },
  },
})
const DURATION_MS = Number(flags.duration) * 1000
const INTERVAL_MS = Number(flags.interval) * 1000
if (!(DURATION_MS > 0) || !(INTERVAL_MS > 0)) {
  console.error("usage: node scripts/soak.ts [--duration <seconds>] [--interval <seconds>]")
  process.exit(2)
}
const MEMORY_BOUND_MIB = 32
const FD_SLACK = 2

const encoder = new TextEncoder()
const upper = (bytes: Uint8Array): string => new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes).toUpperCase()

// --- the server ---------------------------------------------------------------------------------------

// --- traffic --------------------------------------------------------------------------------------------

interface Counter {
  done: number
  failed: number
  lastError: string
}
const kinds = ["ping-pong", "pipelined", "udp", "churn", "invalid-utf8", "slow-reader", "reset"] as const
type Kind = typeof kinds[number]
const counters = Object.fromEntries(kinds.map((kind) => [kind, { done: 0, failed: 0, lastError: "" }])) as Record<
  Kind,
  Counter
>
const fatalKinds: ReadonlyArray<Kind> = ["ping-pong", "pipelined", "churn", "invalid-utf8"]
const openClients = new Set<Net.Socket>()
let running = true

const fail = (kind: Kind, error: unknown) => {
  counters[kind].failed++
  counters[kind].lastError = error instanceof Error ? error.message : String(error)
}

const connect = (port: number): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: HOST, port, allowHalfOpen: true })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error("connect timed out"))
    }, 5000)
    socket.once("connect", () => {
      clearTimeout(timer)
      openClients.add(socket)
      socket.once("close", () => openClients.delete(socket))
      resolve(socket)
    })
    socket.once("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })

/** Reads exactly `bytes` bytes from a socket (or fails after `timeoutMs`). */
const readExactly = (socket: Net.Socket, bytes: number, timeoutMs = 5000): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const done = (error?: Error) => {
      clearTimeout(timer)
      socket.off("data", onData)
      socket.off("error", onError)
      socket.off("end", onEnd)
      socket.pause()
      if (error !== undefined) reject(error)
      else resolve(Buffer.concat(chunks))
    }
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
      if (size > bytes) done(new Error(`got ${size} bytes, expected ${bytes}`))
      else if (size === bytes) done()
    }
    const onError = (error: Error) => done(error)
    const onEnd = () => done(new Error(`connection ended after ${size} of ${bytes} bytes`))
    const timer = setTimeout(
      () => done(new Error(`no reply within ${timeoutMs} ms (${size} of ${bytes} bytes)`)),
      timeoutMs,
    )
    socket.on("data", onData)
    socket.on("error", onError)
    socket.on("end", onEnd)
    socket.resume()
  })

const loop = async (kind: Kind, body: () => Promise<void>, pauseMs = 0) => {
  while (running) {
    try {
      await body()
      counters[kind].done++
    } catch (error) {
      if (running) fail(kind, error)
    }
    if (pauseMs > 0) await sleep(pauseMs)
  }
}

const pingPong = async (port: number) => {
  while (running) {
    let socket: Net.Socket | undefined
    try {
      socket = await connect(port)
      for (let i = 0; running && i < 1000; i++) {
        const request = `ping ${i} from a soak client, straße ﬃ\n`
        socket.write(request)
        const reply = await readExactly(socket, encoder.encode(request.toUpperCase()).length)
        if (reply.toString() !== request.toUpperCase()) {
          throw new Error(`wrong reply ${JSON.stringify(reply.toString())}`)
        }
        counters["ping-pong"].done++
      }
    } catch (error) {
      if (running) fail("ping-pong", error)
      await sleep(100)
    } finally {
      socket?.destroy()
    }
  }
}

const pipelined = async (port: number) => {
  const batch = Array.from({ length: 100 }, (_, i) => `pipelined request ${i}\n`).join("")
  const expected = batch.toUpperCase()
  while (running) {
    let socket: Net.Socket | undefined
    try {
      socket = await connect(port)
      for (let i = 0; running && i < 200; i++) {
        socket.write(batch)
        const reply = await readExactly(socket, expected.length)
        if (reply.toString() !== expected) throw new Error("wrong pipelined replies")
        counters.pipelined.done++
      }
    } catch (error) {
      if (running) fail("pipelined", error)
      await sleep(100)
    } finally {
      socket?.destroy()
    }
  }
}

const udpClient = async (port: number) => {
  const socket = Dgram.createSocket("udp4")
  await new Promise<void>((resolve) => socket.bind({ address: HOST, port: 0 }, () => resolve()))
  let waiting: ((message: Buffer) => void) | undefined
  socket.on("message", (message) => waiting?.(message))
  try {
    for (let i = 0; running; i++) {
      const request = i % 10 === 0 ? Uint8Array.from([0x61, 0xff, 0xc3, 0x28, 0x62]) : encoder.encode(`datagram ${i}`)
      try {
        const reply = await new Promise<Buffer>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no UDP reply within 1 s")), 1000)
          waiting = (message) => {
            clearTimeout(timer)
            resolve(message)
          }
          socket.send(request, port, HOST)
        })
        if (reply.toString() !== upper(request)) throw new Error(`wrong UDP reply ${JSON.stringify(reply.toString())}`)
        counters.udp.done++
      } catch (error) {
        if (running) fail("udp", error)
      }
    }
  } finally {
    socket.close()
  }
}

const INVALID: ReadonlyArray<ReadonlyArray<number>> = [
  [0x61, 0xff, 0x62],
  [0xc0, 0x80, 0x41],
  [0xed, 0xa0, 0x80],
  [0xf0, 0x9f, 0x98],
  [0xe2, 0x82, 0x61, 0x62],
  [0xef, 0xbb, 0xbf, 0x73],
]

const invalidUtf8 = (port: number) =>
  loop("invalid-utf8", async () => {
    const parts = Array.from({ length: 8 }, (_, i) => INVALID[(i * 7 + counters["invalid-utf8"].done) % INVALID.length])
    const payload = Uint8Array.from(parts.flat())
    const reply = await connect(port).then((socket) => exchangeOn(socket, payload, 5000))
    if (reply.toString() !== upper(payload)) throw new Error(`wrong reply to invalid UTF-8 ${JSON.stringify(reply)}`)
  })

const churn = (port: number) =>
  loop("churn", async () => {
    const reply = await connect(port).then((socket) => exchangeOn(socket, encoder.encode("churn, churn"), 5000))
    if (reply.toString() !== "CHURN, CHURN") throw new Error(`wrong churn reply ${JSON.stringify(reply.toString())}`)
  })

const slowReaders = (port: number) =>
  loop("slow-reader", async () => {
    const sockets = await Promise.all([connect(port), connect(port)])
    for (const socket of sockets) {
      socket.on("error", () => {})
      socket.pause()
      socket.write(Buffer.alloc(1024 * 1024, 0x61))
    }
    await sleep(5000)
    for (const socket of sockets) socket.destroy()
  }, 5000)

const resets = (port: number) =>
  loop("reset", async () => {
    const socket = await connect(port)
    socket.on("error", () => {})
    socket.write("half a request, then a ")
    await sleep(5)
    socket.resetAndDestroy()
  }, 20)

// --- the run --------------------------------------------------------------------------------------------

interface Sample {
  readonly seconds: number
  readonly rss: number
  readonly fds: number
}

const main = async () => {
  const server = await startCaps("serve")
  await sleep(1000)
  const fdsAtStart = openFds(server.pid)
  const rssAtStart = memoryMiB(server.pid).rss
  console.log(
    `soak: caps serve (pid ${server.pid}, ${isDeno ? "Deno" : "Node"}) on ${HOST}, TCP ${server.tcpPort!}, ` +
      `UDP ${server.udpPort!}, for ${DURATION_MS / 1000} s; at start RSS ${rssAtStart.toFixed(1)} MiB, ` +
      `${fdsAtStart} descriptors`,
  )
  const started = Date.now()
  const traffic = [
    ...Array.from({ length: 8 }, () => pingPong(server.tcpPort!)),
    ...Array.from({ length: 4 }, () => pipelined(server.tcpPort!)),
    ...Array.from({ length: 4 }, () => udpClient(server.udpPort!)),
    ...Array.from({ length: 4 }, () => churn(server.tcpPort!)),
    ...Array.from({ length: 2 }, () => invalidUtf8(server.tcpPort!)),
    slowReaders(server.tcpPort!),
    resets(server.tcpPort!),
  ]

  const samples: Array<Sample> = []
  const previous = Object.fromEntries(kinds.map((kind) => [kind, 0])) as Record<Kind, number>
  while (Date.now() - started < DURATION_MS && server.alive()) {
    await sleep(Math.min(INTERVAL_MS, DURATION_MS - (Date.now() - started)))
    if (!server.alive()) break
    const sample = { seconds: (Date.now() - started) / 1000, rss: memoryMiB(server.pid).rss, fds: openFds(server.pid) }
    samples.push(sample)
    const rates = kinds.map((kind) => {
      const { done, failed } = counters[kind]
      const line = `${kind} ${done - previous[kind]}${failed > 0 ? ` (${failed} failed)` : ""}`
      previous[kind] = done
      return line
    })
    const connections = Object.entries(serverConnections(server.tcpPort!)).map(([state, n]) => `${n} ${state}`)
    console.log(
      `[${sample.seconds.toFixed(0).padStart(4)} s] RSS ${sample.rss.toFixed(1)} MiB, ${sample.fds} fds, ` +
        `server TCP: ${connections.join(", ") || "none"}, clients open ${openClients.size}; ` +
        `done in ${INTERVAL_MS / 1000} s: ${rates.join(", ")}`,
    )
  }

  running = false
  for (const socket of openClients) socket.destroy()
  await Promise.race([Promise.all(traffic), sleep(10_000)])
  await sleep(3000)
  const died = !server.alive()
  const rssAtEnd = died ? NaN : memoryMiB(server.pid).rss
  const fdsAtEnd = died ? NaN : openFds(server.pid)
  const connectionsAtEnd = died ? {} : serverConnections(server.tcpPort!)
  const stopAt = Date.now()
  const exit = died ? await server.exited : await server.terminate(10_000)

  const judgeMemory = samples.length >= 4
  const secondHalf = samples.slice(Math.floor(samples.length / 2))
  const from = secondHalf[0]
  const to = samples[samples.length - 1]
  const growth = from !== undefined && to !== undefined ? to.rss - from.rss : 0
  const perMinute = from !== undefined && to !== undefined && to.seconds > from.seconds
    ? (growth / (to.seconds - from.seconds)) * 60
    : 0
  const problems: Array<string> = []
  if (died) problems.push(`the server died during the run:\n${server.stderr()}`)
  if (!judgeMemory) console.log("\n(run too short for a memory verdict: fewer than 4 reports)")
  if (judgeMemory && growth > MEMORY_BOUND_MIB) {
    problems.push(
      `RSS still climbing: ${from?.rss.toFixed(1)} MiB at ${from?.seconds.toFixed(0)} s, ${to?.rss.toFixed(1)} MiB ` +
        `at ${to?.seconds.toFixed(0)} s (${perMinute.toFixed(1)} MiB/min)`,
    )
  }
  if (fdsAtEnd > fdsAtStart + FD_SLACK) {
    problems.push(`descriptors leaked: ${fdsAtStart} before the traffic, ${fdsAtEnd} after it`)
  }
  if (exit === undefined) problems.push("the server did not exit within 10 s of SIGTERM")
  else if (exit.code !== 0) problems.push(`the server exited with ${exit.code ?? exit.signal} after SIGTERM`)
  for (const kind of fatalKinds) {
    if (counters[kind].failed > 0) {
      problems.push(`${counters[kind].failed} ${kind} requests failed (last: ${counters[kind].lastError})`)
    }
  }

  console.log("\nsoak summary")
  console.log(`  duration           ${((stopAt - started) / 1000).toFixed(0)} s`)
  console.log(
    `  server RSS         ${rssAtStart.toFixed(1)} MiB at start, ${samples[0]?.rss.toFixed(1)} MiB at the first ` +
      `report, ${rssAtEnd.toFixed(1)} MiB after the run; second half ${from?.rss.toFixed(1)} -> ` +
      `${to?.rss.toFixed(1)} MiB (${perMinute >= 0 ? "+" : ""}${
        perMinute.toFixed(1)
      } MiB/min, bound +${MEMORY_BOUND_MIB} MiB)`,
  )
  console.log(`  server descriptors ${fdsAtStart} before the traffic, ${fdsAtEnd} after it`)
  console.log(`  server TCP after   ${JSON.stringify(connectionsAtEnd)}`)
  for (const kind of kinds) {
    const { done, failed, lastError } = counters[kind]
    console.log(`  ${kind.padEnd(18)} ${done} done, ${failed} failed${failed > 0 ? ` (last: ${lastError})` : ""}`)
  }
  console.log(`  server exit        ${exit === undefined ? "killed" : exit.code ?? exit.signal} after SIGTERM`)
  if (problems.length > 0) {
    console.log(`\nFAIL\n  ${problems.join("\n  ")}`)
    process.exit(1)
  }
  console.log(
    judgeMemory
      ? "\nOK: memory and descriptors stayed bounded, every TCP request was answered correctly"
      : "\nOK: descriptors stayed bounded, every TCP request was answered correctly (no memory verdict)",
  )
  process.exit(0)
}

await main()
