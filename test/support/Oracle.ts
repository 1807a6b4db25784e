// Python's str.upper() as the reference for caps's `upper` (it is what the
// textbook server does). Without python3 the tests fall back to the Unicode
// full upper-casing of the JavaScript engine and say so.
import { spawnSync } from "node:child_process"
import * as Path from "node:path"
import { hasPython } from "./Process.ts"

const script = Path.join(import.meta.dirname ?? ".", "..", "peers", "upper_oracle.py")

if (!hasPython) console.warn("python3 not found: upper-casing is checked against JavaScript's toUpperCase only")

/** The expected upper-casing of each string: Python's where it knows every character, else JavaScript's. */
export const expectedUpper = (texts: ReadonlyArray<string>): Array<string> => {
  if (!hasPython || texts.length === 0) return texts.map((t) => t.toUpperCase())
  const result = spawnSync("python3", [script], {
    input: texts.map((t) => JSON.stringify(t)).join("\n") + "\n",
    encoding: "utf8",
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  if (result.status !== 0) throw new Error(`oracle failed: ${result.stderr}`)
  const answers = result.stdout.trim().split("\n").map((line) => JSON.parse(line) as [string, boolean])
  return answers.map(([upper, known], i) => known ? upper : texts[i].toUpperCase())
}
