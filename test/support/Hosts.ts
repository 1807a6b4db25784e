// Host strings on which a check of IP literals must agree with node:net's isIP: the tricky cases by name, a
// generator of strings made of the characters of addresses (dotted numbers, leading zeros, colons, zone ids), and
// one of IPv6 literals and their near-misses (group counts, "::" anywhere, IPv4 tails, zone ids).
import * as fc from "fast-check"

/** Literals, names and near-misses of both families. */
export const trickyHosts: ReadonlyArray<string> = [
  ...["127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1%lo", "::ffff:127.0.0.1", "2001:db8::1", "localhost"],
  ...["127.0.0.256", "1.2.3", ":::", "1:2:3:4:5:6:7:8:9", "[::1]", "", "example.org", "::1 ", "12000"],
  ...["01.2.3.4", "1.2.3.04", "255.255.255.255", "1.2.3.4.5", "1..2.3", " 1.2.3.4", "1.2.3.4\n"],
  ...["0x7f.0.0.1", "1.2.3.-1", "\u0661.\u0662.\u0663.\u0664", "1.2.3.4/8", "300.1.1.1", "0.0.0.00"],
  ...["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7::8", "::1:2:3:4:5:6:7", "::1:2:3:4:5:6:7:8", "1::2::3"],
  ...["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5::1.2.3.4", "1:2:3:4:5:6::1.2.3.4", "::1.2.3.4"],
  ...["1.2.3.4::", "::1.2.3.4:1", "1::2:1.2.3.04", "12345::", "ABCD:ef01::", "g::", ":1::", "1:::2", "1::2:"],
  ...["fe80::1%", "fe80::1%eth0.5", "fe80::1%a:b-c", "fe80::1%%", "fe80::1%e_0", "fe80::1% ", "%lo", "::%1"],
]

const part = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom("0", "00", "01", "255", ""))

/** Dotted numbers of one to six parts, and strings of the characters addresses are made of. */
export const addressLike: fc.Arbitrary<string> = fc.oneof(
  fc.array(part, { minLength: 1, maxLength: 6 }).map((parts) => parts.join(".")),
  fc.string({ unit: fc.constantFrom(..."0123456789.:abcdef%"), maxLength: 24 }),
)

const hexGroup = fc.oneof(
  {
    arbitrary: fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), minLength: 1, maxLength: 4 }),
    weight: 8,
  },
  {
    arbitrary: fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEFg"), minLength: 0, maxLength: 5 }),
    weight: 1,
  },
)
const ipv4Tail = fc.oneof(
  fc.tuple(part, part, part, part).map((parts) => parts.join(".")),
  fc.constantFrom("1.2.3.4", "127.0.0.1", "255.255.255.255", "1.2.3", "01.2.3.4"),
)
const zoneId = fc.string({ unit: fc.constantFrom(..."az09.:-%_ "), minLength: 0, maxLength: 4 })

/** IPv6 literals and near-misses: zero to nine groups, maybe a "::" among them, an IPv4 tail, a zone id. */
export const ipv6Like: fc.Arbitrary<string> = fc.record({
  groups: fc.array(hexGroup, { minLength: 0, maxLength: 9 }),
  gapAt: fc.option(fc.nat({ max: 9 })),
  ipv4: fc.option(ipv4Tail),
  zone: fc.option(zoneId),
}).map(({ gapAt, groups, ipv4, zone }) => {
  const parts = ipv4 === null ? groups : [...groups, ipv4]
  const address = gapAt === null
    ? parts.join(":")
    : `${parts.slice(0, gapAt).join(":")}::${parts.slice(gapAt).join(":")}`
  return zone === null ? address : `${address}%${zone}`
})
