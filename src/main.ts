#!/usr/bin/env node
/**
 * The `caps` executable: `node src/main.ts <command>` or
 * `deno run --allow-net --allow-env src/main.ts <command>` from the sources,
 * and the entry of the bundle (`dist/caps.mjs`, scripts/bundle.mjs) that
 * `npm start`, `npm run caps` and the installed `caps` run.
 *
 * The edge of the program: it runs the CLI on the platform's services and
 * turns the outcome into one line on stderr and a documented exit code
 * (`ExitCode.ts`). SIGINT and SIGTERM interrupt the program, so every socket
 * is closed by its scope on the way out, and the spans of an OTLP export
 * (`TraceExport.ts`) are flushed.
 */
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeStdio from "@effect/platform-node/NodeStdio"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as Terminal from "effect/Terminal"
import * as Tracer from "effect/Tracer"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import * as Cli from "./Cli.ts"
import * as CliFlags from "./CliFlags.ts"
import * as ExitCode from "./ExitCode.ts"
import * as LogAnnotations from "./LogAnnotations.ts"
import * as LogFlags from "./LogFlags.ts"
import * as LogFormat from "./LogFormat.ts"
import * as Runtime from "./Runtime.ts"

// `caps check` exits 1 for a usage error too: Docker's HEALTHCHECK reserves 2.
let usageExitCode = ExitCode.USAGE

// The CLI's Terminal serves only its prompts (`--wizard`), and NodeTerminal opens standard input as soon as it
// is built: it is built on first use, so that a client given -m leaves stdin alone.
const lazyTerminal = Layer.effect(Terminal.Terminal)(
  Effect.gen(function* () {
    const terminal = yield* Effect.cached(Scope.provide(NodeTerminal.make(), yield* Effect.scope))
    return Terminal.make({
      columns: Effect.flatMap(terminal, (t) => t.columns),
      rows: Effect.flatMap(terminal, (t) => t.rows),
      size: Effect.flatMap(terminal, (t) => t.size),
      readInput: Effect.flatMap(terminal, (t) => t.readInput),
      readLine: Effect.flatMap(terminal, (t) => t.readLine),
      display: (text) => Effect.flatMap(terminal, (t) => t.display(text)),
    })
  }),
)

// What `Command.run` asks of the platform. The CLI reads its arguments from Stdio; FileSystem and
// ChildProcessSpawner serve only file-valued flags and handlers that spawn, and caps has neither.
// NodeServices.layer would load node:crypto and node:child_process for them at every start, so they are
// stand-ins that say so if ever used.
const platform = Layer.mergeAll(
  NodeStdio.layer,
  NodePath.layer,
  lazyTerminal,
  FileSystem.layerNoop({}),
  Layer.succeed(
    ChildProcessSpawner.ChildProcessSpawner,
    ChildProcessSpawner.make(() => Effect.die("caps starts no child processes")),
  ),
)

// Usage errors are one line, not the whole help page.
const presenter = CliOutput.layerPresenter({
  present: (event) => {
    switch (event._tag) {
      case "InvalidInvocation": {
        if (event.commandPath[1] === "check") usageExitCode = ExitCode.UNHEALTHY
        const argv = process.argv.slice(2)
        const problems = event.errors
          .map((error) => CliFlags.explainUsageError(error.message, argv).replaceAll("\n", " "))
          .join("; ")
        const command = event.commandPath.join(" ")
        return Effect.sync(() => process.stderr.write(`${command}: ${problems} (see ${command} --help)\n`))
      }
      default:
        return CliOutput.defaultPresenter.present(event)
    }
  },
})

const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return ExitCode.SUCCESS
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "Some") {
    const failure = error.value
    if (CliError.isCliError(failure)) return usageExitCode
    return ExitCode.ofFailure(failure)
  }
  if (Cause.hasInterruptsOnly(exit.cause)) {
    return Cli.shutdown.byInterruptIsSuccess ? ExitCode.SUCCESS : ExitCode.INTERRUPTED
  }
  return ExitCode.INTERNAL
}

// The one line of a failure: text for people; with --log-format json or logfmt, a log line like the others (with
// the error's tag), so that what reads the logs reads this one too.
const report = (cause: Cause.Cause<unknown>) =>
  Effect.suspend(() => {
    const error = Cause.findErrorOption(cause)
    const structured = LogFlags.current.format !== "text"
    const log = (
      message: string,
      annotations: LogAnnotations.LogAnnotations,
      logged = Cause.empty as Cause.Cause<unknown>,
    ) =>
      Effect.logError(message, logged).pipe(
        Effect.annotateLogs(annotations),
        Effect.provide(LogFormat.layer(LogFlags.current.format)),
      )
    if (error._tag === "Some") {
      if (CliError.isCliError(error.value)) return Effect.void
      const message = (error.value as Error).message
      if (structured) return log(message, LogAnnotations.ofCause(cause))
      return Effect.sync(() => process.stderr.write(`caps: ${message}\n`))
    } else if (!Cause.hasInterruptsOnly(cause)) {
      if (structured) return log("internal error", {}, cause)
      return Effect.sync(() => process.stderr.write(`caps: internal error\n${Cause.pretty(cause)}\n`))
    }
    return Effect.void
  })

const unsupported = Runtime.problem()
if (unsupported !== undefined) {
  process.stderr.write(`caps: ${unsupported}\n`)
  process.exit(ExitCode.INTERNAL)
}

// The first SIGINT/SIGTERM interrupts the program (runMain), which shuts the servers down gracefully;
// a second one means "now": exit without waiting for the drain.
// One Ctrl-C can arrive twice: the terminal sends it to the whole foreground group, and `npm start` forwards
// it to caps as well, a few milliseconds later. Only a signal that comes later than that is a second one.
const SAME_SIGNAL_MILLIS = 100
let firstSignalAt: number | undefined
const onSignal = () => {
  const now = Date.now()
  if (firstSignalAt === undefined) firstSignalAt = now
  else if (now - firstSignalAt > SAME_SIGNAL_MILLIS) process.exit(ExitCode.INTERRUPTED)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

// Traces are exported only when an OTLP endpoint is set (TraceExport.ts), and only then is the exporter loaded:
// unset, start-up pays for nothing. Its shutdown, as the program's scope closes, flushes the spans still buffered.
const traceExport = process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  ? Layer.effect(Tracer.Tracer)(Effect.gen(function* () {
    const TraceExport = yield* Effect.promise(() => import("./TraceExport.ts"))
    const started = yield* Effect.acquireRelease(
      Effect.promise(() => TraceExport.start(process.env, Cli.VERSION)),
      (started) => started._tag === "Started" ? Effect.promise(started.shutdown) : Effect.void,
    )
    if (started._tag === "Refused") return yield* Effect.fail(started.error)
    return started.tracer ?? (yield* Effect.tracer)
  })).pipe(Layer.tapCause(report)) // its bad settings fail outside the program, so they are reported here
  : Layer.empty

Cli.run.pipe(
  Effect.tapCause(report),
  Effect.provide(Layer.mergeAll(platform, presenter, Layer.succeed(Logger.LogToStderr, true), traceExport)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(exitCodeOf(exit)),
  }),
)
