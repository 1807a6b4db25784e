// Captures what the servers under test log, as `Level message` lines, so a
// test can check that a failure was reported (and how often).
import * as Logger from "effect/Logger"

/** A logger layer and the lines it has captured. */
export const logCapture = () => {
  const logged: Array<string> = []
  const text = (message: unknown) => Array.isArray(message) ? message.map(String).join(" ") : String(message)
  const logger = Logger.make((options) => {
    logged.push(`${options.logLevel} ${text(options.message)}`)
  })
  return { logged, layer: Logger.layer([logger]) }
}
