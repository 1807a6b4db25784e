// The documents run: every shell block of docs/FAILURES.md (on Node and on
// Deno) and of the README (on Node: its commands name their runtime) is run by
// bash as a user would type it, and must print what the document says it
// prints. A block the harness does not run says why. See support/DocBlocks.ts.
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { blocksOf, expectedHere, matches, runBlock } from "./support/DocBlocks.ts"
import { isDeno, projectRoot } from "./support/Process.ts"

const documents = isDeno ? ["docs/FAILURES.md"] : ["docs/FAILURES.md", "README.md"]

describe("the failure catalogue and the tests", () => {
  const catalogue = Fs.readFileSync(Path.join(projectRoot, "docs", "FAILURES.md"), "utf8")
  // Each entry: its id, and the test files it says prove it.
  const entries = [...catalogue.matchAll(/^### `([a-z0-9-]+)`[^\n]*\n([\s\S]*?)(?=^##|(?![\s\S]))/gm)].map((m) => ({
    id: m[1],
    files: [...(/\*\*Proved\s+by:\*\*([\s\S]*?)(?:\n\n|$)/.exec(m[2])?.[1] ?? "").matchAll(/`(test\/[\w.]+)`/g)]
      .map((f) => f[1]),
  }))
  const tagged = new Map<string, Set<string>>()
  for (const file of Fs.readdirSync(Path.join(projectRoot, "test")).filter((f) => f.endsWith(".test.ts"))) {
    const text = Fs.readFileSync(Path.join(projectRoot, "test", file), "utf8")
    for (const m of text.matchAll(/\[failure: ([a-z0-9-]+)\]/g)) {
      if (!tagged.has(m[1])) tagged.set(m[1], new Set())
      tagged.get(m[1])!.add(`test/${file}`)
    }
  }

  it("every entry has a stable id, and every id names the files of the tests that prove it", () => {
    assert.isAtLeast(entries.length, 10)
    assert.strictEqual(new Set(entries.map((e) => e.id)).size, entries.length, "ids are unique")
    for (const entry of entries) assert.isAbove(entry.files.length, 0, `${entry.id} names its tests`)
  })

  it("every id has a test tagged with it in a file the entry names, and every tag names an entry", () => {
    for (const entry of entries) {
      const files = tagged.get(entry.id) ?? new Set()
      assert.isAbove(files.size, 0, `no test is tagged [failure: ${entry.id}]`)
      for (const file of files) assert.include(entry.files, file, `${entry.id}: ${file} is tagged but not named`)
    }
    const ids = new Set(entries.map((e) => e.id))
    for (const tag of tagged.keys()) assert.isTrue(ids.has(tag), `[failure: ${tag}] names no catalogue entry`)
  })
})

describe("the harness", () => {
  it("waits for a job that died at once: `wait %N` still gives its status after bash has dropped the job", () => {
    // An external command between the kill and the wait lets bash drop the dead job from its table.
    const script = "sleep 30 &\nkill %1\nsleep 0.1\nwait %1\n"
    const block = { file: "(harness)", line: 1, script, expected: [], notRun: undefined, heading: "(harness)" }
    assert.strictEqual(runBlock(block).foreground, "[exit 143]\n")
  })
})

for (const file of documents) {
  describe(file, () => {
    const blocks = blocksOf(file)

    it("has blocks, and each block either says what it prints on both runtimes or why it is not run", () => {
      assert.isAbove(blocks.length, 0)
      for (const block of blocks) {
        const where = `${file}:${block.line}`
        if (block.notRun !== undefined) {
          assert.isAbove(block.notRun.trim().length, 0, where)
          continue
        }
        for (const runtime of ["node", "deno"]) {
          const foreground = block.expected.filter((e) => e.job === 0 && (e.runtime ?? runtime) === runtime)
          assert.strictEqual(foreground.length, 1, `${where}: one output block for ${runtime}`)
        }
      }
    })

    for (const block of blocks.filter((b) => b.notRun === undefined)) {
      it(`${block.heading} (line ${block.line}) prints what the document says`, () => {
        const printed = runBlock(block)
        for (const expected of expectedHere(block)) {
          const actual = expected.job === 0 ? printed.foreground : printed.jobs[expected.job - 1] ?? "(no such job)"
          const what = expected.job === 0 ? "the output" : `job ${expected.job}'s output`
          assert.isTrue(
            matches(expected.text, actual),
            `${file}:${block.line}: ${what} drifted.\n--- document\n${expected.text}--- printed\n${actual}`,
          )
        }
      }, 90_000)
    }
  })
}
