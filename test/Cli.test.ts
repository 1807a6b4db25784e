// The caps command line end to end, as a child process on the runtime running
// the tests: the textbook's prompt at a real terminal, one reply line per
// input line from a pipe, `--message`, one-line usage errors (exit 2), the
// documented exit code and one-line message of each failure, and servers that
// stop cleanly on SIGINT/SIGTERM and free their port.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import * as ExitCode from "../src/ExitCode.ts"
import * as Transform from "../src/Transform.ts"
import * as TcpServer from "../src/TcpServer.ts"
import * as UdpServer from "../src/UdpServer.ts"
import {
  capsCommand,
  type Finished,
  isDeno,
  lines,
  pythonCommand,
  run,
  runCaps,
  skipWithoutPython,
  startCaps,
} from "./support/Process.ts"
import { udpPeer } from "./support/Sockets.ts"

const noPython = skipWithoutPython("the terminal (pty) tests of Cli.test.ts")

const PROMPT = "Input lowercase sentence:"
const UNRESOLVABLE = `${"a".repeat(70)}.invalid`

/** caps's UDP and TCP servers, in this process, on free loopback ports. */
const servers = (transform: Transform.TransformShape = Transform.upper) =>
  Effect.all([UdpServer.make({ host: "127.0.0.1", port: 0 }), TcpServer.make({ host: "127.0.0.1", port: 0 })]).pipe(
    Effect.map(([udp, tcp]) => ({ udp: udp.address.port, tcp: tcp.address.port })),
    Effect.provide(Transform.layer(transform)),
  )

const client = (
  transport: "udp" | "tcp",
  port: number,
  args: ReadonlyArray<string> = [],
) => [`${transport}-client`, "--host", "127.0.0.1", "--port", String(port), ...args]

/** The command ended with `code`, and said nothing on stderr unless it failed. */
const expectExit = (finished: Finished, code: number): Finished => {
  assert.isFalse(finished.timedOut, `killed at its deadline; stderr: ${finished.stderr}`)
  assert.strictEqual(finished.code, code, `stdout: ${finished.stdout}\nstderr: ${finished.stderr}`)
  if (code === 0) assert.strictEqual(finished.stderr, "")
  return finished
}

/** The command failed with exactly one line on stderr, no stack trace, nothing on stdout; returns the line. */
const expectOneLineFailure = (finished: Finished, code: number): string => {
  expectExit(finished, code)
  assert.strictEqual(finished.stdout, "")
  assert.notMatch(finished.stderr, /^\s+at /m, "no stack trace")
  const errorLines = lines(finished.stderr)
  assert.strictEqual(errorLines.length, 1, finished.stderr)
  assert.isTrue(finished.stderr.endsWith("\n"))
  return errorLines[0]
}

const acquireUdp = (port = 0) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly socket: Dgram.Socket; readonly port: number }, Error>((resume) => {
      const socket = Dgram.createSocket("udp4")
      socket.once("error", (error) => resume(Effect.fail(error)))
      socket.bind({ address: "127.0.0.1", port }, () => resume(Effect.succeed({ socket, port: socket.address().port })))
    }),
    ({ socket }) => Effect.sync(() => socket.close()),
  )

const acquireTcp = (port = 0) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: Net.Server; readonly port: number }, Error>((resume) => {
      const server = Net.createServer((conn) => conn.destroy())
      server.once("error", (error) => resume(Effect.fail(error)))
      server.listen({ host: "127.0.0.1", port }, () => {
        resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port }))
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
      }),
  )

/** Binds a loopback port of `transport` for the scope; returns its number. */
const holdPort = (transport: "udp" | "tcp", port = 0): Effect.Effect<number, Error, Scope.Scope> =>
  transport === "udp"
    ? acquireUdp(port).pipe(Effect.map((bound) => bound.port))
    : acquireTcp(port).pipe(Effect.map((bound) => bound.port))

/** Whether this process can bind the port itself now (i.e. nobody holds it). */
const canBind = (transport: "udp" | "tcp", port: number): Effect.Effect<boolean> =>
  Effect.scoped(holdPort(transport, port)).pipe(
    Effect.as(true),
    Effect.catch(() => Effect.succeed(false)),
  )

/** A loopback port where nothing listens on `transport` (bound, then released). */
const closedPort = (transport: "udp" | "tcp"): Effect.Effect<number, Error> => Effect.scoped(holdPort(transport))

/** Opens a TCP connection to a loopback port and keeps it open for the scope. */
const connectTcp = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket, Error>((resume) => {
      const socket = Net.connect({ host: "127.0.0.1", port })
      socket.once("connect", () => resume(Effect.succeed(socket)))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (socket) => Effect.sync(() => socket.destroy()),
  )

/** Runs a command at a pseudo-terminal, typing each line after the prompt, then Ctrl-D. */
const atTerminal = (command: ReadonlyArray<string>, typed: ReadonlyArray<string>) =>
  run(
    pythonCommand("pty_run.py", [
      "--wait-for",
      PROMPT,
      "--timeout",
      "20",
      ...typed.flatMap((line) => ["--line", line]),
      "--",
      ...command,
    ]),
    { timeoutMs: 25_000 },
  )

describe("caps CLI at a terminal (the textbook's conversation)", () => {
  it.live.skipIf(noPython)(
    "udp-client prompts 'Input lowercase sentence:' and prints each reply until Ctrl-D",
    () =>
      Effect.gen(function* () {
        const { udp } = yield* servers()
        const session = expectExit(yield* atTerminal(capsCommand(client("udp", udp)), ["hello", "straße ﬃ"]), 0)
        assert.strictEqual(session.stdout, `${PROMPT}HELLO\n${PROMPT}STRASSE FFI\n${PROMPT}\n`)
      }),
    30_000,
  )

  it.live.skipIf(noPython)(
    "tcp-client prompts and prints 'From Server: ' before each reply until Ctrl-D",
    () =>
      Effect.gen(function* () {
        const { tcp } = yield* servers()
        const session = expectExit(yield* atTerminal(capsCommand(client("tcp", tcp)), ["hello", "straße ﬃ"]), 0)
        assert.strictEqual(
          session.stdout,
          `${PROMPT}From Server: HELLO\n${PROMPT}From Server: STRASSE FFI\n${PROMPT}\n`,
        )
      }),
    30_000,
  )
})

describe("a failed sentence does not end the session (as the book's pinger goes on after a timeout)", () => {
  /** A UDP server that answers every sentence but "lost", upper-cased. */
  const lossy = Effect.acquireRelease(
    Effect.promise(() =>
      udpPeer((message) => message.toString() === "lost" ? undefined : { payload: message.toString().toUpperCase() })
    ),
    (peer) => Effect.sync(peer.close),
  )
  const flags = ["--timeout", "0.2", "--attempts", "1"]

  it.live.skipIf(noPython)(
    "at a terminal: one line says what failed, and the prompt comes back",
    () =>
      Effect.gen(function* () {
        const peer = yield* lossy
        const session = expectExit(
          yield* atTerminal(capsCommand(client("udp", peer.port, flags)), ["one", "lost", "two"]),
          ExitCode.ofError.Timeout,
        )
        const failure = `caps: no answer from 127.0.0.1:${peer.port}/udp after 1 attempt of 200 ms`
        assert.strictEqual(
          session.stdout,
          `${PROMPT}ONE\n${PROMPT}${failure}\n${PROMPT}TWO\n${PROMPT}\ncaps: 1 of 3 sentences failed\n`,
        )
      }),
    30_000,
  )

  it.live(
    "piped: line N of the output answers line N of the input; stderr names the failed line; exit code",
    () =>
      Effect.gen(function* () {
        const peer = yield* lossy
        const finished = yield* runCaps(client("udp", peer.port, flags), { input: "one\nlost\ntwo\nlost\n" })
        expectExit(finished, ExitCode.ofError.Timeout)
        assert.strictEqual(finished.stdout, "ONE\n\nTWO\n\n")
        const failure = `no answer from 127.0.0.1:${peer.port}/udp after 1 attempt of 200 ms`
        assert.deepStrictEqual(lines(finished.stderr), [
          `caps: line 2: ${failure}`,
          `caps: line 4: ${failure}`,
          "caps: 2 of 4 sentences failed",
        ])
      }),
    30_000,
  )

  it.live(
    "piped to a TCP port where nothing listens: every line is refused at once and reported",
    () =>
      Effect.gen(function* () {
        const port = yield* closedPort("tcp")
        const started = Date.now()
        const finished = yield* runCaps(client("tcp", port), { input: "a\nb\n" })
        expectExit(finished, ExitCode.ofError.ConnectionRefused)
        assert.strictEqual(finished.stdout, "\n\n")
        assert.strictEqual(lines(finished.stderr)[1], `caps: line 2: connection refused by 127.0.0.1:${port}/tcp`)
        assert.isBelow(Date.now() - started, 5000, "no timeout was waited for")
      }),
    30_000,
  )
})

describe("caps CLI with piped input and --message", () => {
  // Each input, piped to a udp-client and a tcp-client: what both must print, with no prompt.
  const piped = [
    {
      what: "piped lines get one reply line each",
      input: "hello\nstraße ﬃ ǆ\n\nlast one\n",
      out: "HELLO\nSTRASSE FFI Ǆ\n\nLAST ONE\n",
    },
    {
      what: "a last line without a newline is still sent and answered",
      input: "first\nsecond",
      out: "FIRST\nSECOND\n",
    },
    { what: "empty input sends nothing, prints nothing and exits 0", input: "", out: "" },
  ]
  for (const { what, input, out } of piped) {
    it.live(`${what}, over UDP and TCP`, () =>
      Effect.gen(function* () {
        const { udp, tcp } = yield* servers()
        const [overUdp, overTcp] = yield* Effect.all([
          runCaps(client("udp", udp), { input }),
          runCaps(client("tcp", tcp), { input }),
        ], { concurrency: 2 })
        for (const finished of [overUdp, overTcp]) assert.strictEqual(expectExit(finished, 0).stdout, out)
      }), 30_000)
  }

  it.live("--message (and -m) sends one sentence, prints its reply and exits 0", () =>
    Effect.gen(function* () {
      const { udp, tcp } = yield* servers()
      const [overUdp, overTcp] = yield* Effect.all([
        runCaps(client("udp", udp, ["--message", "hello there"])),
        runCaps(client("tcp", tcp, ["-m", "straße"])),
      ], { concurrency: 2 })
      assert.strictEqual(expectExit(overUdp, 0).stdout, "HELLO THERE\n")
      assert.strictEqual(expectExit(overTcp, 0).stdout, "STRASSE\n")
    }), 30_000)

  it.live(
    "CAPS_HOST and CAPS_PORT reach the server, and a flag given wins over its variable",
    () =>
      Effect.gen(function* () {
        const { udp, tcp } = yield* servers()
        const [fromEnv, flagWins] = yield* Effect.all([
          runCaps(["udp-client", "-m", "env"], { env: { CAPS_HOST: "127.0.0.1", CAPS_PORT: String(udp) } }),
          runCaps(["tcp-client", "--port", String(tcp), "-m", "flag"], {
            env: { CAPS_HOST: "127.0.0.1", CAPS_PORT: "1" },
          }),
        ], { concurrency: 2 })
        assert.strictEqual(expectExit(fromEnv, 0).stdout, "ENV\n")
        assert.strictEqual(expectExit(flagWins, 0).stdout, "FLAG\n")
      }),
    30_000,
  )
})

describe("caps CLI usage errors: one line on stderr, exit 2", () => {
  const cases: ReadonlyArray<{
    readonly args: ReadonlyArray<string>
    readonly env?: Record<string, string>
    readonly says: RegExp
  }> = [
    { args: ["udp-client", "--port", "70000", "-m", "x"], says: /--port.*70000/ },
    { args: ["tcp-client", "--port", "abc", "-m", "x"], says: /--port.*abc/ },
    { args: ["udp-server", "--port", "-1"], says: /--port/ },
    { args: ["udp-server", "--host", "127.0.0.1", "--port", "0", "--transform", "bogus"], says: /transform.*bogus/ },
    { args: ["tcp-server", "--host", "127.0.0.1", "--port", "0", "--transform", "count:ab"], says: /transform/ },
    { args: ["bogus"], says: /bogus/ },
    { args: ["udp-client", "--no-such-flag"], says: /no-such-flag/ },
    { args: ["udp-client", "--timeout", "0", "-m", "x"], says: /--timeout/ },
    { args: ["udp-client", "--attempts", "0", "-m", "x"], says: /--attempts/ },
    { args: ["udp-client", "-m", "x"], env: { CAPS_PORT: "abc" }, says: /environment variable CAPS_PORT="abc"/ },
    { args: ["tcp-server", "--host", "127.0.0.1", "--port", "0"], env: { CAPS_TRANSFORM: "bogus" }, says: /bogus/ },
    { args: ["tcp-client", "-m", "x"], env: { CAPS_TIMEOUT: "-1" }, says: /environment variable CAPS_TIMEOUT="-1"/ },
  ]

  it.live(
    "every bad flag, subcommand or environment variable is one line on stderr and exit code 2",
    () =>
      Effect.gen(function* () {
        const results = yield* Effect.forEach(
          cases,
          ({ args, env }) => runCaps(args, { env, timeoutMs: 20_000 }),
          { concurrency: 3 },
        )
        results.forEach((finished, i) => {
          const { args, env, says } = cases[i]
          const line = expectOneLineFailure(finished, ExitCode.USAGE)
          assert.match(line, says, `${JSON.stringify(env ?? {})} caps ${args.join(" ")}`)
        })
      }),
    60_000,
  )
})

describe("caps CLI failures: a documented exit code and one line that says what failed", () => {
  it.live(
    "udp-client to a port where nothing listens fails: 4 (port unreachable) on Node, 6 (timeout) on Deno",
    () =>
      Effect.gen(function* () {
        const port = yield* closedPort("udp")
        const finished = yield* runCaps(client("udp", port, ["--timeout", "0.5", "--attempts", "2", "-m", "hi"]))
        if (isDeno) {
          // Deno's node:dgram does not report the ICMP port unreachable that Linux delivers on loopback.
          const line = expectOneLineFailure(finished, ExitCode.ofError.Timeout)
          assert.strictEqual(line, `caps: no answer from 127.0.0.1:${port}/udp after 2 attempts of 500 ms`)
        } else {
          const line = expectOneLineFailure(finished, ExitCode.ofError.ConnectionRefused)
          assert.strictEqual(line, `caps: port unreachable: 127.0.0.1:${port}/udp answered that nothing listens there`)
        }
      }),
    30_000,
  )

  it.live(
    "tcp-client to a closed port exits 4 and says the connection was refused [failure: tcp-no-server]",
    () =>
      Effect.gen(function* () {
        const port = yield* closedPort("tcp")
        const line = expectOneLineFailure(yield* runCaps(client("tcp", port, ["-m", "hi"])), 4)
        assert.strictEqual(line, `caps: connection refused by 127.0.0.1:${port}/tcp`)
      }),
    30_000,
  )

  it.live(
    "a host name that cannot be resolved exits 3 and names the host, for both clients [failure: name-not-resolved]",
    () =>
      Effect.gen(function* () {
        const results = yield* Effect.forEach(
          ["udp-client", "tcp-client"],
          (command) => runCaps([command, "--host", UNRESOLVABLE, "--port", "12000", "-m", "hi"]),
          { concurrency: 2 },
        )
        for (const finished of results) {
          const line = expectOneLineFailure(finished, ExitCode.ofError.NameNotResolved)
          assert.include(line, `cannot resolve host name "${UNRESOLVABLE}"`)
        }
      }),
    30_000,
  )

  it.live(
    "udp-client against a socket that never answers sends each attempt, then exits 6 naming the attempts",
    () =>
      Effect.gen(function* () {
        const silent = yield* acquireUdp()
        const received: Array<string> = []
        silent.socket.on("message", (message) => received.push(message.toString()))
        const finished = yield* runCaps(client("udp", silent.port, ["--timeout", "0.2", "--attempts", "2", "-m", "hi"]))
        const line = expectOneLineFailure(finished, ExitCode.ofError.Timeout)
        assert.strictEqual(line, `caps: no answer from 127.0.0.1:${silent.port}/udp after 2 attempts of 200 ms`)
        assert.deepStrictEqual(received, ["hi", "hi"])
      }),
    30_000,
  )

  it.live(
    "a server on a port already in use exits 10 and says the address is already in use, UDP and TCP [failure: port-in-use]",
    () =>
      Effect.gen(function* () {
        const udp = yield* acquireUdp()
        const tcp = yield* acquireTcp()
        const [udpServer, tcpServer] = yield* Effect.all([
          runCaps(["udp-server", "--host", "127.0.0.1", "--port", String(udp.port)], { timeoutMs: 20_000 }),
          runCaps(["tcp-server", "--host", "127.0.0.1", "--port", String(tcp.port)], { timeoutMs: 20_000 }),
        ], { concurrency: 2 })
        assert.strictEqual(
          expectOneLineFailure(udpServer, ExitCode.ofError.AddressInUse),
          `caps: address already in use: 127.0.0.1:${udp.port}/udp`,
        )
        assert.strictEqual(
          expectOneLineFailure(tcpServer, ExitCode.ofError.AddressInUse),
          `caps: address already in use: 127.0.0.1:${tcp.port}/tcp`,
        )
      }),
    30_000,
  )
})

describe("caps CLI servers and privileges", () => {
  // Root may bind any port: the test drops the one capability that allows it, as the catalogue entry does.
  const isRoot = process.getuid?.() === 0
  const unprivileged = (args: ReadonlyArray<string>) =>
    isRoot ? ["setpriv", "--bounding-set=-net_bind_service", ...capsCommand(args)] : capsCommand(args)

  it.live(
    "a port below 1024 without the privilege exits 12 and says why, UDP and TCP [failure: privileged-port]",
    () =>
      Effect.gen(function* () {
        const [udp, tcp] = yield* Effect.all([
          run(unprivileged(["udp-server", "--host", "127.0.0.1", "--port", "80"])),
          run(unprivileged(["tcp-server", "--host", "127.0.0.1", "--port", "80"])),
        ], { concurrency: 2 })
        assert.strictEqual(
          expectOneLineFailure(udp, ExitCode.ofError.PermissionDenied),
          "caps: permission denied for 127.0.0.1:80/udp (ports below 1024 need privileges)",
        )
        assert.strictEqual(
          expectOneLineFailure(tcp, ExitCode.ofError.PermissionDenied),
          "caps: permission denied for 127.0.0.1:80/tcp (ports below 1024 need privileges)",
        )
      }),
    30_000,
  )
})

describe("caps CLI servers", () => {
  const stopCases = [
    { command: "udp-server", signal: "SIGINT" },
    { command: "udp-server", signal: "SIGTERM" },
    { command: "tcp-server", signal: "SIGINT" },
    { command: "tcp-server", signal: "SIGTERM" },
  ] as const

  it.live.each(stopCases)(
    "$command exits 0 within 3 s of $signal, after serving, and frees its port",
    ({ command, signal }) =>
      Effect.gen(function* () {
        const server = yield* startCaps([command, "--host", "127.0.0.1", "--port", "0"])
        const transport = command === "udp-server" ? "udp" : "tcp"
        assert.match(
          server.stdout(),
          new RegExp(
            `^caps ${command}: ready on 127\\.0\\.0\\.1:${server.port}/${transport} \\(127\\.0\\.0\\.1\\), transform upper\n`,
          ),
        )
        const served = expectExit(yield* runCaps(client(transport, server.port, ["-m", "serve me"])), 0)
        assert.strictEqual(served.stdout, "SERVE ME\n")
        // An idle connection left open must not hold the TCP server up.
        if (transport === "tcp") yield* connectTcp(server.port)
        const stopped = yield* server.stop(signal, 3_000)
        assert.isFalse(stopped.forced, `did not exit within 3 s of ${signal}; stderr: ${server.stderr()}`)
        assert.strictEqual(stopped.code, 0, server.stderr())
        assert.isBelow(stopped.millis, 3_000)
        assert.isTrue(yield* canBind(transport, server.port), "the port is free again")
      }),
    40_000,
  )

  it.live(
    "serve --host localhost binds the name's address for both servers and says so",
    () =>
      Effect.gen(function* () {
        const server = yield* startCaps(["serve", "--host", "localhost", "--port", "0"])
        const [udpPort, tcpPort] = server.ports
        assert.deepStrictEqual(lines(server.stdout()), [
          `caps udp-server: ready on 127.0.0.1:${udpPort}/udp (localhost), transform upper`,
          `caps tcp-server: ready on 127.0.0.1:${tcpPort}/tcp (localhost), transform upper`,
        ])
        const [overUdp, overTcp] = yield* Effect.all([
          runCaps(["udp-client", "--host", "localhost", "--port", String(udpPort), "-m", "by name"]),
          runCaps(["tcp-client", "--host", "localhost", "--port", String(tcpPort), "-m", "by name"]),
        ], { concurrency: 2 })
        assert.strictEqual(expectExit(overUdp, 0).stdout, "BY NAME\n")
        assert.strictEqual(expectExit(overTcp, 0).stdout, "BY NAME\n")
        const stopped = yield* server.stop("SIGTERM", 3_000)
        assert.strictEqual(stopped.code, 0, server.stderr())
      }),
    40_000,
  )

  it.live.skipIf(!isDeno)(
    "without --allow-all (Deno cannot read /proc), the TCP server assumes 1024 descriptors unless told otherwise [failure: out-of-descriptors]",
    () =>
      Effect.gen(function* () {
        const assumed = yield* startCaps(["tcp-server", "--host", "127.0.0.1", "--port", "0"])
        const told = yield* startCaps(["tcp-server", "--host", "127.0.0.1", "--port", "0", "--max-connections", "5000"])
        yield* Effect.sleep("300 millis")
        assert.match(assumed.stderr(), /descriptor limit unknown here, 1024 assumed .* at most 992 connections/)
        assert.notInclude(told.stderr(), "descriptor limit")
      }),
    40_000,
  )

  it.live("serve runs both servers and frees both ports on SIGTERM", () =>
    Effect.gen(function* () {
      const server = yield* startCaps(["serve", "--host", "127.0.0.1", "--port", "0"])
      const [udpPort, tcpPort] = server.ports
      const [overUdp, overTcp] = yield* Effect.all([
        runCaps(client("udp", udpPort, ["-m", "one"])),
        runCaps(client("tcp", tcpPort, ["-m", "two"])),
      ], { concurrency: 2 })
      assert.strictEqual(expectExit(overUdp, 0).stdout, "ONE\n")
      assert.strictEqual(expectExit(overTcp, 0).stdout, "TWO\n")
      const stopped = yield* server.stop("SIGTERM", 3_000)
      assert.isFalse(stopped.forced)
      assert.strictEqual(stopped.code, 0, server.stderr())
      assert.isTrue(yield* canBind("udp", udpPort))
      assert.isTrue(yield* canBind("tcp", tcpPort))
    }), 40_000)

  it.live(
    "--transform count:s (or CAPS_TRANSFORM) makes the servers answer the number of s in each sentence",
    () =>
      Effect.gen(function* () {
        const [udpServer, tcpServer] = yield* Effect.all([
          startCaps(["udp-server", "--host", "127.0.0.1", "--port", "0", "--transform", "count:s"]),
          startCaps(["tcp-server", "--host", "127.0.0.1", "--port", "0"], { env: { CAPS_TRANSFORM: "count:s" } }),
        ], { concurrency: 2 })
        assert.include(udpServer.stdout(), "transform count:s")
        assert.include(tcpServer.stdout(), "transform count:s")
        const input = "mississippi\nsassy\nno match\nSS\n"
        const [overUdp, overTcp] = yield* Effect.all([
          runCaps(client("udp", udpServer.port), { input }),
          runCaps(client("tcp", tcpServer.port), { input }),
        ], { concurrency: 2 })
        assert.strictEqual(expectExit(overUdp, 0).stdout, "4\n3\n0\n0\n")
        assert.strictEqual(expectExit(overTcp, 0).stdout, "4\n3\n0\n0\n")
      }),
    40_000,
  )
})
