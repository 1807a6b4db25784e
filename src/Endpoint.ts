/**
 * A transport endpoint as caps names it in messages and logs: `host:port/udp`,
 * with IPv6 hosts in brackets (`[::1]:12000/tcp`). Every error and ready line
 * goes through here so that the same place is always spelled the same way.
 */
import * as Builtins from "./Builtins.ts"

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

/**
 * The IP version of `host` as an address literal: 4, 6, or 0 for a name (as `net.isIP`). Only a host with a colon
 * is matched against Node's IPv6 pattern, through `node:net`, whose first use compiles a regular expression for some
 * 4 ms, a twentieth of a start: IPv4 addresses and names never pay for it, nor load `node:net` (Builtins.ts).
 */
export const ipVersion = (host: string): 0 | 4 | 6 =>
  IPV4.test(host) ? 4 : host.includes(":") && Builtins.net().isIPv6(host) ? 6 : 0

/** Builds an endpoint. */
export const make = (host: string, port: number, transport: Transport): Endpoint => ({
  host: unmapped(host),
  port,
  transport,
})
