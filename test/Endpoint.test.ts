// How caps spells a place in every message: `host:port/transport`, IPv6 literals in brackets, and an
// IPv4 peer seen through a dual-stack socket (`::ffff:127.0.0.1`) named by its IPv4 address, while
// IPv6 addresses that merely start the same way are left alone.
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Net from "node:net"
import * as Endpoint from "../src/Endpoint.ts"
import { addressLike, ipv6Like, trickyHosts } from "./support/Hosts.ts"

describe("Endpoint", () => {
  it("tells IPv4 and IPv6 literals from names, as net.isIP does", () => {
    // caps checks without node:net: a copy of Node's IPv4 pattern, and its IPv6 pattern as a parser.
    for (const host of trickyHosts) assert.strictEqual(Endpoint.ipVersion(host), Net.isIP(host), JSON.stringify(host))
    assert.strictEqual(Endpoint.ipVersion("::1"), 6)
    assert.strictEqual(Endpoint.ipVersion("127.0.0.1"), 4)
  })

  it("agrees with net.isIP on strings made of the characters of addresses", () => {
    fc.assert(fc.property(addressLike, (host) => Endpoint.ipVersion(host) === Net.isIP(host)), { numRuns: 2000 })
  })

  it("agrees with net.isIP on IPv6 literals and their near-misses", () => {
    fc.assert(fc.property(ipv6Like, (host) => Endpoint.ipVersion(host) === Net.isIP(host)), { numRuns: 20_000 })
  })

  it("formats host:port/transport, bracketing IPv6 literals only", () => {
    assert.strictEqual(Endpoint.format(Endpoint.make("127.0.0.1", 12000, "udp")), "127.0.0.1:12000/udp")
    assert.strictEqual(Endpoint.format(Endpoint.make("::1", 12000, "tcp")), "[::1]:12000/tcp")
    assert.strictEqual(Endpoint.format(Endpoint.make("localhost", 80, "tcp")), "localhost:80/tcp")
    assert.strictEqual(Endpoint.formatHostPort("fe80::1%lo", 5), "[fe80::1%lo]:5")
    assert.strictEqual(Endpoint.formatHostPort("example.org", 5), "example.org:5")
  })

  it("names an IPv4-mapped IPv6 peer by its IPv4 address", () => {
    assert.deepStrictEqual(Endpoint.make("::ffff:127.0.0.1", 5000, "udp"), {
      host: "127.0.0.1",
      port: 5000,
      transport: "udp",
    })
    assert.strictEqual(Endpoint.format(Endpoint.make("::ffff:10.1.2.3", 1, "tcp")), "10.1.2.3:1/tcp")
  })

  it("leaves other IPv6 addresses as they are, also those that start with ::ffff: but hold no IPv4 part", () => {
    assert.strictEqual(Endpoint.make("::ffff:abcd", 1, "udp").host, "::ffff:abcd")
    assert.strictEqual(Endpoint.make("::1", 1, "udp").host, "::1")
    assert.strictEqual(Endpoint.make("2001:db8::ffff:1.2.3.4", 1, "udp").host, "2001:db8::ffff:1.2.3.4")
    assert.strictEqual(Endpoint.make("10.0.0.1", 1, "udp").host, "10.0.0.1")
  })
})
