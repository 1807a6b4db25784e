// The option schemas and their decoder on their own: ports, hosts, counts and durations are accepted
// exactly within their ranges, and a bad value fails with one InvalidOption that names the option
// (`Owner.field`, `Owner.outer.inner` for a nested one, `Owner` for a value decoded on its own) and
// says in one line, starting in lower case, what was expected and what was given.
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Schema } from "effect"
import { inspect } from "node:util"
import * as Options from "../src/Options.ts"

const Example = Schema.Struct({
  serverPort: Schema.optional(Options.ServerPort),
  clientPort: Schema.optional(Options.ClientPort),
  host: Schema.optional(Options.Host),
  workers: Schema.optional(Options.PositiveInt),
  retries: Schema.optional(Options.NonNegativeInt),
  drainTimeout: Schema.optional(Options.PositiveDuration()),
  idleTimeout: Schema.optional(Options.PositiveDuration({ infinite: true })),
  finiteTimeout: Schema.optional(Options.PositiveDuration({ infinite: false })),
})

/** The decoded options, or the InvalidOption's message. */
const decode = (input: unknown): string =>
  Effect.runSync(
    Options.decode(Example, "Example")(input).pipe(
      Effect.match({ onSuccess: () => "ok", onFailure: (error) => error.message }),
    ),
  )

const accepts = (input: unknown) => assert.strictEqual(decode(input), "ok", inspect(input))
const rejects = (input: unknown, message: string) => assert.strictEqual(decode(input), `invalid option ${message}`)

describe("Options schemas", () => {
  it("accepts a server port from 0 (any free port) to 65535, whole numbers only", () => {
    for (const serverPort of [0, 1, 12000, 65535]) accepts({ serverPort })
    rejects({ serverPort: -1 }, "Example.serverPort: expected a value between 0 and 65535")
    rejects({ serverPort: 65536 }, "Example.serverPort: expected a value between 0 and 65535")
    rejects({ serverPort: 1.5 }, "Example.serverPort: expected an integer")
    rejects({ serverPort: "80" }, "Example.serverPort: expected number | undefined")
  })

  it("accepts a client port from 1 to 65535: a client cannot reach port 0", () => {
    for (const clientPort of [1, 65535]) accepts({ clientPort })
    rejects({ clientPort: 0 }, "Example.clientPort: expected a value between 1 and 65535")
    rejects({ clientPort: 65536 }, "Example.clientPort: expected a value between 1 and 65535")
  })

  it("accepts a host name or address, and refuses an empty one or one with white space", () => {
    for (const host of ["localhost", "127.0.0.1", "::1", "fe80::1%lo", "example.org", "a"]) accepts({ host })
    rejects({ host: "" }, `Example.host: expected a host name or address, got ""`)
    rejects({ host: "two words" }, `Example.host: expected a host name or address, got "two words"`)
    rejects({ host: " localhost" }, `Example.host: expected a host name or address, got " localhost"`)
    rejects({ host: "tab\there" }, `Example.host: expected a host name or address, got "tab\\there"`)
    rejects({ host: "line\n" }, `Example.host: expected a host name or address, got "line\\n"`)
  })

  it("accepts counts of at least 1, or at least 0, whole numbers only", () => {
    accepts({ workers: 1, retries: 0 })
    rejects({ workers: 0 }, "Example.workers: expected a value greater than or equal to 1")
    rejects({ retries: -1 }, "Example.retries: expected a value greater than or equal to 0")
    rejects({ workers: 2.5 }, "Example.workers: expected an integer")
  })

  it("accepts a duration given as a Duration, milliseconds or text, if finite and above zero", () => {
    for (const drainTimeout of [Duration.seconds(5), 250, "5 seconds", Duration.nanos(1n), 1n]) {
      accepts({ drainTimeout })
    }
    rejects({ drainTimeout: 0 }, "Example.drainTimeout: expected a duration greater than 0, got 0")
    rejects({ drainTimeout: -5 }, "Example.drainTimeout: expected a duration greater than 0, got -5")
    rejects({ drainTimeout: "0 seconds" }, `Example.drainTimeout: expected a duration greater than 0, got "0 seconds"`)
    rejects({ drainTimeout: Duration.zero }, "Example.drainTimeout: expected a duration greater than 0, got 0")
    rejects({ drainTimeout: Duration.seconds(-1) }, "Example.drainTimeout: expected a duration greater than 0, got -1s")
  })

  it("refuses infinity unless the option says it means never", () => {
    accepts({ idleTimeout: Duration.infinity })
    rejects({ drainTimeout: Duration.infinity }, "Example.drainTimeout: expected a finite duration, got infinity")
    rejects({ finiteTimeout: Duration.infinity }, "Example.finiteTimeout: expected a finite duration, got infinity")
    accepts({ idleTimeout: "30 seconds", finiteTimeout: "30 seconds" })
  })

  it("says what was given when it is no duration at all, however it prints", () => {
    rejects({ drainTimeout: "soon" }, `Example.drainTimeout: expected a duration, got "soon"`)
    rejects({ drainTimeout: null }, "Example.drainTimeout: expected a duration, got null")
    rejects({ drainTimeout: [1, "fortnight"] }, `Example.drainTimeout: expected a duration, got [1,"fortnight"]`)
    rejects({ drainTimeout: () => 1 }, "Example.drainTimeout: expected a duration, got () => 1")
    // A bigint is nanoseconds; JSON cannot print one, so its text is used.
    rejects({ drainTimeout: 0n }, "Example.drainTimeout: expected a duration greater than 0, got 0")
  })
})

describe("Options.decode", () => {
  it("returns the decoded options when every one is valid", () => {
    const options = { serverPort: 0, host: "::1", drainTimeout: "5 seconds" }
    assert.deepStrictEqual(Effect.runSync(Options.decode(Example, "Example")(options)), options)
  })

  it("fails with a typed InvalidOption naming the option and what was expected", () => {
    const error = Effect.runSync(Effect.flip(Options.decode(Example, "TcpServer")({ workers: 0 })))
    assert.strictEqual(error._tag, "InvalidOption")
    assert.strictEqual(error.option, "TcpServer.workers")
    assert.strictEqual(error.detail, "expected a value greater than or equal to 1")
  })

  it("names a value decoded on its own by its owner alone, and a missing one as missing", () => {
    const alone = Effect.runSync(Effect.flip(Options.decode(Options.PositiveDuration(), "drainTimeout")(undefined)))
    assert.strictEqual(alone.message, "invalid option drainTimeout: expected a duration, got undefined")
    const required = Schema.Struct({ port: Options.ServerPort })
    const missing = Effect.runSync(Effect.flip(Options.decode(required, "UdpServer")({})))
    assert.strictEqual(missing.message, "invalid option UdpServer.port: missing key")
  })

  it("names a nested option by its whole path", () => {
    const Nested = Schema.Struct({ rateLimit: Schema.Struct({ burst: Options.PositiveInt }) })
    const error = Effect.runSync(Effect.flip(Options.decode(Nested, "UdpServer")({ rateLimit: { burst: 0 } })))
    assert.strictEqual(
      error.message,
      "invalid option UdpServer.rateLimit.burst: expected a value greater than or equal to 1",
    )
  })

  it("reports only the first bad option, in one line, also for an optional nested one", () => {
    const error = Effect.runSync(Effect.flip(Options.decode(Example, "Example")({ workers: 0, retries: -1 })))
    assert.strictEqual(error.option, "Example.workers")
    const Nested = Schema.Struct({ rateLimit: Schema.optional(Schema.Struct({ burst: Options.PositiveInt })) })
    const nested = Effect.runSync(Effect.flip(Options.decode(Nested, "UdpServer")({ rateLimit: { burst: 0 } })))
    assert.strictEqual(nested.detail, "expected a value greater than or equal to 1")
    assert.isTrue(nested.option.startsWith("UdpServer.rateLimit"), nested.option)
  })
})

describe("Options.duration", () => {
  it("is the given duration in any accepted form, or the fallback when none was given", () => {
    const fallback = Duration.seconds(3)
    assert.strictEqual(Options.duration(undefined, fallback), fallback)
    assert.strictEqual(Duration.toMillis(Options.duration("2 seconds", fallback)), 2000)
    assert.strictEqual(Duration.toMillis(Options.duration(250, fallback)), 250)
    assert.strictEqual(Duration.toMillis(Options.duration(Duration.minutes(1), fallback)), 60_000)
  })
})
