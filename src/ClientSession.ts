/**
 * The client programs' conversation with their user, shared by UDP and TCP.
 *
 * At a terminal it is the textbook's: the prompt `Input lowercase sentence:`,
 * then the reply (after `From Server: ` for TCP), and again, until end of
 * input (Ctrl-D). With input from a pipe or file there is no prompt and no
 * prefix: each input line is sent and its reply printed on a line of its own,
 * so the output can be read by another program. The first failure ends the
 * session with its typed error.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Readline from "node:readline"

/** The textbook's prompt, word for word. */
export const PROMPT = "Input lowercase sentence:"

/** What the session prints and how. */
export interface SessionOptions {
  /** Printed before a reply at a terminal: `From Server: ` for TCP, nothing for UDP (as in the textbook). */
  readonly replyPrefix: string
  /** Whether to talk as to a person (prompt, prefix); by default, whether standard input is a terminal. */
  readonly interactive?: boolean | undefined
}

// Lines waiting to be sent; reading pauses while this many are queued, so a huge pipe is not read ahead into memory.
const MAX_QUEUED_LINES = 1024

/** Standard input as a sequence of lines, read one at a time; `undefined` at end of input. */
const stdinLines = Effect.acquireRelease(
  Effect.sync(() => {
    const lines = Readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
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

/** Runs the session: sends each line of standard input and prints its reply, until end of input. */
export const run = <E>(request: (sentence: string) => Effect.Effect<string, E>, options: SessionOptions) =>
  Effect.gen(function* () {
    const interactive = options.interactive ?? process.stdin.isTTY === true
    const input = yield* stdinLines
    while (true) {
      if (interactive) yield* write(PROMPT)
      const sentence = yield* input.next
      if (sentence === undefined) {
        if (interactive) yield* write("\n")
        return
      }
      const reply = yield* request(sentence)
      yield* Console.log(interactive ? options.replyPrefix + reply : reply)
    }
  }).pipe(Effect.scoped)
