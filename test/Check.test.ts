// `caps check` as a child process: exit 0 only when both the TCP and the
// UDP server answer the probe as expected within the timeout; exit 1 (never 2,
// which Docker's HEALTHCHECK reserves) otherwise, with one line per transport
// on stdout saying what passed or failed, and one line on stderr.
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Dgram from "node:dgram"
import { makePki } from "./support/Certificates.ts"
import { CAPS_READY, capsCommand, isDeno, lines, run, start } from "./support/Process.ts"
import { unusedPort } from "./support/Sockets.ts"

const pki = makePki()
afterAll(() => pki.remove())

/** A port free for both TCP and UDP on 127.0.0.1 now, as `caps serve --port` needs. */
const freePortForBoth = Effect.promise(async () => {
  for (let tries = 0; tries < 20; tries++) {
    const port = await unusedPort()
    const free = await new Promise<boolean>((resolve) => {
      const socket = Dgram.createSocket("udp4")
      socket.once("error", () => resolve(false))
      socket.bind({ address: "127.0.0.1", port }, () => socket.close(() => resolve(true)))
    })
    if (free) return port
  }
  throw new Error("no port free for both TCP and UDP")
})

describe("caps check (child processes)", () => {
  const caps = (args: ReadonlyArray<string>) => {
    const command = [...capsCommand(args)]
    if (isDeno) command.splice(2, 0, `--allow-read=${pki.dir}`)
    return command
  }
  const serve = (port: number, ...args: ReadonlyArray<string>) =>
    start(caps(["serve", "--host", "127.0.0.1", "--port", String(port), ...args]), { ready: CAPS_READY, count: 2 })
  const only = (program: "udp-server" | "tcp-server", port: number) =>
    start(caps([program, "--host", "127.0.0.1", "--port", String(port)]), { ready: CAPS_READY })
  const capsCheck = (port: number, ...args: ReadonlyArray<string>) =>
    run(caps(["check", "--host", "127.0.0.1", "--port", String(port), "--timeout", "1", ...args]), {
      timeoutMs: 15_000,
    })

  it.live("exits 0 against caps serve, with one line per transport on stdout", () =>
    Effect.gen(function* () {
      const port = yield* freePortForBoth
      yield* serve(port)
      const checked = yield* capsCheck(port)
      assert.strictEqual(checked.code, 0, checked.stdout + checked.stderr)
      assert.strictEqual(checked.stderr, "")
      const said = lines(checked.stdout)
      assert.strictEqual(said.length, 2, checked.stdout)
      assert.match(said[0], new RegExp(`^tcp ok: 127\\.0\\.0\\.1:${port}/tcp answered "CAPS HEALTH CHECK" in \\d+ ms$`))
      assert.match(said[1], new RegExp(`^udp ok: 127\\.0\\.0\\.1:${port}/udp answered "CAPS HEALTH CHECK" in \\d+ ms$`))
    }))

  it.live(
    "exits 1 when the UDP side is down, and 1 when the TCP side is down, saying which",
    () =>
      Effect.gen(function* () {
        const tcpOnly = yield* freePortForBoth
        yield* only("tcp-server", tcpOnly)
        const noUdp = yield* capsCheck(tcpOnly)
        assert.strictEqual(noUdp.code, 1, noUdp.stdout + noUdp.stderr)
        assert.match(noUdp.stdout, /^tcp ok: /m)
        assert.match(noUdp.stdout, /^udp failed: /m)
        assert.strictEqual(noUdp.stderr, "caps: unhealthy: the udp check failed\n")

        const udpOnly = yield* freePortForBoth
        yield* only("udp-server", udpOnly)
        const noTcp = yield* capsCheck(udpOnly)
        assert.strictEqual(noTcp.code, 1, noTcp.stdout + noTcp.stderr)
        assert.match(
          noTcp.stdout,
          new RegExp(`^tcp failed: connection refused by 127\\.0\\.0\\.1:${udpOnly}/tcp$`, "m"),
        )
        assert.match(noTcp.stdout, /^udp ok: /m)
        assert.strictEqual(noTcp.stderr, "caps: unhealthy: the tcp check failed\n")
      }),
    40_000,
  )

  it.live("exits 1 when the servers answer otherwise (count:s), 0 with --expect their answer", () =>
    Effect.gen(function* () {
      const port = yield* freePortForBoth
      yield* serve(port, "--transform", "count:s")
      const wrong = yield* capsCheck(port)
      assert.strictEqual(wrong.code, 1, wrong.stdout + wrong.stderr)
      assert.match(wrong.stdout, /^tcp failed: .* answered "1", expected "CAPS HEALTH CHECK"$/m)
      assert.strictEqual(wrong.stderr, "caps: unhealthy: the tcp and udp checks failed\n")
      const expected = yield* capsCheck(port, "--expect", "1")
      assert.strictEqual(expected.code, 0, expected.stdout + expected.stderr)
    }))

  it.live(
    "checks TCP over TLS with --tls --ca; exits 1, never 2, for a usage error or an unreadable CA file",
    () =>
      Effect.gen(function* () {
        const port = yield* freePortForBoth
        yield* serve(port, "--tls-cert", pki.server.cert, "--tls-key", pki.server.key)
        const checked = yield* capsCheck(port, "--ca", pki.ca)
        assert.strictEqual(checked.code, 0, checked.stdout + checked.stderr)
        assert.match(checked.stdout, /^tcp ok: .*\/tcp \(TLS\) answered "CAPS HEALTH CHECK"/m)
        const plaintext = yield* capsCheck(port)
        assert.strictEqual(plaintext.code, 1, plaintext.stdout + plaintext.stderr)
        // Docker's HEALTHCHECK reserves 2: a check that cannot run at all is unhealthy too.
        const missingCa = yield* capsCheck(port, "--ca", `${pki.dir}/none.pem`)
        assert.strictEqual(missingCa.code, 1, missingCa.stderr)
        assert.match(missingCa.stderr, /^caps: unhealthy: cannot read the TLS CA certificate file .*none\.pem/)
        const usage = yield* capsCheck(port, "--timeout", "soon")
        assert.strictEqual(usage.code, 1, usage.stderr)
      }),
    40_000,
  )
})
