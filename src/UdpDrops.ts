/**
 * How many datagrams the kernel dropped for a UDP socket because its receive
 * buffer was full. The UDP server keeps no queue of its own: it answers each
 * datagram in the socket's callback, so the kernel's receive buffer (its size
 * set by `receiveBufferBytes`) is the server's bounded receive queue, and the
 * kernel counts what overflows it. Linux publishes the count per socket in
 * /proc/net/udp and /proc/net/udp6 (the last column); elsewhere it is unknown.
 */
import * as Endpoint from "./Endpoint.ts"
import * as ProcFs from "./ProcFs.ts"

const hex = (byte: number) => byte.toString(16).toUpperCase().padStart(2, "0")

// The kernel prints addresses as 32-bit words in host byte order (little-endian on the machines caps runs on).
const littleEndianWords = (bytes: ReadonlyArray<number>): string => {
  let out = ""
  for (let word = 0; word < bytes.length; word += 4) {
    for (let i = 3; i >= 0; i--) out += hex(bytes[word + i])
  }
  return out
}

const ipv6Bytes = (address: string): Array<number> => {
  const [head, tail = ""] = address.split("::")
  const groups = (part: string) => part === "" ? [] : part.split(":")
  const left = groups(head)
  const right = groups(tail)
  const all = address.includes("::") ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right] : left
  return all.flatMap((group) => {
    const value = parseInt(group, 16)
    return [value >> 8, value & 0xff]
  })
}

/** The local address of a socket bound to `host`:`port`, as /proc/net/udp{,6} spells it. */
const procAddress = (host: string, port: number): string | undefined => {
  const portHex = port.toString(16).toUpperCase().padStart(4, "0")
  const version = Endpoint.ipVersion(host)
  if (version === 4) return `${littleEndianWords(host.split(".").map(Number))}:${portHex}`
  if (version === 6 && !host.includes(".") && !host.includes("%")) {
    return `${littleEndianWords(ipv6Bytes(host))}:${portHex}`
  }
  return undefined
}

/** Drops counted by the kernel for the socket bound to `host`:`port`; `undefined` where the platform does not say. */
export const dropped = (host: string, port: number): number | undefined => {
  const local = procAddress(host, port)
  if (local === undefined) return undefined
  for (const table of ["/proc/net/udp", "/proc/net/udp6"]) {
    const text = ProcFs.readText(table)
    if (text === undefined) continue
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length >= 13 && fields[1] === local) return Number(fields[fields.length - 1]) || 0
    }
  }
  return undefined
}
