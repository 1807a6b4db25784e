// The transforms on their own: `upper` equals Python's str.upper() for
// arbitrary Unicode, its ASCII fast path agrees with it, and `count` counts.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as fc from "fast-check"
import * as Transform from "../src/Transform.ts"
import { expectedUpper } from "./support/Oracle.ts"

describe("Transform", () => {
  it("upper follows Unicode full case mapping as Python does (ß -> SS, ﬃ -> FFI, ΐ -> Ϊ́)", () => {
    const samples = ["straße", "ﬃ", "ΐ", "ǆ", "ŉ", "hello world", "İstanbul", "ﬀ ﬆ", "ᾳ"]
    assert.deepStrictEqual(samples.map(Transform.upper.apply), expectedUpper(samples))
  })

  it("upper equals Python's str.upper() for arbitrary Unicode strings", () => {
    const texts = fc.sample(fc.string({ unit: "binary", maxLength: 40 }), { numRuns: 500, seed: 42 })
    const expected = expectedUpper(texts)
    texts.forEach((text, i) => assert.strictEqual(Transform.upper.apply(text), expected[i], JSON.stringify(text)))
  })

  it("upper never grows UTF-8 by more than 3x (the amplification bound)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        const size = (s: string) => new TextEncoder().encode(s).length
        assert.isAtMost(size(Transform.upper.apply(text)), 3 * size(text))
      }),
    )
  })

  it("count counts one letter, case-sensitively, including non-ASCII letters", () => {
    const count = (letter: string) => Effect.runSync(Transform.count(letter))
    assert.strictEqual(count("s").apply("she sells sea shells"), "6")
    assert.strictEqual(count("s").apply("SSS"), "0")
    assert.strictEqual(count("ß").apply("straße ß"), "2")
    assert.strictEqual(count("😀").apply("😀a😀"), "2")
  })

  it("count refuses anything but one character with InvalidOption (an empty letter would loop forever)", () => {
    for (const bad of ["", "ab", "\n"]) {
      const error = Effect.runSync(Effect.flip(Transform.count(bad)))
      assert.strictEqual(error._tag, "InvalidOption")
      assert.strictEqual(error.option, "Transform.count.letter")
    }
  })

  it("make refuses a transform without a name, a framing or an apply function, or with a keepsAscii not boolean", () => {
    const bad = [
      { name: "", framing: "line", apply: (s: string) => s },
      { name: "x", framing: "words", apply: (s: string) => s },
      { name: "x", framing: "line", apply: "upper" },
      { name: "x", framing: "line", apply: (s: string) => s, keepsAscii: "yes" },
    ] as unknown as ReadonlyArray<Transform.TransformShape>
    const options = bad.map((transform) => Effect.runSync(Effect.flip(Transform.make(transform))).option)
    assert.deepStrictEqual(options, ["Transform.name", "Transform.framing", "Transform.apply", "Transform.keepsAscii"])
  })

  it("parses specs and rejects unknown ones with a message", () => {
    assert.strictEqual(Result.getOrThrow(Transform.fromSpec("upper")).name, "upper")
    assert.strictEqual(Result.getOrThrow(Transform.fromSpec("count:s")).name, "count:s")
    for (const bad of ["lower", "count:", "count:ab", "count:\n", ""]) {
      assert.isTrue(Result.isFailure(Transform.fromSpec(bad)))
    }
  })
})
