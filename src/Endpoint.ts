/**
 * A transport endpoint as caps names it in messages and logs: `host:port/udp`,
 * with IPv6 hosts in brackets (`[::1]:12000/tcp`). Every error and ready line
 * goes through here so that the same place is always spelled the same way.
 */
/** The two transports of the textbook chapter. */
export type Transport = "udp" | "tcp"

/** A host (name or IP literal) and port on one transport. */
export interface Endpoint {
  readonly host: string
  readonly port: number
  readonly transport: Transport
}

/** `host:port`, bracketing IPv6 literals. */
export const formatHostPort = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

/** `host:port/transport`, the form used in every message. */
export const format = (endpoint: Endpoint): string =>
  `${formatHostPort(endpoint.host, endpoint.port)}/${endpoint.transport}`

// Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6 (`::ffff:127.0.0.1`); people know them as IPv4.
const unmapped = (host: string): string =>
  host.startsWith("::ffff:") && host.includes(".") ? host.slice("::ffff:".length) : host

// Node's own IPv4 pattern (lib/internal/net.js): four decimal parts, 0 to 255, without leading zeros.
const IPV4_PART = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
const IPV4 = new RegExp(`^(?:${IPV4_PART}\\.){3}${IPV4_PART}$`)

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/
const ZONE_ID = /^[0-9a-zA-Z.:-]+$/

// The 16-bit groups that `parts` (an address split at its colons) stand for, or -1 if one is not a group: an IPv4
// address, allowed as the last part only, stands for two.
const groupsOf = (parts: ReadonlyArray<string>, ipv4Last: boolean): number => {
  let groups = 0
  for (let i = 0; i < parts.length; i++) {
    if (HEX_GROUP.test(parts[i]!)) groups += 1
    else if (ipv4Last && i === parts.length - 1 && IPV4.test(parts[i]!)) groups += 2
    else return -1
  }
  return groups
}

/**
 * Node's IPv6 pattern (lib/internal/net.js) as a parser: eight groups of one to four hex digits, the last two of
 * which may be an IPv4 address; one `::` standing for one or more zero groups; then an optional zone id (`%` and
 * letters, digits, `-`, `.` or `:`). Node's own regular expression takes some 5 ms to compile at its first use and
 * another millisecond at its second, a tenth of a start; test/Endpoint.test.ts holds the two to the same answers.
 */
const isIPv6 = (host: string): boolean => {
  const percent = host.indexOf("%")
  if (percent !== -1 && !ZONE_ID.test(host.slice(percent + 1))) return false
  const address = percent === -1 ? host : host.slice(0, percent)
  const gap = address.indexOf("::") // a second one leaves an empty part in the tail
  if (gap === -1) return groupsOf(address.split(":"), true) === 8
  const head = address.slice(0, gap)
  const tail = address.slice(gap + 2)
  const before = head === "" ? 0 : groupsOf(head.split(":"), false)
  const after = tail === "" ? 0 : groupsOf(tail.split(":"), true)
  return before !== -1 && after !== -1 && before + after <= 7
}

/** The IP version of `host` as an address literal: 4, 6, or 0 for a name, as `net.isIP` says, without `node:net`. */
export const ipVersion = (host: string): 0 | 4 | 6 => IPV4.test(host) ? 4 : host.includes(":") && isIPv6(host) ? 6 : 0

/** Builds an endpoint. */
export const make = (host: string, port: number, transport: Transport): Endpoint => ({
  host: unmapped(host),
  port,
  transport,
})
