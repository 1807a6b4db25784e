/**
 * The options of caps's servers, clients and transforms, decoded with Schema
 * before anything is bound or opened: a bad value fails at once with a typed
 * `InvalidOption` that names the option, instead of binding a port and dying
 * later (a drain deadline that is not a duration), or misbehaving silently (an
 * infinite idle timeout that Node turns into one millisecond).
 *
 * The building blocks here are shared by every module's own options schema;
 * `decode` turns Schema's issue into the one-line error.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as CapsError from "./CapsError.ts"

/** A port a server may bind: 0 asks the system for a free one. */
export const ServerPort = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))

/** A port a client may reach. */
export const ClientPort = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))

/** A host name or IP literal: not empty, no spaces. */
export const Host = Schema.String.check(
  Schema.makeFilter((s) =>
    (s.length > 0 && !/\s/.test(s)) || `expected a host name or address, got ${JSON.stringify(s)}`
  ),
)

/** A whole number of at least 1. */
export const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/** A whole number of at least 0. */
export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const durationOf = (input: unknown): Duration.Duration | undefined => {
  if (input === undefined || input === null) return undefined
  const duration = Duration.fromInput(input as Duration.Input)
  return duration._tag === "Some" ? duration.value : undefined
}

/**
 * A `Duration.Input` (a Duration, milliseconds, or text such as `"5 seconds"`) that is finite and
 * greater than zero; with `infinite: true`, `Duration.infinity` is accepted too and means "never".
 */
export const PositiveDuration = (options: { readonly infinite?: boolean } = {}) =>
  Schema.Unknown.check(
    Schema.makeFilter((input) => {
      const duration = durationOf(input)
      if (duration === undefined) return `expected a duration, got ${describe(input)}`
      if (!Duration.isFinite(duration)) {
        return options.infinite === true || "expected a finite duration, got infinity"
      }
      return Duration.toMillis(duration) > 0 || `expected a duration greater than 0, got ${describe(input)}`
    }),
  )

const describe = (input: unknown): string => {
  if (Duration.isDuration(input)) return Duration.format(input)
  try {
    return JSON.stringify(input) ?? String(input)
  } catch {
    return String(input)
  }
}

/** The duration of an input that `PositiveDuration` accepted (or the fallback when none was given). */
export const duration = (input: Duration.Input | undefined, fallback: Duration.Duration): Duration.Duration =>
  input === undefined ? fallback : Duration.fromInputUnsafe(input)

const formatIssue = SchemaIssue.makeFormatterDefault()

// The first failing option of an issue: its path and what was expected there.
const firstProblem = (
  issue: SchemaIssue.Issue,
  path: ReadonlyArray<PropertyKey>,
): [ReadonlyArray<PropertyKey>, string] => {
  switch (issue._tag) {
    case "Pointer":
      return firstProblem(issue.issue, [...path, ...issue.path])
    case "AnyOf":
      // An optional field is a union with undefined: the problem is in the member that was meant.
      return issue.issues.length > 0 ? firstProblem(issue.issues[0], path) : [path, formatIssue(issue)]
    case "Composite":
      return firstProblem(issue.issues[0], path)
    default:
      return [path, formatIssue(issue).split("\n")[0]]
  }
}

/** Decodes `input` against `schema`, failing with `InvalidOption` naming `owner.option` for the first bad field. */
export const decode = <S extends Schema.Decoder<unknown>>(
  schema: S,
  owner: string,
) =>
(input: unknown): Effect.Effect<S["Type"], CapsError.InvalidOption> => {
  const result = Schema.decodeUnknownResult(schema)(input)
  if (result._tag === "Success") return Effect.succeed(result.success)
  const [path, detail] = firstProblem(result.failure.issue, [])
  const option = path.length === 0 ? owner : `${owner}.${path.map(String).join(".")}`
  return Effect.fail(new CapsError.InvalidOption({ option, detail: detail.charAt(0).toLowerCase() + detail.slice(1) }))
}

/** The environment variable of a setting, as the CLI's flag names it: `max-line-bytes` is `CAPS_MAX_LINE_BYTES`. */
export const envVarOf = (flag: string): string => `CAPS_${flag.toUpperCase().replaceAll("-", "_")}`

/** Seconds (fractions allowed) as a Duration, rounded to the millisecond. */
export const seconds = (value: number): Duration.Duration => Duration.millis(Math.round(value * 1000))

/** A setting given in seconds, read from its environment variable, with a default. */
export const secondsConfig = (flag: string, fallback: Duration.Duration): Config.Config<Duration.Duration> =>
  Config.Finite(envVarOf(flag)).pipe(Config.map(seconds), Config.withDefault(fallback))
