// Decoding proves: split characters survive any read boundary, invalid bytes
// become U+FFFD and are counted, and a literal U+FFFD is not counted as invalid.
import { assert, describe, it } from "@effect/vitest"
import { Buffer } from "node:buffer"
import * as Utf8 from "../src/Utf8.ts"

const encode = (s: string) => new TextEncoder().encode(s)

describe("Utf8", () => {
  it("decodes a character split across every possible read boundary", () => {
    const input = encode("aé€😀z")
    for (let cut = 0; cut <= input.length; cut++) {
      const decoder = new Utf8.StreamDecoder()
      const text = decoder.decode(input.subarray(0, cut)) + decoder.decode(input.subarray(cut)) + decoder.end()
      assert.strictEqual(text, "aé€😀z", `cut at ${cut}`)
      assert.strictEqual(decoder.malformed, 0)
    }
  })

  it("decodes a character fed one byte at a time, knowing when it is mid-character", () => {
    const decoder = new Utf8.StreamDecoder()
    const bytes = encode("😀")
    let text = ""
    for (let i = 0; i < bytes.length; i++) {
      text += decoder.decode(bytes.subarray(i, i + 1))
      assert.strictEqual(decoder.atBoundary, i === bytes.length - 1)
    }
    assert.strictEqual(text, "😀")
  })

  it("replaces invalid sequences with U+FFFD and counts them", () => {
    const decoded = Utf8.decodeWhole(new Uint8Array([0x61, 0xff, 0x62, 0xc3]))
    assert.strictEqual(decoded.text, "a\uFFFDb\uFFFD")
    assert.strictEqual(decoded.malformed, 2)
  })

  it("does not count a real U+FFFD in the input as invalid", () => {
    assert.strictEqual(Utf8.decodeWhole(encode("x\uFFFDy")).malformed, 0)
  })

  it("counts a truncated character at end of stream as invalid", () => {
    const decoder = new Utf8.StreamDecoder()
    assert.strictEqual(decoder.decode(new Uint8Array([0x61, 0xe2, 0x82])), "a")
    assert.strictEqual(decoder.end(), "\uFFFD")
    assert.strictEqual(decoder.malformed, 1)
  })

  it("decodes ASCII without the decoder, also right after a character split across reads", () => {
    const decoder = new Utf8.StreamDecoder()
    const euro = encode("€")
    assert.strictEqual(decoder.decode(euro.subarray(0, 1)), "")
    assert.isFalse(decoder.atBoundary)
    // ASCII bytes here end the broken character (U+FFFD), they must not bypass the decoder.
    assert.strictEqual(decoder.decode(encode("ab")), "\uFFFDab")
    assert.isTrue(decoder.atBoundary)
    assert.strictEqual(decoder.decode(encode("cd")), "cd")
    assert.strictEqual(Utf8.decodeWhole(encode("plain")).text, "plain")
  })

  it("counts a real U+FFFD apart from invalid bytes next to it, however they are mixed", () => {
    const cases: Array<[string, Array<number>, number]> = [
      ["a real U+FFFD and an invalid byte", [0xef, 0xbf, 0xbd, 0xff], 1],
      ["two lone continuation bytes BF BD (the tail of U+FFFD without its lead)", [0x61, 0xbf, 0xbd], 2],
      ["the lead of U+FFFD, then no continuation", [0xef, 0x41, 0xbd], 2],
      ["the first two bytes of U+FFFD, then ASCII", [0xef, 0xbf, 0x41], 1],
      ["the lead of U+FFFD, then ASCII", [0xef, 0x41, 0x42], 1],
      ["ASCII, then a lone BD", [0x61, 0x62, 0xbd], 1],
      ["U+FFFD cut short at the very end", [0x61, 0xef, 0xbf], 1],
    ]
    for (const [what, bytes, malformed] of cases) {
      assert.strictEqual(Utf8.decodeWhole(new Uint8Array(bytes)).malformed, malformed, what)
      const decoder = new Utf8.StreamDecoder()
      decoder.decode(new Uint8Array(bytes))
      decoder.end()
      assert.strictEqual(decoder.malformed, malformed, `${what}, streamed`)
    }
  })

  it("counts invalid bytes met mid-stream, adding up over reads", () => {
    const decoder = new Utf8.StreamDecoder()
    assert.strictEqual(decoder.decode(new Uint8Array([0x61, 0xff])), "a\uFFFD")
    assert.strictEqual(decoder.malformed, 1)
    assert.strictEqual(decoder.decode(new Uint8Array([0xfe, 0x62, 0xff])), "\uFFFDb\uFFFD")
    assert.strictEqual(decoder.malformed, 3)
    assert.strictEqual(decoder.end(), "")
    assert.strictEqual(decoder.malformed, 3)
  })

  it("knows it is mid-character after the first byte of a two-byte character, so ASCII next is not bypassed", () => {
    const decoder = new Utf8.StreamDecoder()
    assert.strictEqual(decoder.decode(new Uint8Array([0x61, 0xc3])), "a")
    assert.isFalse(decoder.atBoundary)
    assert.strictEqual(decoder.decode(encode("b")), "\uFFFDb")
    assert.strictEqual(decoder.malformed, 1)
    const whole = new Utf8.StreamDecoder()
    assert.strictEqual(whole.decode(new Uint8Array([0xc3])) + whole.decode(new Uint8Array([0xa9])), "é")
    assert.isTrue(whole.atBoundary)
  })

  it("holds nothing back after a byte that can never start a character (F8..FF)", () => {
    for (const lead of [0xf8, 0xfc, 0xff]) {
      const decoder = new Utf8.StreamDecoder()
      assert.strictEqual(decoder.decode(new Uint8Array([0x61, lead])), "a\uFFFD")
      assert.isTrue(decoder.atBoundary, lead.toString(16))
    }
  })

  it("keeps a byte order mark as text (U+FEFF), in a datagram and at the start of a stream", () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x61])
    assert.deepStrictEqual(Utf8.decodeWhole(bom), { text: "\uFEFFa", malformed: 0, ascii: false })
    const decoder = new Utf8.StreamDecoder()
    assert.strictEqual(decoder.decode(bom), "\uFEFFa")
  })

  it("says whether the bytes were ASCII: a datagram or line, and each piece of a stream", () => {
    assert.isTrue(Utf8.decodeWhole(encode("plain")).ascii)
    assert.isFalse(Utf8.decodeWhole(encode("straße")).ascii)
    assert.isFalse(Utf8.decodeWhole(new Uint8Array([0x61, 0xff])).ascii, "an invalid byte is not ASCII")
    const decoder = new Utf8.StreamDecoder()
    decoder.decode(encode("abc"))
    assert.isTrue(decoder.ascii)
    decoder.decode(new Uint8Array([0x61, 0xc3]))
    assert.isFalse(decoder.ascii)
    // ASCII bytes after a partial character: the character's end comes first, so the piece is not taken as it is.
    assert.strictEqual(decoder.decode(new Uint8Array([0x9f, 0x62])), "ßb")
    assert.isFalse(decoder.ascii)
    decoder.decode(encode("c"))
    assert.isTrue(decoder.ascii)
  })

  it("decodes a Buffer, and a view into the middle of a larger buffer, by its own bytes only", () => {
    const backing = encode("xxABCxx")
    assert.strictEqual(Utf8.decodeWhole(backing.subarray(2, 5)).text, "ABC")
    assert.strictEqual(Utf8.decodeWhole(Buffer.from("plain")).text, "plain")
    assert.strictEqual(new Utf8.StreamDecoder().decode(backing.subarray(2, 5)), "ABC")
  })

  it("tells ASCII from non-ASCII bytes", () => {
    assert.isTrue(Utf8.isAscii(encode("plain ascii\n")))
    assert.isFalse(Utf8.isAscii(encode("café")))
  })
})
