/**
 * The UDP server's defences against being used as a weapon. UDP has no
 * handshake, so a request's source address can be forged: a server that
 * answers blindly can be made to flood a victim (reflection, amplification)
 * or to ping-pong forever with another UDP service (the 2024 "Loop DoS",
 * CVE-2024-2169). Every datagram passes `admit` before it is served and
 * every reply passes `replyFits` before it is sent.
 *
 * - No reply to a source port below 1024 (echo 7, daytime 13, chargen 19,
 *   DNS 53, ...) or equal to the server's own port: real clients send from
 *   ephemeral ports, and a reply to a service port is how loops start.
 * - A reply is at most 3 times the request, as QUIC allows before a peer is
 *   validated (RFC 9000 section 8.1), counting the 8-byte UDP header into the
 *   request's size so that an empty datagram can still get a short answer.
 * - Optionally, a token bucket per source IP (off by default: clients behind
 *   one NAT share an address, and caps is mostly run on trusted networks).
 */

/** Why a datagram is not served. */
export type Refusal = "ReservedPort" | "OwnPort" | "RateLimited"

/** A per-source rate limit: `perSecond` datagrams sustained, `burst` at once. */
export interface RateLimit {
  readonly perSecond: number
  readonly burst: number
}

/** Settings of the guard. */
export interface GuardOptions {
  /** The server's own port: datagrams from it are never answered. */
  readonly serverPort: number
  readonly rateLimit?: RateLimit | undefined
  /** How many sources the rate limiter remembers; the oldest is forgotten first. */
  readonly maxTrackedSources?: number | undefined
}

/** The UDP header's size, counted into a request's size for the amplification bound. */
export const UDP_HEADER_BYTES = 8
/** How much larger than its request a reply may be. */
export const AMPLIFICATION_FACTOR = 3

interface Bucket {
  tokens: number
  updated: number
}

/** Guards one server. */
export class UdpGuard {
  readonly #serverPort: number
  readonly #rateLimit: RateLimit | undefined
  readonly #maxSources: number
  readonly #buckets = new Map<string, Bucket>()

  constructor(options: GuardOptions) {
    this.#serverPort = options.serverPort
    this.#rateLimit = options.rateLimit
    this.#maxSources = options.maxTrackedSources ?? 65_536
  }

  /** Whether a datagram from `host`:`port` may be served now; `undefined` means yes. */
  admit(host: string, port: number, nowMillis: number): Refusal | undefined {
    if (port < 1024) return "ReservedPort"
    if (port === this.#serverPort) return "OwnPort"
    if (this.#rateLimit !== undefined && !this.#take(host, nowMillis, this.#rateLimit)) return "RateLimited"
    return undefined
  }

  /** Whether a reply of `replyBytes` may answer a request of `requestBytes` (payload sizes). */
  replyFits(requestBytes: number, replyBytes: number): boolean {
    return replyBytes <= AMPLIFICATION_FACTOR * (requestBytes + UDP_HEADER_BYTES) - UDP_HEADER_BYTES
  }

  #take(host: string, now: number, limit: RateLimit): boolean {
    let bucket = this.#buckets.get(host)
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxSources) {
        this.#buckets.delete(this.#buckets.keys().next().value!)
      }
      bucket = { tokens: limit.burst, updated: now }
      this.#buckets.set(host, bucket)
    } else {
      bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.updated) * limit.perSecond) / 1000)
      bucket.updated = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }
}
