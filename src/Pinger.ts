/**
 * The book's follow-up lab, the UDP pinger: send `count` datagrams
 * `Ping <seq> <time>` one `interval` apart, wait up to `timeout` for each
 * reply, print it with its round-trip time or `Request timed out`, and end
 * with the summary that `ping` users know.
 *
 * It is built on the `UdpClient` service with one attempt per ping: a lost
 * datagram is a lost ping, not a resend, which is the point of the lab. Each
 * ping has a socket of its own (the client's rule), so a late reply to one
 * ping can never be counted for the next. Time is Effect's `Clock`, so the
 * pinger runs on a `TestClock` too.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as Options from "./Options.ts"
import * as UdpClient from "./UdpClient.ts"

/** What to ping and how; every field has a default (the lab's). */
export interface PingOptions {
  /** The UDP server; `localhost` by default. */
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** How many pings; 10 by default. */
  readonly count?: number | undefined
  /** Time from one ping to the next; 1 s by default. */
  readonly interval?: Duration.Input | undefined
  /** How long each ping waits for its reply; 1 s by default. */
  readonly timeout?: Duration.Input | undefined
}

const PingOptionsSchema = Schema.Struct({
  host: Schema.optional(Options.Host),
  port: Schema.optional(Options.ClientPort),
  count: Schema.optional(Options.PositiveInt),
  interval: Schema.optional(Options.PositiveDuration()),
  timeout: Schema.optional(Options.PositiveDuration()),
})

/** One ping's outcome: its reply and round-trip time, or the typed error that stands for its loss. */
export type PingResult =
  | { readonly _tag: "Reply"; readonly seq: number; readonly reply: string; readonly rttMillis: number }
  | { readonly _tag: "Lost"; readonly seq: number; readonly error: UdpClient.UdpClientError }

/** The summary at the end. */
export interface PingSummary {
  readonly server: Endpoint.Endpoint
  readonly transmitted: number
  readonly received: number
  /** The error of the last ping lost, if any. */
  readonly lastError: UdpClient.UdpClientError | undefined
  /** Round-trip times of the replies, in milliseconds; `undefined` when none came. */
  readonly rtt: { readonly min: number; readonly avg: number; readonly max: number } | undefined
}

const decodeOptions = Options.decode(PingOptionsSchema, "Pinger")

/** Not one ping was answered: the CLI's failure, with the exit code of the last ping's error (`ping` exits non-zero). */
export class NoReply
  extends Schema.TaggedError<NoReply>()("NoReply", { transmitted: Schema.Int, last: Schema.Unknown }) {
  override get message(): string {
    return `no reply to any of ${this.transmitted} pings`
  }
}

/** The lab's message: `Ping <seq> <time>`, the time in seconds since the epoch. */
export const message = (seq: number, nowMillis: number): string => `Ping ${seq} ${(nowMillis / 1000).toFixed(3)}`

/** Summarises results as `ping` does. */
export const summarise = (server: Endpoint.Endpoint, results: ReadonlyArray<PingResult>): PingSummary => {
  const rtts = results.flatMap((result) => result._tag === "Reply" ? [result.rttMillis] : [])
  const lost = results.flatMap((result) => result._tag === "Lost" ? [result.error] : [])
  return {
    server,
    lastError: lost.at(-1),
    transmitted: results.length,
    received: rtts.length,
    rtt: rtts.length === 0 ? undefined : {
      min: Math.min(...rtts),
      avg: rtts.reduce((sum, rtt) => sum + rtt, 0) / rtts.length,
      max: Math.max(...rtts),
    },
  }
}

const ms = (millis: number): string => millis.toFixed(3)

/** How the CLI prints one result. */
export const formatResult = (server: Endpoint.Endpoint, result: PingResult): string =>
  result._tag === "Reply"
    ? `Reply from ${Endpoint.format(server)}: ${result.reply} (seq ${result.seq}, rtt ${ms(result.rttMillis)} ms)`
    : result.error._tag === "Timeout"
    ? `Request timed out (seq ${result.seq})`
    : `Request failed (seq ${result.seq}): ${result.error.message}`

/** How the CLI prints the summary: the lines `ping` ends with. */
export const formatSummary = (summary: PingSummary): ReadonlyArray<string> => {
  const loss = summary.transmitted === 0
    ? 0
    : Math.round(100 * (summary.transmitted - summary.received) / summary.transmitted)
  return [
    `--- ${Endpoint.format(summary.server)} ping statistics ---`,
    `${summary.transmitted} packets transmitted, ${summary.received} received, ${loss}% packet loss`,
    summary.rtt === undefined
      ? "rtt min/avg/max = -/-/- ms"
      : `rtt min/avg/max = ${ms(summary.rtt.min)}/${ms(summary.rtt.avg)}/${ms(summary.rtt.max)} ms`,
  ]
}

/**
 * Pings the server, calling `onResult` as each ping ends, and returns the summary. A name that does not
 * resolve or a bad option fails at once; lost pings are results, not failures.
 */
export const run = Effect.fn("Pinger.run")(function* <R>(
  options: PingOptions,
  onResult: (result: PingResult) => Effect.Effect<void, never, R>,
): Effect.fn.Return<PingSummary, CapsError.InvalidOption | CapsError.NameNotResolved, R | Scope.Scope> {
  yield* decodeOptions(options)
  const count = options.count ?? 10
  const interval = Duration.toMillis(Options.duration(options.interval, Duration.seconds(1)))
  const client = yield* UdpClient.make({
    host: options.host,
    port: options.port,
    attempts: 1,
    attemptTimeout: Options.duration(options.timeout, Duration.seconds(1)),
  })
  const results: Array<PingResult> = []
  for (let seq = 1; seq <= count; seq++) {
    const sentAtMillis = yield* Clock.currentTimeMillis
    const sentAt = yield* Clock.currentTimeNanos
    const outcome = yield* Effect.result(client.request(message(seq, Number(sentAt / 1_000_000n))))
    const rttMillis = Number((yield* Clock.currentTimeNanos) - sentAt) / 1e6
    if (outcome._tag === "Failure" && outcome.failure._tag === "NameNotResolved") return yield* outcome.failure
    const result: PingResult = outcome._tag === "Success"
      ? { _tag: "Reply", seq, reply: outcome.success, rttMillis }
      : { _tag: "Lost", seq, error: outcome.failure }
    results.push(result)
    yield* onResult(result)
    // The next ping goes one interval after this one was sent, or at once if its reply took longer:
    // never two back to back to catch up.
    if (seq < count) {
      const wait = sentAtMillis + interval - (yield* Clock.currentTimeMillis)
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
    }
  }
  return summarise(client.server, results)
}, Effect.scoped)
