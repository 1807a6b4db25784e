// Raw loopback peers for the tests: plain node:dgram and node:net sockets,
// so that caps is always checked against bytes on a real wire, not against
// itself. Every helper has a deadline and closes what it opens.
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Net from "node:net"

/** Open file descriptors of this process (Linux), to prove that nothing leaks. */
export const openFds = (): number => Fs.readdirSync("/proc/self/fd").length

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
