// scripts/measure-faults.ts: `node scripts/measure-faults.ts`, four measurements of how caps's TCP server
// behaves under faults, each printed with the method used. Not part of the test suite (the fault tests in
// test/ assert bounds; this prints the numbers behind them):
//
// 1. memory growth of a server while a client sends 64 MiB and never reads;
// 2. time for a new client to get its answer while 1,000 idle connections are open;
// 3. the server's descriptors before and after 10,000 connect/disconnect cycles;
// 4. shutdown time under load (50 busy pipelining connections, then SIGTERM), and how many requests in
//    flight at the signal went unanswered.
//
// Every server is a fresh `caps tcp-server` child process on 127.0.0.1, run by the runtime running this
// script (`node scripts/measure-faults.ts`, or `deno run -A scripts/measure-faults.ts`). Measurement 1 needs
// python3 for its flooding client. Linux only (/proc).

import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import process from "node:process"
import { exchange, HOST, isDeno, memoryMiB, openFds, serverConnections, sleep, startCaps } from "./CapsServer.ts"

const MiB = 1024 * 1024

const waitFor = async (ready: () => boolean, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (ready()) return true
    await sleep(10)
  }
  return ready()
}

const stats = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return { median: at(0.5), p90: at(0.9), max: sorted[sorted.length - 1] }
}

// --- a server child -------------------------------------------------------------------------------------

/** Connections the kernel dropped since boot because a listening socket's accept queue was full. */
const listenOverflows = (): number => {
  const lines = Fs.readFileSync("/proc/net/netstat", "utf8").split("\n").filter((line) => line.startsWith("TcpExt:"))
  const names = lines[0]?.split(/\s+/) ?? []
  const values = lines[1]?.split(/\s+/) ?? []
  return Number(values[names.indexOf("ListenOverflows")] ?? NaN)
}

/** The server's TCP sockets on `port` other than the listening one and those in TIME-WAIT. */
const serverSockets = (port: number): number =>
  Object.entries(serverConnections(port)).reduce((n, [state, count]) => state === "time-wait" ? n : n + count, 0)

// --- clients --------------------------------------------------------------------------------------------

const connect = (port: number): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: HOST, port, allowHalfOpen: true, noDelay: true })
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

// --- 1. memory under a slow reader ----------------------------------------------------------------------

const FLOOD = `
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(1.5)
chunk = b"a" * (1 << 20)
sent = 0
try:
    while sent < 64 << 20:
        sent += s.send(chunk)
except socket.timeout:
    pass
print("stalled", sent, flush=True)
time.sleep(60)
`

const slowReaderMemory = async () => {
  console.log("\n1. Server memory while a client sends 64 MiB and never reads")
  console.log(
    "   method: a fresh tcp-server child; warm-up, one client sends 8 MiB and reads all its replies; then a\n" +
      "   python3 process connects, send()s 1 MiB chunks until 64 MiB or 1.5 s without progress, and never reads.\n" +
      "   The server's VmRSS is sampled every 50 ms from /proc/PID/status, VmHWM read at the end.",
  )
  if (spawnSync("python3", ["--version"]).status !== 0) return console.log("   skipped: python3 not found")
  const server = await startCaps("tcp-server")
  try {
    const warm = await exchange(server.tcpPort!, Buffer.alloc(8 * MiB, 0x61))
    if (warm.length !== 8 * MiB) throw new Error("warm-up reply incomplete")
    await sleep(500)
    const before = memoryMiB(server.pid)
    const flood = spawn("python3", ["-c", FLOOD, String(server.tcpPort!)], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    flood.stdout.setEncoding("utf8").on("data", (text: string) => out += text)
    let peak = before.rss
    const deadline = Date.now() + 10_000
    while (!out.includes("stalled") && Date.now() < deadline) {
      peak = Math.max(peak, memoryMiB(server.pid).rss)
      await sleep(50)
    }
    for (let i = 0; i < 10; i++) {
      peak = Math.max(peak, memoryMiB(server.pid).rss)
      await sleep(50)
    }
    const after = memoryMiB(server.pid)
    flood.kill("SIGKILL")
    const sent = Number(/stalled (\d+)/.exec(out)?.[1] ?? NaN)
    const reply = await exchange(server.tcpPort!, "still alive")
    console.log(
      `   result: the flooder got ${(sent / MiB).toFixed(1)} MiB into the kernel before it stalled (of 64 MiB);\n` +
        `   server RSS ${before.rss.toFixed(1)} MiB before, peak ${peak.toFixed(1)} MiB during ` +
        `(+${(peak - before.rss).toFixed(1)} MiB); VmHWM ${before.hwm.toFixed(1)} -> ${after.hwm.toFixed(1)} MiB ` +
        `(+${(after.hwm - before.hwm).toFixed(1)} MiB); a new client afterwards got ${
          JSON.stringify(reply.toString())
        }`,
    )
  } finally {
    await server.stop()
  }
}

// --- 2. latency with 1,000 idle connections -------------------------------------------------------------

const latencyWithIdle = async () => {
  console.log("\n2. Time for a new client to get its answer while 1,000 idle connections are open")
  console.log(
    "   method: a fresh tcp-server child; 50 requests one after another, each on a new connection (connect,\n" +
      "   send 'hello', half-close, read the reply to EOF), timed from connect to EOF; first with no other\n" +
      "   connection, then with 1,000 idle connections open (opened from this process, never used).",
  )
  const server = await startCaps("tcp-server")
  const idle: Array<Net.Socket> = []
  try {
    const measure = async () => {
      const times: Array<number> = []
      for (let i = 0; i < 50; i++) {
        const started = performance.now()
        const reply = await exchange(server.tcpPort!, "hello")
        times.push(performance.now() - started)
        if (reply.toString() !== "HELLO") throw new Error(`wrong reply ${reply.toString()}`)
      }
      return stats(times)
    }
    await measure()
    const quiet = await measure()
    for (let i = 0; i < 10; i++) {
      idle.push(...await Promise.all(Array.from({ length: 100 }, () => connect(server.tcpPort!))))
    }
    await waitFor(() => serverSockets(server.tcpPort!) >= 1000, 5000)
    const busy = await measure()
    const f = (x: number) => x.toFixed(2)
    console.log(
      `   result: no idle connections: median ${f(quiet.median)} ms, p90 ${f(quiet.p90)} ms, max ${
        f(quiet.max)
      } ms;\n` +
        `   ${serverSockets(server.tcpPort!)} server sockets open:  median ${f(busy.median)} ms, p90 ${
          f(busy.p90)
        } ms, ` +
        `max ${f(busy.max)} ms`,
    )
  } finally {
    for (const socket of idle) socket.destroy()
    await server.stop()
  }
}

// --- 3. descriptors after 10,000 connect/disconnect cycles ----------------------------------------------

const descriptorsAfterChurn = async () => {
  console.log("\n3. Server descriptors before and after 10,000 connect/disconnect cycles")
  console.log(
    "   method: a fresh tcp-server child; 100 batches of 100 concurrent connections, each sending one byte\n" +
      "   and closed by the client once that is answered (so that the clients cannot outrun the server's accept\n" +
      "   loop); descriptors counted in /proc/PID/fd before, at the end of the last\n" +
      "   batch, and once the server holds no socket on its port (at most 10 s later).",
  )
  const server = await startCaps("tcp-server")
  try {
    await exchange(server.tcpPort!, "warm-up")
    await sleep(1000)
    const before = openFds(server.pid)
    let peak = before
    const overflowsBefore = listenOverflows()
    const started = Date.now()
    for (let batch = 0; batch < 100; batch++) {
      await Promise.all(
        Array.from({ length: 100 }, () =>
          connect(server.tcpPort!).then((socket) =>
            new Promise<void>((resolve) => {
              // One byte and its answer: the cycle waits for the server to have accepted the connection.
              socket.once("data", () => socket.destroy())
              socket.once("close", () => resolve())
              socket.write("x")
            })
          )),
      )
      peak = Math.max(peak, openFds(server.pid))
    }
    const millis = Date.now() - started
    const overflows = listenOverflows() - overflowsBefore
    const atEnd = openFds(server.pid)
    const settled = await waitFor(() => serverSockets(server.tcpPort!) === 0, 10_000)
    await sleep(200)
    const after = openFds(server.pid)
    const reply = await exchange(server.tcpPort!, "still alive")
    console.log(
      `   result: ${millis} ms for 10,000 cycles (${overflows} SYNs dropped by a full accept queue, each costing ` +
        `its client a 1 s retransmit);\n   server descriptors ${before} before, ${peak} at most during, ` +
        `${atEnd} right after,\n   ${after} once ${settled ? "its sockets were gone" : "10 s had passed"} ` +
        `(${after - before >= 0 ? "+" : ""}${after - before}); a new client then got ${
          JSON.stringify(reply.toString())
        }`,
    )
  } finally {
    await server.stop()
  }
}

// --- 4. shutdown under load -----------------------------------------------------------------------------

interface Pipeliner {
  sent: number
  answered: number
  wrong: number
  ended: string
  inFlightAtSignal: number
  stop: () => void
}

/** A connection that keeps `window` requests in flight, checks every reply line, and stops sending on `stop`. */
const pipeliner = async (port: number, id: number, window: number): Promise<Pipeliner> => {
  const socket = await connect(port)
  const state: Pipeliner = { sent: 0, answered: 0, wrong: 0, ended: "open", inFlightAtSignal: 0, stop: () => {} }
  let sending = true
  let buffered = ""
  const request = (n: number) => `request ${n} from connection ${id}, straße\n`
  const send = () => {
    while (sending && state.sent - state.answered < window) socket.write(request(state.sent++))
  }
  socket.setEncoding("utf8")
  socket.on("data", (text: string) => {
    buffered += text
    let at: number
    while ((at = buffered.indexOf("\n")) !== -1) {
      const line = buffered.slice(0, at + 1)
      buffered = buffered.slice(at + 1)
      if (line !== request(state.answered).toUpperCase()) state.wrong++
      state.answered++
    }
    send()
  })
  socket.on("end", () => {
    if (state.ended === "open") state.ended = "end"
    // Close our side too, as every real client does at EOF: the server lingers until its peers close
    // (up to the drain deadline), so a client that kept its half open would hold the shutdown that long.
    socket.end()
  })
  socket.on("error", (error: NodeJS.ErrnoException) => {
    if (state.ended === "open") state.ended = error.code ?? "error"
  })
  socket.on("close", () => {
    if (state.ended === "open") state.ended = "close"
  })
  state.stop = () => {
    sending = false
    state.inFlightAtSignal = state.sent - state.answered
  }
  send()
  return state
}

const shutdownUnderLoad = async () => {
  console.log("\n4. Shutdown under load: 50 busy connections pipelining requests, then SIGTERM")
  console.log(
    "   method: a fresh tcp-server child (drain deadline 5 s, the default); 50 connections each keep 16\n" +
      "   request lines in flight for 2 s, checking every reply; at SIGTERM they stop sending and count what is\n" +
      "   in flight; then they read until the server closes, and close too. Timed from SIGTERM to the server's exit.",
  )
  const server = await startCaps("tcp-server")
  try {
    const clients = await Promise.all(Array.from({ length: 50 }, (_, i) => pipeliner(server.tcpPort!, i, 16)))
    await sleep(2000)
    const answeredBefore = clients.reduce((n, c) => n + c.answered, 0)
    for (const client of clients) client.stop()
    const signalled = performance.now()
    const exit = await server.terminate(15_000)
    const millis = performance.now() - signalled
    await waitFor(() => clients.every((c) => c.ended !== "open"), 3000)
    const inFlight = clients.reduce((n, c) => n + c.inFlightAtSignal, 0)
    const unanswered = clients.reduce((n, c) => n + (c.sent - c.answered), 0)
    const wrong = clients.reduce((n, c) => n + c.wrong, 0)
    const endings: Record<string, number> = {}
    for (const client of clients) endings[client.ended] = (endings[client.ended] ?? 0) + 1
    const summary = server.stderr().split("\n").find((line) => line.includes("stopped in")) ?? "(no summary line)"
    console.log(
      `   result: ${answeredBefore} requests answered before the signal; ${inFlight} in flight at SIGTERM, ` +
        `${unanswered} of them unanswered, ${wrong} wrong replies;\n` +
        `   the server exited ${exit === undefined ? "not at all (killed)" : `with ${exit.code ?? exit.signal}`} ` +
        `${millis.toFixed(0)} ms after SIGTERM; connections ended: ${JSON.stringify(endings)}\n` +
        `   server: ${summary.replace(/^\S+ \S+ \(#\d+\): /, "")}`,
    )
  } finally {
    await server.stop()
  }
}

console.log(
  `measure-faults: caps tcp-server on ${isDeno ? `Deno ${process.versions.deno}` : `Node ${process.version}`}, ` +
    `${HOST}, ${new Date().toISOString()}`,
)
await slowReaderMemory()
await latencyWithIdle()
await descriptorsAfterChurn()
await shutdownUnderLoad()
