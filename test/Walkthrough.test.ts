// docs/WALKTHROUGH.md cannot drift from the code or from the book's programs:
// every line of the four Python programs in test/peers is quoted in the
// section about its program; every relative link points at a file that
// exists, and a link to a heading at a heading GitHub would give that anchor;
// every name it links to a source file is declared there (`Module.name` is
// exported, or traced as `Effect.fn("Module.name")`; a bare name is declared,
// exported or not).
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { anchorsOf } from "./support/Anchors.ts"
import { projectRoot } from "./support/Process.ts"

const DOC = "docs/WALKTHROUGH.md"
const text = Fs.readFileSync(Path.join(projectRoot, DOC), "utf8")
const read = (file: string) => Fs.readFileSync(Path.join(projectRoot, file), "utf8")

const PROGRAMS = [
  { file: "UDPClient.py", section: "2.7.1" },
  { file: "UDPServer.py", section: "2.7.1" },
  { file: "TCPClient.py", section: "2.7.2" },
  { file: "TCPServer.py", section: "2.7.2" },
] as const

/** The lines of a program that do something: not blank, not a comment. */
const codeLines = (file: string): Array<string> =>
  read(`test/peers/${file}`).split("\n").map((line) => line.trim()).filter((line) =>
    line !== "" && !line.startsWith("#")
  )

/** The text under a `## ` heading that starts with `title`, up to the next one. */
const sectionOf = (title: string): string | undefined => {
  const start = text.search(new RegExp(`^## ${title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "m"))
  if (start === -1) return undefined
  const rest = text.slice(start + 1)
  const end = rest.search(/^## /m)
  return end === -1 ? rest : rest.slice(0, end)
}

interface Link {
  readonly label: string
  readonly target: string
  readonly line: number
}

const links: ReadonlyArray<Link> = [...text.matchAll(/\[((?:`[^`]*`|[^\]`])*)\]\(([^)\s]+)\)/g)].map((m) => ({
  label: m[1],
  target: m[2],
  line: text.slice(0, m.index).split("\n").length,
}))
const relative = links.filter((link) => !/^[a-z]+:/.test(link.target))

const DECLARATION = "(?:declare )?(?:const|let|function\\*?|class|interface|type)"

/** Whether `name` is declared in `source`: exported, or (when `exported` is false) at all. */
const declares = (source: string, name: string, exported: boolean): boolean =>
  new RegExp(`^${exported ? "export " : "\\s*(?:export )?"}${DECLARATION} ${name}\\b`, "m").test(source)

describe("docs/WALKTHROUGH.md", () => {
  for (const program of PROGRAMS) {
    it(`quotes every line of ${program.file}, in its own section, which cites section ${program.section}`, () => {
      const section = sectionOf(program.file)
      assert.isDefined(section, `no "## ${program.file}" section`)
      assert.include(section!.split("\n")[0], `section ${program.section}`)
      const missing = codeLines(program.file).filter((line) => !section!.includes("`" + line + "`"))
      assert.deepStrictEqual(missing, [], `lines of ${program.file} not quoted in its section`)
    })
  }

  it("copies no program: no code blocks, and each quote is one line", () => {
    assert.notMatch(text, /^```/m)
    const spanning = [...text.matchAll(/`[^`]*`/g)].filter((span) => span[0].includes("\n"))
    assert.deepStrictEqual(spanning.map((span) => span[0]), [], "inline quotes that span lines")
  })

  it("has relative links, each to a file that exists", () => {
    assert.isAbove(relative.length, 50)
    for (const link of relative) {
      const file = link.target.split("#")[0]
      if (file === "") continue
      const resolved = Path.join(projectRoot, "docs", file)
      assert.isTrue(Fs.existsSync(resolved), `${DOC}:${link.line}: ${link.target} does not exist`)
    }
  })

  it("links to headings GitHub would anchor so: the failure catalogue's ids, PROTOCOL.md, the README", () => {
    const withAnchor = relative.filter((link) => link.target.includes("#"))
    assert.isAbove(withAnchor.filter((link) => link.target.startsWith("FAILURES.md#")).length, 10)
    for (const link of withAnchor) {
      const [file, anchor] = link.target.split("#")
      const markdown = Path.relative(projectRoot, Path.join(projectRoot, "docs", file === "" ? "WALKTHROUGH.md" : file))
      assert.isTrue(anchorsOf(markdown).has(anchor), `${DOC}:${link.line}: no heading in ${markdown} gives #${anchor}`)
    }
  })

  it("names a failure id in each link to the catalogue, the id its anchor starts with", () => {
    for (const link of relative.filter((link) => link.target.startsWith("FAILURES.md#"))) {
      const id = /^`([a-z0-9-]+)`$/.exec(link.label)?.[1]
      assert.isDefined(id, `${DOC}:${link.line}: a link to the catalogue is labelled with an id, got ${link.label}`)
      assert.isTrue(link.target.startsWith(`FAILURES.md#${id}--`), `${DOC}:${link.line}: ${id} links elsewhere`)
    }
  })

  it("names only what its source files declare", () => {
    const named = relative.filter((link) => /^\.\.\/src\/\w+\.ts$/.test(link.target) && /^`[^`]+`$/.test(link.label))
    assert.isAbove(named.length, 50)
    for (const link of named) {
      const name = link.label.slice(1, -1)
      const file = link.target.slice("../".length)
      const module = Path.basename(file, ".ts")
      const source = read(file)
      const where = `${DOC}:${link.line}: ${name} -> ${file}`
      if (name.includes("/") || name.endsWith(".ts")) {
        assert.isTrue(file.endsWith(name), where)
        continue
      }
      const [first, ...rest] = name.split(".")
      if (rest.length === 0) {
        assert.isTrue(declares(source, first, false), `${where}: not declared there`)
        continue
      }
      assert.strictEqual(first, module, `${where}: the module is ${module}`)
      assert.strictEqual(rest.length, 1, where)
      // Traced by name, with span options or without.
      const traced = [`Effect.fn("${name}")`, `Effect.fn("${name}", `, `Effect.fnUntraced("${name}")`].some((call) =>
        source.includes(call)
      )
      assert.isTrue(traced || declares(source, rest[0], true), `${where}: not exported (nor traced) there`)
    }
  })
})
