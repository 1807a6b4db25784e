// The UDP guard on its own, with the clock passed in (UdpGuards.test.ts checks the same rules through a
// real server): the port rules are exact at their boundaries, a reply may be exactly 3x its request
// counting the UDP header and not one byte more, and the token bucket refills at its rate, never above
// its burst, per source, and forgets the oldest source first.
import { assert, describe, it } from "@effect/vitest"
import * as UdpGuard from "../src/UdpGuard.ts"

const SERVER_PORT = 12000
const guard = (options: Partial<UdpGuard.GuardOptions> = {}) =>
  new UdpGuard.UdpGuard({ serverPort: SERVER_PORT, ...options })

/** The answers to `count` datagrams from `host` at `at` milliseconds. */
const admitMany = (g: UdpGuard.UdpGuard, host: string, at: number, count: number) =>
  Array.from({ length: count }, () => g.admit(host, 50_000, at))

describe("UdpGuard ports", () => {
  it("refuses every source port up to 1023 as reserved and admits 1024, the first ephemeral-range port", () => {
    const g = guard()
    assert.strictEqual(g.admit("127.0.0.1", 0, 0), "ReservedPort")
    assert.strictEqual(g.admit("127.0.0.1", 7, 0), "ReservedPort")
    assert.strictEqual(g.admit("127.0.0.1", 1023, 0), "ReservedPort")
    assert.strictEqual(g.admit("127.0.0.1", 1024, 0), undefined)
    assert.strictEqual(g.admit("127.0.0.1", 65535, 0), undefined)
  })

  it("refuses exactly the server's own port, and admits its neighbours", () => {
    const g = guard()
    assert.strictEqual(g.admit("127.0.0.2", SERVER_PORT, 0), "OwnPort")
    assert.strictEqual(g.admit("127.0.0.2", SERVER_PORT - 1, 0), undefined)
    assert.strictEqual(g.admit("127.0.0.2", SERVER_PORT + 1, 0), undefined)
  })

  it("without a rate limit admits any number of datagrams from one source at one instant", () => {
    assert.deepStrictEqual(new Set(admitMany(guard(), "10.0.0.1", 0, 10_000)), new Set([undefined]))
  })
})

describe("UdpGuard amplification bound", () => {
  it("lets a reply be 3x the request counting the 8-byte header, and not one byte more", () => {
    const g = guard()
    // 3 * (0 + 8) - 8: an empty datagram may get 16 bytes back.
    assert.isTrue(g.replyFits(0, 16))
    assert.isFalse(g.replyFits(0, 17))
    // 3 * (10 + 8) - 8 = 46.
    assert.isTrue(g.replyFits(10, 46))
    assert.isFalse(g.replyFits(10, 47))
    assert.isTrue(g.replyFits(1000, 3016))
    assert.isFalse(g.replyFits(1000, 3017))
    assert.isTrue(g.replyFits(10, 0))
  })

  it("states the bound's constants as RFC 9000 section 8.1 and the UDP header give them", () => {
    assert.strictEqual(UdpGuard.AMPLIFICATION_FACTOR, 3)
    assert.strictEqual(UdpGuard.UDP_HEADER_BYTES, 8)
  })
})

describe("UdpGuard rate limit", () => {
  it("admits a burst at once, then refuses, and spares other sources", () => {
    const g = guard({ rateLimit: { perSecond: 1, burst: 3 } })
    assert.deepStrictEqual(admitMany(g, "10.0.0.1", 0, 4), [undefined, undefined, undefined, "RateLimited"])
    assert.strictEqual(g.admit("10.0.0.2", 50_000, 0), undefined)
  })

  it("checks the ports before the rate limit, so refused datagrams spend no tokens", () => {
    const g = guard({ rateLimit: { perSecond: 1, burst: 1 } })
    assert.strictEqual(g.admit("10.0.0.1", 53, 0), "ReservedPort")
    assert.strictEqual(g.admit("10.0.0.1", SERVER_PORT, 0), "OwnPort")
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 0), undefined)
  })

  it("refills perSecond tokens a second, in fractions, from the time of the last datagram", () => {
    // 10 a second: one token every 100 ms, half a token in 50 ms.
    const g = guard({ rateLimit: { perSecond: 10, burst: 1 } })
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 0), undefined)
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 50), "RateLimited") // 0.5 token
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 100), undefined) // 0.5 + 0.5 = exactly 1 token
    // The refill counts from 100 ms, the last datagram, not from the start: 0.5 token at 150 ms.
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 150), "RateLimited")
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 200), undefined)
  })

  it("never holds more than burst tokens, however long a source was quiet", () => {
    const g = guard({ rateLimit: { perSecond: 10, burst: 2 } })
    assert.deepStrictEqual(admitMany(g, "10.0.0.1", 0, 3), [undefined, undefined, "RateLimited"])
    assert.deepStrictEqual(admitMany(g, "10.0.0.1", 1_000_000, 3), [undefined, undefined, "RateLimited"])
  })

  it("remembers at most maxTrackedSources sources, forgetting the oldest first", () => {
    const g = guard({ rateLimit: { perSecond: 1, burst: 1 }, maxTrackedSources: 2 })
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 0), undefined)
    assert.strictEqual(g.admit("10.0.0.2", 50_000, 0), undefined)
    // Two sources fit: both are still limited.
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 0), "RateLimited")
    assert.strictEqual(g.admit("10.0.0.2", 50_000, 0), "RateLimited")
    // A third pushes out the first (the oldest), whose bucket starts full again; the second is kept.
    assert.strictEqual(g.admit("10.0.0.3", 50_000, 0), undefined)
    assert.strictEqual(g.admit("10.0.0.2", 50_000, 0), "RateLimited")
    assert.strictEqual(g.admit("10.0.0.1", 50_000, 0), undefined)
  })

  it("by default remembers 65,536 sources", () => {
    const g = guard({ rateLimit: { perSecond: 1, burst: 1 } })
    const host = (i: number) => `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`
    for (let i = 0; i < 65_536; i++) g.admit(host(i), 50_000, 0)
    // All 65,536 are still limited: none was forgotten...
    assert.strictEqual(g.admit(host(0), 50_000, 0), "RateLimited")
    // ...until one more arrives and the first one tracked goes (first in, first out: being seen again
    // does not make a source younger).
    assert.strictEqual(g.admit(host(65_536), 50_000, 0), undefined)
    assert.strictEqual(g.admit(host(1), 50_000, 0), "RateLimited")
    assert.strictEqual(g.admit(host(0), 50_000, 0), undefined)
  })
})
