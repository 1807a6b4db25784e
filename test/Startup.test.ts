// What a start of the README's command loads: only the Node built-ins its command uses. node:tls with node:crypto,
// node:dns, node:http and node:readline took a third of a one-shot client's start when they were imported at load
// time (src/Builtins.ts, the start-up patches in scripts/bundle.mjs); each is loaded on first use now. Node's own
// record of what it loaded (process.moduleLoadList, written at exit by support/loaded-builtins.cjs) says which. Deno
// keeps no such record; for node:net, which Deno's start pays for and Node's does not, V8's log of the scripts that
// ran says it.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { warn } from "node:console"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { addressLike, trickyHosts } from "./support/Hosts.ts"
import { CAPS_READY, isDeno, projectRoot, run, start } from "./support/Process.ts"
import { tcpExchange, udpExchange, udpPeer } from "./support/Sockets.ts"

if (isDeno) warn("Startup.test.ts: mostly skipped under Deno (it reads Node's record of the built-ins it loaded)")

const PRELOAD = Path.join(projectRoot, "test", "support", "loaded-builtins.cjs")
const BUNDLE_SCRIPT = Path.join(projectRoot, "scripts", "bundle.mjs")
// The README's command, which runs the bundle (built first if src/ changed).
const CAPS_SCRIPT = Path.join(projectRoot, "scripts", "caps.mjs")
const CAPS = [process.execPath, "--require", PRELOAD, CAPS_SCRIPT]
const LAZY = ["tls", "crypto", "dns", "readline", "http"] as const

/** A file in a directory of its own, for a program to write to, removed with the scope. */
const scratchFile = (name: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-startup-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })),
  ).pipe(Effect.map((dir) => Path.join(dir, name)))

/** The bundle, built first if src/ changed (as scripts/caps.mjs would on Node). */
const bundleBuilt = Effect.gen(function* () {
  const built = yield* run([Path.join(projectRoot, "node_modules", ".bin", "node"), BUNDLE_SCRIPT, "--if-stale"], {
    timeoutMs: 120_000,
  })
  assert.strictEqual(built.code, 0, built.stderr)
})

/** A file for the preload to write to, removed with the scope. */
const recordFile = scratchFile("loaded.json")

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

/** The start-up patches of scripts/bundle.mjs. */
interface Patch {
  readonly what: string
  readonly from: RegExp
  readonly to: string
}
const patches = async (): Promise<ReadonlyArray<Patch>> => {
  const bundleScript = new URL("../scripts/bundle.mjs", import.meta.url).href
  return ((await import(bundleScript)) as { readonly PATCHES: ReadonlyArray<Patch> }).PATCHES
}

describe("a start of the bundle", () => {
  // The caps bin (scripts/bin.mjs) imports them before the bundle loads, and hands them to its require: anything
  // else would go through node:module, which on Deno costs every start some 4 ms.
  it.live(
    "the caps bin imports every built-in its bundle requires, as the build listed them",
    () =>
      Effect.gen(function* () {
        yield* bundleBuilt
        const { bundleBuiltins } = (yield* Effect.promise(() =>
          import(new URL("../scripts/bundle.mjs", import.meta.url).href)
        )) as {
          readonly bundleBuiltins: (cjs: string) => ReadonlyArray<string>
        }
        const required = bundleBuiltins(Fs.readFileSync(Path.join(projectRoot, "dist", "caps.bundle.cjs"), "utf8"))
        assert.includeMembers([...required], ["node:async_hooks", "node:buffer"], "rolldown's requires of its imports")
        const entry = Fs.readFileSync(Path.join(projectRoot, "dist", "caps.mjs"), "utf8")
        const listed = /const BUNDLE_BUILTINS = (\[[^\]]*\])/.exec(entry)
        assert.isNotNull(listed, "dist/caps.mjs lists the bundle's built-ins")
        assert.deepStrictEqual(JSON.parse(listed![1]!), [...required])
      }),
    180_000,
  )

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
    "caps serve loads neither TLS, HTTP nor readline, with --metrics-port or without",
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
        // The operators' endpoint answers HTTP on node:net (HttpResponder.ts).
        assert.deepStrictEqual(yield* serve(["--metrics-port", "0"]), [])
      }),
    120_000,
  )
})

describe("node:net and node:dgram, loaded only where TCP, UDP or an IPv6 literal needs them", () => {
  it("the bundle's NodeDatagramSocket, patched not to load it, tells addresses apart as node:net's isIP does", async () => {
    const patch = (await patches()).find((patch) => patch.what.startsWith("NodeDatagramSocket: node:net"))
    assert.isDefined(patch)
    const patched = new Function(`${patch!.to}\nreturn Net`)() as { readonly isIP: (address: string) => number }
    for (const host of trickyHosts) assert.strictEqual(patched.isIP(host), Net.isIP(host), JSON.stringify(host))
    fc.assert(fc.property(addressLike, (host) => patched.isIP(host) === Net.isIP(host)), { numRuns: 2000 })
  })

  // Deno keeps no record of the built-ins it loaded, but V8 logs each script whose functions run
  // (--log-function-events): Deno's node:net (which loads node:dns with it) shows there as ext:deno_node/net.ts,
  // and node:module, which Deno's process.getBuiltinModule loads the first time it is called, as node:module.
  const scriptsIn = (log: string) =>
    new Set(Fs.readFileSync(log, "utf8").match(/ext:deno_node\/[\w/]+\.\w+|node:module/g) ?? [])
  const v8Log = (log: string) => `--v8-flags=--log-function-events,--logfile=${log},--no-logfile-per-isolate`

  it.live.skipIf(!isDeno)(
    "on Deno, a one-shot UDP client loads neither node:net nor node:dns, a TCP client not node:dgram, and neither node:module",
    () =>
      Effect.gen(function* () {
        const peers = yield* uppercasingPeers
        yield* bundleBuilt
        const scriptsRun = (proto: "udp" | "tcp") =>
          Effect.gen(function* () {
            const log = yield* scratchFile("v8.log")
            const port = String(proto === "udp" ? peers.udpPort : peers.tcpPort)
            const finished = yield* run([
              process.execPath,
              "run",
              v8Log(log),
              "--allow-net",
              "--allow-env",
              "--allow-read",
              Path.join(projectRoot, "dist", "caps.mjs"),
              `${proto}-client`,
              "-m",
              "hello",
              "--host",
              "127.0.0.1",
              "--port",
              port,
            ], { timeoutMs: 60_000 })
            assert.strictEqual(finished.code, 0, finished.stderr)
            assert.strictEqual(finished.stdout.trim(), "HELLO")
            return scriptsIn(log)
          }).pipe(Effect.scoped)
        const udp = yield* scriptsRun("udp")
        assert.isTrue(udp.has("ext:deno_node/dgram.ts"), "the log names the scripts that ran")
        assert.isFalse(udp.has("ext:deno_node/net.ts"), "node:net")
        assert.isFalse(udp.has("ext:deno_node/dns.ts"), "node:dns")
        assert.isFalse(udp.has("node:module"), "node:module")
        const tcp = yield* scriptsRun("tcp")
        assert.isTrue(tcp.has("ext:deno_node/net.ts"), "the log names the scripts that ran")
        assert.isFalse(tcp.has("ext:deno_node/dgram.ts"), "node:dgram")
        assert.isFalse(tcp.has("node:module"), "node:module")
      }).pipe(Effect.scoped),
    180_000,
  )

  it.live.skipIf(!isDeno)(
    "on Deno, the README's command with the bundle fresh fetches no module of src/ or node_modules/ as it starts",
    () =>
      Effect.gen(function* () {
        yield* bundleBuilt
        // Deno fetches every module a literal import() names before the program runs; its debug log lists them.
        const finished = yield* run(
          [
            process.execPath,
            "run",
            "-L",
            "debug",
            "--allow-net",
            "--allow-env",
            "--allow-read",
            CAPS_SCRIPT,
            "--version",
          ],
          { timeoutMs: 60_000 },
        )
        assert.strictEqual(finished.code, 0, finished.stderr)
        const fetched = [...finished.stderr.matchAll(/fetch_no_follow - specifier: file:\/\/(\S+)/g)].map((match) =>
          Path.relative(projectRoot, match[1]!)
        )
        assert.include(fetched, "scripts/caps.mjs", "the log names what was fetched")
        assert.include(fetched, "dist/caps.mjs")
        assert.deepStrictEqual(fetched.filter((file) => /^(src|node_modules)\//.test(file)), [])
      }),
    120_000,
  )

  it.live.skipIf(!isDeno)(
    "on Deno, caps serve with --metrics-port, up to its first answers and a scrape, loads no node:module",
    () =>
      Effect.gen(function* () {
        yield* bundleBuilt
        const log = yield* scratchFile("v8.log")
        yield* Effect.gen(function* () {
          const server = yield* start(
            [process.execPath, "run", v8Log(log), "--allow-net", "--allow-env", "--allow-read", CAPS_SCRIPT, "serve"]
              .concat(["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0"]),
            { ready: CAPS_READY, count: 2 },
          )
          const [udpPort, tcpPort] = server.ports
          const metrics = /metrics on (http:\S+)/.exec(server.stdout())
          assert.isNotNull(metrics, server.stdout())
          const scrape = yield* Effect.promise(() => fetch(metrics![1]!))
          assert.include(yield* Effect.promise(() => scrape.text()), "caps_requests_total")
          const udpReply = yield* Effect.promise(() => udpExchange(udpPort!, "hello\n"))
          assert.strictEqual(udpReply.toString(), "HELLO\n")
          const tcpReply = yield* Effect.promise(() => tcpExchange(tcpPort!, ["hello\n"], { expectBytes: 6 }))
          assert.strictEqual(tcpReply.data.toString(), "HELLO\n")
        }).pipe(Effect.scoped)
        const scripts = scriptsIn(log)
        assert.isTrue(scripts.has("ext:deno_node/dgram.ts"), "the log names the scripts that ran")
        assert.isFalse(scripts.has("node:module"), "node:module")
      }).pipe(Effect.scoped),
    180_000,
  )
})

describe("Effect's two stack-trace probes, patched to answer without a stack trace", () => {
  // Effect's own probe, from the installed module, run with the stack trace limit as it finds it.
  const probeOf = (source: string, name: string) => {
    const probe = new RegExp(
      `const ${name} = (?:/\\*#__PURE__\\*/)?\\(?(\\(\\) => \\{[\\s\\S]*?\\n\\})\\)?(?:\\(\\))?;`,
    ).exec(
      source,
    )
    assert.isNotNull(probe, `${name} is gone from effect: the patch no longer applies`)
    const limit = { get: () => Error.stackTraceLimit, set: (n: number) => void (Error.stackTraceLimit = n) }
    return new Function("getStackTraceLimit", "setStackTraceLimit", `return (${probe![1]})()`)(limit.get, limit.set)
  }
  const effectFile = (file: string) =>
    Fs.readFileSync(Path.join(projectRoot, "node_modules", "effect", "dist", file), "utf8")

  it("effect/Utils: the internal call is the plain one, without try/finally, as Effect's probe picks here", async () => {
    const patch = (await patches()).find((patch) => patch.what.startsWith("effect/Utils"))
    assert.isDefined(patch)
    const utils = effectFile("Utils.js")
    assert.match(utils, patch!.from, "the patch applies to the installed effect")
    const probed = String(probeOf(utils, "pickInternalCall"))
    assert.notInclude(probed, "finally", "V8 names the internal call in its stack traces")
    assert.strictEqual(String(probeOf(utils.replace(patch!.from, () => patch!.to), "pickInternalCall")), probed)
  })

  it("effect/internal/effect: V8 names a stored continuation in its stack traces, as Effect's probe finds here", async () => {
    const patch = (await patches()).find((patch) => patch.what.startsWith("effect/internal/effect: continuation"))
    assert.isDefined(patch)
    const effect = effectFile(Path.join("internal", "effect.js"))
    assert.match(effect, patch!.from, "the patch applies to the installed effect")
    assert.isTrue(probeOf(effect, "continuationMarksStack"))
    assert.isTrue(probeOf(effect.replace(patch!.from, () => patch!.to), "continuationMarksStack"))
  })
})
