// Reading /proc-like files: the text of a file and the entries of a directory, or undefined where they cannot be
// read (missing, or on Deno not permitted). On Deno node:fs is never loaded for it (its own file API reads), which
// spares every server start node:fs's load; here node:fs is counted through the module that loads it (Builtins).
import { assert, beforeEach, describe, it } from "@effect/vitest"
import * as NodeFs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { vi } from "vitest"
import * as ProcFs from "../src/ProcFs.ts"
import { isDeno } from "./support/Process.ts"

const loads = vi.hoisted(() => ({ fs: 0 }))

vi.mock("../src/Builtins.ts", async (importOriginal) => {
  const original = await importOriginal<typeof import("../src/Builtins.ts")>()
  return {
    ...original,
    fs: () => {
      loads.fs++
      return original.fs()
    },
  }
})

beforeEach(() => {
  loads.fs = 0
})

const scratch = () => {
  const dir = NodeFs.mkdtempSync(Path.join(Os.tmpdir(), "caps-procfs-"))
  NodeFs.writeFileSync(
    Path.join(dir, "limits"),
    "Max open files            1024                 4096                 files\n",
  )
  NodeFs.writeFileSync(Path.join(dir, "other"), "")
  return dir
}

describe("ProcFs", () => {
  it("reads a file's text and a directory's entries", () => {
    const dir = scratch()
    try {
      assert.strictEqual(
        ProcFs.readText(Path.join(dir, "limits")),
        NodeFs.readFileSync(Path.join(dir, "limits"), "utf8"),
      )
      assert.deepStrictEqual([...ProcFs.readDirectory(dir)!].sort(), ["limits", "other"])
    } finally {
      NodeFs.rmSync(dir, { recursive: true })
    }
  })

  it("says undefined for what is not there, and throws nothing", () => {
    assert.strictEqual(ProcFs.readText("/nonexistent/caps/limits"), undefined)
    assert.strictEqual(ProcFs.readDirectory("/nonexistent/caps"), undefined)
  })

  it("uses node:fs on Node only: on Deno, Deno's own file API reads", () => {
    const dir = scratch()
    try {
      ProcFs.readText(Path.join(dir, "limits"))
      ProcFs.readDirectory(dir)
      assert.strictEqual(loads.fs, isDeno ? 0 : 2)
    } finally {
      NodeFs.rmSync(dir, { recursive: true })
    }
  })
})
