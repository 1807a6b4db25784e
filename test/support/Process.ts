// Child processes for the end-to-end tests: run a command to completion under
// a hard deadline, or start a server (caps or a textbook peer) and wait for
// its ready line. Every child runs in its own process group, killed by a
// finalizer (with anything it started) even when the test fails or times out.
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import { warn } from "node:console"
import * as Path from "node:path"

/** Whether the tests run on Deno (else Node). */
export const isDeno = "Deno" in globalThis

/** The repository root, where `src/main.ts` and `deno.json` are. */
export const projectRoot = Path.resolve(import.meta.dirname ?? ".", "..", "..")

/** A file in `test/peers`. */
export const peerPath = (name: string): string => Path.join(projectRoot, "test", "peers", name)

const MAIN = Path.join(projectRoot, "src", "main.ts")

/** The argv that runs the caps CLI on the runtime running the tests. */
export const capsCommand = (args: ReadonlyArray<string>): ReadonlyArray<string> =>
  isDeno ? [process.execPath, "run", "--allow-net", "--allow-env", MAIN, ...args] : [process.execPath, MAIN, ...args]

/** The argv that runs a script from `test/peers` with python3. */
export const pythonCommand = (script: string, args: ReadonlyArray<string> = []): ReadonlyArray<string> => [
  "python3",
  peerPath(script),
  ...args,
]

/** Whether python3 can be run here (the textbook peers and the pty helper need it). */
export const hasPython: boolean = ChildProcess.spawnSync("python3", ["--version"], { timeout: 10_000 }).status === 0

/** Says loudly that tests are skipped for want of python3; returns whether they are. */
export const skipWithoutPython = (what: string): boolean => {
  if (!hasPython) warn(`python3 not found: skipping ${what}`)
  return !hasPython
}

/** The non-empty lines of a text. */
export const lines = (text: string): Array<string> => text.split("\n").filter((line) => line.trim() !== "")

/** How a child ended. */
export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A command that ran to its end (or was killed at its deadline). */
export interface Finished extends Exited {
  readonly stdout: string
  readonly stderr: string
  /** The deadline passed and the child was killed. */
  readonly timedOut: boolean
  readonly millis: number
}

/** How to run a child. */
export interface RunOptions {
  /** Written to standard input, which is then closed (standard input is an empty pipe without it). */
  readonly input?: string | undefined
  /** Added to the environment; `undefined` removes a variable. `CAPS_*` variables are never inherited. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Hard deadline: the child is killed after this long. */
  readonly timeoutMs?: number | undefined
  /** Working directory; the repository root by default. */
  readonly cwd?: string | undefined
}

const environment = (extra: RunOptions["env"]): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { PYTHONUTF8: "1", PYTHONDONTWRITEBYTECODE: "1", NO_COLOR: "1" }
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("CAPS_") && value !== undefined) env[name] = value
  }
  for (const [name, value] of Object.entries(extra ?? {})) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  return env
}

interface Child {
  readonly process: ChildProcess.ChildProcess
  readonly startedAt: number
  readonly exit: Promise<Exited>
  readonly output: { stdout: string; stderr: string }
  exited: Exited | undefined
  timedOut: boolean
  readonly onOutput: Set<() => void>
}

const killGroup = (child: Child, signal: NodeJS.Signals): void => {
  if (child.exited !== undefined || child.process.pid === undefined) return
  try {
    process.kill(-child.process.pid, signal)
  } catch {
    child.process.kill(signal)
  }
}

const spawn = (command: ReadonlyArray<string>, options: RunOptions): Child => {
  const [file, ...args] = command
  const process_ = ChildProcess.spawn(file, args, {
    cwd: options.cwd ?? projectRoot,
    env: environment(options.env),
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  })
  const child: Child = {
    process: process_,
    startedAt: Date.now(),
    output: { stdout: "", stderr: "" },
    exited: undefined,
    timedOut: false,
    onOutput: new Set(),
    exit: new Promise<Exited>((resolve) => {
      process_.once("error", (error) => {
        child.output.stderr += `spawn ${file} failed: ${error.message}\n`
        child.exited ??= { code: null, signal: null }
        resolve(child.exited)
        for (const notify of child.onOutput) notify()
      })
      process_.once("close", (code, signal) => {
        child.exited ??= { code, signal }
        resolve(child.exited)
        for (const notify of child.onOutput) notify()
      })
    }),
  }
  process_.stdout?.setEncoding("utf8")
  process_.stderr?.setEncoding("utf8")
  process_.stdout?.on("data", (text: string) => {
    child.output.stdout += text
    for (const notify of child.onOutput) notify()
  })
  process_.stderr?.on("data", (text: string) => {
    child.output.stderr += text
  })
  // A child that exits without reading its input must not fail the test with EPIPE.
  process_.stdin?.on("error", () => {})
  if (options.input !== undefined) process_.stdin?.end(options.input)
  else process_.stdin?.end()
  if (options.timeoutMs !== undefined) {
    const timer = setTimeout(() => {
      child.timedOut = true
      killGroup(child, "SIGKILL")
    }, options.timeoutMs)
    void child.exit.then(() => clearTimeout(timer))
  }
  return child
}

const waitExit = (child: Child, withinMs: number): Promise<Exited | undefined> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), withinMs)
    void child.exit.then((exited) => {
      clearTimeout(timer)
      resolve(exited)
    })
  })

// Kills the child's process group if the child still runs, then waits for its exit.
const killAndWait = (child: Child) =>
  Effect.promise(async () => {
    killGroup(child, "SIGKILL")
    await waitExit(child, 5_000)
  })

/** Runs a command to its end, collecting its output; it is killed after `timeoutMs` (20 s by default). */
export const run = (command: ReadonlyArray<string>, options: RunOptions = {}): Effect.Effect<Finished> =>
  Effect.acquireUseRelease(
    Effect.sync(() => spawn(command, { ...options, timeoutMs: options.timeoutMs ?? 20_000 })),
    (child) =>
      Effect.promise(() => child.exit).pipe(
        Effect.map((exited) => ({
          ...exited,
          ...child.output,
          timedOut: child.timedOut,
          millis: Date.now() - child.startedAt,
        })),
      ),
    killAndWait,
  )

/** Runs the caps CLI to its end. */
export const runCaps = (args: ReadonlyArray<string>, options: RunOptions = {}): Effect.Effect<Finished> =>
  run(capsCommand(args), options)

/** How a stopped server ended. */
export interface Stopped extends Exited {
  /** From the signal to the exit. */
  readonly millis: number
  /** It did not exit in time and was killed. */
  readonly forced: boolean
}

/** A server running as a child process. */
export interface Server {
  readonly pid: number
  /** The ports of its ready lines, in order. */
  readonly ports: ReadonlyArray<number>
  /** The first of `ports`. */
  readonly port: number
  readonly stdout: () => string
  readonly stderr: () => string
  /** Sends `signal` (SIGTERM by default) to the server alone and waits at most `withinMs` for it to exit. */
  readonly stop: (signal?: NodeJS.Signals, withinMs?: number) => Effect.Effect<Stopped>
  /**
   * Waits at most `withinMs` for the server to exit, sending nothing (a test that sent its own signals); it is
   * killed if it does not. `millis` counts from the call.
   */
  readonly exit: (withinMs?: number) => Effect.Effect<Stopped>
}

/** How to start a server. */
export interface StartOptions extends Omit<RunOptions, "input" | "timeoutMs"> {
  /** A ready line; its first group is the port. */
  readonly ready: RegExp
  /** How many ready lines to wait for. */
  readonly count?: number | undefined
  /** How long to wait for them; 20 s by default. */
  readonly readyTimeoutMs?: number | undefined
}

/** A caps server's ready line, e.g. `caps udp-server: ready on 127.0.0.1:40000/udp (127.0.0.1), transform upper`. */
export const CAPS_READY = /^caps (?:udp|tcp)-server: ready on \S+:(\d+)\/(?:udp|tcp) /

/** A textbook peer's ready line: `ready <port>`. */
export const PEER_READY = /^ready (\d+)$/

const readyPorts = (stdout: string, ready: RegExp): Array<number> =>
  stdout.split("\n").flatMap((line) => {
    const match = ready.exec(line)
    return match === null ? [] : [Number(match[1])]
  })

/** Starts a server and waits for its ready lines; it is killed when the scope closes. */
export const start = (
  command: ReadonlyArray<string>,
  options: StartOptions,
): Effect.Effect<Server, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const child = yield* Effect.acquireRelease(Effect.sync(() => spawn(command, options)), killAndWait)
    const count = options.count ?? 1
    const timeoutMs = options.readyTimeoutMs ?? 20_000
    const ports = yield* Effect.callback<Array<number>, Error>((resume) => {
      const check = () => {
        const ports = readyPorts(child.output.stdout, options.ready)
        if (ports.length >= count) return finish(Effect.succeed(ports.slice(0, count)))
        if (child.exited !== undefined) {
          return finish(Effect.fail(
            new Error(
              `${command.join(" ")} exited (${child.exited.code ?? child.exited.signal}) before it was ready:\n` +
                child.output.stdout + child.output.stderr,
            ),
          ))
        }
      }
      const timer = setTimeout(() => {
        finish(Effect.fail(
          new Error(
            `${command.join(" ")} not ready within ${timeoutMs} ms:\n${child.output.stdout}${child.output.stderr}`,
          ),
        ))
      }, timeoutMs)
      const finish = (result: Effect.Effect<Array<number>, Error>) => {
        clearTimeout(timer)
        child.onOutput.delete(check)
        resume(result)
      }
      child.onOutput.add(check)
      check()
      return Effect.sync(() => {
        clearTimeout(timer)
        child.onOutput.delete(check)
      })
    })
    const pid = child.process.pid ?? 0
    const exitWithin = async (since: number, withinMs: number): Promise<Stopped> => {
      const exited = await waitExit(child, withinMs)
      if (exited !== undefined) return { ...exited, millis: Date.now() - since, forced: false }
      killGroup(child, "SIGKILL")
      const killed = (await waitExit(child, 5_000)) ?? { code: null, signal: null }
      return { ...killed, millis: Date.now() - since, forced: true }
    }
    const stop = (signal: NodeJS.Signals = "SIGTERM", withinMs = 5_000): Effect.Effect<Stopped> =>
      Effect.promise(() => {
        const sentAt = Date.now()
        // process.kill, not child.kill: Deno's ChildProcess.kill reports the signal sent instead of the real exit.
        if (child.exited === undefined) process.kill(pid, signal)
        return exitWithin(sentAt, withinMs)
      })
    const exit = (withinMs = 5_000): Effect.Effect<Stopped> => Effect.promise(() => exitWithin(Date.now(), withinMs))
    return {
      pid,
      ports,
      port: ports[0],
      stdout: () => child.output.stdout,
      stderr: () => child.output.stderr,
      stop,
      exit,
    }
  })

/** Starts a caps server (`udp-server`, `tcp-server` or `serve`) and waits until it is ready. */
export const startCaps = (
  args: ReadonlyArray<string>,
  options: Omit<StartOptions, "ready"> = {},
): Effect.Effect<Server, Error, Scope.Scope> =>
  start(capsCommand(args), { count: args[0] === "serve" ? 2 : 1, ...options, ready: CAPS_READY })

/** Starts a textbook server from `test/peers` on `host`, on a free port. */
export const startPeer = (
  script: "UDPServer.py" | "TCPServer.py",
  host = "127.0.0.1",
): Effect.Effect<Server, Error, Scope.Scope> => start(pythonCommand(script, [host, "0"]), { ready: PEER_READY })
