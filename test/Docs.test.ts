// The documents run: every shell block of docs/FAILURES.md (on Node and on
// Deno) and of the README (on Node: its commands name their runtime) is run by
// bash as a user would type it, and must print what the document says it
// prints. A block the harness does not run says why. See support/DocBlocks.ts.
import { assert, describe, it } from "@effect/vitest"
import { blocksOf, expectedHere, matches, runBlock } from "./support/DocBlocks.ts"
import { isDeno } from "./support/Process.ts"

const documents = isDeno ? ["docs/FAILURES.md"] : ["docs/FAILURES.md", "README.md"]

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
