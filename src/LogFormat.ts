/**
 * The formats of caps's log lines on stderr (`--log-format`): `text` for people,
 * `json` and `logfmt` for `jq` and log shippers.
 *
 * The facts of a line (the peer, the transport, the connection, the typed error's
 * tag) are log annotations set where the servers log. `json` and `logfmt` are
 * Effect's own formatters, which write the annotations as fields. `text` is the
 * line of Effect's default logger without them: its messages already name the
 * peer, and people read `[time] LEVEL (#fiber): message` better without a record
 * repeating it.
 */
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Logger from "effect/Logger"
import * as References from "effect/References"

/** The formats `--log-format` accepts. */
export const formats = ["text", "json", "logfmt"] as const

/** A log format. */
export type LogFormat = typeof formats[number]

// Effect's default logger's time of day: local, to the millisecond.
const timeOfDay = (date: Date): string =>
  `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}:${
    String(date.getSeconds()).padStart(2, "0")
  }.${String(date.getMilliseconds()).padStart(3, "0")}`

/** Effect's default logger's line on stderr, without the annotations (the message names the peer). */
export const text: Logger.Logger<unknown, void> = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const parts: Array<unknown> = Array.isArray(message) ? message.slice() : [message]
  if (cause.reasons.length > 0) parts.push(Cause.pretty(cause))
  const now = date.getTime()
  let spans = ""
  for (const [label, startedAt] of fiber.getRef(References.CurrentLogSpans)) spans += ` ${label}=${now - startedAt}ms`
  fiber.getRef(Console.Console).error(
    `[${timeOfDay(date)}] ${logLevel.toUpperCase()} (#${fiber.id})${spans}:`,
    ...parts,
  )
})

/** One JSON object a line: `message`, `level`, `timestamp`, `annotations`, `spans`, `fiberId` (and `cause`). */
export const json: Logger.Logger<unknown, void> = Logger.withConsoleError(Logger.formatJson)

/** One logfmt line: `timestamp=… level=… fiber=… message=…`, then the annotations as `key=value`. */
export const logfmt: Logger.Logger<unknown, void> = Logger.withConsoleError(Logger.formatLogFmt)

/** The logger of a format. */
export const logger = (format: LogFormat): Logger.Logger<unknown, void> =>
  format === "json" ? json : format === "logfmt" ? logfmt : text

/**
 * Logs in `format` instead of Effect's default logger; the tracer logger stays, so that log lines still become
 * events of the current span.
 */
export const layer = (format: LogFormat) => Logger.layer([logger(format), Logger.tracerLogger])
