// A caps server as a child process, for the scripts that measure it from the
// outside (soak, measure-faults): started on the same runtime as the script,
// on 127.0.0.1 with free ports, ready once it has printed its ready lines;
// its memory and descriptors read from /proc, and a TCP exchange with it.
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

export const ROOT = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
export const HOST = "127.0.0.1"
export const isDeno = "Deno" in globalThis
const MAIN = Path.join(ROOT, "src", "main.ts")

/** A running server child. Ports are those of the servers the command starts. */
export interface CapsServer {
  readonly pid: number
  readonly udpPort: number | undefined
  readonly tcpPort: number | undefined
  /** The port of `/metrics`, when started with `--metrics-port`. */
  readonly metricsPort: number | undefined
  readonly stderr: () => string
  readonly exited: Promise<{ readonly code: number | null; readonly signal: string | null }>
  readonly alive: () => boolean
  /** Kills it (SIGKILL) and waits for it to be gone. */
  readonly stop: () => Promise<void>
  /** Sends SIGTERM and waits up to `graceMs` for the exit, then kills it; the exit, or `undefined` if killed. */
  readonly terminate: (
    graceMs: number,
  ) => Promise<{ readonly code: number | null; readonly signal: string | null } | undefined>
}

const portOf = (text: string, transport: "udp" | "tcp") =>
  new RegExp(`${transport}-server: ready on \\S+:(\\d+)/${transport}`).exec(text)?.[1]

/** Starts `caps <command> --host 127.0.0.1 --port 0 ...extra`; `serve` is ready when both servers are. */
export const startCaps = (command: "tcp-server" | "serve", extra: ReadonlyArray<string> = []): Promise<CapsServer> => {
  const args = [command, "--host", HOST, "--port", "0", ...extra]
  const argv = isDeno ? ["run", "--allow-net", "--allow-env", MAIN, ...args] : [MAIN, ...args]
  const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  let running = true
  child.stderr.setEncoding("utf8").on("data", (text: string) => stderr += text)
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("close", (code, signal) => {
      running = false
      resolve({ code, signal })
    })
  )
  const pid = child.pid ?? 0
  const stop = async () => {
    if (running) process.kill(pid, "SIGKILL")
    await exited
  }
  const terminate = async (graceMs: number) => {
    if (running) process.kill(pid, "SIGTERM")
    const exit = await Promise.race([exited, sleep(graceMs).then(() => undefined)])
    if (exit === undefined) await stop()
    return exit
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready within 20 s:\n${stdout}${stderr}`)), 20_000)
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text
      const udp = portOf(stdout, "udp")
      const tcp = portOf(stdout, "tcp")
      const metrics = /: metrics on http:\/\/\S+:(\d+)\/metrics/.exec(stdout)?.[1]
      if (tcp === undefined || (command === "serve" && udp === undefined)) return
      clearTimeout(timer)
      resolve({
        pid,
        udpPort: udp === undefined ? undefined : Number(udp),
        tcpPort: Number(tcp),
        metricsPort: metrics === undefined ? undefined : Number(metrics),
        stderr: () => stderr,
        exited,
        alive: () => running,
        stop,
        terminate,
      })
    })
    void exited.then(() => reject(new Error(`server exited before it was ready:\n${stdout}${stderr}`)))
  })
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const TCP_STATES: Record<string, string> = {
  "01": "established",
  "06": "time-wait",
  "07": "close",
  "08": "close-wait",
  "09": "last-ack",
  "04": "fin-wait-1",
  "05": "fin-wait-2",
  "0B": "closing",
}

/** The TCP sockets on `port` (not the listening one), by state, from /proc/net/tcp{,6}. */
export const serverConnections = (port: number): Record<string, number> => {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`
  const counts: Record<string, number> = {}
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Fs.readFileSync(table, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 4 || !fields[1].endsWith(hexPort) || fields[3] === "0A") continue
      const state = TCP_STATES[fields[3]] ?? fields[3]
      counts[state] = (counts[state] ?? 0) + 1
    }
  }
  return counts
}

/** A process's memory in MiB: resident now (VmRSS) and at its peak (VmHWM). */
export const memoryMiB = (pid: number): { readonly rss: number; readonly hwm: number } => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) / 1024
  return { rss: field("VmRSS"), hwm: field("VmHWM") }
}

/** A process's open file descriptors. */
export const openFds = (pid: number): number => Fs.readdirSync(`/proc/${pid}/fd`).length

/** Sends on a socket (connected or connecting), half-closes, reads to the end; resolves with the reply. */
export const exchangeOn = (socket: Net.Socket, payload: string | Uint8Array, timeoutMs = 10_000): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no reply within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("end", () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(Buffer.concat(chunks))
    })
    socket.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.end(payload)
  })

/** Connects, sends, half-closes, reads to the end; resolves with the reply. */
export const exchange = (port: number, payload: string | Uint8Array, timeoutMs = 10_000): Promise<Buffer> =>
  exchangeOn(Net.connect({ host: HOST, port, allowHalfOpen: true, noDelay: true }), payload, timeoutMs)
