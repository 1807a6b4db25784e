/**
 * The faults `caps proxy` injects, as a plan decided by a seed: what happens
 * to each datagram, and what the TCP relay does to its bytes. Pure: no
 * sockets, no clock, so the same seed gives the same faults in any program,
 * and a test can read a plan's decisions without a network.
 *
 * The randomness is a fixed generator written here (mulberry32, a 32-bit
 * state that passes the usual statistical batteries), not `Math.random` or
 * Effect's `Random`, whose algorithm may change between versions: a
 * catalogue entry quoted with `--seed 1` has to give the same outcome next
 * year. Each random fault draws from a stream of its own per direction,
 * seeded from the seed, the direction and the fault, and every datagram in
 * a direction draws once from each stream in arrival order. So datagram `i`
 * of the replies is dropped with `--drop 0.3 --seed 1` whatever other faults
 * are on, and raising the rate only adds drops to the ones already there.
 */

/** Where a datagram or byte travels: from a client to the target, or back. */
export type Direction = "requests" | "replies"

/** Which directions the faults apply to. */
export type Applies = Direction | "both"

/** The faults of one proxy, as `FaultProxy` decodes them from its options. Zero (or `undefined`) is off. */
export interface FaultSettings {
  readonly direction: Applies
  readonly seed: number
  /** UDP: the share of datagrams dropped, 0 to 1. */
  readonly drop: number
  /** UDP: the share of datagrams sent twice. */
  readonly duplicate: number
  /** UDP: the share of datagrams held back and sent after the next one. */
  readonly reorder: number
  /** UDP and TCP: added to every datagram's or chunk's way, in milliseconds. */
  readonly delayMillis: number
  /** UDP: a datagram's delay varies uniformly by up to this much either way (never below 0). */
  readonly jitterMillis: number
  /** UDP: receive, never forward; TCP: accept, never forward. */
  readonly blackhole: boolean
  /** TCP: forward in pieces of at most this many bytes, each its own write. */
  readonly slice: number | undefined
  /** TCP: reset both sides once this many bytes were relayed in a faulted direction. */
  readonly resetAfter: number | undefined
  /** TCP: close both sides cleanly once this many bytes were relayed in a faulted direction. */
  readonly closeAfter: number | undefined
  /** TCP: at most this many bytes a second in a faulted direction. */
  readonly bandwidth: number | undefined
}

/** No faults at all: a plain relay. */
export const none: FaultSettings = {
  direction: "both",
  seed: 1,
  drop: 0,
  duplicate: 0,
  reorder: 0,
  delayMillis: 0,
  jitterMillis: 0,
  blackhole: false,
  slice: undefined,
  resetAfter: undefined,
  closeAfter: undefined,
  bandwidth: undefined,
}

/** A generator of numbers in [0, 1): mulberry32, from a 32-bit seed. */
export const mulberry32 = (seed: number): () => number => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// MurmurHash3's finaliser: nearby seeds (1, 2, 3) give unrelated streams.
const mix = (h: number): number => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

const STREAMS = { drop: 1, duplicate: 2, reorder: 3, jitter: 4 } as const

/** The seed of one fault's stream in one direction. */
export const streamSeed = (seed: number, direction: Direction, fault: keyof typeof STREAMS): number =>
  mix(mix(seed >>> 0) ^ (STREAMS[fault] * 0x9e3779b9 + (direction === "requests" ? 0 : 0x632be5ab)))

/** What the proxy does with one datagram. */
export type DatagramFate =
  | { readonly _tag: "Blackholed" }
  | { readonly _tag: "Dropped" }
  | {
    readonly _tag: "Relayed"
    /** 2 when it is duplicated. */
    readonly copies: 1 | 2
    /** Held back, to go after the next datagram in its direction. */
    readonly held: boolean
    readonly delayMillis: number
  }

const relayedAsIs: DatagramFate = { _tag: "Relayed", copies: 1, held: false, delayMillis: 0 }

interface Streams {
  readonly drop: () => number
  readonly duplicate: () => number
  readonly reorder: () => number
  readonly jitter: () => number
}

const streamsOf = (seed: number, direction: Direction): Streams => ({
  drop: mulberry32(streamSeed(seed, direction, "drop")),
  duplicate: mulberry32(streamSeed(seed, direction, "duplicate")),
  reorder: mulberry32(streamSeed(seed, direction, "reorder")),
  jitter: mulberry32(streamSeed(seed, direction, "jitter")),
})

/** A proxy's faults with their random streams: ask it, in arrival order, what happens to each datagram. */
export class FaultPlan {
  readonly settings: FaultSettings
  readonly #streams: { readonly requests: Streams; readonly replies: Streams }

  constructor(settings: FaultSettings) {
    this.settings = settings
    this.#streams = { requests: streamsOf(settings.seed, "requests"), replies: streamsOf(settings.seed, "replies") }
  }

  /** Whether faults apply to `direction`. */
  applies(direction: Direction): boolean {
    return this.settings.direction === "both" || this.settings.direction === direction
  }

  /** The fate of the next datagram in `direction`; each call draws once from every stream of that direction. */
  datagram(direction: Direction): DatagramFate {
    if (!this.applies(direction)) return relayedAsIs
    const s = this.settings
    const streams = this.#streams[direction]
    const drop = streams.drop()
    const duplicate = streams.duplicate()
    const reorder = streams.reorder()
    const jitter = streams.jitter()
    if (s.blackhole) return { _tag: "Blackholed" }
    if (drop < s.drop) return { _tag: "Dropped" }
    const delayMillis = Math.max(0, Math.round(s.delayMillis + (2 * jitter - 1) * s.jitterMillis))
    return { _tag: "Relayed", copies: duplicate < s.duplicate ? 2 : 1, held: reorder < s.reorder, delayMillis }
  }

  /** The TCP faults of `direction`, or `undefined` where the bytes go as they come. */
  tcp(direction: Direction): TcpFaults | undefined {
    const s = this.settings
    if (!this.applies(direction)) return undefined
    const budget = s.resetAfter !== undefined
      ? { bytes: s.resetAfter, then: "reset" as const }
      : s.closeAfter !== undefined
      ? { bytes: s.closeAfter, then: "close" as const }
      : undefined
    if (!s.blackhole && s.delayMillis === 0 && s.slice === undefined && budget === undefined && !s.bandwidth) {
      return undefined
    }
    return { blackhole: s.blackhole, delayMillis: s.delayMillis, slice: s.slice, budget, bandwidth: s.bandwidth }
  }
}

/** The TCP faults of one direction. */
export interface TcpFaults {
  readonly blackhole: boolean
  readonly delayMillis: number
  readonly slice: number | undefined
  /** After `bytes` relayed, reset or close both sides. */
  readonly budget: { readonly bytes: number; readonly then: "reset" | "close" } | undefined
  readonly bandwidth: number | undefined
}

/** The faults in a few words, as the ready line says them: `drop 0.3, delay 100 ms ± 20 ms (both), seed 1`. */
export const describe = (s: FaultSettings): string => {
  const parts: Array<string> = []
  if (s.blackhole) parts.push("blackhole")
  if (s.drop > 0) parts.push(`drop ${s.drop}`)
  if (s.duplicate > 0) parts.push(`duplicate ${s.duplicate}`)
  if (s.reorder > 0) parts.push(`reorder ${s.reorder}`)
  if (s.delayMillis > 0 || s.jitterMillis > 0) {
    parts.push(`delay ${s.delayMillis} ms` + (s.jitterMillis > 0 ? ` ± ${s.jitterMillis} ms` : ""))
  }
  if (s.slice !== undefined) parts.push(`slice ${s.slice} B`)
  if (s.resetAfter !== undefined) parts.push(`reset after ${s.resetAfter} B`)
  if (s.closeAfter !== undefined) parts.push(`close after ${s.closeAfter} B`)
  if (s.bandwidth !== undefined) parts.push(`bandwidth ${s.bandwidth} B/s`)
  if (parts.length === 0) return "none"
  const random = s.drop > 0 || s.duplicate > 0 || s.reorder > 0 || s.jitterMillis > 0
  return `${parts.join(", ")} (${s.direction})` + (random ? `, seed ${s.seed}` : "")
}
