/**
 * What `caps proxy` counts and how it reports: the counters of its two
 * relays, the one-line summary it logs when it stops, and the callback
 * through which a relay reports each fault it injects.
 *
 * Apart from the relays, which hold `node:dgram` and `node:net` sockets, so
 * that the proxy's public types (its `stats`) need no Node type definitions:
 * a consumer of the npm package type-checks them without `@types/node`.
 */
import type * as Endpoint from "./Endpoint.ts"

/** What the UDP relay counts. */
export interface UdpStats {
  /** Datagrams that reached the proxy, both directions. */
  readonly received: number
  /** Datagrams the proxy sent on, duplicates included. */
  readonly relayed: number
  readonly dropped: number
  readonly duplicated: number
  readonly reordered: number
  readonly delayed: number
  readonly blackholed: number
  /** Flows open now, and opened in all. */
  readonly flows: number
  readonly flowsTotal: number
  /** Not relayed: from the target or the proxy itself to the proxy's port (a loop). */
  readonly loopGuarded: number
  /** Not relayed: `maxFlows` were open, or `MAX_SCHEDULED` datagrams already waited. */
  readonly overflow: number
  /** Sends that failed, and errors the target's side reported (ICMP port unreachable: nothing listens there). */
  readonly sendErrors: number
  readonly idleClosed: number
}

/** What the TCP relay counts. */
export interface TcpStats {
  /** Connections accepted and relayed (or blackholed), in all, and open now. */
  readonly connections: number
  readonly open: number
  /** Bytes written on, both directions. */
  readonly bytesRelayed: number
  /** Chunks held back by the delay. */
  readonly delayed: number
  /** Writes made by slicing. */
  readonly slices: number
  /** Pieces that waited for the bandwidth. */
  readonly throttled: number
  /** Bytes received in a blackholed direction and never forwarded. */
  readonly blackholedBytes: number
  /** Connections reset, or closed cleanly, by `resetAfter` / `closeAfter`. */
  readonly resets: number
  readonly closes: number
  /** Connections whose target could not be reached (the client's connection is then reset). */
  readonly connectFailures: number
  readonly idleClosed: number
}

/** Counters of a running proxy. */
export interface ProxyStats {
  readonly udp: UdpStats
  readonly tcp: TcpStats & {
    /** Closed at once because `maxConnections` were relayed. */
    readonly rejected: number
    readonly acceptErrors: number
  }
}

/**
 * How a relay reports: a fault it injected (`info`) or a problem (`warning`), with the peer it concerns;
 * the proxy throttles each kind to one line a second.
 */
export type Report = (
  level: "info" | "warning",
  kind: string,
  peer: Endpoint.Endpoint,
  message: () => string,
) => void

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** The summary line of a proxy's counts, as it logs it when it stops. */
export const summary = (stats: ProxyStats): string => {
  const { udp, tcp } = stats
  const udpFaults = [
    [udp.dropped, "dropped"],
    [udp.duplicated, "duplicated"],
    [udp.reordered, "reordered"],
    [udp.delayed, "delayed"],
    [udp.blackholed, "blackholed"],
    [udp.loopGuarded, "refused as loops"],
    [udp.overflow, "over the limits"],
    [udp.sendErrors, "send errors"],
  ] as const
  const tcpFaults = [
    [tcp.delayed, "chunks delayed"],
    [tcp.slices, "slices"],
    [tcp.throttled, "pieces throttled"],
    [tcp.blackholedBytes, "bytes blackholed"],
    [tcp.resets, tcp.resets === 1 ? "reset" : "resets"],
    [tcp.closes, "closed"],
    [tcp.connectFailures, "target unreachable"],
    [tcp.idleClosed, "idle closed"],
    [tcp.rejected, "rejected"],
  ] as const
  const extra = (faults: ReadonlyArray<readonly [number, string]>) =>
    faults.filter(([n]) => n > 0).map(([n, what]) => `, ${n} ${what}`).join("")
  return `UDP: ${plural(udp.received, "datagram")} received, ${udp.relayed} relayed${extra(udpFaults)}; ` +
    `TCP: ${plural(tcp.connections, "connection")}, ${plural(tcp.bytesRelayed, "byte")} relayed${extra(tcpFaults)}`
}
