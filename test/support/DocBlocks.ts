// Runs the shell blocks of caps's documents as a user would type them, and
// compares what they print with the document's own `output` blocks.
//
// The conventions (written for readers in docs/FAILURES.md):
// - A ```sh block is run by bash, line by line, in the project's folder.
//   `caps` is the CLI on the runtime under test (`node src/main.ts`, or
//   `deno run --allow-net --allow-env src/main.ts`), and node_modules/.bin is
//   on PATH, as in an npm script.
// - A line ending in `&` starts a program in the background (a server, the
//   proxy, a textbook peer, or a client). For a server the harness waits until
//   its port is bound (the `--port` given, or the last number on the line)
//   before going on, as a person waits for the ready line; what it prints is kept apart, as
//   `output job N` (N counts the block's background programs from 1). They
//   are stopped with SIGTERM when the block ends, the last started first,
//   unless the block did.
// - Every other line runs in the foreground; its stdout and stderr go, in
//   order, to the block's `output`, followed by `[exit N]` when it exits with
//   N other than 0.
// - An ```output block after the ```sh block (` node` or ` deno` after
//   `output` for one runtime only; ` job N` for a background program) is what
//   must be printed. In it, `<n>` stands for any number, `<time>` for a log
//   line's time of day, and `<…>` for any text on that line.
// - On Deno the catalogue's ports (12100 to 12999) are 1000 higher, in the
//   commands and the outputs alike (see `onThisRuntime`).
// - `<!-- not run: why -->` on the line before a ```sh block says why the
//   harness does not run it (it installs packages, or it is the test suite).
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { isDeno, projectRoot } from "./Process.ts"

/** One expected output of a block. */
export interface Expected {
  readonly runtime: "node" | "deno" | undefined
  /** 0 for the foreground; N for the Nth background program. */
  readonly job: number
  readonly text: string
}

/** A shell block of a document, with what it must print. */
export interface Block {
  readonly file: string
  /** The line of the opening fence, 1-based. */
  readonly line: number
  readonly script: string
  readonly expected: ReadonlyArray<Expected>
  /** Why the harness does not run it, if it does not. */
  readonly notRun: string | undefined
  /** The heading the block stands under (a catalogue entry's id is in it). */
  readonly heading: string
}

const fence = /^```([^\n`]*)\n([\s\S]*?)^```$/gm

/** The shell blocks of a Markdown file, each with the output blocks that follow it. */
export const blocksOf = (file: string): ReadonlyArray<Block> => {
  const text = Fs.readFileSync(Path.join(projectRoot, file), "utf8")
  const fences = [...text.matchAll(fence)].map((m) => ({
    info: m[1].trim(),
    body: m[2],
    start: m.index,
    end: m.index + m[0].length,
  }))
  const blocks: Array<Block> = []
  fences.forEach((f, i) => {
    if (f.info !== "sh") return
    const expected: Array<Expected> = []
    for (let j = i + 1, after = f.end; j < fences.length; j++) {
      const next = fences[j]
      if (text.slice(after, next.start).trim() !== "" || !next.info.startsWith("output")) break
      const words = next.info.split(/\s+/).slice(1)
      const runtime = words.includes("node") ? "node" : words.includes("deno") ? "deno" : undefined
      const job = words.includes("job") ? Number(words[words.indexOf("job") + 1]) : 0
      expected.push({ runtime, job, text: next.body })
      after = next.end
    }
    const before = text.slice(0, f.start).trimEnd().split("\n").at(-1) ?? ""
    const notRun = /^<!-- not run: (.*) -->$/.exec(before)?.[1]
    const heading = [...text.slice(0, f.start).matchAll(/^#+ (.*)$/gm)].at(-1)?.[1] ?? ""
    blocks.push({
      file,
      line: text.slice(0, f.start).split("\n").length,
      script: f.body,
      expected,
      notRun,
      heading,
    })
  })
  return blocks
}

/** The port a background line binds: its `--port`, or else its last number (12000 for `npm start`). */
const portOf = (line: string): number => {
  const flag = /--port[ =](\d+)/.exec(line)
  if (flag !== null) return Number(flag[1])
  if (/^npm (start|run start)\b/.test(line)) return 12000
  const numbers = [...line.matchAll(/\b(\d{2,5})\b/g)].map((m) => Number(m[1]))
  if (numbers.length === 0) throw new Error(`cannot tell which port the background line binds: ${line}`)
  return numbers.at(-1)!
}

/** The transports a background line binds, so the harness waits for each; none for a client. */
const transportsOf = (line: string): ReadonlyArray<"tcp" | "udp"> =>
  !/-server|\bserve\b|\bproxy\b|Server\.py|-LISTEN|UDP-RECV|^npm (run )?start/.test(line)
    ? []
    : /udp-server|UDPServer\.py|UDP-LISTEN|UDP-RECV/.test(line)
    ? ["udp"]
    : /tcp-server|TCPServer\.py|TCP-LISTEN/.test(line)
    ? ["tcp"]
    : ["udp", "tcp"]

// The harness's own bash: job bookkeeping, waiting for a port, exit codes. None of it is printed.
const prelude = String.raw`
set -u
__jobs=()
# Whether something listens on TCP port $1 ("tcp") or is bound to UDP port $1 ("udp"): TIME_WAIT leftovers don't count.
__bound() {
  local hex files state
  hex=$(printf '%04X' "$2")
  if [ "$1" = tcp ]; then files="/proc/net/tcp /proc/net/tcp6"; state=0A; else files="/proc/net/udp /proc/net/udp6"; state=07; fi
  awk -v p=":$hex$" -v s="$state" '$2 ~ p && $4 == s { found = 1 } END { exit !found }' $files 2>/dev/null
}
__wait_port() {
  local i
  for i in $(seq 1 200); do __bound "$1" "$2" && return 0; sleep 0.05; done
  echo "[harness: nothing bound $1 port $2 within 10 s]"
}
__status() { [ "$1" -ne 0 ] && printf '@@caps-harness-exit %s@@\n' "$1"; return 0; }
# Stops the background programs, the last started first: clients before the servers they talk to, so a
# connection's TIME_WAIT stays with the client's ephemeral port (the textbook's TCP server does not set
# SO_REUSEADDR, and could not bind its port again for a minute).
__stop() {
  local i
  for ((i = $# ; i > 0 ; i--)); do kill -TERM "${"$"}{!i}" 2>/dev/null; wait "${"$"}{!i}" 2>/dev/null; done
  return 0
}
`

const strip = (line: string): string => line.replace(/\s+#\s.*$/, "")

// `wait %N` waits on job N's pid: a job that died at once (the textbook's server, killed as it starts) may
// already have left bash's job table when `wait` runs, and `wait %N` would fail with "no such job", where
// `wait PID` still returns its status.
const waitByPid = (line: string): string =>
  line.replace(/\bwait %(\d+)/g, (_, job: string) => `wait "\${__jobs[${Number(job) - 1}]}"`)

/** The block as the harness runs it: each line as written, with output redirected and ports awaited. */
export const harnessScript = (block: Block, jobsDirectory: string): string => {
  let job = 0
  const lines = block.script.split("\n").map((raw) => {
    const line = strip(raw).trimEnd()
    if (line.trim() === "" || line.trim().startsWith("#")) return ""
    if (line.endsWith("&") && !line.endsWith("&&")) {
      job++
      const command = line.slice(0, -1).trimEnd()
      const transports = transportsOf(command)
      const waits = transports.length === 0
        ? ":"
        : transports.map((transport) => `__wait_port ${transport} ${portOf(command)}`).join("; ")
      return `${command} > ${jobsDirectory}/${job}.log 2>&1 &\n__jobs+=($!); ${waits}`
    }
    return `{ ${waitByPid(line)} ; } 2>&1; __status $?`
  })
  return `${prelude}\n${lines.join("\n")}\n__stop "\${__jobs[@]}"\n`
}

/** A directory with a `caps` command that runs the CLI on the runtime under test. */
const capsBin = (): string => {
  const bin = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-bin-"))
  const main = Path.join(projectRoot, "src", "main.ts")
  const run = isDeno
    ? `exec "${process.execPath}" run --allow-net --allow-env "${main}" "$@"`
    : `exec "${process.execPath}" "${main}" "$@"`
  Fs.writeFileSync(Path.join(bin, "caps"), `#!/bin/sh\n${run}\n`, { mode: 0o755 })
  return bin
}

// `[exit N]` goes on a line of its own, even after output that did not end its last line.
const exitMarks = (text: string): string =>
  text.replace(/([^\n])@@caps-harness-exit/g, "$1\n@@caps-harness-exit").replace(
    /@@caps-harness-exit (\d+)@@/g,
    "[exit $1]",
  )

/** What a block printed: the foreground's output and each background program's. */
export interface Printed {
  readonly foreground: string
  readonly jobs: ReadonlyArray<string>
}

/** Runs a block with bash, as a user would, within `timeoutMs`. */
export const runBlock = (block: Block, timeoutMs = 60_000): Printed => {
  const jobs = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-jobs-"))
  const bin = capsBin()
  try {
    const result = ChildProcess.spawnSync("bash", [
      "-c",
      harnessScript({ ...block, script: onThisRuntime(block.script) }, jobs),
    ], {
      cwd: projectRoot,
      encoding: "utf8",
      timeout: timeoutMs,
      killSignal: "SIGKILL",
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        PATH: [bin, Path.join(projectRoot, "node_modules", ".bin"), process.env.PATH ?? ""].join(":"),
        NO_COLOR: "1",
        // As at a terminal, where Python writes each line at once: stdout and stderr then keep their order.
        PYTHONUNBUFFERED: "1",
      },
    })
    if (result.error !== undefined) throw result.error
    const count = Fs.readdirSync(jobs).length
    return {
      foreground: exitMarks(result.stdout + result.stderr),
      jobs: Array.from({ length: count }, (_, i) => Fs.readFileSync(Path.join(jobs, `${i + 1}.log`), "utf8")),
    }
  } finally {
    Fs.rmSync(jobs, { recursive: true, force: true })
    Fs.rmSync(bin, { recursive: true, force: true })
  }
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/**
 * Whether `actual` is what `expected` shows, with its `<n>`, `<time>` and `<…>` standing for what varies. Blank lines
 * before the output are not compared: npm prints one, and Markdown formatters drop one at the top of a block.
 */
export const matches = (expected: string, actual: string): boolean => {
  const pattern = escape(expected.replace(/^\n+/, ""))
    .replaceAll("<n>", "-?\\d+(?:\\.\\d+)?")
    .replaceAll("<time>", "\\d\\d:\\d\\d:\\d\\d\\.\\d{3}")
    .replaceAll("<…>", "[^\\n]*?")
  return new RegExp(`^${pattern}$`).test(actual.replace(/^\n+/, ""))
}

/**
 * The catalogue's ports (12100 to 12999) as the runtime under test uses them: Deno's run adds 1000, in the
 * commands and in the outputs alike. The textbook's TCP server does not set SO_REUSEADDR, and a port it has
 * served stays in TIME_WAIT for a minute, so the two runs must not share ports.
 */
export const onThisRuntime = (text: string): string =>
  isDeno ? text.replace(/\b12([1-9]\d\d)\b/g, (_, rest) => `13${rest}`) : text

/** The expected outputs of a block that apply on the runtime under test, with its ports. */
export const expectedHere = (block: Block): ReadonlyArray<Expected> =>
  block.expected
    .filter((e) => e.runtime === undefined || e.runtime === (isDeno ? "deno" : "node"))
    .map((e) => ({ ...e, text: onThisRuntime(e.text) }))
