// The built-ins caps loads on first use (src/Builtins.ts): `load` imports them ahead of use on Deno, and whatever
// it could or could not import, each accessor gives the runtime's own module.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Builtins from "../src/Builtins.ts"

describe("Builtins", () => {
  it.effect("gives the runtime's own module, loaded ahead or not", () =>
    Effect.gen(function* () {
      assert.strictEqual(Builtins.os(), process.getBuiltinModule("node:os"), "not loaded ahead")
      yield* Builtins.load("node:dgram", "node:net")
      yield* Builtins.load("node:dgram") // a second load does nothing
      assert.strictEqual(Builtins.dgram(), process.getBuiltinModule("node:dgram"))
      assert.strictEqual(Builtins.net(), process.getBuiltinModule("node:net"))
      assert.isFunction(Builtins.dgram().createSocket)
    }))
})
