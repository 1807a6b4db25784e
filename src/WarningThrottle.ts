/**
 * Warnings that a peer can provoke at line rate (bad datagrams, refused
 * connections, accept failures) are logged at most once a second per kind,
 * with a count of the ones held back, so that a flood of bad input cannot
 * become a flood of log lines. Time comes from the caller (the server's
 * `Clock`), so tests and embedders can drive it with `TestClock`.
 *
 * A line's annotations name its `kind` and, when some were held back, how many
 * (`suppressed`), besides what the caller gives (the peer, the error's tag).
 */
import type { LogAnnotations } from "./LogAnnotations.ts"

/** Logs each kind of warning at most once a second. */
export class WarningThrottle {
  readonly #last = new Map<string, { at: number; suppressed: number }>()
  readonly #log: (message: string, annotations: LogAnnotations) => void
  readonly #now: () => number

  /** `now` gives the time in milliseconds: the server passes its `Clock`'s. */
  constructor(log: (message: string, annotations: LogAnnotations) => void, now: () => number = Date.now) {
    this.#log = log
    this.#now = now
  }

  /**
   * Whether a line of this kind may be logged now: `undefined` if one was logged less than a second ago
   * (it is counted as held back), else how many were held back since the last one.
   */
  take(kind: string): number | undefined {
    const now = this.#now()
    const entry = this.#last.get(kind)
    if (entry !== undefined && now - entry.at < 1000) {
      entry.suppressed++
      return undefined
    }
    this.#last.set(kind, { at: now, suppressed: 0 })
    return entry?.suppressed ?? 0
  }

  /**
   * Logs `message()` with `annotations()` unless a warning of this kind was logged less than a second ago;
   * neither is built for a line held back.
   */
  warn(kind: string, message: () => string, annotations?: () => LogAnnotations): void {
    const suppressed = this.take(kind)
    if (suppressed === undefined) return
    const fields = { ...annotations?.(), kind }
    if (suppressed === 0) return this.#log(message(), fields)
    this.#log(`${message()} (and ${suppressed} more like it since the last such line)`, { ...fields, suppressed })
  }
}
