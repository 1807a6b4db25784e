// deploy/caps.service is a unit systemd accepts without a complaint (`systemd-analyze verify`, where the
// machine has it), and its stop timeout leaves caps's drain the time it is given.
import { assert, describe, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import { warn } from "node:console"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as TcpServer from "../src/TcpServer.ts"
import { projectRoot } from "./support/Process.ts"

const UNIT = Fs.readFileSync(Path.join(projectRoot, "deploy", "caps.service"), "utf8")
const INSTALLED_BIN = "/usr/local/bin/caps"
const CHECKOUT_BIN = Path.join(projectRoot, "dist", "caps.mjs")

const hasSystemdAnalyze = ChildProcess.spawnSync("systemd-analyze", ["--version"], { timeout: 10_000 }).status === 0
if (!hasSystemdAnalyze) warn("systemd-analyze not found: skipping the check of deploy/caps.service")

/** The values of `Key=` lines in the unit, in order. */
const values = (unit: string, key: string): Array<string> =>
  [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1])

/**
 * What `systemd-analyze verify` says of `unit`, written as caps.service in a directory of its own. verify
 * insists that ExecStart's program exists: the unit names the installed bin, so the copy names this checkout's
 * (the file npm installs there), and nothing else differs.
 */
const verify = (unit: string): { readonly status: number | null; readonly said: string } => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-unit-"))
  try {
    const file = Path.join(directory, "caps.service")
    Fs.writeFileSync(file, unit.replaceAll(`ExecStart=${INSTALLED_BIN} `, `ExecStart=${CHECKOUT_BIN} `))
    const result = ChildProcess.spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8", timeout: 30_000 })
    return { status: result.status, said: (result.stdout + result.stderr).trim() }
  } finally {
    Fs.rmSync(directory, { recursive: true, force: true })
  }
}

describe("deploy/caps.service", () => {
  it("runs the installed caps bin's serve, which the package installs from dist/caps.mjs", () => {
    assert.deepStrictEqual(values(UNIT, "ExecStart"), [`${INSTALLED_BIN} serve`])
    const pkg = JSON.parse(Fs.readFileSync(Path.join(projectRoot, "package.json"), "utf8"))
    assert.strictEqual(Path.join(projectRoot, pkg.bin.caps), CHECKOUT_BIN)
    assert.isTrue(Fs.existsSync(CHECKOUT_BIN), "dist/caps.mjs is built (npm ci builds it)")
  })

  it("gives the drain more time than CAPS_DRAIN_TIMEOUT before systemd's SIGKILL, and room for the connections", () => {
    const drain = Number(/^Environment=CAPS_DRAIN_TIMEOUT=(\d+)$/m.exec(UNIT)?.[1])
    const stop = Number(values(UNIT, "TimeoutStopSec")[0])
    assert.isAbove(drain, 0)
    assert.isAbove(stop, drain)
    assert.deepStrictEqual(values(UNIT, "KillSignal"), ["SIGTERM"])
    assert.isAbove(Number(values(UNIT, "LimitNOFILE")[0]), TcpServer.DEFAULT_MAX_CONNECTIONS)
  })

  it.skipIf(!hasSystemdAnalyze)("systemd-analyze verify has nothing to say of it", () => {
    assert.deepStrictEqual(verify(UNIT), { status: 0, said: "" })
  }, 60_000)

  it.skipIf(!hasSystemdAnalyze)("systemd-analyze verify complains of a misspelt key (so the check can fail)", () => {
    const { said } = verify(UNIT.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    assert.include(said, "Unknown key 'NoNewPrivilege'")
  }, 60_000)
})
