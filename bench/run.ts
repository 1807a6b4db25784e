// bench/run.ts: `npm run bench`, caps as the README starts it against hand-written baselines launched the same way.
//
// One run builds the C tools, then for each launcher (how a user starts caps: `npm start`, the `caps` bin,
// `deno run`) and workload (TCP and UDP, ping-pong and throughput) starts a fresh server per measurement,
// alternating baseline, caps, and caps with its metrics endpoint on (scraped every second, as Prometheus would)
// round after round so that drift on the machine hits all alike. It then times
// one-shot clients (`udp-client -m hello`, `tcp-client -m hello`) launched each way, again alternating. It
// reports medians and caps/baseline ratios as tables on stdout, a JSON file with every run, and an SVG chart of
// the ratios. Every reply is verified; a wrong answer fails the run. bench/README.md explains the workloads,
// the launchers and the fairness measures.
//
// Runs with the project's pinned Node (`node bench/run.ts`, type stripping), no dependencies.

import { spawn, spawnSync } from "node:child_process"
import console from "node:console"
import * as dgram from "node:dgram"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import process from "node:process"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "")
const BUILD_DIR = path.join(ROOT, "bench", ".build")
const LOADGEN = path.join(BUILD_DIR, "loadgen")
const FASTSERVER = path.join(BUILD_DIR, "fastserver")
const ONESHOT = path.join(BUILD_DIR, "oneshot")
const HOST = "127.0.0.1"
// A line announcing readiness, and the first IPv4 or bracketed IPv6 host:port on it.
const READY_LINE = /ready/i
const READY_ADDRESS = /(\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):(\d+)/
const READY_DEADLINE_MS = 20_000
const STOP_GRACE_MS = 3_000
/** The sentence of the one-shot clients, and what they must print. */
const CLIENT_MESSAGE = "hello"
const CLIENT_REPLY = "HELLO"

type Runtime = "node" | "deno"
type Proto = "tcp" | "udp"
/** What serves: caps+metrics is caps's command with `--metrics-port`, scraped during the load. */
type Impl = "baseline" | "caps" | "caps+metrics" | "fastserver"
type LauncherName = "npm" | "node" | "deno"

/**
 * How a user starts caps, and how the baseline is started the same way. Commands are templates: {node} and
 * {deno} are the project's pinned binaries, {proto} is tcp or udp, {host} and {port} are filled in per run,
 * {message} is the one-shot clients' sentence. `npm` is whatever npm runs the harness (the README's npm).
 */
interface Launcher {
  readonly name: LauncherName
  readonly runtime: Runtime
  /** What the README calls it. */
  readonly label: string
  readonly caps: { readonly server: string; readonly client: string }
  readonly baseline: { readonly server: string; readonly client: string }
}

const LAUNCHERS: ReadonlyArray<Launcher> = [
  {
    // The README's Node commands: `npm start` serves both protocols; the clients through `npm run caps --`.
    // npm costs a few hundred ms of its own, so the baseline goes through an npm script too.
    name: "npm",
    runtime: "node",
    label: "npm start / npm run caps --",
    caps: {
      server: "npm start -- --host {host} --port {port}",
      client: "npm run caps -- {proto}-client -m {message} --host {host} --port {port}",
    },
    baseline: {
      server: "npm run bench:baseline -- serve --host {host} --port {port}",
      client: "npm run bench:baseline -- {proto}-client -m {message} --host {host} --port {port}",
    },
  },
  {
    // The installed `caps` command (package.json "bin"), against `node baseline.mjs`: no npm on either side.
    name: "node",
    runtime: "node",
    label: "caps bin: node dist/caps.mjs",
    caps: {
      server: "{node} dist/caps.mjs {proto}-server --host {host} --port {port}",
      client: "{node} dist/caps.mjs {proto}-client -m {message} --host {host} --port {port}",
    },
    baseline: {
      server: "{node} bench/baseline/{proto}-server.mjs --host {host} --port {port}",
      client: "{node} bench/baseline/{proto}-client.mjs -m {message} --host {host} --port {port}",
    },
  },
  {
    // The README's Deno command, against `deno run baseline.mjs` with the permissions it needs.
    name: "deno",
    runtime: "deno",
    label: "deno run scripts/caps.mjs",
    caps: {
      server: "{deno} run --allow-net --allow-env --allow-read scripts/caps.mjs serve --host {host} --port {port}",
      client: "{deno} run --allow-net --allow-env --allow-read scripts/caps.mjs {proto}-client -m {message} " +
        "--host {host} --port {port}",
    },
    baseline: {
      server: "{deno} run --allow-net --allow-env bench/baseline/serve.mjs --host {host} --port {port}",
      client: "{deno} run --allow-net --allow-env bench/baseline/{proto}-client.mjs -m {message} " +
        "--host {host} --port {port}",
    },
  },
]

interface Workload {
  readonly name: string
  readonly proto: Proto
  /** TCP connections or UDP sockets. */
  readonly conns: number
  /** Requests in flight per connection or socket. */
  readonly depth: number
  /**
   * Busy-poll in the generator. With one request in flight the client would otherwise sleep between replies,
   * and waking a sleeping vCPU costs this machine hundreds of µs: the measurement would be of that, not of
   * the server.
   */
  readonly spin: boolean
  /** Saturates the server: what a paired run (both servers at once, --paired) compares. */
  readonly saturates: boolean
  readonly description: string
}

const WORKLOADS: ReadonlyArray<Workload> = [
  {
    name: "tcp-pingpong",
    proto: "tcp",
    conns: 1,
    depth: 1,
    spin: true,
    saturates: false,
    description: "1 connection, 1 request in flight: latency of one round trip",
  },
  {
    name: "tcp-throughput",
    proto: "tcp",
    conns: 50,
    depth: 16,
    spin: false,
    saturates: true,
    description: "50 connections x 16 pipelined requests: how many lines per second the server sustains",
  },
  {
    name: "udp-pingpong",
    proto: "udp",
    conns: 1,
    depth: 1,
    spin: true,
    saturates: false,
    description: "1 socket, 1 datagram outstanding: latency of one round trip",
  },
  {
    name: "udp-throughput",
    proto: "udp",
    conns: 16,
    depth: 8,
    spin: false,
    saturates: true,
    description: "16 sockets x 8 outstanding datagrams: how many datagrams per second the server sustains",
  },
]

/**
 * Steal (CPU time the hypervisor gave another guest while this one wanted it), % of one CPU over a run's load,
 * above which the run is measured again (`--remeasure`): on a shared VM, bursts of 30 to 99% were seen, which
 * halve a server's throughput without any process of this machine being busy (`foreign` stays 0).
 */
const STEAL_LIMIT_PCT = 10

/** The targets of issue 7, for the summary's verdicts (never an assertion: a noisy machine fails none). */
const TARGETS = {
  rps: { atLeast: 1.0, text: "throughput >= 1.0x" },
  p99Us: { atMost: 1.1, text: "p99 <= 1.1x" },
  peakMiB: { atMost: 1.5, text: "peak memory <= 1.5x" },
  firstMs: { atMost: 2.0, text: "first answer <= 2x" },
  wallMs: { atMost: 2.0, text: "one-shot client wall time <= 2x" },
} as const

// ---------- options ----------

const HELP = `usage: node bench/run.ts [options]     (npm run bench -- [options])

  --duration S       measured seconds per run (default 5; smoke 0.5)
  --warmup S         unmeasured load before each measurement (default 1; smoke 0.25)
  --rounds N         baseline/caps/caps+metrics rounds per workload and launcher (default 3; smoke and
                     calibrate 1)
  --payload BYTES    request size without the TCP newline, 16..65507 (default 64)
  --launchers LIST   comma-separated subset of ${LAUNCHERS.map((l) => l.name).join(", ")} (default all)
  --runtime R        node (= npm,node) | deno | both: another way to choose launchers
  --workloads LIST   comma-separated subset of ${WORKLOADS.map((w) => w.name).join(", ")}
  --clients N        one-shot client launches per command, alternating caps and baseline (default 15;
                     smoke 1); 0 for none
  --starts N         extra launches of each server per protocol, timed to the first answer only, the servers
                     alternating (default 9; smoke 1); the start-up target is judged on these; 0 for none
  --paired N         rounds of each throughput workload with the baseline and caps served at once, both on
                     CPU 0 and each loaded by a generator of its own on CPU 1, so that steal and other noise
                     fall on both alike; reports caps's answered requests and CPU per request against the
                     baseline's (default: --rounds; smoke 1); 0 for none
  --remeasure N      a run during which the hypervisor took (steal) over ${STEAL_LIMIT_PCT}% of a CPU is measured again, up to
                     N times (default 2; smoke 0); the runs set aside are kept in the JSON file ("remeasured")
  --smoke            short runs, 1 round: proves the pipeline (every mode exits 1 on any failure)
                     (writes to bench/.build/smoke.{json,svg} unless --json/--svg are given)
  --calibrate        loadgen against bench/fastserver.c (C, epoll) and the Node baseline, to show the
                     generator is not the bottleneck (writes bench/.build/calibration.json)
  --json PATH        results file (default bench/results.json)
  --svg PATH         ratio chart (default docs/bench.svg)
  --caps-cmd CMD     the caps server command of every chosen launcher (env CAPS_BENCH_CAPS_CMD), e.g.
                     "{node} bench/baseline/{proto}-server.mjs --host {host} --port {port}" for a self-check;
                     placeholders {node} {deno} {proto} {host} {port}
  --no-metrics       leave out caps+metrics (caps's command plus --metrics-port, /metrics scraped every
                     second during the load); --calibrate never runs it
  --no-pin           do not pin the server to CPU 0 and the generator and clients to CPU 1
  --render PATH      redraw the tables and --svg from a results file, measuring nothing
  --help
`

interface Options {
  readonly duration: number
  readonly warmup: number
  readonly rounds: number
  readonly payload: number
  readonly launchers: ReadonlyArray<Launcher>
  readonly workloads: ReadonlyArray<Workload>
  readonly clientReps: number
  /** Extra server launches per launcher, protocol and server, for the start-up figure. */
  readonly starts: number
  /** How many times a run is measured again when the hypervisor took over `STEAL_LIMIT_PCT` of a CPU during it. */
  readonly remeasure: number
  /** Paired rounds of each saturating workload (both servers at once). */
  readonly paired: number
  readonly smoke: boolean
  readonly calibrate: boolean
  readonly jsonPath: string
  readonly svgPath: string | null
  readonly capsCmd: string | null
  /** Whether caps+metrics runs beside caps. */
  readonly metrics: boolean
  readonly pin: boolean
  /** A results file to redraw instead of measuring. */
  readonly render: string | null
}

function fail(message: string): never {
  console.error(`bench: ${message}`)
  process.exit(2)
}

function positive(name: string, raw: string | undefined, fallback: number, integer: boolean): number {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) fail(`bad --${name}: ${raw}`)
  return value
}

function parseOptions(argv: ReadonlyArray<string>): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: "string" },
      warmup: { type: "string" },
      rounds: { type: "string" },
      payload: { type: "string" },
      launchers: { type: "string" },
      runtime: { type: "string" },
      workloads: { type: "string" },
      clients: { type: "string" },
      starts: { type: "string" },
      remeasure: { type: "string" },
      paired: { type: "string" },
      smoke: { type: "boolean", default: false },
      calibrate: { type: "boolean", default: false },
      json: { type: "string" },
      svg: { type: "string" },
      "caps-cmd": { type: "string" },
      "no-metrics": { type: "boolean", default: false },
      "no-pin": { type: "boolean", default: false },
      render: { type: "string" },
      help: { type: "boolean", default: false },
    },
  })
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const smoke = values.smoke
  const calibrate = values.calibrate
  const runtime = values.runtime
  if (runtime !== undefined && runtime !== "node" && runtime !== "deno" && runtime !== "both") {
    fail(`bad --runtime: ${runtime}`)
  }
  const launcherNames = values.launchers?.split(",").map((name) => name.trim()) ??
    (runtime === "node" ? ["npm", "node"] : runtime === "deno" ? ["deno"] : LAUNCHERS.map((l) => l.name))
  const launchers = calibrate
    ? LAUNCHERS.filter((l) => l.name === "node")
    : launcherNames.map((name) => LAUNCHERS.find((l) => l.name === name) ?? fail(`unknown launcher ${name}`))
  const names = values.workloads?.split(",").map((name) => name.trim()) ?? WORKLOADS.map((w) => w.name)
  const workloads = names.map((name) => WORKLOADS.find((w) => w.name === name) ?? fail(`unknown workload ${name}`))
  const payload = positive("payload", values.payload, 64, true)
  if (payload < 16 || payload > 65507) fail("--payload must be 16..65507 (the UDP limit)")
  const duration = positive("duration", values.duration, smoke ? 0.5 : 5, false)
  if (duration <= 0) fail("--duration must be positive")
  const rounds = positive("rounds", values.rounds, smoke || calibrate ? 1 : 3, true)
  if (rounds < 1) fail("--rounds must be at least 1")
  const defaultJson = calibrate
    ? "bench/.build/calibration.json"
    : smoke
    ? "bench/.build/smoke.json"
    : "bench/results.json"
  const defaultSvg = calibrate ? null : smoke ? "bench/.build/smoke.svg" : "docs/bench.svg"
  return {
    duration,
    warmup: positive("warmup", values.warmup, smoke ? 0.25 : 1, false),
    rounds,
    payload,
    launchers,
    workloads,
    clientReps: calibrate ? 0 : positive("clients", values.clients, smoke ? 1 : 15, true),
    starts: calibrate ? 0 : positive("starts", values.starts, smoke ? 1 : 9, true),
    remeasure: positive("remeasure", values.remeasure, smoke ? 0 : 2, true),
    paired: calibrate ? 0 : positive("paired", values.paired, rounds, true),
    smoke,
    calibrate,
    jsonPath: path.resolve(values.json ?? path.join(ROOT, defaultJson)),
    svgPath: values.svg !== undefined ? path.resolve(values.svg) : defaultSvg && path.join(ROOT, defaultSvg),
    capsCmd: values["caps-cmd"] ?? process.env["CAPS_BENCH_CAPS_CMD"] ?? null,
    metrics: !calibrate && !values["no-metrics"],
    pin: !values["no-pin"],
    render: values.render !== undefined ? path.resolve(values.render) : null,
  }
}

// ---------- child processes ----------

const live = new Set<number>()

interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

/** Runs a command to completion, killed (whole process group) if it outlives its deadline or is aborted. */
function runToEnd(argv: ReadonlyArray<string>, deadlineMs: number, abort?: AbortSignal): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true })
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text))
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr = (stderr + text).slice(-4000)))
    const pid = child.pid
    if (pid !== undefined) live.add(pid)
    const timer = setTimeout(() => {
      timedOut = true
      if (pid !== undefined) killGroup(pid, "SIGKILL")
    }, deadlineMs)
    abort?.addEventListener("abort", () => pid !== undefined && killGroup(pid, "SIGKILL"), { once: true })
    child.on("error", (error) => {
      stderr += String(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (pid !== undefined) live.delete(pid)
      resolve({ code, signal, stdout, stderr, timedOut })
    })
  })
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // Already gone.
  }
}

function pinned(cpu: number, argv: ReadonlyArray<string>, pin: boolean): Array<string> {
  return pin ? ["taskset", "-c", String(cpu), ...argv] : [...argv]
}

function tasksetWorks(): boolean {
  if (os.availableParallelism() < 2) return false
  const result = spawnSync("taskset", ["-c", "1", "true"], { timeout: 5_000 })
  return result.status === 0
}

function version(argv: ReadonlyArray<string>): string {
  const result = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 10_000 })
  return result.status === 0 ? result.stdout.split("\n")[0].trim() : "unavailable"
}

function build(): void {
  fs.mkdirSync(BUILD_DIR, { recursive: true })
  for (const name of ["loadgen", "fastserver", "oneshot"]) {
    const argv = ["-O2", "-Wall", "-o", path.join(BUILD_DIR, name), path.join(ROOT, "bench", `${name}.c`)]
    const result = spawnSync("gcc", argv, { encoding: "utf8", timeout: 60_000 })
    if (result.status !== 0) fail(`gcc ${argv.join(" ")} failed:\n${result.stderr ?? String(result.error)}`)
  }
}

// ---------- /proc ----------

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100

function readProc(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return null
  }
}

/** Peak resident set (VmHWM) in MiB. */
function peakMiB(pid: number): number | null {
  const match = /VmHWM:\s+(\d+)\s+kB/.exec(readProc(`/proc/${pid}/status`) ?? "")
  return match ? Number(match[1]) / 1024 : null
}

/** User + system CPU seconds of a process, all threads. */
function processCpu(pid: number): number | null {
  const stat = readProc(`/proc/${pid}/stat`)
  if (stat === null) return null
  // The command name may contain spaces and parentheses: fields are counted after its closing ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** Busy (user + nice + system) and steal CPU seconds of the whole machine. */
function machineCpu(): { readonly busy: number; readonly steal: number } {
  const fields = (readProc("/proc/stat") ?? "").split("\n")[0].trim().split(/\s+/).slice(1).map(Number)
  return { busy: (fields[0] + fields[1] + fields[2]) / CLOCK_TICKS, steal: (fields[7] ?? 0) / CLOCK_TICKS }
}

function exeOf(pid: number): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`)
  } catch {
    return null
  }
}

/**
 * The process that actually serves: the deepest process of the spawned tree that runs the expected binary.
 * `taskset` execs in place, so for a direct launch that is the spawned pid itself. Under `npm start` npm
 * itself may run on the same Node binary; the server is its descendant (npm's `sh -c` execs `node`).
 */
function servingPid(pid: number, expectedExe: string): number {
  let found = exeOf(pid) === expectedExe ? pid : null
  const children = new Map<number, Array<number>>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const stat = readProc(`/proc/${entry}/stat`)
    if (stat === null) continue
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
  }
  const queue = [pid]
  while (queue.length > 0) {
    const parent = queue.shift() ?? pid
    for (const child of children.get(parent) ?? []) {
      if (exeOf(child) === expectedExe) found = child
      queue.push(child)
    }
  }
  return found ?? pid
}

// ---------- servers ----------

// Ports are picked below the kernel's ephemeral range: a port in it may be held meanwhile by any connection on the
// machine (other programs', the generator's), and a server given it would fail to bind.
const EPHEMERAL_START = Number(readProc("/proc/sys/net/ipv4/ip_local_port_range")?.trim().split(/\s+/)[0]) || 32768
const PORT_FLOOR = Math.min(20000, EPHEMERAL_START - 1000)

function bindable(proto: Proto, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (proto === "tcp") {
      const server = net.createServer()
      server.once("error", () => resolve(false))
      server.listen(port, HOST, () => server.close(() => resolve(true)))
    } else {
      const socket = dgram.createSocket("udp4")
      socket.once("error", () => resolve(false))
      socket.bind(port, HOST, () => socket.close(() => resolve(true)))
    }
  })
}

/** A port free for the protocol, or for both (`serve` binds UDP and TCP on one number). */
async function freePort(proto: Proto | "both"): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_FLOOR + Math.floor(Math.random() * (EPHEMERAL_START - PORT_FLOOR))
    const tcp = proto === "udp" || await bindable("tcp", port)
    const udp = proto === "tcp" || (tcp && await bindable("udp", port))
    if (tcp && udp) return port
  }
  fail("no free port below the ephemeral range")
}

interface Binaries {
  readonly node: string
  readonly deno: string
}

function expand(template: string, bins: Binaries, fields: Record<string, string>): Array<string> {
  let text = template.replaceAll("{node}", bins.node).replaceAll("{deno}", bins.deno)
  for (const [key, value] of Object.entries(fields)) text = text.replaceAll(`{${key}}`, value)
  return text.split(/\s+/).filter((word) => word.length > 0)
}

/** caps with its operators' endpoint on: the same command plus the flag that every caps server command takes. */
function withMetrics(template: string): string {
  return `${template} ${METRICS_FLAG}`
}

/** The command template of a server (fastserver has none: it is not launched like a user's program). */
function serverTemplate(options: Options, launcher: Launcher, impl: Exclude<Impl, "fastserver">): string {
  const caps = options.capsCmd ?? launcher.caps.server
  return impl === "baseline" ? launcher.baseline.server : impl === "caps" ? caps : withMetrics(caps)
}

/** The command of a server, and the binary of the process that serves (for /proc). */
function serverArgv(ctx: Context, launcher: Launcher, impl: Impl, proto: Proto, port: number, metricsPort: number) {
  if (impl === "fastserver") {
    return { argv: [FASTSERVER, proto, "--host", HOST, "--port", String(port)], exe: FASTSERVER }
  }
  const argv = expand(serverTemplate(ctx.options, launcher, impl), ctx.bins, {
    proto,
    host: HOST,
    port: String(port),
    metricsPort: String(metricsPort),
  })
  return { argv, exe: launcher.runtime === "node" ? ctx.bins.node : ctx.bins.deno }
}

/** Whether a server command serves both protocols on its port (`serve`, `npm start`). */
function servesBoth(argv: ReadonlyArray<string>): boolean {
  return argv.includes("serve") || (argv[0] === "npm" && argv[1] === "start")
}

interface Server {
  readonly pid: number
  /** Resolves with the port from the ready line; rejects if the server exits or stays silent too long. */
  readonly ready: Promise<number>
  /** Resolves when the server process has exited. */
  readonly exited: Promise<void>
  readonly log: () => string
}

function startServer(argv: ReadonlyArray<string>): Server {
  const child = spawn(argv[0], argv.slice(1), {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so stopping it also stops anything it started
    env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1", NO_COLOR: "1" },
  })
  const pid = child.pid ?? fail(`could not start ${argv.join(" ")}`)
  live.add(pid)
  let tail = ""
  let hasExited = false
  const exited = new Promise<void>((resolve) =>
    child.on("exit", () => {
      hasExited = true
      live.delete(pid)
      resolve()
    })
  )
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${READY_DEADLINE_MS} ms`)), READY_DEADLINE_MS)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    const onLine = (line: string) => {
      tail = (tail + line + "\n").slice(-2000)
      const match = READY_LINE.test(line) ? READY_ADDRESS.exec(line) : null
      if (match) {
        clearTimeout(timer)
        resolve(Number(match[2]))
      }
    }
    // The ready line is expected on stdout; stderr is read too so a logger writing there still works.
    readline.createInterface({ input: child.stdout }).on("line", onLine)
    readline.createInterface({ input: child.stderr }).on("line", onLine)
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error("server exited before it was ready"))
    })
  })
  ready.catch(() => undefined)
  return {
    pid,
    ready,
    exited,
    log: () => (hasExited ? "(exited) " : "") + tail.trim().split("\n").slice(-5).join(" | "),
  }
}

async function stopServer(server: Server): Promise<void> {
  killGroup(server.pid, "SIGTERM")
  const timer = new Promise<"late">((resolve) => setTimeout(() => resolve("late"), STOP_GRACE_MS).unref())
  if ((await Promise.race([server.exited, timer])) === "late") {
    killGroup(server.pid, "SIGKILL")
    await server.exited
  }
  // Whatever else was left in its group goes too.
  killGroup(server.pid, "SIGKILL")
}

// ---------- the metrics scraper ----------

const SCRAPE_INTERVAL_MS = 1_000
/** Prometheus's default scrape timeout is 10 s; a scrape this slow under load is a failure worth seeing. */
const SCRAPE_TIMEOUT_MS = 5_000
const SCRAPE_SERIES = "caps_requests_total"
/** What turns caps into caps+metrics; {metricsPort} is a free port per run. */
const METRICS_FLAG = "--metrics-port {metricsPort}"
const SCRAPE_SAMPLE = /^caps_requests_total(?:\{[^}]*\})?\s+(\S+)/gm

interface ScrapeReport {
  readonly url: string
  /** Scrapes answered 200 with caps_requests_total, the final one after the load included. */
  readonly scrapes: number
  readonly slowestMs: number | null
  /** The last scrape's caps_requests_total, summed over its series (transport x result). */
  readonly requestsTotal: number | null
  /** The first scrape that failed, if one did (the run then fails). */
  readonly error: string | null
}

/** One GET of /metrics: its caps_requests_total summed, or why it is not a good answer. */
async function scrapeOnce(url: string): Promise<{ readonly ms: number; readonly requestsTotal: number } | string> {
  const startedAt = process.hrtime.bigint()
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })
    const body = await response.text()
    if (response.status !== 200) return `HTTP ${response.status}: ${body.slice(0, 200)}`
    const samples = [...body.matchAll(SCRAPE_SAMPLE)].map((match) => Number(match[1]))
    if (samples.length === 0) return `no ${SCRAPE_SERIES} in ${body.length} bytes: ${body.slice(0, 200)}`
    return { ms: Number(process.hrtime.bigint() - startedAt) / 1e6, requestsTotal: samples.reduce((a, b) => a + b) }
  } catch (error) {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  }
}

/**
 * Scrapes /metrics at once and then every second, as Prometheus would, until stopped; `stop` scrapes a last
 * time, after the load, so that its count covers every request served. The first failure ends the scraping.
 */
function startScraper(metricsPort: number): { readonly stop: () => Promise<ScrapeReport> } {
  const url = `http://${HOST}:${metricsPort}/metrics`
  const times: Array<number> = []
  let requestsTotal: number | null = null
  let error: string | null = null
  let stopped = false
  let wake = () => {}
  const scrape = async () => {
    const result = await scrapeOnce(url)
    if (typeof result === "string") {
      error ??= `scrape ${times.length + 1} of ${url}: ${result}`
    } else {
      times.push(result.ms)
      requestsTotal = result.requestsTotal
    }
  }
  const firstAt = Date.now()
  const loop = async () => {
    for (let scrapes = 1;; scrapes++) {
      await scrape()
      if (stopped || error !== null) return
      // On a fixed schedule, like Prometheus: a slow scrape delays the next one, not all later ones.
      const wait = Math.max(0, firstAt + scrapes * SCRAPE_INTERVAL_MS - Date.now())
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }
  const running = loop()
  return {
    stop: async () => {
      stopped = true
      wake()
      await running
      if (error === null) await scrape()
      const slowestMs = times.length > 0 ? Math.max(...times) : null
      return { url, scrapes: times.length, slowestMs, requestsTotal, error }
    },
  }
}

// ---------- one measurement ----------

interface LoadReport {
  /** Correct replies in the measured window. */
  readonly requests: number
  /** Correct replies over warm-up and measured window. */
  readonly answered: number
  readonly rps: number
  readonly p50_us: number
  readonly p90_us: number
  readonly p99_us: number
  readonly p999_us: number
  readonly max_us: number
  readonly errors: number
  readonly losses: number
  readonly late: number
  readonly refused: number
  readonly closed: number
  readonly cpu_pct: number
  readonly first_error: string
}

interface Metrics {
  readonly rps: number
  readonly p50Us: number
  readonly p99Us: number
  readonly peakMiB: number | null
  readonly firstMs: number
  /** Server CPU over the load, % of one core: near 100 means the server is the bottleneck, as intended. */
  readonly serverCpuPct: number | null
  readonly loadgenCpuPct: number
  /** CPU used on the machine by neither server nor generator, % of one core: a noise indicator. */
  readonly foreignCpuPct: number
  readonly stealPct: number
}

interface RunRecord {
  readonly launcher: LauncherName
  readonly runtime: Runtime
  readonly workload: string
  readonly impl: Impl
  readonly round: number
  readonly command: ReadonlyArray<string>
  readonly servingExe: string | null
  readonly ok: boolean
  readonly error: string | null
  readonly metrics: Metrics | null
  readonly load: LoadReport | null
  /** caps+metrics only: its /metrics scraped during the load. */
  readonly scrape: ScrapeReport | null
}

function lastJsonLine(stdout: string): Record<string, unknown> | null {
  const line = stdout.trim().split("\n").at(-1)
  if (line === undefined || line.length === 0) return null
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : null
  } catch {
    return null
  }
}

function numberField(record: Record<string, unknown>, key: string): number {
  const value = record[key]
  if (typeof value !== "number") throw new Error(`loadgen output lacks ${key}`)
  return value
}

function toLoadReport(record: Record<string, unknown>): LoadReport {
  const n = (key: string) => numberField(record, key)
  return {
    requests: n("requests"),
    answered: n("answered"),
    rps: n("rps"),
    p50_us: n("p50_us"),
    p90_us: n("p90_us"),
    p99_us: n("p99_us"),
    p999_us: n("p999_us"),
    max_us: n("max_us"),
    errors: n("errors"),
    losses: n("losses"),
    late: n("late"),
    refused: n("refused"),
    closed: n("closed"),
    cpu_pct: n("cpu_pct"),
    first_error: typeof record["first_error"] === "string" ? record["first_error"] : "",
  }
}

interface Context {
  readonly options: Options
  readonly bins: Binaries
}

/** Starts a server, waits for its first correct answer, and returns it running (the caller stops it). */
async function launch(ctx: Context, launcher: Launcher, impl: Impl, proto: Proto) {
  const { argv, exe } = serverArgv(ctx, launcher, impl, proto, 0, 0)
  const port = await freePort(servesBoth(argv) ? "both" : proto)
  let metricsPort: number | null = null
  while (impl === "caps+metrics" && (metricsPort === null || metricsPort === port)) metricsPort = await freePort("tcp")
  const command = serverArgv(ctx, launcher, impl, proto, port, metricsPort ?? 0).argv
  // The port is chosen here rather than with --port 0 so the probe can knock from the moment of spawning:
  // "first answer" is then launch-to-service, whatever the server prints and whenever it prints it.
  const spawnedAt = process.hrtime.bigint()
  const server = startServer(pinned(0, command, ctx.options.pin))
  const probeAbort = new AbortController()
  const probeArgv = [LOADGEN, "first", "--proto", proto, "--host", HOST, "--port", String(port)]
  probeArgv.push("--payload", String(ctx.options.payload), "--start-ns", String(spawnedAt))
  probeArgv.push("--deadline-ms", String(READY_DEADLINE_MS))
  const probe = runToEnd(pinned(1, probeArgv, ctx.options.pin), READY_DEADLINE_MS + 5_000, probeAbort.signal)
  const stop = async () => {
    probeAbort.abort()
    await stopServer(server)
    await probe
  }
  const started = async (): Promise<{ firstMs: number } | { error: string }> => {
    let readyPort: number
    try {
      readyPort = await server.ready
    } catch (error) {
      return { error: `${error instanceof Error ? error.message : String(error)}: ${server.log()}` }
    }
    if (readyPort !== port) return { error: `asked for port ${port}, server announced ${readyPort}: ${server.log()}` }
    const first = await probe
    const firstMs = lastJsonLine(first.stdout)?.["first_ms"]
    if (typeof firstMs !== "number") {
      return { error: `no first answer: ${first.stdout.trim() || first.stderr.trim()} ${server.log()}` }
    }
    return { firstMs }
  }
  return { command, exe, port, metricsPort, server, stop, started: await started() }
}

/**
 * The generator's report of a run, or why the run failed: the generator did not finish, a reply was wrong, the
 * server closed a connection, or it answered nothing (then its log says why).
 */
function judgeLoad(
  load: Finished,
  serverLog: () => string,
): { readonly report: LoadReport } | { readonly error: string; readonly report: LoadReport | null } {
  const record = lastJsonLine(load.stdout)
  if (load.timedOut || record === null || typeof record["error"] === "string" || load.code !== 0) {
    const why = load.timedOut ? "timed out" : `exit ${load.code ?? load.signal}`
    return { error: `load generator failed (${why}): ${load.stdout.trim()} ${load.stderr.trim()}`, report: null }
  }
  const report = toLoadReport(record)
  if (report.errors > 0) return { error: `${report.errors} wrong replies, first: ${report.first_error}`, report }
  if (report.closed > 0) return { error: `server closed ${report.closed} connections`, report }
  if (report.requests === 0) return { error: `no request answered: ${serverLog()}`, report }
  return { report }
}

/** The generator's command for a workload against a port. */
function loadArgvOf(options: Options, workload: Workload, port: number): Array<string> {
  const argv = [LOADGEN, workload.proto, "--host", HOST, "--port", String(port)]
  argv.push("--payload", String(options.payload))
  argv.push(workload.proto === "tcp" ? "--conns" : "--sockets", String(workload.conns))
  argv.push("--depth", String(workload.depth), "--spin", workload.spin ? "1" : "0")
  argv.push("--warmup", String(options.warmup), "--duration", String(options.duration))
  return argv
}

async function measure(ctx: Context, launcher: Launcher, workload: Workload, impl: Impl, round: number) {
  const { options } = ctx
  const launched = await launch(ctx, launcher, impl, workload.proto)
  const { command, exe, port, metricsPort, server } = launched
  const base = {
    launcher: launcher.name,
    runtime: launcher.runtime,
    workload: workload.name,
    impl,
    round,
    command,
  }
  let scrape: ScrapeReport | null = null
  const failed = (error: string, servingExe: string | null = null, load: LoadReport | null = null): RunRecord => ({
    ...base,
    servingExe,
    ok: false,
    error,
    metrics: null,
    load,
    scrape,
  })
  try {
    if ("error" in launched.started) return failed(launched.started.error)
    const { firstMs } = launched.started
    const pid = servingPid(server.pid, exe)
    const servingExe = exeOf(pid)

    const loadArgv = loadArgvOf(options, workload, port)
    // CPU counters are sampled when the warm-up should be over and again when the generator is done.
    let cpuStart: { at: bigint; server: number | null; machine: { busy: number; steal: number } } | null = null
    const sampler = setTimeout(() => {
      cpuStart = { at: process.hrtime.bigint(), server: processCpu(pid), machine: machineCpu() }
    }, options.warmup * 1000)
    const scraper = metricsPort === null ? null : startScraper(metricsPort)
    const load = await runToEnd(pinned(1, loadArgv, options.pin), (options.warmup + options.duration) * 1000 + 15_000)
    clearTimeout(sampler)
    const cpuEnd = { at: process.hrtime.bigint(), server: processCpu(pid), machine: machineCpu() }
    const peak = peakMiB(pid)
    // The last scrape comes after the CPU and memory readings, so that it weighs on none of them.
    scrape = scraper === null ? null : await scraper.stop()

    const judged = judgeLoad(load, server.log)
    if ("error" in judged) return failed(judged.error, servingExe, judged.report)
    const { report } = judged
    if (scrape?.error) return failed(`metrics ${scrape.error}`, servingExe, report)

    const start = cpuStart as { at: bigint; server: number | null; machine: { busy: number; steal: number } } | null
    const seconds = start ? Number(cpuEnd.at - start.at) / 1e9 : 0
    const serverCpu = start && start.server !== null && cpuEnd.server !== null && seconds > 0
      ? ((cpuEnd.server - start.server) / seconds) * 100
      : null
    const busyPct = start && seconds > 0 ? ((cpuEnd.machine.busy - start.machine.busy) / seconds) * 100 : 0
    const stealPct = start && seconds > 0 ? ((cpuEnd.machine.steal - start.machine.steal) / seconds) * 100 : 0
    const metrics: Metrics = {
      rps: report.rps,
      p50Us: report.p50_us,
      p99Us: report.p99_us,
      peakMiB: peak,
      firstMs,
      serverCpuPct: serverCpu,
      loadgenCpuPct: report.cpu_pct,
      foreignCpuPct: Math.max(0, busyPct - (serverCpu ?? 0) - report.cpu_pct),
      stealPct,
    }
    return { ...base, servingExe, ok: true, error: null, metrics, load: report, scrape }
  } finally {
    await launched.stop()
  }
}

/**
 * Starts each server command once, unmeasured, before its rounds: the first start after a build compiles the
 * bundle and writes its code cache (dist/caps.mjs), which every later start reads; the OS's file cache warms
 * for both sides alike.
 */
async function prime(ctx: Context, launcher: Launcher, proto: Proto, impls: ReadonlyArray<Impl>): Promise<void> {
  for (const impl of impls) {
    const launched = await launch(ctx, launcher, impl, proto)
    await launched.stop()
    if ("error" in launched.started) {
      console.log(`[${launcher.name} ${proto} ${impl}] priming failed: ${launched.started.error}`)
    }
  }
}

// ---------- server starts ----------

// ---------- paired runs ----------
//
// One server after the other, as `measure` runs them, each sees its own share of the machine's noise: on a
// shared VM, steal comes in bursts, and two identical servers measured in turn differ by up to 1.65x in
// throughput. A paired run serves the baseline and caps at once, both on CPU 0, each loaded by a generator of
// its own on CPU 1: whatever slows the machine slows both, and the kernel shares CPU 0 between them, so the
// ratio of their answered requests is the inverse ratio of their CPU per request. It compares cost, not the
// throughput of a server alone (each gets about half a core); the targets stay judged on the runs above.

interface PairedRun {
  readonly launcher: LauncherName
  readonly workload: string
  readonly impl: Impl
  readonly round: number
  readonly ok: boolean
  readonly error: string | null
  /** Correct replies in the measured window, from each server's own generator. */
  readonly answered: { readonly baseline: number; readonly candidate: number } | null
  /** Server CPU microseconds per correct reply over the measured window. */
  readonly cpuUsPerRequest: { readonly baseline: number | null; readonly candidate: number | null } | null
  readonly stealPct: number
}

async function measurePaired(
  ctx: Context,
  launcher: Launcher,
  workload: Workload,
  impl: Impl,
  round: number,
): Promise<PairedRun> {
  const { options } = ctx
  const base = { launcher: launcher.name, workload: workload.name, impl, round }
  const failed = (error: string): PairedRun => ({
    ...base,
    ok: false,
    error,
    answered: null,
    cpuUsPerRequest: null,
    stealPct: 0,
  })
  // Started in turn, the first alternating over rounds: a server started first has a moment alone with CPU 0.
  const order: ReadonlyArray<Impl> = round % 2 === 1 ? ["baseline", impl] : [impl, "baseline"]
  const servers = new Map<Impl, Awaited<ReturnType<typeof launch>>>()
  try {
    for (const which of order) servers.set(which, await launch(ctx, launcher, which, workload.proto))
    const sides = (["baseline", impl] as const).map((which) => {
      const launched = servers.get(which)!
      if ("error" in launched.started) return { which, error: launched.started.error }
      return { which, launched, pid: servingPid(launched.server.pid, launched.exe) }
    })
    const broken = sides.find((side) => "error" in side)
    if (broken !== undefined && "error" in broken) return failed(`${broken.which}: ${broken.error}`)
    const running = sides as Array<{ which: Impl; launched: Awaited<ReturnType<typeof launch>>; pid: number }>
    let cpuStart: { at: bigint; servers: Array<number | null>; steal: number } | null = null
    const sampler = setTimeout(() => {
      cpuStart = {
        at: process.hrtime.bigint(),
        servers: running.map((side) => processCpu(side.pid)),
        steal: machineCpu().steal,
      }
    }, options.warmup * 1000)
    const scrapers = running.map((side) =>
      side.launched.metricsPort === null ? null : startScraper(side.launched.metricsPort)
    )
    const deadline = (options.warmup + options.duration) * 1000 + 15_000
    const loads = await Promise.all(
      running.map((side) =>
        runToEnd(pinned(1, loadArgvOf(options, workload, side.launched.port), options.pin), deadline)
      ),
    )
    clearTimeout(sampler)
    const cpuEnd = { at: process.hrtime.bigint(), servers: running.map((side) => processCpu(side.pid)) }
    const steal = machineCpu().steal
    const scrapes = await Promise.all(scrapers.map((scraper) => scraper?.stop() ?? null))
    const reports: Array<LoadReport> = []
    for (const [i, load] of loads.entries()) {
      const judged = judgeLoad(load, running[i].launched.server.log)
      if ("error" in judged) return failed(`${running[i].which}: ${judged.error}`)
      if (scrapes[i]?.error) return failed(`${running[i].which}: metrics ${scrapes[i]!.error}`)
      reports.push(judged.report)
    }
    const start = cpuStart as { at: bigint; servers: Array<number | null>; steal: number } | null
    const seconds = start ? Number(cpuEnd.at - start.at) / 1e9 : 0
    const perRequest = (i: number): number | null => {
      const before = start?.servers[i] ?? null
      const after = cpuEnd.servers[i]
      return before === null || after === null ? null : ((after - before) * 1e6) / reports[i].requests
    }
    return {
      ...base,
      ok: true,
      error: null,
      answered: { baseline: reports[0].requests, candidate: reports[1].requests },
      cpuUsPerRequest: { baseline: perRequest(0), candidate: perRequest(1) },
      stealPct: start && seconds > 0 ? ((steal - start.steal) / seconds) * 100 : 0,
    }
  } finally {
    for (const launched of servers.values()) await launched.stop()
  }
}

function describePaired(run: PairedRun): string {
  const tag = `[${run.launcher} ${run.workload} r${run.round} paired baseline + ${run.impl}]`
  if (!run.ok || run.answered === null) return `${tag} FAILED: ${run.error}`
  const cpu = run.cpuUsPerRequest
  return `${tag} answered ${fmt(run.answered.baseline, 0)} + ${fmt(run.answered.candidate, 0)} ` +
    `(${fmtRatio(run.answered.candidate / run.answered.baseline)})  CPU per request ` +
    `${fmt(cpu?.baseline ?? null, 3)} + ${fmt(cpu?.candidate ?? null, 3)} us  steal ${fmt(run.stealPct, 0)}%`
}

interface PairedRow {
  readonly launcher: LauncherName
  readonly workload: string
  readonly impl: Impl
  readonly runs: number
  /** Medians over rounds of caps/baseline: answered requests (higher is better), CPU per request (lower). */
  readonly answered: number | null
  readonly cpuPerRequest: number | null
}

function summarisePaired(runs: ReadonlyArray<PairedRun>): Array<PairedRow> {
  const rows: Array<PairedRow> = []
  for (const run of runs) {
    if (rows.some((row) => row.launcher === run.launcher && row.workload === run.workload && row.impl === run.impl)) {
      continue
    }
    const same = runs.filter((other) =>
      other.ok && other.launcher === run.launcher && other.workload === run.workload && other.impl === run.impl
    )
    const ratios = (pick: (run: PairedRun) => number | null) =>
      median(same.map(pick).filter((ratio): ratio is number => ratio !== null && Number.isFinite(ratio)))
    rows.push({
      launcher: run.launcher,
      workload: run.workload,
      impl: run.impl,
      runs: same.length,
      answered: ratios((run) => run.answered && run.answered.candidate / run.answered.baseline),
      cpuPerRequest: ratios((run) =>
        run.cpuUsPerRequest?.candidate != null && run.cpuUsPerRequest.baseline
          ? run.cpuUsPerRequest.candidate / run.cpuUsPerRequest.baseline
          : null
      ),
    })
  }
  return rows
}

function pairedTable(rows: ReadonlyArray<PairedRow>): string {
  const lines: Array<Array<string>> = [
    "launched as|workload|server|answered caps/base|CPU per request caps/base|runs".split("|"),
  ]
  let previous = ""
  for (const row of rows) {
    lines.push([
      row.launcher !== previous ? launcherLabel(row.launcher) : "",
      row.workload,
      row.impl,
      fmtRatio(row.answered),
      fmtRatio(row.cpuPerRequest),
      String(row.runs),
    ])
    previous = row.launcher
  }
  return layout(lines, new Set([0, 1, 2]))
}

interface StartRun {
  readonly launcher: LauncherName
  readonly runtime: Runtime
  readonly proto: Proto
  readonly impl: Impl
  readonly rep: number
  readonly ok: boolean
  readonly error: string | null
  readonly firstMs: number | null
}

/**
 * Launches each server `--starts` more times per protocol, the servers of the rotation alternating, timing launch to
 * first answer only. A measured run launches its server once, and those single starts varied by a third and more
 * from round to round: too few for a start-up figure, so the target is judged on these.
 */
async function measureStarts(ctx: Context, rotation: Rotation): Promise<Array<StartRun>> {
  const runs: Array<StartRun> = []
  if (ctx.options.starts === 0) return runs
  const protos = [...new Set(ctx.options.workloads.map((workload) => workload.proto))]
  for (const launcher of ctx.options.launchers) {
    for (const proto of protos) {
      for (let rep = 1; rep <= ctx.options.starts; rep++) {
        for (const impl of rotation) {
          const launched = await launch(ctx, launcher, impl, proto)
          await launched.stop()
          const error = "error" in launched.started ? launched.started.error : null
          const firstMs = "firstMs" in launched.started ? launched.started.firstMs : null
          runs.push({
            launcher: launcher.name,
            runtime: launcher.runtime,
            proto,
            impl,
            rep,
            ok: error === null,
            error,
            firstMs,
          })
          if (error !== null) console.log(`[${launcher.name} ${proto}-server start ${rep} ${impl}] FAILED: ${error}`)
        }
      }
      const first = (impl: Impl) =>
        fmt(
          median(runs.flatMap((r) =>
            r.launcher === launcher.name && r.proto === proto && r.impl === impl ? r.firstMs ?? [] : []
          )),
          1,
        )
      console.log(
        `[${launcher.name} ${proto}-server starts] first ms: ${
          rotation.map((impl) => `${impl} ${first(impl)}`).join(", ")
        }`,
      )
    }
  }
  return runs
}

// ---------- one-shot clients ----------

interface ClientRun {
  readonly launcher: LauncherName
  readonly runtime: Runtime
  readonly proto: Proto
  readonly impl: "baseline" | "caps"
  readonly rep: number
  readonly command: ReadonlyArray<string>
  readonly ok: boolean
  readonly error: string | null
  readonly wallMs: number | null
  readonly rssMiB: number | null
}

/** Runs a one-shot client under bench/oneshot.c: wall time from fork to reaping, peak RSS of its process tree. */
async function oneShot(ctx: Context, argv: ReadonlyArray<string>) {
  const wrapped = [ONESHOT, "--timeout-ms", "20000", "--stdout-expect", CLIENT_REPLY, "--", ...argv]
  const finished = await runToEnd(pinned(1, wrapped, ctx.options.pin), 30_000)
  const record = lastJsonLine(finished.stdout)
  if (record === null || typeof record["wall_ms"] !== "number") {
    return { ok: false, error: `oneshot failed: ${finished.stdout.trim()} ${finished.stderr.trim()}` } as const
  }
  if (record["exit"] !== 0 || record["matched"] !== 1) {
    const why = record["matched"] !== 1 ? `did not print ${CLIENT_REPLY}` : `exit ${record["exit"]}`
    return { ok: false, error: `${why}: ${finished.stderr.trim().slice(-300)}` } as const
  }
  return {
    ok: true,
    wallMs: record["wall_ms"] as number,
    rssMiB: (record["maxrss_kib"] as number) / 1024,
  } as const
}

/**
 * Times one-shot `udp-client -m hello` and `tcp-client -m hello` for each launcher, caps and baseline
 * alternating, against one baseline server (both protocols) that stays up for all of them.
 */
async function measureClients(ctx: Context): Promise<Array<ClientRun>> {
  const runs: Array<ClientRun> = []
  if (ctx.options.clientReps === 0) return runs
  const port = await freePort("both")
  const serverCommand = expand("{node} bench/baseline/serve.mjs --host {host} --port {port}", ctx.bins, {
    host: HOST,
    port: String(port),
  })
  const server = startServer(pinned(0, serverCommand, ctx.options.pin))
  try {
    await server.ready
    await new Promise((resolve) => setTimeout(resolve, 200)) // both servers of serve.mjs bound
    for (const launcher of ctx.options.launchers) {
      for (const proto of ["udp", "tcp"] as const) {
        const commands = {
          baseline: expand(launcher.baseline.client, ctx.bins, {
            proto,
            host: HOST,
            port: String(port),
            message: CLIENT_MESSAGE,
          }),
          caps: expand(launcher.caps.client, ctx.bins, {
            proto,
            host: HOST,
            port: String(port),
            message: CLIENT_MESSAGE,
          }),
        }
        // One unmeasured launch each first: caps's code cache for the command, the OS's file cache for both.
        if (!ctx.options.smoke) { for (const impl of ["baseline", "caps"] as const) await oneShot(ctx, commands[impl]) }
        for (let rep = 1; rep <= ctx.options.clientReps; rep++) {
          for (const impl of ["baseline", "caps"] as const) {
            const result = await oneShot(ctx, commands[impl])
            const run: ClientRun = {
              launcher: launcher.name,
              runtime: launcher.runtime,
              proto,
              impl,
              rep,
              command: commands[impl],
              ok: result.ok,
              error: result.ok ? null : result.error,
              wallMs: result.ok ? result.wallMs : null,
              rssMiB: result.ok ? result.rssMiB : null,
            }
            runs.push(run)
            if (!run.ok) console.log(`[${launcher.name} ${proto}-client r${rep} ${impl}] FAILED: ${run.error}`)
          }
        }
        const of = (impl: string) =>
          runs.filter((r) => r.launcher === launcher.name && r.proto === proto && r.impl === impl)
        const wall = (impl: string) => fmt(median(of(impl).flatMap((r) => r.wallMs ?? [])), 1)
        console.log(`[${launcher.name} ${proto}-client] wall ms: baseline ${wall("baseline")}, caps ${wall("caps")}`)
      }
    }
  } finally {
    await stopServer(server)
  }
  return runs
}

// ---------- summary ----------

type MetricKey = "rps" | "p50Us" | "p99Us" | "peakMiB" | "firstMs" | "serverCpuPct" | "foreignCpuPct"
const METRIC_KEYS: ReadonlyArray<MetricKey> = [
  "rps",
  "p50Us",
  "p99Us",
  "peakMiB",
  "firstMs",
  "serverCpuPct",
  "foreignCpuPct",
]

type Medians = Record<MetricKey, number | null> & {
  readonly runs: number
  /** Half the range of req/s over rounds, % of the median: how far to trust a ratio. */
  readonly rpsSpreadPct: number | null
  readonly losses: number
  readonly late: number
}

/** One candidate (caps, caps+metrics or fastserver) against the reference (the first of the rotation). */
interface Row {
  readonly launcher: LauncherName
  readonly runtime: Runtime
  readonly workload: string
  readonly impl: Impl
  readonly reference: Medians
  readonly candidate: Medians
  /** candidate / reference of each median: above 1 is better for rps, worse for everything else. */
  readonly ratio: Record<MetricKey, number | null>
}

interface ClientMedians {
  readonly runs: number
  readonly wallMs: number | null
  readonly rssMiB: number | null
}

interface ClientRow {
  readonly launcher: LauncherName
  readonly runtime: Runtime
  readonly proto: Proto
  readonly baseline: ClientMedians
  readonly caps: ClientMedians
  readonly ratio: { readonly wallMs: number | null; readonly rssMiB: number | null }
}

function median(values: ReadonlyArray<number>): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function spread(values: ReadonlyArray<number>): number | null {
  const mid = median(values)
  if (mid === null || mid === 0 || values.length < 2) return null
  return ((Math.max(...values) - Math.min(...values)) / 2 / mid) * 100
}

function ratioOf(candidate: number | null, reference: number | null): number | null {
  return candidate !== null && reference !== null && reference > 0 ? candidate / reference : null
}

function medians(runs: ReadonlyArray<RunRecord>): Medians {
  const ok = runs.filter((run) => run.metrics !== null)
  const pick = (key: MetricKey) =>
    median(ok.map((run) => run.metrics?.[key]).filter((v): v is number => typeof v === "number"))
  return {
    rps: pick("rps"),
    p50Us: pick("p50Us"),
    p99Us: pick("p99Us"),
    peakMiB: pick("peakMiB"),
    firstMs: pick("firstMs"),
    serverCpuPct: pick("serverCpuPct"),
    foreignCpuPct: pick("foreignCpuPct"),
    runs: ok.length,
    rpsSpreadPct: spread(ok.map((run) => run.metrics?.rps ?? 0)),
    losses: ok.reduce((sum, run) => sum + (run.load?.losses ?? 0), 0),
    late: ok.reduce((sum, run) => sum + (run.load?.late ?? 0), 0),
  }
}

/** The servers measured, in the order of each round: the reference first, then each candidate. */
type Rotation = readonly [Impl, ...ReadonlyArray<Impl>]

function summarise(
  runs: ReadonlyArray<RunRecord>,
  scope: { readonly launchers: ReadonlyArray<LauncherName>; readonly workloads: ReadonlyArray<Workload> },
  rotation: Rotation,
): Array<Row> {
  const rows: Array<Row> = []
  for (const launcher of scope.launchers) {
    for (const workload of scope.workloads) {
      const mine = runs.filter((r) => r.launcher === launcher && r.workload === workload.name)
      if (mine.length === 0) continue
      const reference = medians(mine.filter((r) => r.impl === rotation[0]))
      for (const impl of rotation.slice(1)) {
        const candidate = medians(mine.filter((r) => r.impl === impl))
        const ratio = Object.fromEntries(
          METRIC_KEYS.map((key) => [key, ratioOf(candidate[key], reference[key])]),
        ) as Record<MetricKey, number | null>
        rows.push({ launcher, runtime: mine[0].runtime, workload: workload.name, impl, reference, candidate, ratio })
      }
    }
  }
  return rows
}

/** The metrics-on runs of one launcher and workload: their scrapes, and caps's count against the generator's. */
interface ScrapeRow {
  readonly launcher: LauncherName
  readonly workload: string
  readonly runs: number
  readonly scrapes: number
  readonly slowestMs: number | null
  /** The last scrape's caps_requests_total, summed over the runs. */
  readonly requestsTotal: number
  /** The generator's correct replies (warm-up included), summed over the same runs. */
  readonly answered: number
}

function summariseScrapes(runs: ReadonlyArray<RunRecord>): Array<ScrapeRow> {
  const rows: Array<ScrapeRow> = []
  const scraped = runs.filter((r) => r.ok && r.scrape !== null && r.scrape !== undefined && r.load !== null)
  for (const key of [...new Set(scraped.map((r) => `${r.launcher} ${r.workload}`))]) {
    const mine = scraped.filter((r) => `${r.launcher} ${r.workload}` === key)
    const slowest = mine.flatMap((r) => r.scrape?.slowestMs ?? [])
    rows.push({
      launcher: mine[0].launcher,
      workload: mine[0].workload,
      runs: mine.length,
      scrapes: mine.reduce((sum, r) => sum + (r.scrape?.scrapes ?? 0), 0),
      slowestMs: slowest.length > 0 ? Math.max(...slowest) : null,
      requestsTotal: mine.reduce((sum, r) => sum + (r.scrape?.requestsTotal ?? 0), 0),
      answered: mine.reduce((sum, r) => sum + (r.load?.answered ?? 0), 0),
    })
  }
  return rows
}

function summariseClients(runs: ReadonlyArray<ClientRun>): Array<ClientRow> {
  const rows: Array<ClientRow> = []
  const keys = [...new Set(runs.map((r) => `${r.launcher} ${r.proto}`))]
  for (const key of keys) {
    const mine = runs.filter((r) => `${r.launcher} ${r.proto}` === key)
    const of = (impl: string): ClientMedians => {
      const ok = mine.filter((r) => r.impl === impl && r.ok)
      return {
        runs: ok.length,
        wallMs: median(ok.flatMap((r) => r.wallMs ?? [])),
        rssMiB: median(ok.flatMap((r) => r.rssMiB ?? [])),
      }
    }
    const baseline = of("baseline")
    const caps = of("caps")
    rows.push({
      launcher: mine[0].launcher,
      runtime: mine[0].runtime,
      proto: mine[0].proto,
      baseline,
      caps,
      ratio: { wallMs: ratioOf(caps.wallMs, baseline.wallMs), rssMiB: ratioOf(caps.rssMiB, baseline.rssMiB) },
    })
  }
  return rows
}

/** The extra starts of one launcher and protocol: each candidate's median launch-to-first-answer against the reference's. */
interface StartRow {
  readonly launcher: LauncherName
  readonly runtime: Runtime
  readonly proto: Proto
  readonly impl: Impl
  readonly reference: { readonly runs: number; readonly firstMs: number | null }
  readonly candidate: { readonly runs: number; readonly firstMs: number | null }
  readonly ratio: number | null
}

function summariseStarts(runs: ReadonlyArray<StartRun>, rotation: Rotation): Array<StartRow> {
  const rows: Array<StartRow> = []
  for (const key of [...new Set(runs.map((r) => `${r.launcher} ${r.proto}`))]) {
    const mine = runs.filter((r) => `${r.launcher} ${r.proto}` === key)
    const of = (impl: Impl) => {
      const ok = mine.filter((r) => r.impl === impl && r.ok)
      return { runs: ok.length, firstMs: median(ok.flatMap((r) => r.firstMs ?? [])) }
    }
    const reference = of(rotation[0])
    for (const impl of rotation.slice(1)) {
      const candidate = of(impl)
      rows.push({
        launcher: mine[0].launcher,
        runtime: mine[0].runtime,
        proto: mine[0].proto,
        impl,
        reference,
        candidate,
        ratio: ratioOf(candidate.firstMs, reference.firstMs),
      })
    }
  }
  return rows
}

// ---------- tables ----------

function fmt(value: number | null, digits: number): string {
  if (value === null) return "n/a"
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function fmtRatio(value: number | null): string {
  return value === null ? "n/a" : `${value.toFixed(2)}x`
}

// A miss to three places, so that one just under its target does not read as the target (0.998x, not 1.00x).
function fmtMiss(value: number | null): string {
  return value === null ? "n/a" : `${value.toFixed(3)}x`
}

function layout(lines: ReadonlyArray<ReadonlyArray<string>>, left: ReadonlySet<number>): string {
  const widths = lines[0].map((_, i) => Math.max(...lines.map((line) => line[i].length)))
  return lines
    .map((line) =>
      line.map((cell, i) => (left.has(i) ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ").trimEnd()
    )
    .join("\n")
}

function launcherLabel(name: LauncherName): string {
  return LAUNCHERS.find((l) => l.name === name)?.label ?? name
}

function table(rows: ReadonlyArray<Row>, reference: Impl): string {
  const header = "launched as|workload|server|req/s|±|p50 us|p99 us|peak MiB|first ms|srv CPU|foreign|loss/late"
    .split("|")
  const lines: Array<Array<string>> = [header]
  const pct = (v: number | null) => (v === null ? "n/a" : `${Math.round(v)}%`)
  let previousLauncher = ""
  let previousGroup = ""
  for (const row of rows) {
    const group = `${row.launcher} ${row.workload}`
    const servers: ReadonlyArray<readonly [Impl, Medians]> = group === previousGroup
      ? [[row.impl, row.candidate]]
      : [[reference, row.reference], [row.impl, row.candidate]]
    for (const [label, m] of servers) {
      lines.push([
        row.launcher !== previousLauncher ? launcherLabel(row.launcher) : "",
        group !== previousGroup ? row.workload : "",
        `${label}${m.runs === 0 ? " (FAILED)" : ""}`,
        fmt(m.rps, 0),
        m.rpsSpreadPct === null ? "" : `${Math.round(m.rpsSpreadPct)}%`,
        fmt(m.p50Us, 1),
        fmt(m.p99Us, 1),
        fmt(m.peakMiB, 1),
        fmt(m.firstMs, 1),
        pct(m.serverCpuPct),
        pct(m.foreignCpuPct),
        `${m.losses}/${m.late}`,
      ])
      previousLauncher = row.launcher
      previousGroup = group
    }
    const r = row.ratio
    lines.push([
      "",
      "",
      `${row.impl}/${reference === "baseline" ? "base" : reference}`,
      fmtRatio(r.rps),
      "",
      fmtRatio(r.p50Us),
      fmtRatio(r.p99Us),
      fmtRatio(r.peakMiB),
      fmtRatio(r.firstMs),
      "",
      "",
      "",
    ])
  }
  return layout(lines, new Set([0, 1, 2]))
}

function scrapeTable(rows: ReadonlyArray<ScrapeRow>): string {
  const header = `launched as|workload|runs|scrapes|slowest ms|${SCRAPE_SERIES}|generator answered|ratio`.split("|")
  const lines: Array<Array<string>> = [header]
  let previous = ""
  for (const row of rows) {
    lines.push([
      row.launcher !== previous ? launcherLabel(row.launcher) : "",
      row.workload,
      String(row.runs),
      String(row.scrapes),
      fmt(row.slowestMs, 1),
      fmt(row.requestsTotal, 0),
      fmt(row.answered, 0),
      fmtRatio(ratioOf(row.requestsTotal, row.answered)),
    ])
    previous = row.launcher
  }
  return layout(lines, new Set([0, 1]))
}

function clientTable(rows: ReadonlyArray<ClientRow>): string {
  const header = "launched as|client|baseline ms|caps ms|caps/base|baseline MiB|caps MiB|caps/base|runs".split("|")
  const lines: Array<Array<string>> = [header]
  let previous = ""
  for (const row of rows) {
    lines.push([
      row.launcher !== previous ? launcherLabel(row.launcher) : "",
      `${row.proto}-client -m ${CLIENT_MESSAGE}`,
      fmt(row.baseline.wallMs, 1),
      fmt(row.caps.wallMs, 1),
      fmtRatio(row.ratio.wallMs),
      fmt(row.baseline.rssMiB, 1),
      fmt(row.caps.rssMiB, 1),
      fmtRatio(row.ratio.rssMiB),
      `${row.baseline.runs}+${row.caps.runs}`,
    ])
    previous = row.launcher
  }
  return layout(lines, new Set([0, 1]))
}

function startTable(rows: ReadonlyArray<StartRow>): string {
  const header = "launched as|server|first ms|server|first ms|ratio|runs".split("|")
  const lines: Array<Array<string>> = [header]
  let previous = ""
  for (const row of rows) {
    const key = `${row.launcher} ${row.proto}`
    lines.push([
      row.launcher !== previous.split(" ")[0] ? launcherLabel(row.launcher) : "",
      key !== previous ? `${row.proto} baseline` : "",
      key !== previous ? fmt(row.reference.firstMs, 1) : "",
      row.impl,
      fmt(row.candidate.firstMs, 1),
      fmtRatio(row.ratio),
      `${row.reference.runs}+${row.candidate.runs}`,
    ])
    previous = key
  }
  return layout(lines, new Set([0, 1, 3]))
}

/** One line per target: which rows meet it and which do not. Informative only: nothing fails on timing. */
function verdicts(
  rows: ReadonlyArray<Row>,
  clients: ReadonlyArray<ClientRow>,
  starts: ReadonlyArray<StartRow> = [],
  paired: ReadonlyArray<PairedRow> = [],
): Array<string> {
  const out: Array<string> = []
  const check = (ratio: number | null, target: { atLeast?: number; atMost?: number }) =>
    ratio === null
      ? null
      : target.atLeast !== undefined
      ? ratio >= target.atLeast
      : ratio <= (target.atMost ?? Infinity)
  // With metrics off and on in one run, each miss says which of the two it was.
  const named = new Set(rows.map((row) => row.impl)).size > 1
  const name = (row: { readonly launcher: LauncherName; readonly workload: string; readonly impl: Impl }) =>
    `${row.launcher} ${row.workload}${named ? ` ${row.impl}` : ""}`
  for (const key of ["rps", "p99Us", "peakMiB", "firstMs"] as const) {
    const target = TARGETS[key]
    if (key === "firstMs" && starts.length > 0) {
      // Judged on the extra starts (measureStarts), not on the one start of each measured run.
      const missed = starts.filter((row) => check(row.ratio, target) === false)
      const which = (row: StartRow) => `${row.launcher} ${row.proto}-server${named ? ` ${row.impl}` : ""}`
      out.push(
        `${target.text.padEnd(34)} ${
          missed.length === 0
            ? "met in every row (the server starts)"
            : `NOT met: ${missed.map((row) => `${which(row)} ${fmtMiss(row.ratio)}`).join(", ")}`
        }`,
      )
      continue
    }
    const missed = rows.filter((row) => check(row.ratio[key], target) === false)
    out.push(
      `${target.text.padEnd(34)} ${
        missed.length === 0
          ? "met in every row"
          : `NOT met: ${missed.map((row) => `${name(row)} ${fmtMiss(row.ratio[key])}`).join(", ")}`
      }`,
    )
  }
  if (paired.length > 0) {
    const missed = paired.filter((row) => check(row.answered, TARGETS.rps) === false)
    out.push(
      `${`${TARGETS.rps.text}, paired`.padEnd(34)} ${
        missed.length === 0
          ? "met in every row (the paired runs)"
          : `NOT met: ${missed.map((row) => `${name(row)} ${fmtMiss(row.answered)}`).join(", ")}`
      }`,
    )
  }
  if (clients.length > 0) {
    const missed = clients.filter((row) => check(row.ratio.wallMs, TARGETS.wallMs) === false)
    out.push(
      `${TARGETS.wallMs.text.padEnd(34)} ${
        missed.length === 0
          ? "met in every row"
          : `NOT met: ${
            missed.map((row) => `${row.launcher} ${row.proto}-client ${fmtMiss(row.ratio.wallMs)}`).join(", ")
          }`
      }`,
    )
  }
  return out
}

// ---------- SVG ----------

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;")
}

interface Bar {
  readonly label: string
  readonly color: string
  readonly ratio: number | null
  /** The target's bound, drawn as a tick on the bar's row. */
  readonly target: number
}

interface BarGroup {
  readonly label: string
  /** A second, smaller line under the label (which caps: metrics on). */
  readonly note?: string
  readonly bars: ReadonlyArray<Bar>
}

const COLORS = { rps: "#2b6cb0", p99Us: "#dd6b20", peakMiB: "#718096", firstMs: "#38a169", wallMs: "#805ad5" }
const LEGEND: ReadonlyArray<{ readonly color: string; readonly label: string }> = [
  { color: COLORS.rps, label: "throughput: higher is better" },
  { color: COLORS.p99Us, label: "p99 latency" },
  { color: COLORS.peakMiB, label: "peak memory" },
  { color: COLORS.firstMs, label: "launch to first answer" },
  { color: COLORS.wallMs, label: "one-shot client wall time" },
]

function groupsOf(
  rows: ReadonlyArray<Row>,
  clients: ReadonlyArray<ClientRow>,
  starts: ReadonlyArray<StartRow> = [],
): Array<BarGroup> {
  // The first-answer bar shows the extra starts of the workload's protocol when there are any.
  const firstOf = (row: Row) => {
    if (starts.length === 0) return row.ratio.firstMs
    const proto = WORKLOADS.find((workload) => workload.name === row.workload)?.proto
    return starts.find((start) => start.launcher === row.launcher && start.proto === proto && start.impl === row.impl)
      ?.ratio ?? null
  }
  const groups: Array<BarGroup> = rows.map((row) => ({
    label: `${row.launcher} · ${row.workload}`,
    ...(row.impl === "caps+metrics" ? { note: "caps with metrics on" } : {}),
    bars: [
      { label: "throughput", color: COLORS.rps, ratio: row.ratio.rps, target: TARGETS.rps.atLeast },
      { label: "p99", color: COLORS.p99Us, ratio: row.ratio.p99Us, target: TARGETS.p99Us.atMost },
      { label: "peak memory", color: COLORS.peakMiB, ratio: row.ratio.peakMiB, target: TARGETS.peakMiB.atMost },
      { label: "first answer", color: COLORS.firstMs, ratio: firstOf(row), target: TARGETS.firstMs.atMost },
    ],
  }))
  for (const row of clients) {
    groups.push({
      label: `${row.launcher} · ${row.proto}-client -m`,
      bars: [{ label: "wall time", color: COLORS.wallMs, ratio: row.ratio.wallMs, target: TARGETS.wallMs.atMost }],
    })
  }
  return groups
}

function svgChart(groups: ReadonlyArray<BarGroup>, subtitle: ReadonlyArray<string>): string {
  const labelWidth = 210
  const plotWidth = 540
  const barHeight = 11
  const groupGap = 12
  const legendTop = 42 + subtitle.length * 16 + 6
  const top = legendTop + 50
  const heights = groups.map((g) => g.bars.length * (barHeight + 2) + groupGap)
  const height = top + heights.reduce((a, b) => a + b, 0) + 40
  const width = labelWidth + plotWidth + 110
  const largest = Math.max(1, ...groups.flatMap((g) => g.bars.map((b) => b.ratio ?? 0)))
  const xMax = Math.min(10, Math.max(2.5, Math.ceil(largest * 1.1 * 2) / 2))
  const x = (ratio: number) => labelWidth + (Math.min(ratio, xMax) / xMax) * plotWidth
  const parts: Array<string> = []
  // Value labels are drawn last, above the 1.0 line, so the line never strikes through a number.
  const labels: Array<string> = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="system-ui, sans-serif" font-size="12">`,
    `<title>caps / baseline ratios</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="bold">caps / hand-written baseline, both launched the same ` +
      `way (ratio of medians)</text>`,
    ...subtitle.map((line, i) => `<text x="16" y="${42 + i * 16}" fill="#4a5568">${escapeXml(line)}</text>`),
  )
  LEGEND.forEach((entry, i) => {
    const lx = 16 + (i % 3) * 250
    const ly = legendTop + Math.floor(i / 3) * 16
    parts.push(
      `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${entry.color}"/>`,
      `<text x="${lx + 18}" y="${ly + 10}">${escapeXml(entry.label)}</text>`,
    )
  })
  parts.push(
    `<text x="516" y="${legendTop + 26}" fill="#4a5568" font-size="11">| target (lower is better except ` +
      `throughput)</text>`,
  )
  for (let tick = 0; tick <= xMax + 1e-9; tick += xMax > 4 ? 1 : 0.5) {
    const tx = x(tick)
    parts.push(
      `<line x1="${tx}" y1="${top - 8}" x2="${tx}" y2="${height - 30}" stroke="#edf2f7"/>`,
      `<text x="${tx}" y="${height - 14}" text-anchor="middle" fill="#4a5568">${tick}</text>`,
    )
  }
  let gy = top
  groups.forEach((group, i) => {
    const middle = gy + (group.bars.length * (barHeight + 2)) / 2
    parts.push(
      `<text x="${labelWidth - 10}" y="${middle + (group.note === undefined ? 4 : -2)}" text-anchor="end">` +
        `${escapeXml(group.label)}</text>`,
    )
    if (group.note !== undefined) {
      parts.push(
        `<text x="${labelWidth - 10}" y="${middle + 12}" text-anchor="end" font-size="11" fill="#4a5568">` +
          `${escapeXml(group.note)}</text>`,
      )
    }
    group.bars.forEach((bar, j) => {
      const y = gy + j * (barHeight + 2)
      const tx = x(bar.target)
      parts.push(
        `<line x1="${tx}" y1="${y - 1}" x2="${tx}" y2="${y + barHeight + 1}" stroke="#1a202c" stroke-width="2"/>`,
      )
      if (bar.ratio === null) {
        parts.push(`<text x="${labelWidth + 4}" y="${y + barHeight - 2}" fill="#a0aec0">n/a</text>`)
        return
      }
      const clipped = bar.ratio > xMax
      parts.push(
        `<rect x="${labelWidth}" y="${y}" width="${(x(bar.ratio) - labelWidth).toFixed(1)}" height="${barHeight}" ` +
          `fill="${bar.color}"><title>${escapeXml(`${bar.label}: ${bar.ratio.toFixed(3)}`)}</title></rect>`,
      )
      labels.push(
        `<text x="${(Math.max(x(bar.ratio), tx) + 4).toFixed(1)}" y="${y + barHeight - 2}" font-size="10" ` +
          `paint-order="stroke" stroke="#ffffff" stroke-width="3">` +
          `${bar.ratio.toFixed(2)}x${clipped ? " (clipped)" : ""}</text>`,
      )
    })
    gy += heights[i]
  })
  const one = x(1)
  parts.push(
    `<line x1="${one}" y1="${top - 10}" x2="${one}" y2="${height - 30}" stroke="#1a202c" stroke-width="1" ` +
      `stroke-dasharray="5 3"/>`,
    `<text x="${one + 4}" y="${top - 10}" fill="#1a202c" font-size="11">1.0 = baseline</text>`,
    ...labels,
    `</svg>`,
  )
  return parts.join("\n") + "\n"
}

// ---------- main ----------

/** Whether the hypervisor took so much CPU during a run that its figures say more of the host than of the server. */
function stolen(run: RunRecord): boolean {
  return run.ok && run.metrics !== null && run.metrics.stealPct > STEAL_LIMIT_PCT
}

function describe(run: RunRecord): string {
  const tag = `[${run.launcher} ${run.workload} r${run.round} ${run.impl}]`
  if (!run.ok || run.metrics === null) return `${tag} FAILED: ${run.error}`
  const m = run.metrics
  return (
    `${tag} ${fmt(m.rps, 0)} req/s  p50 ${fmt(m.p50Us, 1)} us  p99 ${fmt(m.p99Us, 1)} us  ` +
    `peak ${fmt(m.peakMiB, 1)} MiB  first ${fmt(m.firstMs, 1)} ms  srv CPU ${fmt(m.serverCpuPct, 0)}%  ` +
    `gen CPU ${fmt(m.loadgenCpuPct, 0)}%  foreign ${fmt(m.foreignCpuPct, 0)}%  steal ${fmt(m.stealPct, 0)}%` +
    (run.load && run.load.losses + run.load.late > 0 ? `  lost ${run.load.losses} late ${run.load.late}` : "") +
    (run.scrape && run.load
      ? `  scrapes ${run.scrape.scrapes} (slowest ${fmt(run.scrape.slowestMs, 1)} ms), ${SCRAPE_SERIES} ` +
        `${fmt(run.scrape.requestsTotal, 0)} vs ${fmt(run.load.answered, 0)} answered`
      : "")
  )
}

interface Meta {
  readonly date: string
  readonly mode: "full" | "smoke" | "calibrate"
  readonly node: string
  readonly deno: string | null
  readonly npm: string | null
  readonly cpu: string
  readonly cpus: number
  readonly kernel: string
  readonly pinned: string
  readonly duration_s: number
  readonly warmup_s: number
  readonly rounds: number
  readonly payload_bytes: number
  readonly client_reps: number
  /** Extra server launches (--starts); absent in files of older harnesses. */
  readonly starts?: number
  /** Paired rounds (--paired); absent in files of older harnesses. */
  readonly paired?: number
  /** --remeasure and the steal above which a run is measured again; absent in files of older harnesses. */
  readonly remeasure?: { readonly times: number; readonly steal_limit_pct: number }
  readonly launchers: ReadonlyArray<Launcher>
  readonly caps_cmd_override: string | null
  readonly workloads: ReadonlyArray<Workload>
  /** The servers of each round, in order (absent in files written before caps+metrics). */
  readonly rotation?: Rotation
  /** How caps+metrics was scraped, if it ran. */
  readonly scrape?: {
    readonly flag: string
    readonly interval_ms: number
    readonly timeout_ms: number
    readonly series: string
  } | null
}

function subtitleOf(meta: Meta): Array<string> {
  return [
    `${meta.date.slice(0, 10)} · ${meta.mode} run · Node ${meta.node} · ` +
    `${meta.deno?.split(" (")[0] ?? "no Deno"} · npm ${meta.npm ?? "n/a"} · ${meta.cpu}, ${meta.cpus} CPUs`,
    `${meta.pinned === "no" ? "unpinned" : "server on CPU 0, load generator and clients on CPU 1"} · median of ` +
    `${meta.rounds} round(s) x ${meta.duration_s} s · ${meta.payload_bytes} B requests · ` +
    `${meta.client_reps} launches per client`,
    `npm = npm start, npm run caps -- vs npm run bench:baseline -- · node = node dist/caps.mjs vs node baseline.mjs`,
    `deno = deno run --allow-net --allow-env --allow-read scripts/caps.mjs vs deno run --allow-net --allow-env baseline.mjs`,
    ...(meta.rotation?.includes("caps+metrics")
      ? ["metrics on = the same caps command plus --metrics-port, its /metrics scraped every second during the load"]
      : []),
  ]
}

function printSummary(
  rows: ReadonlyArray<Row>,
  clients: ReadonlyArray<ClientRow>,
  scrapes: ReadonlyArray<ScrapeRow>,
  rotation: Rotation,
  starts: ReadonlyArray<StartRow> = [],
  paired: ReadonlyArray<PairedRow> = [],
): void {
  console.log(`\n${table(rows, rotation[0])}\n`)
  console.log(
    "req/s: higher is better; latencies, peak memory (VmHWM) and launch-to-first-answer: lower is better. " +
      "Medians over rounds;\n±: half the range of req/s over rounds, % of the median (a ratio within it is noise). " +
      "srv CPU: server CPU during\nthe load (100% = one core saturated). " +
      "foreign: CPU used by other processes during the load (noise).",
  )
  const noisy = rows.some((row) => (row.reference.foreignCpuPct ?? 0) > 10 || (row.candidate.foreignCpuPct ?? 0) > 10)
  if (noisy) console.log("warning: other processes used >10% of a CPU during some runs; results are noisy")
  if (scrapes.length > 0) {
    console.log(`\n${scrapeTable(scrapes)}\n`)
    console.log(
      `caps+metrics: GET /metrics every second during the load and once after it, each answered 200 with ` +
        `${SCRAPE_SERIES};\nits last value (all series, summed over runs) against the generator's correct ` +
        `replies, warm-up included.`,
    )
  }
  if (paired.length > 0) {
    console.log(`\n${pairedTable(paired)}\n`)
    console.log(
      "Paired runs (--paired): the baseline and caps served at once, both on CPU 0, each loaded by a generator of " +
        "its own;\nwhatever slows the machine slows both. Medians over rounds of caps/baseline: answered requests " +
        "(higher is better)\nand server CPU per request (lower is better).",
    )
  }
  if (starts.length > 0) {
    console.log(`\n${startTable(starts)}\n`)
    console.log(
      "Server starts: launch to first correct answer, medians of the extra launches (--starts), the servers " +
        "alternating;\nthe first-answer target is judged on these.",
    )
  }
  if (clients.length > 0) {
    console.log(`\n${clientTable(clients)}\n`)
    console.log(
      "One-shot clients: wall time from fork to exit and peak RSS of the process tree (npm's own process " +
        "included in the npm rows), medians.",
    )
  }
  if (rotation.includes("fastserver")) {
    for (const row of rows) {
      const ratio = row.ratio.rps
      const verdict = ratio === null ? "n/a" : ratio >= 1.5 ? "generator has headroom" : "generator may be limiting"
      console.log(
        `calibration ${row.workload}: fastserver reached ${fmtRatio(ratio)} the Node baseline's req/s (${verdict})`,
      )
    }
  } else {
    console.log(`\ntargets (caps/baseline, informative):\n  ${verdicts(rows, clients, starts, paired).join("\n  ")}`)
  }
}

function writeSvg(
  svgPath: string,
  rows: ReadonlyArray<Row>,
  clients: ReadonlyArray<ClientRow>,
  meta: Meta,
  starts: ReadonlyArray<StartRow> = [],
): void {
  fs.mkdirSync(path.dirname(svgPath), { recursive: true })
  fs.writeFileSync(svgPath, svgChart(groupsOf(rows, clients, starts), subtitleOf(meta)))
  console.log(`wrote ${path.relative(process.cwd(), svgPath)}`)
}

/** Redraws the tables and chart from a results file, without measuring anything. */
function render(jsonPath: string, svgPath: string | null): void {
  const result = JSON.parse(fs.readFileSync(jsonPath, "utf8")) as {
    meta: Meta
    runs: Array<RunRecord>
    clientRuns?: Array<ClientRun>
    startRuns?: Array<StartRun>
    pairedRuns?: Array<PairedRun>
  }
  const rotation = rotationOf(result.meta.mode === "calibrate", result.runs.some((run) => run.impl === "caps+metrics"))
  // Summarised afresh from the raw runs, so a file written by an older harness gets today's statistics.
  const launchers = [...new Set(result.runs.map((run) => run.launcher ?? run.runtime))] as Array<LauncherName>
  const runs = result.runs.map((run) => ({ ...run, launcher: run.launcher ?? run.runtime, scrape: run.scrape ?? null }))
  const rows = summarise(runs, { launchers, workloads: result.meta.workloads }, rotation)
  const clients = summariseClients(result.clientRuns ?? [])
  const starts = summariseStarts(result.startRuns ?? [], rotation)
  printSummary(rows, clients, summariseScrapes(runs), rotation, starts, summarisePaired(result.pairedRuns ?? []))
  if (svgPath !== null) writeSvg(svgPath, rows, clients, result.meta, starts)
}

/** The servers of each round: the reference first. */
function rotationOf(calibrate: boolean, metrics: boolean): Rotation {
  return calibrate ? ["baseline", "fastserver"] : metrics ? ["baseline", "caps", "caps+metrics"] : ["baseline", "caps"]
}

function binary(relative: string, fallback: string): string {
  const candidate = path.join(ROOT, relative)
  return fs.existsSync(candidate) ? fs.realpathSync(candidate) : fallback
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  if (options.render !== null) return render(options.render, options.svgPath)
  const startedAt = Date.now()
  const stop = () => {
    for (const pid of live) killGroup(pid, "SIGKILL")
    process.exit(130)
  }
  process.on("SIGINT", stop)
  process.on("SIGTERM", stop)

  // The project's pinned binaries, resolved to the real executables so /proc/PID/exe can be matched.
  const bins: Binaries = {
    node: binary("node_modules/.bin/node", process.execPath),
    deno: binary("node_modules/.bin/deno", "deno"),
  }
  build()
  const pin = options.pin && tasksetWorks()
  if (options.pin && !pin) console.error("bench: taskset unavailable or fewer than 2 CPUs; running unpinned")
  const ctx: Context = { options: { ...options, pin }, bins }
  const rotation = rotationOf(options.calibrate, options.metrics)

  const meta: Meta = {
    date: new Date(startedAt).toISOString(),
    mode: options.calibrate ? "calibrate" : options.smoke ? "smoke" : "full",
    node: version([bins.node, "--version"]),
    deno: options.launchers.some((l) => l.runtime === "deno") ? version([bins.deno, "--version"]) : null,
    npm: options.launchers.some((l) => l.name === "npm") ? version(["npm", "--version"]) : null,
    cpu: os.cpus()[0]?.model ?? "unknown",
    cpus: os.availableParallelism(),
    kernel: os.release(),
    pinned: pin ? "server on CPU 0, load generator and clients on CPU 1" : "no",
    duration_s: options.duration,
    warmup_s: options.warmup,
    rounds: options.rounds,
    payload_bytes: options.payload,
    client_reps: options.clientReps,
    starts: options.starts,
    paired: options.paired,
    remeasure: { times: options.remeasure, steal_limit_pct: STEAL_LIMIT_PCT },
    launchers: options.launchers,
    caps_cmd_override: options.capsCmd,
    workloads: options.workloads,
    rotation,
    scrape: rotation.includes("caps+metrics")
      ? { flag: METRICS_FLAG, interval_ms: SCRAPE_INTERVAL_MS, timeout_ms: SCRAPE_TIMEOUT_MS, series: SCRAPE_SERIES }
      : null,
  }
  console.log(
    `bench ${meta.mode}: ${options.launchers.map((l) => l.name).join("+")}, ${options.workloads.length} workloads, ` +
      `${options.rounds} round(s) of ${rotation.join(" / ")}, ${options.duration} s + ${options.warmup} s warm-up, ` +
      `payload ${options.payload} B, ${options.clientReps} client launches each, ${pin ? "pinned" : "unpinned"}`,
  )
  for (const launcher of options.launchers) {
    for (const impl of rotation) {
      if (impl !== "fastserver") console.log(`  ${launcher.name} ${impl}: ${serverTemplate(options, launcher, impl)}`)
    }
  }

  const runs: Array<RunRecord> = []
  // Runs taken under heavy steal, set aside for a new measurement of the same server.
  const remeasured: Array<RunRecord> = []
  for (const launcher of options.launchers) {
    for (const workload of options.workloads) {
      if (!options.smoke) await prime(ctx, launcher, workload.proto, rotation)
      for (let round = 1; round <= options.rounds; round++) {
        for (const impl of rotation) {
          let run = await measure(ctx, launcher, workload, impl, round)
          for (let again = 1; again <= options.remeasure && stolen(run); again++) {
            console.log(`${describe(run)}  -> steal over ${STEAL_LIMIT_PCT}%: measured again`)
            remeasured.push(run)
            run = await measure(ctx, launcher, workload, impl, round)
          }
          runs.push(run)
          console.log(describe(run))
        }
      }
    }
  }
  const pairedRuns: Array<PairedRun> = []
  for (const launcher of options.launchers) {
    for (const workload of options.workloads.filter((workload) => workload.saturates)) {
      for (let round = 1; round <= options.paired; round++) {
        for (const impl of rotation.filter((impl) => impl !== "baseline" && impl !== "fastserver")) {
          const run = await measurePaired(ctx, launcher, workload, impl, round)
          pairedRuns.push(run)
          console.log(describePaired(run))
        }
      }
    }
  }
  const startRuns = await measureStarts(ctx, rotation)
  const clientRuns = await measureClients(ctx)

  const rows = summarise(
    runs,
    { launchers: options.launchers.map((l) => l.name), workloads: options.workloads },
    rotation,
  )
  const clients = summariseClients(clientRuns)
  const starts = summariseStarts(startRuns, rotation)
  const failures = [
    ...runs.filter((run) => !run.ok).map((run) =>
      `${run.launcher} ${run.workload} r${run.round} ${run.impl}: ${run.error}`
    ),
    ...clientRuns.filter((run) => !run.ok).map((run) =>
      `${run.launcher} ${run.proto}-client r${run.rep} ${run.impl}: ${run.error}`
    ),
    ...startRuns.filter((run) => !run.ok).map((run) =>
      `${run.launcher} ${run.proto}-server start ${run.rep} ${run.impl}: ${run.error}`
    ),
    ...pairedRuns.filter((run) => !run.ok).map((run) =>
      `${run.launcher} ${run.workload} r${run.round} paired ${run.impl}: ${run.error}`
    ),
  ]
  const scrapes = summariseScrapes(runs)
  const paired = summarisePaired(pairedRuns)
  printSummary(rows, clients, scrapes, rotation, starts, paired)
  const stillStolen = runs.filter(stolen).length
  if (remeasured.length > 0 || stillStolen > 0) {
    console.log(
      `steal: ${remeasured.length} run(s) measured again because the hypervisor took over ${STEAL_LIMIT_PCT}% of ` +
        `a CPU during them` +
        (stillStolen > 0 ? `; ${stillStolen} kept with that much steal after ${options.remeasure} tries: noisy` : ""),
    )
  }
  const result = {
    meta: { ...meta, elapsed_s: (Date.now() - startedAt) / 1000 },
    ok: failures.length === 0,
    failures,
    summary: rows,
    scrapes,
    clients,
    starts,
    paired,
    runs,
    remeasured,
    clientRuns,
    startRuns,
    pairedRuns,
  }
  fs.mkdirSync(path.dirname(options.jsonPath), { recursive: true })
  fs.writeFileSync(options.jsonPath, JSON.stringify(result, null, 2) + "\n")
  console.log(`wrote ${path.relative(process.cwd(), options.jsonPath)}`)
  if (options.svgPath !== null) writeSvg(options.svgPath, rows, clients, meta, starts)
  console.log(`elapsed ${result.meta.elapsed_s.toFixed(1)} s`)
  if (failures.length > 0) {
    console.error(`\nbench FAILED (${failures.length} run(s)):\n  ${failures.join("\n  ")}`)
    process.exit(1)
  }
}

await main()
