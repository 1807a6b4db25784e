// The log lines of a real `caps serve` in each --log-format, provoked by bytes on the wire (invalid UTF-8 over UDP,
// a line over the limit over TCP): json lines that JSON.parse reads whole, with the facts as annotations; logfmt
// lines of key=value; text as it always was, without a record of annotations; the ready lines alone on stdout;
// a failure's line in the format too. An unknown format is a usage error. And an embedder's own Logger gets the same annotations from the library.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import * as Dgram from "node:dgram"
import * as ExitCode from "../src/ExitCode.ts"
import * as TcpServer from "../src/TcpServer.ts"
import * as Transform from "../src/Transform.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { CAPS_READY, lines, runCaps, type Server, startCaps } from "./support/Process.ts"
import { tcpExchange, udpExchange, unusedPort, waitUntil } from "./support/Sockets.ts"

const MAX_LINE_BYTES = 8
const INVALID_UTF8 = Uint8Array.of(0x61, 0xff, 0x62)
const TOO_LONG = `${"a".repeat(20)}\n`

/** Starts `caps serve` on loopback with a line transform (so the line limit applies) and extra arguments. */
const serve = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  startCaps([
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--transform",
    "count:a",
    "--max-line-bytes",
    String(MAX_LINE_BYTES),
    // Given, so that Deno (which cannot read the descriptor limit) logs no warning of its own.
    "--max-connections",
    "100",
    ...args,
  ], { env })

/** Sends what makes each server log one warning, waits for both lines, stops the server; returns its stderr lines. */
const provoke = (server: Server) =>
  Effect.gen(function* () {
    const [udpPort, tcpPort] = server.ports
    yield* Effect.promise(() => udpExchange(udpPort, INVALID_UTF8))
    const closed = yield* Effect.promise(() => tcpExchange(tcpPort, [TOO_LONG]))
    assert.isTrue(closed.ended, "the connection with the long line was closed")
    yield* Effect.promise(() =>
      waitUntil(() => /invalid UTF-8/.test(server.stderr()) && /TCP line/.test(server.stderr()), 5_000, "warnings")
    )
    const stopped = yield* server.stop("SIGTERM", 5_000)
    assert.strictEqual(stopped.code, 0, server.stderr())
    // stdout holds the ready lines and nothing else: the logs went to stderr.
    const out = lines(server.stdout())
    assert.strictEqual(out.length, 2, server.stdout())
    for (const line of out) assert.match(line, CAPS_READY)
    return lines(server.stderr())
  })

const find = <A extends { readonly message: string }>(entries: ReadonlyArray<A>, pattern: RegExp): A => {
  const entry = entries.find((entry) => pattern.test(entry.message))
  assert.isDefined(entry, `a line matching ${pattern} in ${JSON.stringify(entries)}`)
  return entry!
}

const PEER = /^127\.0\.0\.1:\d+$/

// logfmt as Effect writes it: key=value, a value quoted as a JSON string when it has spaces, quotes or `=`.
const parseLogfmt = (line: string): Record<string, string> => {
  const fields: Record<string, string> = {}
  let rest = line
  while (rest.length > 0) {
    const match = /^([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)(?: |$)/.exec(rest)
    assert.isNotNull(match, `logfmt at ${JSON.stringify(rest)} of ${line}`)
    const [whole, key, value] = match!
    fields[key] = value.startsWith('"') ? JSON.parse(value) : value
    rest = rest.slice(whole.length)
  }
  return fields
}

describe("caps --log-format", () => {
  it.live(
    "json: every stderr line is one JSON object with time, level, message and the facts as annotations",
    () =>
      Effect.gen(function* () {
        const server = yield* serve(["--log-format", "json"])
        const logged = yield* provoke(server)
        const entries = logged.map((line) => JSON.parse(line) as Record<string, unknown>)
        for (const entry of entries) {
          assert.match(String(entry.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
          assert.include(["INFO", "WARN", "ERROR"], entry.level)
          assert.isString(entry.message)
          assert.isObject(entry.annotations)
        }
        const typed = entries as unknown as ReadonlyArray<
          { readonly message: string; readonly level: string; readonly annotations: Record<string, unknown> }
        >
        const malformed = find(typed, /^invalid UTF-8 from 127\.0\.0\.1:\d+\/udp/)
        assert.strictEqual(malformed.level, "WARN")
        assert.match(String(malformed.annotations.peer), PEER)
        assert.deepInclude(malformed.annotations, { transport: "udp", kind: "Malformed" })
        const tooLong = find(typed, /^TCP line of 20 bytes exceeds the limit of 8 bytes/)
        assert.match(String(tooLong.annotations.peer), PEER)
        assert.deepInclude(tooLong.annotations, { transport: "tcp", connection: 1, error: "MessageTooLarge" })
        assert.deepInclude(find(typed, /^tcp-server on .* stopped/).annotations, { transport: "tcp" })
        assert.deepInclude(find(typed, /^udp-server on .* stopped/).annotations, { transport: "udp" })
      }),
    40_000,
  )

  it.live(
    "logfmt (from CAPS_LOG_FORMAT): every stderr line is key=value pairs, the annotations among them",
    () =>
      Effect.gen(function* () {
        const server = yield* serve([], { CAPS_LOG_FORMAT: "logfmt" })
        const entries = (yield* provoke(server)).map(parseLogfmt)
        for (const entry of entries) {
          assert.match(entry.timestamp, /^\d{4}-\d\d-\d\dT/)
          assert.include(["INFO", "WARN", "ERROR"], entry.level)
        }
        const typed = entries as unknown as ReadonlyArray<Record<string, string> & { readonly message: string }>
        const malformed = find(typed, /^invalid UTF-8 from/)
        assert.match(malformed.peer, PEER)
        assert.deepInclude(malformed, { level: "WARN", transport: "udp", kind: "Malformed" })
        const tooLong = find(typed, /^TCP line of 20 bytes/)
        assert.match(tooLong.peer, PEER)
        assert.deepInclude(tooLong, { transport: "tcp", connection: "1", error: "MessageTooLarge" })
      }),
    40_000,
  )

  it.live(
    "text, the default: the lines as they always were, the message alone after time, level and fiber",
    () =>
      Effect.gen(function* () {
        const server = yield* serve([])
        const logged = yield* provoke(server)
        for (const line of logged) assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR) \(#\d+\): [^{]*$/)
        assert.isTrue(
          logged.some((line) =>
            /WARN \(#\d+\): TCP line of 20 bytes exceeds the limit of 8 bytes; closing the connection from 127\.0\.0\.1:\d+\/tcp$/
              .test(line)
          ),
          logged.join("\n"),
        )
      }),
    40_000,
  )

  it.live("json: a failure's one line is a JSON log line too, with the error's tag", () =>
    Effect.gen(function* () {
      const held = yield* Effect.acquireRelease(
        Effect.callback<Dgram.Socket>((resume) => {
          const socket = Dgram.createSocket("udp4")
          socket.bind({ address: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(socket)))
        }),
        (socket) => Effect.sync(() => socket.close()),
      )
      const port = String(held.address().port)
      const failed = yield* runCaps(["udp-server", "--host", "127.0.0.1", "--port", port, "--log-format", "json"])
      assert.strictEqual(failed.code, ExitCode.ofError.AddressInUse, failed.stderr)
      const logged = lines(failed.stderr).map((line) => JSON.parse(line))
      assert.strictEqual(logged.length, 1, failed.stderr)
      assert.deepInclude(logged[0], {
        level: "ERROR",
        message: `address already in use: 127.0.0.1:${port}/udp`,
        annotations: { error: "AddressInUse" },
      })
    }), 40_000)

  it.live(
    "json: a client session's failed sentences are log lines too, with the input line and the error's tag",
    () =>
      Effect.gen(function* () {
        const port = String(yield* Effect.promise(unusedPort))
        // TCP: a closed port refuses at once on both runtimes (Deno's UDP sees no ICMP, and would time out).
        const session = yield* runCaps(["tcp-client", "--host", "127.0.0.1", "--port", port, "--log-format", "json"], {
          input: "one\ntwo\n",
        })
        assert.strictEqual(session.code, ExitCode.ofError.ConnectionRefused, session.stderr)
        assert.strictEqual(session.stdout, "\n\n", "one line out for each line in, empty for a failed one")
        const entries = lines(session.stderr).map((line) =>
          JSON.parse(line) as { readonly message: string; readonly level: string; readonly annotations: object }
        )
        assert.deepStrictEqual(entries.map((entry) => [entry.level, entry.annotations]), [
          ["ERROR", { line: 1, error: "ConnectionRefused" }],
          ["ERROR", { line: 2, error: "ConnectionRefused" }],
          ["ERROR", { error: "SentencesFailed" }],
        ])
        assert.match(entries[0].message, new RegExp(`^connection refused by 127\\.0\\.0\\.1:${port}/tcp`))
        assert.strictEqual(entries[2].message, "2 of 2 sentences failed")
      }),
    40_000,
  )

  it.live(
    "an unknown format is a usage error (exit 2) that names the flag and the formats",
    () =>
      Effect.gen(function* () {
        const [flag, env] = yield* Effect.all([
          runCaps(["serve", "--port", "0", "--log-format", "xml"]),
          runCaps(["serve", "--port", "0"], { env: { CAPS_LOG_FORMAT: "xml" } }),
        ], { concurrency: 2 })
        assert.strictEqual(flag.code, ExitCode.USAGE, flag.stderr)
        assert.strictEqual(flag.stdout, "")
        assert.strictEqual(
          flag.stderr,
          `caps serve: Invalid value for flag --log-format: "xml". Expected: "text" | "json" | "logfmt" ` +
            `(see caps serve --help)\n`,
        )
        assert.strictEqual(env.code, ExitCode.USAGE, env.stderr)
        assert.include(env.stderr, `CAPS_LOG_FORMAT="xml"`)
      }),
    40_000,
  )
})

describe("caps --log-level and CAPS_LOG_LEVEL", () => {
  it.live(
    "CAPS_LOG_LEVEL=warn keeps the warnings and drops the info lines; --log-level wins over it; a bad value is a usage error",
    () =>
      Effect.gen(function* () {
        const warned = yield* provoke(yield* serve([], { CAPS_LOG_LEVEL: "warn" }))
        assert.isTrue(warned.some((line) => / WARN .*invalid UTF-8/.test(line)), warned.join("\n"))
        assert.isTrue(warned.some((line) => / WARN .*TCP line/.test(line)), warned.join("\n"))
        assert.isFalse(
          warned.some((line) => / INFO /.test(line)),
          `no info line (the stop summaries):\n${warned.join("\n")}`,
        )
        const flagWins = yield* provoke(yield* serve(["--log-level", "info"], { CAPS_LOG_LEVEL: "none" }))
        assert.isTrue(flagWins.some((line) => / INFO .*stopped/.test(line)), flagWins.join("\n"))
        const bad = yield* runCaps(["serve", "--port", "0"], { env: { CAPS_LOG_LEVEL: "loud" } })
        assert.strictEqual(bad.code, ExitCode.USAGE, bad.stderr)
        assert.strictEqual(
          bad.stderr,
          `caps: invalid option CAPS_LOG_LEVEL: expected one of all, trace, debug, info, warn, warning, error, fatal, ` +
            `none, got "loud"\n`,
        )
        assert.strictEqual(bad.stdout, "", "nothing bound")
      }),
    40_000,
  )
})

describe("the library's log annotations", () => {
  it.live(
    "an embedder's own Logger gets peer, transport, connection and error as annotations",
    () =>
      Effect.gen(function* () {
        const seen: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
        const recorder = Logger.make(({ fiber, message }) => {
          seen.push({
            message: Array.isArray(message) ? message.join(" ") : String(message),
            annotations: { ...fiber.getRef(References.CurrentLogAnnotations) },
          })
        })
        yield* Effect.scoped(Effect.gen(function* () {
          const [udp, tcp] = yield* Effect.all([
            UdpServer.make({ host: "127.0.0.1", port: 0 }),
            TcpServer.make({ host: "127.0.0.1", port: 0, maxLineBytes: MAX_LINE_BYTES }),
          ])
          yield* Effect.promise(() => udpExchange(udp.address.port, INVALID_UTF8))
          // Two connections: the second one's line is too long, so its warning names connection 2.
          yield* Effect.promise(() => tcpExchange(tcp.address.port, ["x\n"], { expectBytes: 2 }))
          yield* Effect.promise(() => tcpExchange(tcp.address.port, [TOO_LONG]))
          yield* Effect.promise(() => waitUntil(() => seen.length >= 2, 3_000, "two warnings"))
        })).pipe(
          Effect.provide(Layer.merge(Logger.layer([recorder]), Transform.layer(Transform.count("a")))),
        )
        const malformed = find(seen, /^invalid UTF-8/)
        assert.match(String(malformed.annotations.peer), PEER)
        assert.deepInclude(malformed.annotations, { transport: "udp", kind: "Malformed" })
        const tooLong = find(seen, /^TCP line of 20 bytes/)
        assert.match(String(tooLong.annotations.peer), PEER)
        assert.deepInclude(tooLong.annotations, { transport: "tcp", connection: 2, error: "MessageTooLarge" })
        assert.deepInclude(find(seen, /^tcp-server on .* stopped/).annotations, { transport: "tcp" })
      }),
    20_000,
  )
})
