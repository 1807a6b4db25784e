import { assert, describe, it } from "@effect/vitest"
import { LineFramer } from "../src/LineFramer.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)
const lines = (framer: LineFramer, s: string) => {
  const framed = framer.push(bytes(s))
  assert.strictEqual(framed._tag, "Lines")
  return framed._tag === "Lines" ? framed.lines.map(text) : []
}

describe("LineFramer", () => {
  it("joins a line that arrives in several pieces", () => {
    const framer = new LineFramer(100)
    assert.deepStrictEqual(lines(framer, "hel"), [])
    assert.deepStrictEqual(lines(framer, "lo wo"), [])
    assert.deepStrictEqual(lines(framer, "rld\n"), ["hello world"])
  })

  it("splits one piece holding many lines, keeping the unfinished rest", () => {
    const framer = new LineFramer(100)
    assert.deepStrictEqual(lines(framer, "a\nbb\n\nccc"), ["a", "bb", ""])
    assert.strictEqual(framer.pendingBytes, 3)
    assert.strictEqual(text(framer.end()!), "ccc")
    assert.strictEqual(framer.end(), undefined)
  })

  it("reports a line over the limit, even before its newline arrives", () => {
    const framer = new LineFramer(4)
    assert.deepStrictEqual(framer.push(bytes("abcd\n")), { _tag: "Lines", lines: [bytes("abcd")] })
    assert.deepStrictEqual(framer.push(bytes("abc")), { _tag: "Lines", lines: [] })
    assert.deepStrictEqual(framer.push(bytes("de")), { _tag: "TooLong", size: 5 })
  })
})
