// The warning throttle on a hand-driven clock: one line a second per kind, the next one says how many
// were held back since, kinds are independent, a held-back message is never even built, and the
// default clock is the wall clock; each line is annotated with its kind and what was held back.
import { assert, describe, it } from "@effect/vitest"
import { WarningThrottle } from "../src/WarningThrottle.ts"

const throttled = () => {
  const logged: Array<string> = []
  let now = 0
  const throttle = new WarningThrottle((message) => logged.push(message), () => now)
  return { logged, throttle, at: (millis: number) => (now = millis) }
}

describe("WarningThrottle", () => {
  it("logs the first warning of a kind at once", () => {
    const { logged, throttle } = throttled()
    throttle.warn("Malformed", () => "bad bytes")
    assert.deepStrictEqual(logged, ["bad bytes"])
  })

  it("holds back the same kind for one second (999 ms still held), then counts what it held", () => {
    const { at, logged, throttle } = throttled()
    at(5000)
    throttle.warn("Malformed", () => "first")
    at(5500)
    throttle.warn("Malformed", () => "second")
    at(5999)
    throttle.warn("Malformed", () => "third")
    assert.deepStrictEqual(logged, ["first"])
    at(6000)
    throttle.warn("Malformed", () => "fourth")
    assert.deepStrictEqual(logged, ["first", "fourth (and 2 more like it since the last such line)"])
  })

  it("starts counting afresh after each line it logs, and says nothing of a count of zero", () => {
    const { at, logged, throttle } = throttled()
    throttle.warn("TooLarge", () => "one")
    at(100)
    throttle.warn("TooLarge", () => "held")
    at(1000)
    throttle.warn("TooLarge", () => "two")
    at(1999)
    throttle.warn("TooLarge", () => "held again")
    at(2000)
    throttle.warn("TooLarge", () => "three")
    at(3000)
    throttle.warn("TooLarge", () => "four")
    assert.deepStrictEqual(logged, [
      "one",
      "two (and 1 more like it since the last such line)",
      "three (and 1 more like it since the last such line)",
      "four",
    ])
  })

  it("throttles each kind on its own", () => {
    const { logged, throttle } = throttled()
    throttle.warn("Malformed", () => "malformed")
    throttle.warn("TooLarge", () => "too large")
    throttle.warn("Malformed", () => "held")
    assert.deepStrictEqual(logged, ["malformed", "too large"])
  })

  it("does not build a message it holds back", () => {
    const { throttle } = throttled()
    throttle.warn("Malformed", () => "first")
    throttle.warn("Malformed", () => assert.fail("a held-back message was built"))
  })

  it("annotates a line with its kind, the caller's fields and, after held-back ones, how many", () => {
    const annotated: Array<unknown> = []
    let now = 0
    const throttle = new WarningThrottle((_, annotations) => annotated.push(annotations), () => now)
    throttle.warn("Malformed", () => "first", () => ({ peer: "127.0.0.1:40000", transport: "udp" }))
    throttle.warn("Malformed", () => "held", () => assert.fail("held-back annotations were built"))
    now = 1000
    throttle.warn("Malformed", () => "next", () => ({ peer: "127.0.0.1:40001", transport: "udp" }))
    throttle.warn("AcceptError", () => "no fields")
    assert.deepStrictEqual(annotated, [
      { peer: "127.0.0.1:40000", transport: "udp", kind: "Malformed" },
      { peer: "127.0.0.1:40001", transport: "udp", kind: "Malformed", suppressed: 1 },
      { kind: "AcceptError" },
    ])
  })

  it("reads the wall clock when no clock is given", () => {
    const logged: Array<string> = []
    const throttle = new WarningThrottle((message) => logged.push(message))
    throttle.warn("Malformed", () => "now")
    throttle.warn("Malformed", () => "held")
    assert.deepStrictEqual(logged, ["now"])
  })
})
