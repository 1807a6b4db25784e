// Host strings on which a check of IP literals must agree with node:net's isIP: the tricky cases by name, and a
// generator of strings made of the characters of addresses (dotted numbers, leading zeros, colons, zone ids).
import * as fc from "fast-check"

/** Literals, names and near-misses of both families. */
export const trickyHosts: ReadonlyArray<string> = [
  ...["127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1%lo", "::ffff:127.0.0.1", "2001:db8::1", "localhost"],
  ...["127.0.0.256", "1.2.3", ":::", "1:2:3:4:5:6:7:8:9", "[::1]", "", "example.org", "::1 ", "12000"],
  ...["01.2.3.4", "1.2.3.04", "255.255.255.255", "1.2.3.4.5", "1..2.3", " 1.2.3.4", "1.2.3.4\n"],
  ...["0x7f.0.0.1", "1.2.3.-1", "\u0661.\u0662.\u0663.\u0664", "1.2.3.4/8", "300.1.1.1", "0.0.0.00"],
]

const part = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom("0", "00", "01", "255", ""))

/** Dotted numbers of one to six parts, and strings of the characters addresses are made of. */
export const addressLike: fc.Arbitrary<string> = fc.oneof(
  fc.array(part, { minLength: 1, maxLength: 6 }).map((parts) => parts.join(".")),
  fc.string({ unit: fc.constantFrom(..."0123456789.:abcdef%"), maxLength: 24 }),
)
