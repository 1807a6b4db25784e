// Raw loopback peers for the tests: plain node:dgram and node:net sockets,
// so that caps is always checked against bytes on a real wire, not against
// itself. Every helper has a deadline and closes what it opens.
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Net from "node:net"

/**
 * TCP and UDP sockets a process holds (Linux), to prove that nothing leaks. Only those count: a runtime
 * opens its own files, pipes and Unix sockets lazily, whenever it likes (Deno opens a Unix socket pair
 * some time after it starts), and those are not caps's to close.
 */
export const openSocketsOf = (pid: number | "self"): number => {
  const inet = new Set<string>()
  for (const table of ["tcp", "tcp6", "udp", "udp6"]) {
    let text = ""
    try {
      text = Fs.readFileSync(`/proc/${pid}/net/${table}`, "utf8")
    } catch {
      continue // no IPv6 on this host
    }
    for (const row of text.split("\n").slice(1)) {
      const inode = row.trim().split(/\s+/)[9]
      if (inode !== undefined && inode !== "0") inet.add(inode)
    }
  }
  const dir = `/proc/${pid}/fd`
  let sockets = 0
  for (const fd of Fs.readdirSync(dir)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(Fs.readlinkSync(`${dir}/${fd}`))?.[1]
      if (inode !== undefined && inet.has(inode)) sockets++
    } catch {
      // Closed between the listing and the look: not open any more.
    }
  }
  return sockets
}

/** TCP and UDP sockets of this process. */
export const openSockets = (): number => openSocketsOf("self")

/** Every open file descriptor of a process (Linux), sockets or not. */
export const openFdsOf = (pid: number): number => Fs.readdirSync(`/proc/${pid}/fd`).length

const deadline = <A>(ms: number, what: string, run: (done: (a: A) => void, fail: (e: Error) => void) => () => void) =>
  new Promise<A>((resolve, reject) => {
    let cleanup = () => {}
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`${what}: no result within ${ms} ms`))
    }, ms)
    cleanup = run(
      (a) => {
        clearTimeout(timer)
        cleanup()
        resolve(a)
      },
      (e) => {
        clearTimeout(timer)
        cleanup()
        reject(e)
      },
    )
  })

/** Sends one datagram and waits for one reply. */
export const udpExchange = (
  port: number,
  payload: Uint8Array | string,
  options: { readonly host?: string; readonly from?: string; readonly timeoutMs?: number } = {},
): Promise<Buffer> => {
  const host = options.host ?? "127.0.0.1"
  return deadline(options.timeoutMs ?? 2000, `udp reply from ${host}:${port}`, (done, fail) => {
    const socket = Dgram.createSocket(host.includes(":") ? "udp6" : "udp4")
    socket.on("message", (message) => done(message))
    socket.on("error", fail)
    socket.bind({ address: options.from ?? (host.includes(":") ? "::1" : "127.0.0.1"), port: 0 }, () => {
      socket.send(payload, port, host)
    })
    return () => socket.close()
  })
}

/** A UDP socket that records what it receives and answers through `reply` (or never). */
export const udpPeer = async (
  reply: (
    message: Buffer,
    index: number,
  ) => { readonly payload: Uint8Array | string; readonly delayMs?: number } | undefined,
): Promise<{ readonly port: number; readonly received: Array<Buffer>; readonly close: () => void }> => {
  const socket = Dgram.createSocket("udp4")
  const received: Array<Buffer> = []
  const timers = new Set<ReturnType<typeof setTimeout>>()
  socket.on("message", (message, rinfo) => {
    const answer = reply(message, received.length)
    received.push(message)
    if (answer === undefined) return
    const send = () => socket.send(answer.payload, rinfo.port, rinfo.address)
    if (answer.delayMs === undefined) return send()
    const timer = setTimeout(() => {
      timers.delete(timer)
      send()
    }, answer.delayMs)
    timers.add(timer)
  })
  await new Promise<void>((resolve) => socket.bind({ address: "127.0.0.1", port: 0 }, resolve))
  return {
    port: socket.address().port,
    received,
    close: () => {
      for (const timer of timers) clearTimeout(timer)
      socket.close()
    },
  }
}

/** A UDP peer in the scope that echoes each datagram, recording them in arrival order. */
export const echoPeer = Effect.acquireRelease(
  Effect.promise(() => udpPeer((message) => ({ payload: message }))),
  (peer) => Effect.sync(() => peer.close()),
)

/** A port on 127.0.0.1 where nothing listens (for UDP and TCP): bound, then released. */
export const unusedPort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** A TCP connection's conversation: writes pieces (with pauses), optionally half-closes, collects the reply. */
export const tcpExchange = (
  port: number,
  pieces: ReadonlyArray<Uint8Array | string>,
  options: {
    readonly host?: string
    /** Stop once this many bytes arrived (default: read until the server closes). */
    readonly expectBytes?: number
    readonly pauseMs?: number
    readonly halfClose?: boolean
    readonly timeoutMs?: number
  } = {},
): Promise<{ readonly data: Buffer; readonly ended: boolean }> =>
  deadline(options.timeoutMs ?? 3000, `tcp reply from port ${port}`, (done, fail) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const socket = Net.connect({ host: options.host ?? "127.0.0.1", port, allowHalfOpen: true })
    const finish = (ended: boolean) => done({ data: Buffer.concat(chunks), ended })
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
      if (options.expectBytes !== undefined && size >= options.expectBytes) finish(false)
    })
    socket.on("end", () => finish(true))
    socket.on("error", fail)
    socket.on("connect", async () => {
      for (const piece of pieces) {
        socket.write(piece)
        if (options.pauseMs !== undefined) await new Promise((r) => setTimeout(r, options.pauseMs))
      }
      if (options.halfClose) socket.end()
    })
    return () => socket.destroy()
  })

/** Opens a TCP connection and resolves once it is established. */
export const tcpConnect = (port: number, host = "127.0.0.1"): Promise<Net.Socket> =>
  deadline(3000, `connect to ${host}:${port}`, (done, fail) => {
    const socket = Net.connect({ host, port, allowHalfOpen: true })
    socket.once("connect", () => done(socket))
    socket.once("error", fail)
    return () => socket.off("error", fail)
  })

/** A client connection, destroyed when the test's scope closes. */
export const connection = (port: number) =>
  Effect.acquireRelease(Effect.promise(() => tcpConnect(port)), (socket) => Effect.sync(() => socket.destroy()))

/** Whether a new connection to the port is refused. */
export const refused = (port: number): Promise<boolean> =>
  tcpConnect(port).then((socket) => (socket.destroy(), false), () => true)

/** Resolves when `socket` has received `bytes` bytes or ended; returns what arrived. */
export const readAtLeast = (socket: Net.Socket, bytes: number, timeoutMs = 3000): Promise<Buffer> =>
  deadline(timeoutMs, `read ${bytes} bytes`, (done, fail) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
      if (size >= bytes) done(Buffer.concat(chunks))
    }
    const onEnd = () => done(Buffer.concat(chunks))
    socket.on("data", onData)
    socket.on("end", onEnd)
    socket.on("error", fail)
    return () => {
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("error", fail)
    }
  })

/** Resolves when the peer has closed `socket` (end or error). */
export const closedByPeer = (socket: Net.Socket, timeoutMs = 3000): Promise<void> =>
  deadline(timeoutMs, "peer close", (done) => {
    const onClose = () => done(undefined)
    if (socket.readableEnded || socket.destroyed) {
      setImmediate(onClose)
      return () => {}
    }
    socket.on("end", onClose)
    socket.on("close", onClose)
    socket.on("error", onClose)
    socket.resume()
    return () => {
      socket.off("end", onClose)
      socket.off("close", onClose)
      socket.off("error", onClose)
    }
  })

/** Waits until `ready()` holds, checking every 10 ms; fails after `timeoutMs`. */
export const waitUntil = (ready: () => boolean, timeoutMs: number, what: string): Promise<void> =>
  deadline(timeoutMs, what, (done) => {
    const timer = setInterval(() => {
      if (ready()) done(undefined)
    }, 10)
    if (ready()) setImmediate(() => done(undefined))
    return () => clearInterval(timer)
  })

/**
 * Waits until this process holds no more TCP and UDP sockets than `before`: a closed socket gives its
 * descriptor back within a few turns of the event loop. Fails naming both counts.
 */
export const socketsBackTo = (before: number, timeoutMs = 2000): Promise<void> =>
  waitUntil(() => openSockets() <= before, timeoutMs, "sockets back to where they were").catch(() => {
    throw new Error(`sockets before ${before}, still ${openSockets()} after ${timeoutMs} ms`)
  })

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Memory of a process (Linux), in KiB: resident now (VmRSS) and at its peak (VmHWM). */
export const memoryOf = (pid: number): { readonly rssKiB: number; readonly hwmKiB: number } => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN)
  return { rssKiB: field("VmRSS"), hwmKiB: field("VmHWM") }
}

/** CPU time (user + system) a process has used so far, in clock ticks (1/100 s on Linux). */
export const cpuTicksOf = (pid: number): number => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  // Fields after the command name, which is in parentheses and may contain spaces: utime is the 14th field.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return Number(fields[11]) + Number(fields[12])
}

/** A short-lived peer process (a python3 or node script) that talks to a server on its own sockets. */
export interface PeerProcess {
  readonly pid: number
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** Writes to its standard input. */
  readonly send: (text: string) => void
  /** Kills it (SIGKILL by default) unless it has exited, and waits at most 5 s for it to go. */
  readonly kill: (signal?: NodeJS.Signals) => Promise<void>
}

/** Starts a peer process with piped standard streams; the caller must `kill` it (in a finalizer). */
export const spawnPeerProcess = (command: string, args: ReadonlyArray<string>): PeerProcess => {
  const child = ChildProcess.spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] })
  const output = { stdout: "", stderr: "" }
  let gone = false
  child.stdout.setEncoding("utf8").on("data", (text: string) => output.stdout += text)
  child.stderr.setEncoding("utf8").on("data", (text: string) => output.stderr += text)
  child.stdin.on("error", () => {})
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("error", (error) => {
      output.stderr += `spawn ${command} failed: ${error.message}\n`
      gone = true
      resolve({ code: null, signal: null })
    })
    child.once("close", (code, signal) => {
      gone = true
      resolve({ code, signal })
    })
  })
  return {
    pid: child.pid ?? 0,
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    exited,
    send: (text) => {
      if (!gone) child.stdin.write(text)
    },
    kill: async (signal = "SIGKILL") => {
      // process.kill, not child.kill: Deno's ChildProcess.kill reports the signal sent instead of the real exit.
      if (!gone && child.pid !== undefined) {
        try {
          process.kill(child.pid, signal)
        } catch {
          // Already gone.
        }
      }
      await Promise.race([exited, sleep(5_000)])
    },
  }
}
