/**
 * What the server does to a sentence: the textbook's upper-casing, or the
 * book's suggested extension, counting one letter. It is a service so that an
 * embedder can plug in their own (`Layer.succeed(Transform.Transform, ...)`).
 *
 * `framing` tells the TCP server how to apply it: a "stream" transform maps
 * any piece of text on its own (upper-casing works code point by code point),
 * so the server answers bytes as they arrive, newline or not; a "line"
 * transform needs whole lines and answers one reply line per input line.
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"

/** A transform as the servers use it. */
export interface TransformShape {
  /** The spec it was made from, e.g. `upper` or `count:s`. */
  readonly name: string
  readonly framing: "stream" | "line"
  /** Maps one sentence (a datagram, a line without its newline, or a piece of a stream). */
  readonly apply: (text: string) => string
}

/** The transform a server applies; see `layer` and `fromSpec`. */
export class Transform extends Context.Service<Transform, TransformShape>()("caps/Transform") {}

/**
 * Unicode full upper-casing, as Python's `str.upper()` gives it (`ß` -> `SS`,
 * `ﬃ` -> `FFI`). Its UTF-8 output is at most three times its input (`ΐ`).
 */
export const upper: TransformShape = {
  name: "upper",
  framing: "stream",
  apply: (text) => text.toUpperCase(),
}

/** The book's extension: the decimal count of `letter` (one code point, case-sensitive) in each sentence. */
export const count = (letter: string): TransformShape => ({
  name: `count:${letter}`,
  framing: "line",
  apply: (text) => {
    let n = 0
    for (let at = text.indexOf(letter); at !== -1; at = text.indexOf(letter, at + letter.length)) n++
    return String(n)
  },
})

const isOneCodePoint = (s: string): boolean => s.length > 0 && s !== "\n" && [...s].length === 1

/** A transform spec as given on the command line or in `CAPS_TRANSFORM`: `upper` or `count:<letter>`. */
export const Spec = Schema.String.check(
  Schema.makeFilter(
    (s) =>
      s === "upper" || (s.startsWith("count:") && isOneCodePoint(s.slice("count:".length))) ||
      `expected "upper" or "count:<letter>" (one character), got ${JSON.stringify(s)}`,
  ),
)

/** Builds the transform a valid spec names. */
export const fromSpec = (spec: string): Result.Result<TransformShape, string> =>
  spec === "upper"
    ? Result.succeed(upper)
    : spec.startsWith("count:") && isOneCodePoint(spec.slice("count:".length))
    ? Result.succeed(count(spec.slice("count:".length)))
    : Result.fail(`unknown transform ${JSON.stringify(spec)}: expected "upper" or "count:<letter>"`)

/** Provides a transform. */
export const layer = (transform: TransformShape): Layer.Layer<Transform> => Layer.succeed(Transform)(transform)
