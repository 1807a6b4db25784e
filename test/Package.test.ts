// caps as a user installs it: `npm pack` builds dist/ (prepack) into a
// tarball whose exports point at dist/, and a fresh ESM project that installs
// that tarball can import caps, type-check against its .d.ts and make a UDP
// round trip with the packaged server and client; the `caps` bin runs too.
// Node only: it drives npm, and the packaged code is what Node users run.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { warn } from "node:console"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { type Finished, isDeno, lines, projectRoot, run } from "./support/Process.ts"

if (isDeno) warn("Package.test.ts: skipped under Deno (it runs npm and the packaged build on Node)")

const CONSUMER = `// A consumer of the installed caps package, written as a user would.
import { Effect, Layer } from "effect"
import { Transform, UdpClient, UdpServer } from "caps"

const program = Effect.gen(function* () {
  const server = yield* UdpServer.UdpServer
  const client = yield* UdpClient.make({ host: "127.0.0.1", port: server.address.port, attemptTimeout: "2 seconds" })
  const reply: string = yield* client.request("hello from a consumer, straße")
  console.log(reply)
}).pipe(
  Effect.scoped,
  Effect.provide(UdpServer.layer({ host: "127.0.0.1", port: 0 }).pipe(Layer.provide(Transform.layer(Transform.upper)))),
)

// The declarations are real types, not \`any\`: a request takes a string.
// @ts-expect-error a number is not a sentence
export const mistyped = Effect.flatMap(UdpClient.make(), (client) => client.request(42))

await Effect.runPromise(program)
`

const succeeded = (what: string, finished: Finished): Finished => {
  assert.isFalse(finished.timedOut, `${what} was killed at its deadline:\n${finished.stdout}${finished.stderr}`)
  assert.strictEqual(finished.code, 0, `${what} failed:\n${finished.stdout}${finished.stderr}`)
  return finished
}

const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })),
  )

interface PackedFile {
  readonly path: string
}

interface PackReport {
  readonly filename: string
  readonly files: ReadonlyArray<PackedFile>
}

describe("the npm package", () => {
  it.live.skipIf(isDeno)(
    "npm pack's tarball installs in a fresh ESM project that imports caps, type-checks and makes a UDP round trip",
    () =>
      Effect.gen(function* () {
        const packDir = yield* tempDir("caps-pack-")
        const consumerDir = yield* tempDir("caps-consumer-")

        const packed = succeeded(
          "npm pack",
          yield* run(["npm", "pack", "--json", "--pack-destination", packDir], { timeoutMs: 90_000 }),
        )
        const [report] = JSON.parse(packed.stdout) as ReadonlyArray<PackReport>
        const tarball = Path.join(packDir, report.filename)
        assert.isTrue(Fs.existsSync(tarball))
        const files = new Set(report.files.map((file) => file.path))
        for (const file of ["package.json", "dist/index.js", "dist/index.d.ts", "dist/main.js"]) {
          assert.isTrue(files.has(file), `${file} is in the tarball`)
        }
        assert.isFalse([...files].some((file) => file.startsWith("test/") || file.startsWith("bench/")))

        Fs.writeFileSync(
          Path.join(consumerDir, "package.json"),
          JSON.stringify({ name: "caps-consumer", version: "0.0.0", private: true, type: "module" }, null, 2),
        )
        Fs.writeFileSync(Path.join(consumerDir, "consumer.ts"), CONSUMER)
        succeeded(
          "npm install",
          yield* run(["npm", "install", tarball, "--no-audit", "--no-fund", "--prefer-offline"], {
            cwd: consumerDir,
            timeoutMs: 90_000,
          }),
        )

        const installed = Path.join(consumerDir, "node_modules", "caps")
        const manifest = JSON.parse(Fs.readFileSync(Path.join(installed, "package.json"), "utf8")) as {
          readonly exports: { readonly ".": { readonly types: string; readonly default: string } }
        }
        assert.deepStrictEqual(manifest.exports["."], { types: "./dist/index.d.ts", default: "./dist/index.js" })
        assert.isTrue(Fs.existsSync(Path.join(installed, "dist", "index.js")))
        assert.isTrue(Fs.existsSync(Path.join(installed, "dist", "index.d.ts")))

        const [ran, checked, version] = yield* Effect.all([
          run([process.execPath, "consumer.ts"], { cwd: consumerDir, timeoutMs: 30_000 }),
          run([
            process.execPath,
            Path.join(projectRoot, "node_modules", "typescript", "bin", "tsc"),
            "--noEmit",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2023",
            "--strict",
            "--skipLibCheck",
            "false",
            "consumer.ts",
          ], { cwd: consumerDir, timeoutMs: 60_000 }),
          run([process.execPath, Path.join(consumerDir, "node_modules", ".bin", "caps"), "--version"], {
            cwd: consumerDir,
            timeoutMs: 30_000,
          }),
        ], { concurrency: 3 })
        assert.strictEqual(lines(succeeded("the consumer", ran).stdout)[0], "HELLO FROM A CONSUMER, STRASSE")
        succeeded("tsc on the consumer", checked)
        assert.include(succeeded("the caps bin", version).stdout, "0.1.0")
      }),
    120_000,
  )
})
