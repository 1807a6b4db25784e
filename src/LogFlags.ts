/**
 * The CLI's log settings, global flags that every command takes before or after its name: `--log-format`
 * (`CAPS_LOG_FORMAT`, LogFormat.ts) and `CAPS_LOG_LEVEL`, the environment variable of Effect's own `--log-level`,
 * which has none. As for every other flag, the flag wins when both are given; a bad value is a usage error naming it.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Flag from "effect/cli/Flag"
import * as GlobalFlag from "effect/cli/GlobalFlag"
import * as CapsError from "./CapsError.ts"
import * as LogFormat from "./LogFormat.ts"
import { envVarOf } from "./Options.ts"

/** The log format the command runs with, once its flags are parsed: main.ts reports a failure in it too. */
export const current: { format: LogFormat.LogFormat } = { format: "text" }

/** `--log-format`, beside Effect's own `--log-level`: global, so that it can be given before or after the command. */
export const logFormat = GlobalFlag.Setting("log-format")({
  flag: Flag.Literals("log-format", LogFormat.formats).pipe(
    Flag.withMetavar("<text|json|logfmt>"),
    Flag.withDescription(`the format of the log lines on stderr; default text (env ${envVarOf("log-format")})`),
    Flag.withFallbackConfig(Config.Literals(LogFormat.formats, envVarOf("log-format"))),
    Flag.withDefault("text" as const),
  ),
})

// The names --log-level takes, and the levels they mean (Effect's flag: GlobalFlag.LogLevel).
const LOG_LEVELS = {
  all: "All",
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None",
} as const satisfies Record<string, LogLevel.LogLevel>

const levelFromEnv = Layer.unwrap(Effect.gen(function* () {
  // Provided by Command.run, as the built-in flags are: read without requiring it in the type.
  const flag = yield* Effect.serviceOption(GlobalFlag.LogLevel)
  if (Option.isSome(flag) && Option.isSome(flag.value)) return Layer.empty
  const name = yield* Config.option(Config.String(envVarOf("log-level"))).pipe(Effect.orDie)
  if (Option.isNone(name)) return Layer.empty
  const level = LOG_LEVELS[name.value.toLowerCase() as keyof typeof LOG_LEVELS]
  if (level === undefined) {
    return yield* new CapsError.InvalidOption({
      option: envVarOf("log-level"),
      detail: `expected one of ${Object.keys(LOG_LEVELS).join(", ")}, got ${JSON.stringify(name.value)}`,
    })
  }
  return Layer.succeed(References.MinimumLogLevel, level)
}))

/** The logger of the format given, and the level of `CAPS_LOG_LEVEL` unless `--log-level` is given. */
export const layer = Layer.merge(
  Layer.unwrap(Effect.map(logFormat, (format) => {
    current.format = format
    return LogFormat.layer(format)
  })),
  levelFromEnv,
)
