// The README's start-up path: `npm start`, `npm run caps` and the Deno command run scripts/caps.mjs, which runs
// the bundle (dist/caps.mjs, built by scripts/bundle.mjs) only when it was built from src/ as it is now, so an
// edit is never hidden by an old bundle. In a copy of the project: a fresh bundle is what runs; after an edit
// Node rebuilds it and runs the edit, Deno runs the sources. Node only: it drives the bundler (Deno's side is
// run with the pinned deno binary from here).
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { warn } from "node:console"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { type Finished, isDeno, lines, projectRoot, run } from "./support/Process.ts"

if (isDeno) warn("Launcher.test.ts: skipped under Deno (it runs the bundler on Node)")

const COPIED = ["src", "scripts", "package.json", "package-lock.json", "deno.json", "tsconfig.json"]
const VERSION = /export const VERSION = "([^"]+)"/
const pinnedDeno = Path.join(projectRoot, "node_modules", ".bin", "deno")

const succeeded = (what: string, finished: Finished): Finished => {
  assert.isFalse(finished.timedOut, `${what} was killed at its deadline:\n${finished.stdout}${finished.stderr}`)
  assert.strictEqual(finished.code, 0, `${what} failed:\n${finished.stdout}${finished.stderr}`)
  return finished
}

/** A copy of the project's sources and scripts, sharing its node_modules. */
const projectCopy = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-launcher-"))
    for (const entry of COPIED) Fs.cpSync(Path.join(projectRoot, entry), Path.join(dir, entry), { recursive: true })
    Fs.symlinkSync(Path.join(projectRoot, "node_modules"), Path.join(dir, "node_modules"))
    return dir
  }),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })),
)

const setVersion = (dir: string, version: string) => {
  const cli = Path.join(dir, "src", "Runtime.ts")
  const source = Fs.readFileSync(cli, "utf8")
  assert.match(source, VERSION, "src/Runtime.ts defines VERSION")
  Fs.writeFileSync(cli, source.replace(VERSION, `export const VERSION = "${version}"`))
}

/** The code caches scripts/bin.mjs keeps on Deno for the bundle at `bundle`: their names end in a hash of its path. */
const denoCachesOf = (bundle: string): Array<string> => {
  let key = 5381
  for (const char of bundle) key = (key * 33 + char.charCodeAt(0)) >>> 0
  const dir = Path.join(projectRoot, "node_modules", ".cache", "caps")
  const suffix = `-${key.toString(36)}.v8`
  return Fs.existsSync(dir)
    ? Fs.readdirSync(dir).filter((name) => name.includes("-deno") && name.endsWith(suffix)).map((name) =>
      Path.join(dir, name)
    )
    : []
}

describe("the launcher of npm start, npm run caps and the Deno command", () => {
  it.live.skipIf(isDeno)(
    "--if-stale makes the code caches a build without warm-up left out (the Deno command cannot write its own)",
    () =>
      Effect.gen(function* () {
        const dir = yield* projectCopy
        const bundle = Path.join(dir, "dist", "caps.bundle.cjs")
        // The copy's Deno caches land in the shared node_modules/.cache: they go with the copy.
        yield* Effect.addFinalizer(() => Effect.sync(() => denoCachesOf(bundle).forEach((file) => Fs.rmSync(file))))
        const env = { XDG_CACHE_HOME: Path.join(dir, "cache") }
        const build = (...args: ReadonlyArray<string>) =>
          run([process.execPath, Path.join(dir, "scripts", "bundle.mjs"), ...args], {
            cwd: dir,
            env,
            timeoutMs: 120_000,
          })
        succeeded("the build without warm-up", yield* build("--no-warm"))
        assert.deepStrictEqual(denoCachesOf(bundle), [], "no caches made")
        const warmed = succeeded("--if-stale", yield* build("--if-stale"))
        assert.include(warmed.stderr, "is up to date")
        assert.match(warmed.stderr, /code caches for node, deno in/)
        // One per command the warm-up runs: both clients, --version (as "other"), the three servers.
        assert.strictEqual(denoCachesOf(bundle).length, 6, denoCachesOf(bundle).join("\n"))
        const again = succeeded("--if-stale again", yield* build("--if-stale"))
        assert.notInclude(again.stderr, "code caches", "made once for a bundle")
        // A rebuild replaces the bundle the caches were made for.
        succeeded("a rebuild without warm-up", yield* build("--no-warm"))
        assert.match(succeeded("--if-stale", yield* build("--if-stale")).stderr, /code caches for node, deno in/)
      }).pipe(Effect.scoped),
    240_000,
  )

  it.live.skipIf(isDeno)(
    "runs the bundle when it matches src/; after an edit, Node rebuilds it and Deno runs the sources",
    () =>
      Effect.gen(function* () {
        const dir = yield* projectCopy
        // The bin's code cache goes to $XDG_CACHE_HOME/caps: here, not in the user's home.
        const env = { XDG_CACHE_HOME: Path.join(dir, "cache") }
        const node = (args: ReadonlyArray<string>) =>
          run([process.execPath, ...args], { cwd: dir, env, timeoutMs: 60_000 })
        const version = (finished: Finished) => lines(finished.stdout).at(-1) ?? ""

        succeeded("the build", yield* node([Path.join(dir, "scripts", "bundle.mjs"), "--no-warm"]))
        // Marks the built bundle, so that its answer tells it apart from the sources'.
        const bundle = Path.join(dir, "dist", "caps.bundle.cjs")
        Fs.writeFileSync(bundle, Fs.readFileSync(bundle, "utf8").replace(/"0\.1\.0"|`0\.1\.0`/g, '"bundled"'))
        const fresh = succeeded("caps --version", yield* node([Path.join(dir, "scripts", "caps.mjs"), "--version"]))
        assert.include(version(fresh), "bundled", "a fresh bundle is what runs")
        assert.strictEqual(fresh.stderr, "")
        const bin = succeeded("the bin", yield* node([Path.join(dir, "dist", "caps.mjs"), "--version"]))
        assert.include(version(bin), "bundled")

        setVersion(dir, "9.9.9-edited")
        const edited = succeeded(
          "caps after an edit",
          yield* node([Path.join(dir, "scripts", "caps.mjs"), "--version"]),
        )
        assert.include(edited.stderr, "building it")
        assert.include(version(edited), "9.9.9-edited", "the edit runs, not the old bundle")
        const again = succeeded("caps once rebuilt", yield* node([Path.join(dir, "scripts", "caps.mjs"), "--version"]))
        assert.strictEqual(again.stderr, "", "rebuilt once, then fresh")
        assert.include(version(again), "9.9.9-edited")

        if (!Fs.existsSync(pinnedDeno)) {
          warn("Launcher.test.ts: no pinned deno in node_modules/.bin; the Deno half is skipped")
          return
        }
        const deno = (permissions: ReadonlyArray<string>) =>
          run([pinnedDeno, "run", ...permissions, Path.join(dir, "scripts", "caps.mjs"), "--version"], {
            cwd: dir,
            env: { ...env, DENO_NO_PROMPT: "1", DENO_NO_UPDATE_CHECK: "1" },
            timeoutMs: 60_000,
          })
        const all = ["--allow-net", "--allow-env", "--allow-read"]
        assert.include(version(succeeded("deno, fresh", yield* deno(all))), "9.9.9-edited")
        setVersion(dir, "9.9.9-deno")
        const stale = succeeded("deno after an edit", yield* deno(all))
        assert.include(stale.stderr, "running the sources")
        assert.include(version(stale), "9.9.9-deno", "Deno runs the edit from the sources")
        const unreadable = succeeded("deno without --allow-read", yield* deno(["--allow-net", "--allow-env"]))
        assert.include(unreadable.stderr, "without --allow-read, Deno cannot check")
        assert.include(version(unreadable), "9.9.9-edited", "without read access Deno cannot check: the bundle runs")
      }).pipe(Effect.scoped),
    180_000,
  )
})
