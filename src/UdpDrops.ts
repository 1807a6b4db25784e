/**
 * How many datagrams the kernel dropped for a UDP socket because its receive
 * buffer was full. The UDP server keeps no queue of its own: it answers each
 * datagram in the socket's callback, so the kernel's receive buffer (its size
 * set by `receiveBufferBytes`) is the server's bounded receive queue, and the
 * kernel counts what overflows it. Linux publishes the count per socket in
 * /proc/net/udp and /proc/net/udp6 (the last column); elsewhere it is unknown.
 */
import * as Fs from "node:fs"

const tables = ["/proc/net/udp", "/proc/net/udp6"]

/** Drops counted by the kernel for sockets bound to `port`; `undefined` where the platform does not say. */
export const droppedOnPort = (port: number): number | undefined => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  let found = false
  let drops = 0
  for (const table of tables) {
    let text: string
    try {
      text = Fs.readFileSync(table, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 13 || !fields[1].endsWith(`:${hexPort}`)) continue
      found = true
      drops += Number(fields[fields.length - 1]) || 0
    }
  }
  return found ? drops : undefined
}
