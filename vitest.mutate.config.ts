// The vitest configuration that Stryker runs (`npm run mutate`, see docs/MUTATION.md): the suite's own,
// with the test files in the order that stops a mutant's run soonest. Stryker stops at a mutant's first
// failing test, on one worker, and vitest's own order (slowest first) would run the socket and
// child-process suites before the unit tests that kill most mutants in milliseconds. So: the files that
// failed last time first (they killed the previous mutant, most likely one of the same module), then
// the fastest first as measured by the dry run, smallest first where nothing was measured yet.
import { statSync } from "node:fs"
import { defineConfig, mergeConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"
import base from "./vitest.config.ts"

class FastestFirst extends BaseSequencer {
  override sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const last = (file: TestSpecification) => this.ctx.cache.getTestSpecificationResult(file)
    const key = (file: TestSpecification): [number, number, number] => {
      const result = last(file)
      return result === undefined
        ? [1, 1, statSync(file.moduleId).size]
        : [result.failed ? 0 : 1, 0, result.duration]
    }
    const keys = new Map(files.map((file) => [file, key(file)]))
    return Promise.resolve(
      [...files].sort((a, b) => {
        const [x, y] = [keys.get(a)!, keys.get(b)!]
        return x[0] - y[0] || x[1] - y[1] || x[2] - y[2]
      }),
    )
  }
}

export default mergeConfig(base, defineConfig({ test: { sequence: { sequencer: FastestFirst } } }))
