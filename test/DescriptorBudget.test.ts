// The descriptor budget, with /proc played by the test: the soft limit is read from its line of
// /proc/self/limits ("unlimited", or no such line, is unknown), the open count is the entries of
// /proc/self/fd, the budget is what is left after a reserve and never below one connection, and where
// either number is unknown the usual limit of 1024 is assumed, with the reserve counted twice.
import { assert, beforeEach, describe, it } from "@effect/vitest"
import { vi } from "vitest"
import * as DescriptorBudget from "../src/DescriptorBudget.ts"

const proc = vi.hoisted(() => ({
  limits: undefined as string | undefined,
  fds: undefined as ReadonlyArray<string> | undefined,
  read: [] as Array<string>,
}))

vi.mock("../src/ProcFs.ts", () => ({
  readText: (path: string) => {
    proc.read.push(path)
    return path === "/proc/self/limits" ? proc.limits : undefined
  },
  readDirectory: (path: string) => {
    proc.read.push(path)
    return path === "/proc/self/fd" ? proc.fds : undefined
  },
}))

// The file as Linux writes it: a header, then one line per limit, columns padded with spaces.
const limits = (openFiles: string) =>
  [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max cpu time              unlimited            unlimited            seconds   ",
    "Max processes             63556                63556                processes ",
    `Max open files            ${openFiles.padEnd(21)}1048576              files     `,
    "Max locked memory         8388608              8388608              bytes     ",
    "",
  ].join("\n")

const descriptors = (count: number) => Array.from({ length: count }, (_, i) => String(i))

beforeEach(() => {
  proc.limits = undefined
  proc.fds = undefined
  proc.read.length = 0
})

describe("DescriptorBudget.softLimit", () => {
  it("reads the soft limit (the first number) of the Max open files line in /proc/self/limits", () => {
    proc.limits = limits("4096")
    assert.strictEqual(DescriptorBudget.softLimit(), 4096)
    assert.deepStrictEqual(proc.read, ["/proc/self/limits"])
  })

  it("is unknown when the limit is unlimited, the line is missing, or the file cannot be read", () => {
    proc.limits = limits("unlimited")
    assert.strictEqual(DescriptorBudget.softLimit(), undefined)
    proc.limits = "Limit                     Soft Limit           Hard Limit           Units\n"
    assert.strictEqual(DescriptorBudget.softLimit(), undefined)
    proc.limits = undefined
    assert.strictEqual(DescriptorBudget.softLimit(), undefined)
  })
})

describe("DescriptorBudget.openNow", () => {
  it("counts the entries of /proc/self/fd, or is unknown", () => {
    proc.fds = descriptors(37)
    assert.strictEqual(DescriptorBudget.openNow(), 37)
    assert.deepStrictEqual(proc.read, ["/proc/self/fd"])
    proc.fds = undefined
    assert.strictEqual(DescriptorBudget.openNow(), undefined)
  })
})

describe("DescriptorBudget.connections", () => {
  it("leaves the reserve of 16 descriptors free of what the soft limit allows beyond those open", () => {
    proc.limits = limits("1024")
    proc.fds = descriptors(40)
    assert.deepStrictEqual(DescriptorBudget.connections(), { limit: 1024, budget: 1024 - 40 - 16, known: true })
    assert.strictEqual(DescriptorBudget.RESERVE, 16)
  })

  it("allows at least one connection even when the descriptors open already exceed the limit", () => {
    proc.limits = limits("20")
    proc.fds = descriptors(10)
    assert.deepStrictEqual(DescriptorBudget.connections(), { limit: 20, budget: 1, known: true })
    proc.fds = descriptors(3)
    assert.deepStrictEqual(DescriptorBudget.connections(), { limit: 20, budget: 1, known: true })
    proc.fds = descriptors(2)
    assert.deepStrictEqual(DescriptorBudget.connections(), { limit: 20, budget: 2, known: true })
  })

  it("assumes the usual limit of 1024, minus twice the reserve, when either number is unknown", () => {
    const assumed = { limit: 1024, budget: 1024 - 2 * 16, known: false }
    assert.strictEqual(DescriptorBudget.ASSUMED_LIMIT, 1024)
    proc.limits = limits("4096")
    assert.deepStrictEqual(DescriptorBudget.connections(), assumed, "open count unknown")
    proc.limits = undefined
    proc.fds = descriptors(40)
    assert.deepStrictEqual(DescriptorBudget.connections(), assumed, "limit unknown")
    proc.limits = limits("unlimited")
    assert.deepStrictEqual(DescriptorBudget.connections(), assumed, "no limit")
  })
})
