// The programs in examples/ are run as a reader runs them (`node examples/X.ts`,
// or `deno run --allow-net --allow-env examples/X.ts`), on the runtime running
// the tests, and each must exit 0 and print exactly what its header's
// `// prints:` block says. In that block, as in docs/FAILURES.md, `<n>` stands
// for a number that varies (a port, a time in ms) and `<…>` for the rest of a
// line that varies (support/DocBlocks.ts).
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { matches } from "./support/DocBlocks.ts"
import { isDeno, projectRoot, run } from "./support/Process.ts"

interface Example {
  readonly file: string
  readonly header: string
  readonly prints: string | undefined
}

const directory = Path.join(projectRoot, "examples")

/** The leading `//` comment of a file, without the slashes. */
const headerOf = (source: string): Array<string> => {
  const header: Array<string> = []
  for (const line of source.split("\n")) {
    if (!line.startsWith("//")) break
    header.push(line.replace(/^\/\/ ?/, ""))
  }
  return header
}

/** The lines after `prints:` in the header, to its end. */
const printsOf = (header: ReadonlyArray<string>): string | undefined => {
  const at = header.indexOf("prints:")
  return at === -1 ? undefined : header.slice(at + 1).map((line) => line + "\n").join("")
}

const examples: ReadonlyArray<Example> = Fs.readdirSync(directory).filter((f) => f.endsWith(".ts")).sort().map(
  (file) => {
    const header = headerOf(Fs.readFileSync(Path.join(directory, file), "utf8"))
    return { file, header: header.join("\n"), prints: printsOf(header) }
  },
)

describe("examples/", () => {
  it("holds the five examples of issue 8 and the metrics one, each saying what it shows, how to run it and what it prints", () => {
    assert.deepStrictEqual(examples.map((e) => e.file), [
      "custom-transform.ts",
      "embedded-server.ts",
      "metrics.ts",
      "pinger.ts",
      "proxy-retry.ts",
      "retry-policy.ts",
    ])
    for (const example of examples) {
      assert.include(example.header, `node examples/${example.file}`, example.file)
      assert.include(example.header, `deno run --allow-net --allow-env examples/${example.file}`, example.file)
      assert.isDefined(example.prints, `${example.file} has no prints: block`)
      assert.isAbove(example.header.indexOf("prints:"), 100, `${example.file} says what it shows before what it prints`)
    }
  })

  it("import the library from its entry point only, and use loopback and free ports", () => {
    for (const example of examples) {
      const source = Fs.readFileSync(Path.join(directory, example.file), "utf8")
      const local = [...source.matchAll(/from "(\.[^"]*)"/g)].map((m) => m[1])
      assert.deepStrictEqual([...new Set(local)], ["../src/index.ts"], example.file)
      for (const host of source.matchAll(/host: "([^"]*)"/g)) assert.strictEqual(host[1], "127.0.0.1", example.file)
      for (const port of source.matchAll(/\bport: (\d+)/g)) assert.strictEqual(port[1], "0", example.file)
    }
  })

  for (const example of examples) {
    it.live(`${example.file} runs and prints what its header says`, () =>
      Effect.gen(function* () {
        const file = Path.join(directory, example.file)
        const command = isDeno
          ? [process.execPath, "run", "--allow-net", "--allow-env", file]
          : [process.execPath, file]
        const finished = yield* run(command, { timeoutMs: 20_000 })
        assert.strictEqual(finished.code, 0, finished.stdout + finished.stderr)
        assert.isTrue(
          matches(example.prints ?? "", finished.stdout),
          `${example.file} printed something else.\n--- header\n${example.prints}--- printed\n${finished.stdout}` +
            `--- stderr\n${finished.stderr}`,
        )
        assert.isBelow(finished.millis, 15_000, `${example.file} should run in a few seconds`)
      }), 30_000)
  }
})
