/**
 * caps's metrics: every name, type and label the servers report, as Effect
 * `Metric`s in the `MetricRegistry` of the program that runs them (an
 * embedder's own registry, or the CLI's, which `--metrics-port` serves in
 * Prometheus's text format).
 *
 * Names follow Prometheus's conventions: one `caps_` prefix, base units
 * (seconds, bytes), `_total` on counters. Labels have a handful of values
 * each (transport, result, reason); never a peer address, whose cardinality
 * has no bound.
 *
 * Counting is one plain increment in the request path: each server owns a
 * `TcpCounters` or `UdpCounters` (its `stats` reads the same fields), and the
 * series read them when they are read (`Metric.registerUnsafe`), summed over
 * the servers of the registry. Pushing every update through `Metric.update`
 * costs a registry lookup per request; this costs nothing until a scrape.
 * Every series is registered, at 0, when the first server of a registry
 * starts, and stays after the servers stop, as counters do.
 */
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import * as Runtime from "./Runtime.ts"

/** Request durations: 0.25 ms to 10 s (CoreDNS's buckets start at 0.25 ms too). */
export const DURATION_BOUNDARIES: ReadonlyArray<number> = [
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
]

/** Request and reply sizes: 16 bytes to 64 KiB, by powers of four. */
export const SIZE_BOUNDARIES: ReadonlyArray<number> = [16, 64, 256, 1024, 4096, 16384, 65536]

/** A histogram counted in place: `observe` is a short scan and three additions. */
export class Histogram {
  readonly boundaries: ReadonlyArray<number>
  readonly #counts: Array<number>
  #count = 0
  #sum = 0
  #min = Number.POSITIVE_INFINITY
  #max = Number.NEGATIVE_INFINITY

  constructor(boundaries: ReadonlyArray<number>) {
    this.boundaries = boundaries
    this.#counts = boundaries.map(() => 0)
  }

  /** Records `value` `times` times (the lines answered by one write share their duration). */
  observe(value: number, times = 1): void {
    const boundaries = this.boundaries
    let i = 0
    while (i < boundaries.length && value > boundaries[i]) i++
    if (i < boundaries.length) this.#counts[i] += times
    this.#count += times
    this.#sum += value * times
    if (value < this.#min) this.#min = value
    if (value > this.#max) this.#max = value
  }

  /** The state as Effect's histograms report it: cumulative counts per upper bound. */
  static state(histograms: Iterable<Histogram>, boundaries: ReadonlyArray<number>): Metric.HistogramState {
    const cumulative = boundaries.map(() => 0)
    let count = 0
    let sum = 0
    let min = Number.POSITIVE_INFINITY
    let max = Number.NEGATIVE_INFINITY
    for (const histogram of histograms) {
      for (let i = 0; i < boundaries.length; i++) cumulative[i] += histogram.#counts[i]
      count += histogram.#count
      sum += histogram.#sum
      min = Math.min(min, histogram.#min)
      max = Math.max(max, histogram.#max)
    }
    for (let i = 1; i < boundaries.length; i++) cumulative[i] += cumulative[i - 1]
    return {
      buckets: boundaries.map((boundary, i) => [boundary, cumulative[i]] as [number, number]),
      count,
      sum,
      min: count === 0 ? 0 : min,
      max: count === 0 ? 0 : max,
    }
  }
}

/** What every server counts per request. */
class RequestCounters {
  answered = 0
  /** The transform threw or its effect failed. */
  failed = 0
  /** Sequences of invalid UTF-8 replaced with U+FFFD. */
  invalidUtf8 = 0
  readonly duration = new Histogram(DURATION_BOUNDARIES)
  readonly requestBytes = new Histogram(SIZE_BOUNDARIES)
  readonly replyBytes = new Histogram(SIZE_BOUNDARIES)
}

/** Why a TCP connection was closed (`caps_tcp_connections_closed_total{reason}`). */
export const CLOSE_REASONS = ["peer", "idle", "drain", "cut", "error", "too_long"] as const
export type CloseReason = typeof CLOSE_REASONS[number]

const zeroes = <K extends string>(keys: ReadonlyArray<K>): Record<K, number> =>
  Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>

/** The counters of one TCP server. */
export class TcpCounters extends RequestCounters {
  /** Lines refused: longer than the limit (the connection is closed). */
  tooLong = 0
  accepted = 0
  active = 0
  readonly closed: Record<CloseReason, number> = zeroes(CLOSE_REASONS)
  /** Connections whose input held invalid UTF-8. */
  malformedConnections = 0
  // Counted by the accept loop (TcpListener).
  rejected: () => number = () => 0
  acceptErrors: () => number = () => 0
  handshakeFailures: () => number = () => 0
}

/** Why a datagram was not answered (`caps_udp_datagrams_refused_total{reason}`). */
export const UDP_REFUSALS = [
  "loop_guard",
  "rate_limit",
  "amplification",
  "too_large",
  "truncated",
  "overloaded",
] as const
export type UdpRefusal = typeof UDP_REFUSALS[number]

/** The counters of one UDP server. */
export class UdpCounters extends RequestCounters {
  received = 0
  readonly refused: Record<UdpRefusal, number> = zeroes(UDP_REFUSALS)
  sendErrors = 0
  /** Dropped by the kernel (receive buffer full); `undefined` where the platform does not say. */
  dropped: () => number | undefined = () => undefined
}

// The metrics, by name. Exported so that an embedder can read one with `Metric.value`.
export const requests = Metric.counter("caps_requests_total", {
  description:
    "Requests (TCP lines, or a sentence sent without newline; UDP datagrams) by transport and result: answered, failed, refused",
})
export const requestDuration = Metric.histogram("caps_request_duration_seconds", {
  description: "Time from a request's arrival to its reply being handed to the socket, answered requests only",
  boundaries: DURATION_BOUNDARIES,
})
export const requestSize = Metric.histogram("caps_request_size_bytes", {
  description:
    "Size of answered requests in bytes (a TCP line with its newline, a UDP payload; a sentence split over reads, its first read)",
  boundaries: SIZE_BOUNDARIES,
})
export const replySize = Metric.histogram("caps_reply_size_bytes", {
  description: "Size of replies in bytes (a TCP line with its newline, a UDP payload)",
  boundaries: SIZE_BOUNDARIES,
})
export const invalidUtf8 = Metric.counter("caps_invalid_utf8_sequences_total", {
  description: "Sequences of invalid UTF-8 in requests, replaced with U+FFFD and answered",
})
export const tcpConnectionsActive = Metric.gauge("caps_tcp_connections_active", {
  description: "TCP connections being served now",
})
export const tcpConnections = Metric.counter("caps_tcp_connections_total", {
  description: "TCP connections accepted and served (not counting those rejected at the limit)",
})
export const tcpConnectionsRejected = Metric.counter("caps_tcp_connections_rejected_total", {
  description: "TCP connections closed at once because the connection limit was reached",
})
export const tcpConnectionsClosed = Metric.counter("caps_tcp_connections_closed_total", {
  description: "TCP connections closed, by reason: peer, idle, drain, cut (at the drain deadline), error, too_long",
})
export const tcpAcceptErrors = Metric.counter("caps_tcp_accept_errors_total", {
  description: "Failures to accept a TCP connection (EMFILE and the like)",
})
export const tlsHandshakeFailures = Metric.counter("caps_tls_handshake_failures_total", {
  description: "TLS handshakes that failed: plaintext clients, clients refusing the certificate, timeouts",
})
export const udpDatagramsRefused = Metric.counter("caps_udp_datagrams_refused_total", {
  description:
    "UDP datagrams not answered, by reason: loop_guard, rate_limit, amplification, too_large, truncated (Deno), overloaded",
})
export const udpDatagramsDropped = Metric.counter("caps_udp_datagrams_dropped_total", {
  description: "UDP datagrams the kernel dropped because the receive buffer was full",
})
export const udpSendErrors = Metric.counter("caps_udp_send_errors_total", {
  description: "UDP replies whose send failed",
})
export const buildInfo = Metric.gauge("caps_build_info", {
  description: "Always 1; the labels say which caps and which runtime",
})

/** The servers counted in one registry. */
interface Counted {
  readonly tcp: Set<TcpCounters>
  readonly udp: Set<UdpCounters>
  dropsRegistered: boolean
}

const countedByRegistry = new WeakMap<object, Counted>()

const sum = <C>(servers: Set<C>, read: (counters: C) => number): number => {
  let total = 0
  for (const counters of servers) total += read(counters)
  return total
}

const counterState = (count: number): Metric.CounterState<number> => ({ count, incremental: true })

/** Registers a series whose value is read from the servers when the registry is read. */
const register = <S>(
  metric: Metric.Metric<never, S>,
  attributes: Record<string, string>,
  context: Context.Context<never>,
  get: () => S,
): void => {
  Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
    get,
    update: () => {},
    modify: () => {},
  })
}

const registerAll = (counted: Counted, context: Context.Context<never>): void => {
  const { tcp, udp } = counted
  const counter = (metric: Metric.Counter<number>, attributes: Record<string, string>, get: () => number) =>
    register(metric, attributes, context, () => counterState(get()))
  for (const [transport, servers] of [["tcp", tcp], ["udp", udp]] as const) {
    const all = servers as Set<RequestCounters>
    const labels = { transport }
    counter(requests, { transport, result: "answered" }, () => sum(all, (c) => c.answered))
    counter(requests, { transport, result: "failed" }, () => sum(all, (c) => c.failed))
    counter(invalidUtf8, labels, () => sum(all, (c) => c.invalidUtf8))
    const histogram = (
      metric: Metric.Histogram<number>,
      boundaries: ReadonlyArray<number>,
      of: (c: RequestCounters) => Histogram,
    ) => register(metric, labels, context, () => Histogram.state([...all].map(of), boundaries))
    histogram(requestDuration, DURATION_BOUNDARIES, (c) => c.duration)
    histogram(requestSize, SIZE_BOUNDARIES, (c) => c.requestBytes)
    histogram(replySize, SIZE_BOUNDARIES, (c) => c.replyBytes)
  }
  counter(requests, { transport: "tcp", result: "refused" }, () => sum(tcp, (c) => c.tooLong))
  counter(
    requests,
    { transport: "udp", result: "refused" },
    () => sum(udp, (c) => Object.values(c.refused).reduce((a, b) => a + b, 0)),
  )
  register(tcpConnectionsActive, {}, context, () => ({ value: sum(tcp, (c) => c.active) }))
  counter(tcpConnections, {}, () => sum(tcp, (c) => c.accepted))
  counter(tcpConnectionsRejected, {}, () => sum(tcp, (c) => c.rejected()))
  for (const reason of CLOSE_REASONS) {
    counter(tcpConnectionsClosed, { reason }, () => sum(tcp, (c) => c.closed[reason]))
  }
  counter(tcpAcceptErrors, {}, () => sum(tcp, (c) => c.acceptErrors()))
  counter(tlsHandshakeFailures, {}, () => sum(tcp, (c) => c.handshakeFailures()))
  for (const reason of UDP_REFUSALS) {
    counter(udpDatagramsRefused, { reason }, () => sum(udp, (c) => c.refused[reason]))
  }
  counter(udpSendErrors, {}, () => sum(udp, (c) => c.sendErrors))
  register(buildInfo, Runtime.buildLabels(), context, () => ({ value: 1 }))
}

/**
 * Counts `counters` in the `MetricRegistry` of `context`: the first server of a registry registers every
 * series. The kernel's drop count is registered once a server can read it (not on Deno without `/proc`).
 */
export const track = (counters: TcpCounters | UdpCounters, context: Context.Context<never>): void => {
  const registry = Context.get(context, Metric.MetricRegistry)
  let counted = countedByRegistry.get(registry)
  if (counted === undefined) {
    counted = { tcp: new Set(), udp: new Set(), dropsRegistered: false }
    countedByRegistry.set(registry, counted)
    registerAll(counted, context)
  }
  if (counters instanceof TcpCounters) return void counted.tcp.add(counters)
  counted.udp.add(counters)
  if (!counted.dropsRegistered && counters.dropped() !== undefined) {
    counted.dropsRegistered = true
    const udp = counted.udp
    register(udpDatagramsDropped, {}, context, () => counterState(sum(udp, (c) => c.dropped() ?? 0)))
  }
}
