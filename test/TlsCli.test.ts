// TLS from the command line, caps as a child process: `tcp-server --tls-cert
// --tls-key` and `tcp-client --tls --ca --servername` (and their CAPS_*
// variables) talk TLS; each mismatch ends in one line on stderr and its
// documented exit code; the server logs a plaintext client, and reloads its
// certificate on SIGHUP without dropping an open connection.
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodeTls from "node:tls"
import * as ExitCode from "../src/ExitCode.ts"
import * as TcpClient from "../src/TcpClient.ts"
import * as TcpServer from "../src/TcpServer.ts"
import { makePki } from "./support/Certificates.ts"
import {
  CAPS_READY,
  capsCommand,
  type Finished,
  isDeno,
  lines,
  run,
  type RunOptions,
  start,
} from "./support/Process.ts"
import { waitUntil } from "./support/Sockets.ts"

const pki = makePki()
afterAll(() => pki.remove())

/** The caps command, allowed (on Deno) to read the test's certificate files. */
const caps = (args: ReadonlyArray<string>): Array<string> => {
  const command = [...capsCommand(args)]
  if (isDeno) command.splice(2, 0, `--allow-read=${pki.dir}`)
  return command
}

const runCaps = (args: ReadonlyArray<string>, options: RunOptions = {}) => run(caps(args), options)

const startCaps = (args: ReadonlyArray<string>, options: RunOptions = {}) =>
  start(caps(args), { ...options, ready: CAPS_READY, count: args[0] === "serve" ? 2 : 1 })

/** The command failed with one line on stderr and nothing on stdout; returns the line. */
const oneLineFailure = (finished: Finished, code: number): string => {
  assert.isFalse(finished.timedOut, finished.stderr)
  assert.strictEqual(finished.code, code, `stdout: ${finished.stdout}\nstderr: ${finished.stderr}`)
  assert.strictEqual(finished.stdout, "")
  const errorLines = lines(finished.stderr)
  assert.strictEqual(errorLines.length, 1, finished.stderr)
  return errorLines[0]
}

const client = (port: number, ...args: ReadonlyArray<string>) =>
  runCaps(["tcp-client", "--host", "127.0.0.1", "--port", String(port), ...args])

/** A caps TLS server in this process (the client is the child under test). */
const inProcess = (options: TcpServer.TcpServerOptions) =>
  TcpServer.make({ host: "127.0.0.1", port: 0, ...options }).pipe(Effect.map((server) => server.address.port))

describe("caps tcp-server and tcp-client over TLS (child processes)", () => {
  it.live("--tls-cert/--tls-key and --ca: the reply, and a ready line that names the certificate", () =>
    Effect.gen(function* () {
      const server = yield* startCaps([
        "tcp-server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--tls-cert",
        pki.server.cert,
        "--tls-key",
        pki.server.key,
      ])
      assert.match(server.stdout(), /, transform upper, TLS with CN=caps test server, serial 1001, valid until 20\d\d-/)
      const replied = yield* client(server.port, "--ca", pki.ca, "-m", "hello over tls")
      assert.strictEqual(replied.code, 0, replied.stderr)
      assert.strictEqual(replied.stdout, "HELLO OVER TLS\n")
    }))

  it.live("CAPS_TLS_CERT/CAPS_TLS_KEY on serve, CAPS_CA (which implies TLS) on the client", () =>
    Effect.gen(function* () {
      const server = yield* startCaps(["serve", "--host", "127.0.0.1", "--port", "0"], {
        env: { CAPS_TLS_CERT: pki.server.cert, CAPS_TLS_KEY: pki.server.key },
      })
      const tcpPort = server.ports[1]
      const replied = yield* runCaps(["tcp-client", "-m", "from the environment"], {
        env: { CAPS_HOST: "localhost", CAPS_PORT: String(tcpPort), CAPS_CA: pki.ca },
      })
      assert.strictEqual(replied.code, 0, replied.stderr)
      assert.strictEqual(replied.stdout, "FROM THE ENVIRONMENT\n")
      // --no-tls wins over CAPS_CA: a plaintext client, which the TLS server turns away.
      const plain = yield* runCaps(["tcp-client", "--no-tls", "-m", "plaintext"], {
        env: { CAPS_HOST: "127.0.0.1", CAPS_PORT: String(tcpPort), CAPS_CA: pki.ca },
      })
      assert.strictEqual(plain.code, isDeno ? ExitCode.ofError.ProtocolViolation : ExitCode.ofError.ConnectionClosed)
      yield* Effect.promise(() =>
        waitUntil(() => server.stderr().includes("TLS handshake failed"), 3000, "the server's log line")
      )
      assert.match(
        server.stderr(),
        /TLS handshake failed from 127\.0\.0\.1:\d+\/tcp on .*: not TLS, a plaintext client\?/,
      )
    }))

  it.live("each mismatch is one line on stderr and its exit code", () =>
    Effect.gen(function* () {
      const tls = yield* inProcess({ tls: pki.server })
      const expired = yield* inProcess({ tls: pki.expired })
      const plaintext = yield* inProcess({})
      const cases: ReadonlyArray<[string, Effect.Effect<Finished>, number, RegExp]> = [
        [
          "a plaintext client of a TLS server",
          client(tls, "-m", "hello"),
          // Node's TLS server closes without a byte; Deno's sends an alert record first.
          isDeno ? ExitCode.ofError.ProtocolViolation : ExitCode.ofError.ConnectionClosed,
          isDeno ? /answered with a TLS record: it is a TLS server \(connect with --tls\)$/ : /closed before a reply/,
        ],
        [
          "a TLS client of a plaintext server",
          client(plaintext, "--tls", "-m", "hello"),
          ExitCode.ofError.TlsError,
          /^caps: TLS: 127\.0\.0\.1:\d+\/tcp does not answer in TLS \(.+\); is it a plaintext server\?$/,
        ],
        [
          "a certificate nobody trusted signed",
          client(tls, "--tls", "-m", "hello"),
          ExitCode.ofError.TlsError,
          /^caps: TLS: the certificate of 127\.0\.0\.1:\d+\/tcp is not trusted \(.+\); trust its CA with --ca$/,
        ],
        [
          "an expired certificate",
          client(expired, "--ca", pki.ca, "-m", "hello"),
          ExitCode.ofError.TlsError,
          /^caps: TLS: the certificate of 127\.0\.0\.1:\d+\/tcp expired on 2020-01-02T00:00:00\.000Z$/,
        ],
        [
          "a wrong host name",
          client(tls, "--ca", pki.ca, "--servername", "caps.example", "-m", "hello"),
          ExitCode.ofError.TlsError,
          /^caps: TLS: the certificate of 127\.0\.0\.1:\d+\/tcp is not issued for "caps\.example" \(it names /,
        ],
        [
          "a CA file that is not there",
          client(tls, "--ca", `${pki.dir}/nowhere.pem`, "-m", "hello"),
          ExitCode.ofError.TlsFileError,
          /^caps: cannot read the TLS CA certificate file .*nowhere\.pem: no such file$/,
        ],
      ]
      const finished = yield* Effect.all(cases.map(([, command]) => command), { concurrency: 3 })
      cases.forEach(([name, , code, message], i) => {
        const line = oneLineFailure(finished[i], code)
        assert.match(line, message, name)
      })
    }), 60_000)

  it.live("a server's bad TLS files are one line and exit 16 (2 for one flag without the other); nothing is bound", () =>
    Effect.gen(function* () {
      const garbage = pki.write("cli-garbage.pem", "garbage\n")
      const missing = yield* runCaps(["tcp-server", "--port", "0", "--tls-cert", garbage, "--tls-key", pki.server.key])
      assert.match(oneLineFailure(missing, ExitCode.ofError.TlsFileError), /holds no valid PEM certificate/)
      const mismatch = yield* runCaps([
        "serve",
        "--port",
        "0",
        "--tls-cert",
        pki.server.cert,
        "--tls-key",
        pki.renewed.key,
      ])
      assert.match(oneLineFailure(mismatch, ExitCode.ofError.TlsFileError), /is not the key of the certificate/)
      const alone = yield* runCaps(["tcp-server", "--port", "0", "--tls-cert", pki.server.cert])
      assert.match(
        oneLineFailure(alone, ExitCode.USAGE),
        /^caps: invalid option --tls-key: --tls-cert and --tls-key go/,
      )
    }))

  it.live.skipIf(!isDeno)(
    "on Deno, a server without --allow-read for its TLS files says so and exits 16",
    () =>
      Effect.gen(function* () {
        const args = ["tcp-server", "--port", "0", "--tls-cert", pki.server.cert, "--tls-key", pki.server.key]
        const denied = yield* run(capsCommand(args))
        assert.match(oneLineFailure(denied, ExitCode.ofError.TlsFileError), /: Deno needs --allow-read for it \(e\.g\./)
      }),
  )
})

describe("caps tcp-server reloads its certificate on SIGHUP (child process)", () => {
  it.live(
    "an open connection goes on being served; new connections get the new certificate; a bad one is refused",
    () =>
      Effect.gen(function* () {
        const cert = pki.write("sighup.pem", Fs.readFileSync(pki.server.cert))
        const key = pki.write("sighup.key", Fs.readFileSync(pki.server.key))
        const server = yield* startCaps([
          "tcp-server",
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--tls-cert",
          cert,
          "--tls-key",
          key,
        ])
        const serialOfNewConnection = Effect.callback<string, Error>((resume) => {
          const socket = NodeTls.connect({ host: "127.0.0.1", port: server.port, ca: Fs.readFileSync(pki.ca) }, () => {
            resume(Effect.succeed(socket.getPeerCertificate().serialNumber))
            socket.destroy()
          })
          socket.once("error", (error) => resume(Effect.fail(error)))
        })
        const open = yield* TcpClient.make({ host: "127.0.0.1", port: server.port, tls: { ca: pki.ca } })
        assert.strictEqual(yield* open.request("before"), "BEFORE")
        assert.strictEqual(yield* serialOfNewConnection, "1001")

        Fs.copyFileSync(pki.renewed.cert, cert)
        Fs.copyFileSync(pki.renewed.key, key)
        process.kill(server.pid, "SIGHUP")
        yield* Effect.promise(() =>
          waitUntil(() => server.stderr().includes("SIGHUP: "), 5000, "the reload's log line")
        )
        const logged = lines(server.stderr()).filter((line) => line.includes("SIGHUP"))
        assert.strictEqual(logged.length, 1)
        assert.match(logged[0], /SIGHUP: reloaded the TLS certificate, now CN=caps test server 2, serial 1002, /)
        assert.strictEqual(yield* open.request("after"), "AFTER", "the open connection is still served")
        assert.strictEqual(yield* serialOfNewConnection, "1002")

        Fs.writeFileSync(key, "not a key\n")
        process.kill(server.pid, "SIGHUP")
        yield* Effect.promise(() =>
          waitUntil(() => server.stderr().includes("not reloaded"), 5000, "the failed reload's log line")
        )
        assert.match(
          server.stderr(),
          /SIGHUP: TLS certificate not reloaded, still serving the previous one: the TLS private/,
        )
        assert.strictEqual(yield* serialOfNewConnection, "1002")
        assert.strictEqual(yield* open.request("still"), "STILL")
        const stopped = yield* server.stop()
        assert.strictEqual(stopped.code, 0, server.stderr())
      }),
    40_000,
  )
})
