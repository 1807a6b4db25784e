// The README's TypeScript examples are real programs: each one type-checks
// against the library (as `caps`, the package name a user imports), runs on
// the runtime running the tests, and prints exactly the `text` block that
// follows it in the README.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as ExitCode from "../src/ExitCode.ts"
import { isDeno, projectRoot, run } from "./support/Process.ts"

interface Example {
  readonly name: string
  readonly source: string
  readonly prints: string | undefined
}

/** Every ```ts block of a Markdown file, with the ```text block right after it, if any. */
export const examplesOf = (file: string): ReadonlyArray<Example> => {
  const text = Fs.readFileSync(Path.join(projectRoot, file), "utf8")
  const blocks = [...text.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2] }))
  return blocks.flatMap((block, i) => {
    if (block.lang !== "ts") return []
    const next = blocks[i + 1]
    return [{
      name: `${Path.basename(file, ".md")}-${i}`,
      source: block.body,
      prints: next?.lang === "text" ? next.body : undefined,
    }]
  })
}

const examples = examplesOf("README.md")
const directory = Path.join(projectRoot, "scratch", "readme")

// `caps` is what a user imports; here it is the sources.
const materialise = (example: Example): string => {
  const file = Path.join(directory, `${example.name}.ts`)
  Fs.writeFileSync(file, example.source.replaceAll(`from "caps"`, `from "../../src/index.ts"`))
  return file
}

// Effect's default logger writes `[hh:mm:ss.mmm] LEVEL (#fiber): message` lines to stdout; they carry the time.
const withoutLogLines = (stdout: string): string =>
  stdout.split("\n").filter((line) => !/^\[\d\d:\d\d:\d\d\.\d{3}\] [A-Z]+ \(#\d+\): /.test(line)).join("\n")

describe("README examples", () => {
  Fs.mkdirSync(directory, { recursive: true })
  const files = examples.map(materialise)
  Fs.writeFileSync(
    Path.join(directory, "tsconfig.json"),
    JSON.stringify({ extends: "../../tsconfig.json", include: ["*.ts"] }),
  )

  it("the README's exit-code table is ExitCode's, row for row", () => {
    const readme = Fs.readFileSync(Path.join(projectRoot, "README.md"), "utf8")
    const documented: Record<string, number> = {}
    for (const row of readme.matchAll(/^\| (\d+) +\| ([^|]*)\|/gm)) {
      for (const tag of row[2].matchAll(/`(\w+)`/g)) documented[tag[1]] = Number(row[1])
    }
    assert.deepStrictEqual(documented, { ...ExitCode.ofError })
  })

  it("every relative link of the README and docs/ points at a file that exists", () => {
    for (const doc of ["README.md", ...Fs.readdirSync(Path.join(projectRoot, "docs")).map((f) => `docs/${f}`)]) {
      if (!doc.endsWith(".md")) continue
      const text = Fs.readFileSync(Path.join(projectRoot, doc), "utf8")
      for (const [, target] of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target)) continue
        const file = Path.resolve(projectRoot, Path.dirname(doc), target)
        assert.isTrue(Fs.existsSync(file), `${doc} links to ${target}, which does not exist`)
      }
    }
  })

  it("there are examples, and each says what it prints", () => {
    assert.isAtLeast(examples.length, 3)
    for (const example of examples) assert.isDefined(example.prints, `${example.name} has no text block after it`)
  })

  it.skipIf(isDeno)("every example type-checks against the library", () => {
    const tsc = Path.join(projectRoot, "node_modules", "typescript", "bin", "tsc")
    const checked = ChildProcess.spawnSync(process.execPath, [tsc, "-p", directory], { encoding: "utf8" })
    assert.strictEqual(checked.status, 0, checked.stdout + checked.stderr)
  }, 60_000)

  examples.forEach((example, i) => {
    it.live(`${example.name} runs and prints what the README says`, () =>
      Effect.gen(function* () {
        const command = isDeno ? [process.execPath, "run", "--allow-all", files[i]] : [process.execPath, files[i]]
        const finished = yield* run(command, { timeoutMs: 20_000 })
        assert.strictEqual(finished.code, 0, finished.stderr)
        assert.strictEqual(withoutLogLines(finished.stdout), example.prints)
      }), 30_000)
  })
})
