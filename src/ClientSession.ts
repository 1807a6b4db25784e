/**
 * The client programs' conversation with their user, shared by UDP and TCP.
 *
 * At a terminal it is the textbook's: the prompt `Input lowercase sentence:`,
 * then the reply (after `From Server: ` for TCP), and again, until end of
 * input (Ctrl-D). With input from a pipe or file there is no prompt and no
 * prefix: each input line is sent and its reply printed on a line of its own,
 * so the output can be read by another program.
 *
 * A failed sentence does not end the session, as the book's UDP pinger prints
 * "Request timed out" and goes on. At a terminal the failure is one line on
 * stderr and the prompt comes back. With piped input every input line still
 * gives exactly one output line, in order, so line N of the output answers
 * line N of the input: a failed sentence gives an empty line on stdout and
 * `caps: line N: <what failed>` on stderr. At the end of input, if any
 * sentence failed, the session fails with `SentencesFailed`, whose exit code is
 * that of the first failure.
 */
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Builtins from "./Builtins.ts"
import * as LogAnnotations from "./LogAnnotations.ts"

/** The textbook's prompt, word for word. */
export const PROMPT = "Input lowercase sentence:"

/** What the session prints and how. */
export interface SessionOptions {
  /** Printed before a reply at a terminal: `From Server: ` for TCP, nothing for UDP (as in the textbook). */
  readonly replyPrefix: string
  /** Whether to talk as to a person (prompt, prefix); by default, whether standard input is a terminal. */
  readonly interactive?: boolean | undefined
  /**
   * Whether a failed sentence is a log line (`--log-format json` or `logfmt`): the message, with `line` and `error`
   * (the failure's tag) as annotations, instead of the `caps: line N: ...` text.
   */
  readonly logFailures?: boolean | undefined
}

// Lines waiting to be sent; reading pauses while this many are queued, so a huge pipe is not read ahead into memory.
const MAX_QUEUED_LINES = 1024

/** Standard input as a sequence of lines, read one at a time; `undefined` at end of input. */
const stdinLines = Effect.acquireRelease(
  Effect.sync(() => {
    const lines = Builtins.readline().createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
    const queued: Array<string> = []
    let ended = false
    let waiter: ((line: string | undefined) => void) | undefined
    lines.on("line", (line) => {
      if (waiter !== undefined) {
        const resume = waiter
        waiter = undefined
        return resume(line)
      }
      queued.push(line)
      if (queued.length >= MAX_QUEUED_LINES) lines.pause()
    })
    lines.on("close", () => {
      ended = true
      if (waiter !== undefined) waiter(undefined)
    })
    const next = Effect.callback<string | undefined>((resume) => {
      const line = queued.shift()
      if (line !== undefined) {
        if (!ended && queued.length < MAX_QUEUED_LINES) lines.resume()
        return resume(Effect.succeed(line))
      }
      if (ended) return resume(Effect.succeed(undefined))
      waiter = (line) => resume(Effect.succeed(line))
      return Effect.sync(() => {
        waiter = undefined
      })
    })
    return { lines, next }
  }),
  ({ lines }) => Effect.sync(() => lines.close()),
)

const write = (text: string) => Effect.sync(() => process.stdout.write(text))

/** Some sentences of a session failed; `first` is the first failure, which gives the exit code. */
export class SentencesFailed extends Schema.TaggedError<SentencesFailed>()("SentencesFailed", {
  failed: Schema.Int,
  sent: Schema.Int,
  first: Schema.Unknown,
}) {
  override get message(): string {
    return `${this.failed} of ${this.sent} ${this.sent === 1 ? "sentence" : "sentences"} failed`
  }
}

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** Runs the session: sends each line of standard input and prints its reply, until end of input. */
export const run = <E>(
  request: (sentence: string) => Effect.Effect<string, E>,
  options: SessionOptions,
): Effect.Effect<void, SentencesFailed> =>
  Effect.gen(function* () {
    const interactive = options.interactive ?? process.stdin.isTTY === true
    const input = yield* stdinLines
    let sent = 0
    let failed = 0
    let first: E | undefined
    while (true) {
      if (interactive) yield* write(PROMPT)
      const sentence = yield* input.next
      if (sentence === undefined) {
        if (interactive) yield* write("\n")
        break
      }
      sent++
      const outcome = yield* Effect.result(request(sentence))
      if (outcome._tag === "Success") {
        yield* Console.log(interactive ? options.replyPrefix + outcome.success : outcome.success)
        continue
      }
      failed++
      first ??= outcome.failure
      const message = messageOf(outcome.failure)
      if (options.logFailures === true) {
        yield* Effect.logError(message).pipe(Effect.annotateLogs({
          ...(interactive ? {} : { line: sent }),
          ...LogAnnotations.ofCause(Cause.fail(outcome.failure)),
        }))
      } else {
        yield* Console.error(interactive ? `caps: ${message}` : `caps: line ${sent}: ${message}`)
      }
      if (!interactive) yield* Console.log("")
    }
    if (failed > 0) return yield* new SentencesFailed({ failed, sent, first })
  }).pipe(Effect.scoped)
