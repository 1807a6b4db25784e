// scripts/test-prometheus.ts: `npm run test:prometheus`, caps's metrics as a real Prometheus reads them.
//
// 1. Installs Prometheus from Debian's packages if it is missing (`apt-get install -y prometheus`, as root),
//    with a policy-rc.d that returns 101 during the install, so the package's own service is never started.
// 2. Starts `caps serve` (the sources, on the runtime running this script: `deno run -A
//    scripts/test-prometheus.ts` checks caps on Deno) on 127.0.0.1 with free ports and `--metrics-port 0`, and
//    Prometheus on 127.0.0.1 with a temporary data directory and the scrape config of the README
//    (scripts/ScrapeConfig.ts: only the target and a 1 s interval are replaced), checked by promtool first.
//    Both are children of this script, stopped by their PIDs at the end (SIGTERM, then SIGKILL after 10 s), on
//    success, failure, Ctrl-C and SIGTERM alike; the temporary directory is removed.
// 3. Waits until Prometheus reports the target up, sends known traffic (below), waits until caps has closed
//    every connection and for a scrape that began after that, then asks Prometheus's query API for each series
//    and compares it with the exact number the traffic makes. Prints a table; exits 1 on any mismatch.
//
// The traffic, with --transform count:s (a line transform: one request per line), --max-connections 2,
// --max-line-bytes 64 and --max-datagram-bytes 64:
// - connection A: TCP_LINES lines, pipelined, each answered; held open;
// - connection C: one line answered; held open, so the limit of 2 is reached;
// - connection D: closed by caps at once (rejected at the limit); then A and C are closed by the client;
// - connection B: one 100-byte line, over --max-line-bytes: refused, the connection closed (too_long);
// - UDP: one 100-byte datagram (over --max-datagram-bytes: refused, too_large), UDP_DATAGRAMS datagrams and
//   INVALID_DATAGRAMS datagrams holding one invalid UTF-8 byte each, every one of them answered.
// Every wait is bounded; a step that does not finish in time fails the run with what it waited for.
import * as ChildProcess from "node:child_process"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import process from "node:process"
import { type CapsServer, HOST, isDeno, ROOT, sleep, startCaps } from "./CapsServer.ts"
import { readReadme, scrapeConfigFor } from "./ScrapeConfig.ts"

const TCP_LINES = 20
const UDP_DATAGRAMS = 15
const INVALID_DATAGRAMS = 3
const LIMIT_BYTES = 64
const SENTENCE = "she sells sea shells"
const INVALID = Uint8Array.from([0x73, 0x65, 0xff, 0x61]) // "se", a byte that is never UTF-8, "a"
const STEP_TIMEOUT_MS = 10_000
const PROMETHEUS = "/usr/bin/prometheus"
const PROMTOOL = "/usr/bin/promtool"
const POLICY_RC_D = "/usr/sbin/policy-rc.d"

const NO_SERIES = "(no series)"

const countS = (text: string): string => String([...text].filter((c) => c === "s").length)

const step = (what: string) => console.log(`test:prometheus: ${what}`)

/** Retries `probe` every 200 ms until it returns a value, for at most `timeoutMs`; fails saying `what`. */
const waitFor = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs = STEP_TIMEOUT_MS) => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    await sleep(200)
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last === undefined ? "" : ` (last error: ${String(last)})`}`)
}

const withTimeout = <A>(what: string, promise: Promise<A>, timeoutMs = STEP_TIMEOUT_MS): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// --- Prometheus from Debian's packages --------------------------------------------------------------------

const run = (command: string, args: ReadonlyArray<string>, timeoutMs: number) =>
  ChildProcess.spawnSync(command, args, {
    stdio: "inherit",
    timeout: timeoutMs,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  })

/** Whether a policy-rc.d is in place that forbids starting services (exit 101). */
const servicesForbidden = (): boolean =>
  Fs.existsSync(POLICY_RC_D) && ChildProcess.spawnSync(POLICY_RC_D, ["prometheus", "start"]).status === 101

/** Installs the prometheus package, never letting it start its service. */
const installPrometheus = () => {
  if (process.getuid?.() !== 0) throw new Error(`${PROMETHEUS} is missing; install it (apt-get install prometheus)`)
  step("installing Prometheus from Debian's packages (apt-get install -y prometheus)")
  const previous = Fs.existsSync(POLICY_RC_D) ? Fs.readFileSync(POLICY_RC_D) : undefined
  const ours = !servicesForbidden()
  if (ours) {
    Fs.writeFileSync(POLICY_RC_D, "#!/bin/sh\n# test:prometheus: no service starts during its install\nexit 101\n", {
      mode: 0o755,
    })
  }
  try {
    const install = () => run("apt-get", ["install", "-y", "--no-install-recommends", "prometheus"], 600_000)
    if (install().status !== 0) {
      if (run("apt-get", ["update"], 300_000).status !== 0 || install().status !== 0) {
        throw new Error("apt-get install -y prometheus failed")
      }
    }
  } finally {
    if (ours) {
      if (previous === undefined) Fs.rmSync(POLICY_RC_D, { force: true })
      else Fs.writeFileSync(POLICY_RC_D, previous)
    }
  }
  if (!Fs.existsSync(PROMETHEUS)) throw new Error(`the prometheus package is installed, but ${PROMETHEUS} is not`)
}

/** A free TCP port on 127.0.0.1 (for Prometheus, which cannot say which port 0 gave it). */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, HOST, () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

interface Child {
  readonly name: string
  readonly pid: number
  readonly output: () => string
  readonly stop: () => Promise<void>
}

const startPrometheus = async (directory: string, target: string): Promise<{ child: Child; url: string }> => {
  const config = Path.join(directory, "prometheus.yml")
  Fs.writeFileSync(config, scrapeConfigFor(readReadme(ROOT), target, 1))
  const checked = ChildProcess.spawnSync(PROMTOOL, ["check", "config", config], { encoding: "utf8", timeout: 30_000 })
  if (checked.status !== 0) {
    throw new Error(`promtool rejects the README's scrape config:\n${checked.stdout}${checked.stderr}`)
  }
  const port = await freePort()
  const process_ = ChildProcess.spawn(PROMETHEUS, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${Path.join(directory, "data")}`,
    `--web.listen-address=${HOST}:${port}`,
  ], { stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  process_.stdout.setEncoding("utf8").on("data", (text: string) => output += text)
  process_.stderr.setEncoding("utf8").on("data", (text: string) => output += text)
  let running = true
  const exited = new Promise<void>((resolve) =>
    process_.once("close", () => {
      running = false
      resolve()
    })
  )
  const pid = process_.pid
  if (pid === undefined) throw new Error(`${PROMETHEUS} did not start`)
  const stop = async () => {
    if (!running) return
    process.kill(pid, "SIGTERM")
    if (await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)])) return
    if (running) process.kill(pid, "SIGKILL")
    await exited
  }
  return { child: { name: "prometheus", pid, output: () => output, stop }, url: `http://${HOST}:${port}` }
}

// --- Prometheus's HTTP API ---------------------------------------------------------------------------------

const getJson = async <A>(url: string): Promise<A> => {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
  const body = await response.json() as { status: string; data: A }
  if (body.status !== "success") throw new Error(`${url}: ${JSON.stringify(body)}`)
  return body.data
}

interface Target {
  readonly health: string
  readonly lastScrape: string
  readonly lastError: string
}

const target = async (prometheus: string): Promise<Target | undefined> => {
  const data = await getJson<{ activeTargets: Array<Target & { labels: { job: string } }> }>(
    `${prometheus}/api/v1/targets?state=active`,
  )
  return data.activeTargets.find((t) => t.labels.job === "caps")
}

/** The values of an instant query, one per series. */
const query = async (prometheus: string, promql: string): Promise<Array<number>> => {
  const data = await getJson<{ result: Array<{ value: [number, string] }> }>(
    `${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`,
  )
  return data.result.map((series) => Number(series.value[1]))
}

// --- the traffic ---------------------------------------------------------------------------------------------

/** A connection's replies as lines, and when it ends. */
const connect = (port: number) => withTimeout(`a TCP connection to caps's port ${port}`, connecting(port))

const connecting = (port: number) =>
  new Promise<{ socket: Net.Socket; lines: Array<string>; closed: Promise<void> }>((resolve, reject) => {
    const socket = Net.connect({ host: HOST, port, allowHalfOpen: false })
    const lines: Array<string> = []
    let buffer = ""
    socket.setEncoding("utf8").on("data", (text: string) => {
      buffer += text
      let newline
      while ((newline = buffer.indexOf("\n")) >= 0) {
        lines.push(buffer.slice(0, newline))
        buffer = buffer.slice(newline + 1)
      }
    })
    // A reset (caps closing with bytes unread) is an end like any other here: the numbers say why it ended.
    socket.on("error", () => {})
    const closed = new Promise<void>((done) => socket.once("close", () => done()))
    socket.once("connect", () => resolve({ socket, lines, closed }))
    socket.once("error", reject)
  })

const linesAnswered = (connection: { lines: Array<string> }, count: number, what: string) =>
  waitFor(what, () => Promise.resolve(connection.lines.length >= count ? connection.lines : undefined))

/** Sends each datagram and waits for its reply before the next; the replies, in order. */
const udpExchange = async (port: number, datagrams: ReadonlyArray<Uint8Array>): Promise<Array<string>> => {
  const socket = Dgram.createSocket("udp4")
  try {
    await new Promise<void>((resolve) => socket.bind(0, HOST, resolve))
    socket.connect(port, HOST)
    await new Promise<void>((resolve) => socket.once("connect", resolve))
    const replies: Array<string> = []
    for (const datagram of datagrams) {
      const reply = new Promise<string>((resolve) => socket.once("message", (m) => resolve(m.toString("utf8"))))
      socket.send(datagram)
      replies.push(await withTimeout("a UDP reply (none is resent: loopback loses none)", reply, 5000))
    }
    return replies
  } finally {
    socket.close()
  }
}

/** caps's own count of open connections, read from its /metrics, to know when it has closed them all. */
const activeConnections = async (metricsPort: number): Promise<number> => {
  const text = await (await fetch(`http://${HOST}:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) }))
    .text()
  const line = text.split("\n").find((l) => l.startsWith("caps_tcp_connections_active "))
  if (line === undefined) throw new Error("caps's /metrics has no caps_tcp_connections_active")
  return Number(line.split(" ")[1])
}

const sendTraffic = async (caps: CapsServer, metricsPort: number) => {
  const tcpPort = caps.tcpPort!
  const udpPort = caps.udpPort!
  const allClosed = () =>
    waitFor("caps closing every connection", async () => (await activeConnections(metricsPort)) === 0 || undefined)

  const a = await connect(tcpPort)
  a.socket.write(`${SENTENCE}\n`.repeat(TCP_LINES))
  const replies = await linesAnswered(a, TCP_LINES, `${TCP_LINES} replies on connection A`)
  if (replies.some((r) => r !== countS(SENTENCE))) throw new Error(`unexpected replies on A: ${replies.join(",")}`)
  const c = await connect(tcpPort)
  c.socket.write("s\n")
  await linesAnswered(c, 1, "the reply on connection C")

  const d = await connect(tcpPort)
  await withTimeout("caps closing connection D at --max-connections 2", d.closed)
  a.socket.end()
  c.socket.end()
  await withTimeout("connections A and C closing", Promise.all([a.closed, c.closed]))
  await allClosed()

  const b = await connect(tcpPort)
  b.socket.write(`${"a".repeat(100)}\n`)
  await withTimeout(`caps closing connection B, whose line is over ${LIMIT_BYTES} bytes`, b.closed)
  if (b.lines.length !== 0) throw new Error(`connection B was answered: ${b.lines.join(",")}`)

  // The too-large datagram goes first, to the same server socket: the replies to the later ones say caps has
  // read it.
  const tooLarge = Dgram.createSocket("udp4")
  await new Promise<void>((resolve) => tooLarge.bind(0, HOST, resolve))
  await new Promise<void>((resolve, reject) =>
    tooLarge.send(new Uint8Array(100).fill(0x73), udpPort, HOST, (error) => error ? reject(error) : resolve())
  )
  tooLarge.close()
  const encoder = new TextEncoder()
  const udp = [
    ...Array.from({ length: UDP_DATAGRAMS }, (_, i) => encoder.encode(`sea ${i}`)),
    ...Array.from({ length: INVALID_DATAGRAMS }, () => INVALID),
  ]
  const udpReplies = await udpExchange(udpPort, udp)
  const expected = [...Array(UDP_DATAGRAMS).fill("1"), ...Array(INVALID_DATAGRAMS).fill("1")]
  if (udpReplies.join(",") !== expected.join(",")) throw new Error(`unexpected UDP replies: ${udpReplies.join(",")}`)
  await allClosed()
  return { udpRequestBytes: udp.reduce((sum, d) => sum + d.length, 0) }
}

// --- the run ---------------------------------------------------------------------------------------------------

const children: Array<Child> = []
let directory: string | undefined

const cleanUp = async () => {
  // The last started first: Prometheus, then caps.
  for (const child of children.splice(0).reverse()) await child.stop()
  if (directory !== undefined) Fs.rmSync(directory, { recursive: true, force: true })
  directory = undefined
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    step(`${signal}: stopping what it started`)
    void cleanUp().finally(() => process.exit(130))
  })
}

const main = async (): Promise<boolean> => {
  if (!Fs.existsSync(PROMETHEUS)) installPrometheus()
  directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-prometheus-"))

  const caps = await startCaps("serve", [
    "--metrics-port",
    "0",
    "--transform",
    "count:s",
    "--max-connections",
    "2",
    "--max-line-bytes",
    String(LIMIT_BYTES),
    "--max-datagram-bytes",
    String(LIMIT_BYTES),
  ])
  // SIGTERM, its graceful stop; SIGKILL if it has not exited within 10 s.
  const stopCaps = async () => void await caps.terminate(10_000)
  children.push({ name: "caps", pid: caps.pid, output: caps.stderr, stop: stopCaps })
  const metricsPort = caps.metricsPort!
  step(`caps serve (pid ${caps.pid}): TCP ${caps.tcpPort}, UDP ${caps.udpPort}, /metrics on ${metricsPort}`)

  const { child, url } = await startPrometheus(directory, `${HOST}:${metricsPort}`)
  children.push(child)
  step(`prometheus (pid ${child.pid}) on ${url}, scraping every 1 s`)
  await waitFor(
    "Prometheus reporting the caps target up",
    async () => (await target(url))?.health === "up" || undefined,
    30_000,
  )

  step("sending the traffic")
  const { udpRequestBytes } = await sendTraffic(caps, metricsPort)
  const trafficEnded = Date.now()
  await waitFor("a scrape that began after the traffic", async () => {
    const t = await target(url)
    return t !== undefined && t.health === "up" && Date.parse(t.lastScrape) > trafficEnded ? true : undefined
  })

  const tcpRequestBytes = TCP_LINES * (SENTENCE.length + 1) + "s\n".length
  const answeredUdp = UDP_DATAGRAMS + INVALID_DATAGRAMS
  const version = JSON.parse(Fs.readFileSync(Path.join(ROOT, "package.json"), "utf8")).version
  const expectations: ReadonlyArray<readonly [string, number | typeof NO_SERIES]> = [
    ['up{job="caps"}', 1],
    ['caps_requests_total{transport="tcp",result="answered"}', TCP_LINES + 1],
    ['caps_requests_total{transport="tcp",result="refused"}', 1],
    ['caps_requests_total{transport="tcp",result="failed"}', 0],
    ['caps_requests_total{transport="udp",result="answered"}', answeredUdp],
    ['caps_requests_total{transport="udp",result="refused"}', 1],
    ['caps_requests_total{transport="udp",result="failed"}', 0],
    ['caps_udp_datagrams_refused_total{reason="too_large"}', 1],
    ['sum(caps_udp_datagrams_refused_total{reason!="too_large"})', 0],
    ['caps_invalid_utf8_sequences_total{transport="udp"}', INVALID_DATAGRAMS],
    ['caps_invalid_utf8_sequences_total{transport="tcp"}', 0],
    ["caps_tcp_connections_total", 3],
    ["caps_tcp_connections_rejected_total", 1],
    ["caps_tcp_connections_active", 0],
    ['caps_tcp_connections_closed_total{reason="peer"}', 2],
    ['caps_tcp_connections_closed_total{reason="too_long"}', 1],
    ['sum(caps_tcp_connections_closed_total{reason!~"peer|too_long"})', 0],
    ['caps_request_duration_seconds_count{transport="tcp"}', TCP_LINES + 1],
    ['caps_request_duration_seconds_count{transport="udp"}', answeredUdp],
    ['caps_request_duration_seconds_bucket{transport="udp",le="+Inf"}', answeredUdp],
    ['caps_request_duration_seconds_sum{transport="tcp"} > bool 0', 1],
    ['histogram_quantile(0.5, caps_request_duration_seconds_bucket{transport="tcp"}) <= bool 10', 1],
    ['caps_request_size_bytes_sum{transport="tcp"}', tcpRequestBytes],
    ['caps_request_size_bytes_sum{transport="udp"}', udpRequestBytes],
    ['caps_reply_size_bytes_sum{transport="tcp"}', (TCP_LINES + 1) * 2],
    ['caps_reply_size_bytes_sum{transport="udp"}', answeredUdp],
    // caps on Deno runs without --allow-read (CapsServer.ts): it cannot read the kernel's count in /proc, and then
    // exports no such series (the README's metrics table says so).
    ["caps_udp_datagrams_dropped_total", isDeno ? NO_SERIES : 0],
    ["caps_udp_send_errors_total", 0],
    ["caps_tls_handshake_failures_total", 0],
    [`caps_build_info{version="${version}",runtime="${isDeno ? "deno" : "node"}"}`, 1],
  ]
  const rows: Array<readonly [string, string, string, string]> = []
  for (const [promql, expected] of expectations) {
    const values = await query(url, promql)
    const got = values.length === 1
      ? String(values[0])
      : values.length === 0
      ? "(no series)"
      : `${values.length} series`
    rows.push([promql, String(expected), got, got === String(expected) ? "ok" : "MISMATCH"])
  }
  const header = ["query (Prometheus /api/v1/query)", "expected", "Prometheus", ""] as const
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const format = (row: ReadonlyArray<string>) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd()
  console.log(["", format(header), format(widths.map((w) => "-".repeat(w))), ...rows.map(format), ""].join("\n"))
  const mismatches = rows.filter((r) => r[3] !== "ok").length
  step(mismatches === 0 ? `all ${rows.length} series as expected` : `${mismatches} of ${rows.length} series differ`)
  return mismatches === 0
}

let passed = false
try {
  passed = await main()
} catch (error) {
  console.error(`test:prometheus: ${error instanceof Error ? error.message : String(error)}`)
  for (const child of children) console.error(`--- ${child.name}'s output (pid ${child.pid})\n${child.output()}`)
} finally {
  await cleanUp()
}
process.exit(passed ? 0 : 1)
