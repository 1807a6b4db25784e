// Captures what the servers under test log, as `Level message` lines (with the
// cause after the message, where one was logged), so a test can check that a
// failure was reported, how often, and why.
import * as Cause from "effect/Cause"
import * as Logger from "effect/Logger"

/** A logger layer and the lines it has captured. */
export const logCapture = () => {
  const logged: Array<string> = []
  const text = (message: unknown) => Array.isArray(message) ? message.map(String).join(" ") : String(message)
  const logger = Logger.make((options) => {
    const cause = options.cause.reasons.length > 0 ? ` ${Cause.pretty(options.cause)}` : ""
    logged.push(`${options.logLevel} ${text(options.message)}${cause}`)
  })
  return { logged, layer: Logger.layer([logger]) }
}
