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

  it("reports a line over the limit that arrives whole with its newline, with its size", () => {
    assert.deepStrictEqual(new LineFramer(4).push(bytes("abcde\n")), { _tag: "TooLong", size: 5 })
  })

  it("measures each line of a piece from its own start: later lines are not charged for earlier ones", () => {
    const framer = new LineFramer(4)
    assert.deepStrictEqual(lines(framer, "abcd\nefgh\nij\n"), ["abcd", "efgh", "ij"])
    assert.deepStrictEqual(new LineFramer(4).push(bytes("ab\nabcdefg\n")), { _tag: "TooLong", size: 7 })
  })

  it("holds an unfinished line of exactly the limit, and counts what was held into the line it ends", () => {
    const framer = new LineFramer(4)
    assert.deepStrictEqual(lines(framer, "abcd"), [])
    assert.strictEqual(framer.pendingBytes, 4)
    assert.deepStrictEqual(framer.push(bytes("\n")), { _tag: "Lines", lines: [bytes("abcd")] })
    assert.deepStrictEqual(lines(framer, "ab"), [])
    assert.deepStrictEqual(framer.push(bytes("cde\n")), { _tag: "TooLong", size: 5 })
  })

  it("hands a line that arrived in one piece on without copying it, also after an earlier line", () => {
    const framer = new LineFramer(100)
    const first = bytes("one\ntwo")
    const framed = framer.push(first)
    assert.strictEqual(framed._tag === "Lines" && framed.lines[0].buffer, first.buffer)
    // "two" is held as a view of `first`; ended, it is that view, not a copy.
    assert.strictEqual(framer.end()?.buffer, first.buffer)
    const second = bytes("three")
    assert.deepStrictEqual(lines(framer, "x\n"), ["x"])
    framer.push(second)
    assert.strictEqual(framer.end()?.buffer, second.buffer)
  })

  it("is empty after end(), ready for another stream", () => {
    const framer = new LineFramer(100)
    framer.push(bytes("ab"))
    framer.push(bytes("cd"))
    assert.strictEqual(text(framer.end()!), "abcd")
    assert.strictEqual(framer.pendingBytes, 0)
    framer.push(bytes("e"))
    framer.push(bytes("f"))
    assert.strictEqual(text(framer.end()!), "ef")
  })
})
