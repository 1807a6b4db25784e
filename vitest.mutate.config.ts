// The vitest configuration that Stryker runs (`npm run mutate`, see docs/MUTATION.md): the suite's own,
// with test files in order of size, smallest first. Stryker stops a mutant's run at its first failing
// test on a single worker, and vitest's default order (slowest first) would run the socket and
// child-process suites before the unit tests that kill most mutants in a few milliseconds.
import { statSync } from "node:fs"
import { defineConfig, mergeConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"
import base from "./vitest.config.ts"

class SmallestFirst extends BaseSequencer {
  override sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const size = (file: TestSpecification) => statSync(file.moduleId).size
    return Promise.resolve([...files].sort((a, b) => size(a) - size(b)))
  }
}

export default mergeConfig(base, defineConfig({ test: { sequence: { sequencer: SmallestFirst } } }))
