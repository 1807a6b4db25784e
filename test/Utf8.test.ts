// Decoding proves: split characters survive any read boundary, invalid bytes
// become U+FFFD and are counted, and a literal U+FFFD is not counted as invalid.
import { assert, describe, it } from "@effect/vitest"
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

  it("tells ASCII from non-ASCII bytes", () => {
    assert.isTrue(Utf8.isAscii(encode("plain ascii\n")))
    assert.isFalse(Utf8.isAscii(encode("café")))
  })
})
