// The anchors GitHub gives a Markdown document's headings, for the tests that check the links to them.
import * as Fs from "node:fs"
import * as Path from "node:path"
import { projectRoot } from "./Process.ts"

/** The anchors GitHub gives a Markdown file's headings (github-slugger's rule, duplicates numbered). */
export const anchorsOf = (file: string): Set<string> => {
  const seen = new Map<string, number>()
  const anchors = new Set<string>()
  const body = Fs.readFileSync(Path.join(projectRoot, file), "utf8").replace(/^```[\s\S]*?^```$/gm, "")
  for (const match of body.matchAll(/^#{1,6} (.*)$/gm)) {
    const plain = match[1].replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replaceAll("`", "").trim()
    const base = plain.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replaceAll(" ", "-")
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    anchors.add(count === 0 ? base : `${base}-${count}`)
  }
  return anchors
}
