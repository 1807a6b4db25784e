// What a start of the README's command loads: only the Node built-ins its command uses. node:tls with node:crypto,
// node:dns, node:http and node:readline took a third of a one-shot client's start when they were imported at load
// time (src/Builtins.ts, the start-up patches in scripts/bundle.mjs); each is loaded on first use now. Node's own
// record of what it loaded (process.moduleLoadList, written at exit by support/loaded-builtins.cjs) says which. Node
// only: Deno keeps no such record.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { warn } from "node:console"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { CAPS_READY, isDeno, projectRoot, run, start } from "./support/Process.ts"
import { udpPeer } from "./support/Sockets.ts"

if (isDeno) warn("Startup.test.ts: skipped under Deno (it reads Node's record of the built-ins it loaded)")

const PRELOAD = Path.join(projectRoot, "test", "support", "loaded-builtins.cjs")
// The README's command, which runs the bundle (built first if src/ changed).
const CAPS = [process.execPath, "--require", PRELOAD, Path.join(projectRoot, "scripts", "caps.mjs")]
const LAZY = ["tls", "crypto", "dns", "readline", "http"] as const

/** A file for the preload to write to, removed with the scope. */
const recordFile = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-builtins-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })),
).pipe(Effect.map((dir) => Path.join(dir, "loaded.json")))

const loadedIn = (file: string): ReadonlyArray<string> => JSON.parse(Fs.readFileSync(file, "utf8"))

/** Which of the lazily loaded built-ins a record holds. */
const lazyLoaded = (file: string) => LAZY.filter((name) => loadedIn(file).includes(name))

const uppercasingPeers = Effect.acquireRelease(
  Effect.promise(async () => {
    const udp = await udpPeer((message) => ({ payload: message.toString().toUpperCase() }))
    const tcp = Net.createServer((socket) => {
      socket.on("data", (data) => socket.write(data.toString().toUpperCase())).on("error", () => socket.destroy())
    })
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve))
    return { udp, tcp, udpPort: udp.port, tcpPort: (tcp.address() as Net.AddressInfo).port }
  }),
  ({ tcp, udp }) => Effect.sync(() => (udp.close(), tcp.close())),
)

describe("a start of the bundle", () => {
  it.live.skipIf(isDeno)(
    "a one-shot client loads none of TLS, DNS, HTTP and readline; a host name loads DNS",
    () =>
      Effect.gen(function* () {
        const peers = yield* uppercasingPeers
        const client = (proto: "udp" | "tcp", host: string) =>
          Effect.gen(function* () {
            const file = yield* recordFile
            const port = String(proto === "udp" ? peers.udpPort : peers.tcpPort)
            const finished = yield* run([...CAPS, `${proto}-client`, "-m", "hello", "--host", host, "--port", port], {
              env: { CAPS_TEST_BUILTINS_OUT: file },
              timeoutMs: 60_000,
            })
            assert.strictEqual(finished.code, 0, finished.stderr)
            assert.strictEqual(finished.stdout.trim().split("\n").at(-1), "HELLO")
            return lazyLoaded(file)
          }).pipe(Effect.scoped)
        assert.deepStrictEqual(yield* client("udp", "127.0.0.1"), [])
        assert.deepStrictEqual(yield* client("tcp", "127.0.0.1"), [])
        // The record shows what a command uses: a name is resolved, so node:dns is loaded.
        assert.deepStrictEqual(yield* client("tcp", "localhost"), ["dns"])
      }).pipe(Effect.scoped),
    120_000,
  )

  it.live.skipIf(isDeno)(
    "caps serve loads neither TLS, HTTP nor readline; --metrics-port loads HTTP",
    () =>
      Effect.gen(function* () {
        const serve = (extra: ReadonlyArray<string>) =>
          Effect.gen(function* () {
            const file = yield* recordFile
            const server = yield* start([...CAPS, "serve", "--host", "127.0.0.1", "--port", "0", ...extra], {
              ready: CAPS_READY,
              count: 2,
              env: { CAPS_TEST_BUILTINS_OUT: file },
              readyTimeoutMs: 60_000,
            })
            const stopped = yield* server.stop("SIGTERM")
            assert.strictEqual(stopped.code, 0, server.stderr())
            // node:net loads node:dns to listen on a host, IP literal or not: the hand-written server does too.
            return lazyLoaded(file).filter((name) => name !== "dns")
          }).pipe(Effect.scoped)
        assert.deepStrictEqual(yield* serve([]), [])
        assert.deepStrictEqual(yield* serve(["--metrics-port", "0"]), ["http"])
      }),
    120_000,
  )
})
