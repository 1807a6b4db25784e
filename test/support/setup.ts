// Runs before every test file: the suite refuses an unsupported runtime
// loudly instead of failing in confusing ways (or not at all).
import * as Runtime from "../../src/Runtime.ts"

const problem = Runtime.problem()
if (problem !== undefined) throw new Error(`unsupported runtime: ${problem}`)
