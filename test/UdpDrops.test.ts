// The kernel's drop count, with /proc/net/udp{,6} played by the test: a socket is found by its local
// address spelled as the kernel spells it (32-bit words in little-endian hex, IPv6 `::` expanded, the
// port in 4 upper-case hex digits), its count is the last column, and where the address cannot be
// spelled (a name, an IPv4-mapped or scoped IPv6 address) or no table has it, the count is unknown.
import { assert, beforeEach, describe, it } from "@effect/vitest"
import { vi } from "vitest"
import * as UdpDrops from "../src/UdpDrops.ts"

const proc = vi.hoisted(() => ({ tables: new Map<string, string>(), read: [] as Array<string> }))

vi.mock("../src/ProcFs.ts", () => ({
  readText: (path: string) => {
    proc.read.push(path)
    return proc.tables.get(path)
  },
  readDirectory: () => undefined,
}))

const HEADER_4 =
  "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops"
const HEADER_6 = "  sl  local_address                         remote_address                        st tx_queue " +
  "rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops"

/** A socket's line as the kernel writes it: 13 columns, the drop count last. */
const line = (local: string, drops: string | number, sl = 7) =>
  `${String(sl).padStart(5)}: ${local} 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 ` +
  `4242 2 0000000000000000 ${drops}`

const udp = (...lines: Array<string>) => proc.tables.set("/proc/net/udp", [HEADER_4, ...lines, ""].join("\n"))
const udp6 = (...lines: Array<string>) => proc.tables.set("/proc/net/udp6", [HEADER_6, ...lines, ""].join("\n"))

beforeEach(() => {
  proc.tables.clear()
  proc.read.length = 0
})

describe("UdpDrops.dropped over IPv4", () => {
  it("finds the socket by its address in little-endian hex and reads the last column", () => {
    udp(line("0100007F:2EE0", 0, 1), line("0100000A:2EE0", 42, 2), line("0100007F:3039", 5, 3))
    // 10.0.0.1 is 0A 00 00 01, read back to front; 12000 is 0x2EE0.
    assert.strictEqual(UdpDrops.dropped("10.0.0.1", 12000), 42)
    assert.strictEqual(UdpDrops.dropped("127.0.0.1", 12000), 0)
    assert.strictEqual(UdpDrops.dropped("127.0.0.1", 12345), 5)
  })

  it("pads the port to four hex digits and each address byte to two", () => {
    // 192.168.1.2 is C0 A8 01 02; port 1025 is 0x0401.
    udp(line("0201A8C0:0401", 9))
    assert.strictEqual(UdpDrops.dropped("192.168.1.2", 1025), 9)
    assert.strictEqual(UdpDrops.dropped("192.168.1.2", 4097), undefined)
  })

  it("skips a line with too few columns to be a socket's, even if its address matches", () => {
    udp("    7: 0100007F:2EE0 00000000:0000 07 99", line("0100007F:2EE0", 3))
    assert.strictEqual(UdpDrops.dropped("127.0.0.1", 12000), 3)
  })

  it("counts a drops column that is not a number as 0", () => {
    udp(line("0100007F:2EE0", "-"))
    assert.strictEqual(UdpDrops.dropped("127.0.0.1", 12000), 0)
  })

  it("searches /proc/net/udp, then /proc/net/udp6, and is unknown when neither has the address", () => {
    udp(line("0100007F:1F90", 1))
    udp6(line("0000000000000000FFFF00000100007F:2EE0", 2), line("0100007F:2EE0", 8))
    assert.strictEqual(UdpDrops.dropped("127.0.0.1", 12000), 8)
    assert.deepStrictEqual(proc.read, ["/proc/net/udp", "/proc/net/udp6"])
    assert.strictEqual(UdpDrops.dropped("127.0.0.2", 12000), undefined)
  })

  it("reads /proc/net/udp6 when /proc/net/udp cannot be read, and is unknown when neither can", () => {
    udp6(line("0100007F:2EE0", 4))
    assert.strictEqual(UdpDrops.dropped("127.0.0.1", 12000), 4)
    proc.tables.clear()
    assert.strictEqual(UdpDrops.dropped("127.0.0.1", 12000), undefined)
  })
})

describe("UdpDrops.dropped over IPv6", () => {
  it("expands :: and spells each 32-bit word little-endian", () => {
    udp6(
      line("00000000000000000000000001000000:2EE0", 11, 1), // ::1
      line("00000000000000000000000000000000:2EE0", 12, 2), // ::
      line("B80D012000000000000000000100CDAB:2EE0", 13, 3), // 2001:db8::abcd:1
      line("000080FE000000000000000002000100:2EE0", 14, 4), // fe80::1:2
      line("B80D0120000000000000000000000000:2EE0", 15, 5), // 2001:db8::
    )
    assert.strictEqual(UdpDrops.dropped("::1", 12000), 11)
    assert.strictEqual(UdpDrops.dropped("::", 12000), 12)
    assert.strictEqual(UdpDrops.dropped("2001:db8::abcd:1", 12000), 13)
    assert.strictEqual(UdpDrops.dropped("fe80::1:2", 12000), 14)
    assert.strictEqual(UdpDrops.dropped("2001:db8::", 12000), 15)
  })

  it("reads an address written out in full, without ::", () => {
    udp6(line("B80D0120000000000000000001000000:2EE0", 21))
    assert.strictEqual(UdpDrops.dropped("2001:db8:0:0:0:0:0:1", 12000), 21)
  })
})

describe("UdpDrops.dropped where the address cannot be spelled", () => {
  it("is unknown for a host name, an IPv4-mapped IPv6 address and a scoped one, without reading /proc", () => {
    udp(line("0100007F:2EE0", 1))
    udp6(line("0000000000000000FFFF00000100007F:2EE0", 2), line("000080FE000000000000000001000000:2EE0", 3))
    for (const host of ["localhost", "::ffff:127.0.0.1", "fe80::1%lo", "fe80::1%1"]) {
      assert.strictEqual(UdpDrops.dropped(host, 12000), undefined, host)
    }
    assert.deepStrictEqual(proc.read, [])
  })
})
