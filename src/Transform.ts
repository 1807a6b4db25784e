/**
 * What the server does to a sentence: the textbook's upper-casing, or the
 * book's suggested extension, counting one letter, or an embedder's own.
 * It is a `Context.Reference` whose default is `upper`, so a server with no
 * transform provided serves as the textbook's does.
 *
 * `framing` tells the TCP server how to apply it: a "stream" transform maps
 * any piece of text on its own (upper-casing works code point by code point),
 * so the server answers bytes as they arrive, newline or not; a "line"
 * transform needs whole lines and answers one reply line per input line.
 *
 * `apply` may return the reply (the built-in transforms do: that is the hot
 * path, answered in the socket's callback) or an `Effect` of it, which may be
 * asynchronous and may fail, e.g. one that asks another service. The servers
 * contain whatever a transform does wrong: a throw, a defect or a failed
 * effect is logged with the peer and ends only that request (UDP: the
 * datagram is not answered) or that connection (TCP); every other client is
 * still served.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as CapsError from "./CapsError.ts"
import * as Options from "./Options.ts"

/** A transform as the servers use it. */
export interface TransformShape {
  /** The spec it was made from, e.g. `upper` or `count:s`. */
  readonly name: string
  readonly framing: "stream" | "line"
  /**
   * Maps one sentence (a datagram, a line without its newline, or a piece of a stream) to its reply,
   * at once or as an effect.
   */
  readonly apply: (text: string) => string | Effect.Effect<string, unknown>
  /**
   * Declares that the reply to ASCII text is ASCII text, as with the built-in transforms. The TCP server then
   * takes a reply's length for its size in bytes (the `caps_reply_size_bytes` metric) rather than measuring
   * its UTF-8 (some 5% of a TCP request's cost, bench/). Leave it out unless it holds: the metric would be wrong.
   */
  readonly keepsAscii?: boolean | undefined
}

/** A transform that answers at once, as the built-in ones do (the servers' fast path). */
export interface SyncTransform extends TransformShape {
  readonly apply: (text: string) => string
}

/** The transform a server applies: `upper` unless one is provided (see `layer`). */
export const Transform: Context.Reference<TransformShape> = Context.Reference<TransformShape>("caps/Transform", {
  defaultValue: () => upper,
})

/**
 * Unicode full upper-casing, as Python's `str.upper()` gives it (`ß` -> `SS`,
 * `ﬃ` -> `FFI`). Its UTF-8 output is at most three times its input (`ΐ`).
 */
export const upper: SyncTransform = {
  name: "upper",
  framing: "stream",
  apply: (text) => text.toUpperCase(),
  keepsAscii: true,
}

const isOneCodePoint = (s: string): boolean => s.length > 0 && s !== "\n" && [...s].length === 1

/** A letter `count` can count: one code point, not a line break. */
export const Letter = Schema.String.check(
  Schema.makeFilter((s) => isOneCodePoint(s) || `expected one character (not a line break), got ${JSON.stringify(s)}`),
)

// Its replies are decimal numbers: ASCII whatever the sentence.
const countOf = (letter: string): SyncTransform => ({
  name: `count:${letter}`,
  framing: "line",
  apply: (text) => {
    let n = 0
    for (let at = text.indexOf(letter); at !== -1; at = text.indexOf(letter, at + letter.length)) n++
    return String(n)
  },
  keepsAscii: true,
})

/**
 * The book's extension: the decimal count of `letter` (one code point, case-sensitive) in each sentence.
 * Fails with `InvalidOption` for anything but one character (an empty letter would match everywhere).
 */
export const count = (letter: string): Effect.Effect<SyncTransform, CapsError.InvalidOption> =>
  Effect.map(Options.decode(Letter, "Transform.count.letter")(letter), countOf)

const Shape = Schema.Struct({
  name: Schema.NonEmptyString,
  framing: Schema.Literals(["stream", "line"]),
  apply: Schema.declare((u): u is TransformShape["apply"] => typeof u === "function", {
    expected: "a function",
  }),
  keepsAscii: Schema.optional(Schema.Boolean),
})

/** Checks an embedder's transform: a non-empty name, a framing, and an `apply` function. */
export const make: (transform: TransformShape) => Effect.Effect<TransformShape, CapsError.InvalidOption> = Effect
  .fn("Transform.make")(function* (transform: TransformShape) {
    yield* Options.decode(Shape, "Transform")(transform)
    return transform
  })

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
    ? Result.succeed(countOf(spec.slice("count:".length)))
    : Result.fail(`unknown transform ${JSON.stringify(spec)}: expected "upper" or "count:<letter>"`)

/**
 * Provides a transform, checked first; `count` (an effect) can be given as it is:
 * `Transform.layer(Transform.count("s"))`.
 */
export const layer = (
  transform: TransformShape | Effect.Effect<TransformShape, CapsError.InvalidOption>,
): Layer.Layer<never, CapsError.InvalidOption> =>
  Layer.effect(Transform, Effect.isEffect(transform) ? Effect.flatMap(transform, make) : make(transform))
