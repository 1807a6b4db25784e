/**
 * The caps command line's flags: each one's name, description, environment
 * variable (`--max-line-bytes` is read from `CAPS_MAX_LINE_BYTES`, through
 * Effect `Config`; a flag given wins), default and schema, and the one-line
 * explanation of a bad value. `Cli.ts` builds the commands from them.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as FaultProxy from "./FaultProxy.ts"
import * as Options from "./Options.ts"
import * as Protocol from "./Protocol.ts"
import * as TcpServer from "./TcpServer.ts"
import * as Transform from "./Transform.ts"

/** The environment variable of a flag: `--max-line-bytes` is read from `CAPS_MAX_LINE_BYTES`. */
export const envVarOf = Options.envVarOf

/**
 * Rewrites a flag error whose value came from the environment so that it names the variable:
 * `Invalid value for flag --port: "config". Expected: SchemaError(...)` tells a user nothing.
 */
export const explainUsageError = (message: string, argv: ReadonlyArray<string>): string => {
  const match = /^Invalid value for flag --([\w-]+): "([^"]*)"\. Expected:? (.*)$/s.exec(message)
  if (match === null) return message
  const [, flag, value, expected] = match
  const env = envVarOf(flag)
  const fromEnvironment = value === "config" || !argv.some((arg) => arg === `--${flag}` || arg.startsWith(`--${flag}=`))
  if (!fromEnvironment || process.env[env] === undefined) return message
  const expectation = expected.replace(/^SchemaError\(/, "").replace(/\s+at \[.*$/s, "").replace(
    /^Schema validation failed: /,
    "",
  )
  return `Invalid value in environment variable ${env}=${JSON.stringify(process.env[env])}: ${expectation.trim()}`
}

export const ServerPort = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))
export const ClientPort = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))
export const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
export const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

export const serverHost = Flag.String("host").pipe(
  Flag.withDescription("interface to listen on; all interfaces, IPv6 and IPv4, if not given (env CAPS_HOST)"),
  Flag.withFallbackConfig(Config.String(envVarOf("host"))),
  Flag.optional,
)

export const clientHost = Flag.String("host").pipe(
  Flag.withDescription("server host name or address; default localhost (env CAPS_HOST)"),
  Flag.withFallbackConfig(Config.String(envVarOf("host"))),
  Flag.withDefault("localhost"),
)

export const transform = Flag.String("transform").pipe(
  Flag.withDescription(
    "what the server does to each sentence: upper (default), or count:<letter> (env CAPS_TRANSFORM)",
  ),
  Flag.withFallbackConfig(Config.String(envVarOf("transform"))),
  Flag.withDefault("upper"),
  Flag.filterMap(
    (spec) => Result.getSuccess(Transform.fromSpec(spec)),
    (spec) => `unknown transform ${JSON.stringify(spec)}: expected upper or count:<letter>`,
  ),
)

export const intFlag = (name: string, description: string, fallback: number, schema = PositiveInt) =>
  Flag.Int(name).pipe(
    Flag.withDescription(`${description}; default ${fallback} (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Int(envVarOf(name))),
    Flag.withDefault(fallback),
    Flag.withSchema(schema),
  )

export const secondsFlag = (name: string, description: string, fallback: number) =>
  Flag.Finite(name).pipe(
    Flag.withDescription(`${description}; default ${fallback} (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Finite(envVarOf(name))),
    Flag.withDefault(fallback),
    Flag.withSchema(Positive),
  )

export const fileFlag = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withMetavar("FILE"),
    Flag.withDescription(`${description} (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.String(envVarOf(name))),
    Flag.optional,
  )

/** Flags of a TLS client (`tcp-client`, `check`). */
export const tlsClientFlags = {
  tls: Flag.Boolean("tls").pipe(
    Flag.withDescription(`speak TLS over TCP; implied by --ca and --servername (env ${envVarOf("tls")})`),
    Flag.withFallbackConfig(Config.Boolean(envVarOf("tls"))),
    Flag.optional,
  ),
  ca: fileFlag("ca", "trust the CAs of this PEM file instead of the system's"),
  servername: Flag.String("servername").pipe(
    Flag.withMetavar("NAME"),
    Flag.withDescription(
      `the name the server's certificate must be issued for, sent as SNI; default the host (env ${
        envVarOf("servername")
      })`,
    ),
    Flag.withFallbackConfig(Config.String(envVarOf("servername"))),
    Flag.optional,
  ),
}

export type TlsClientFlags = Command.Command.Config.Infer<typeof tlsClientFlags>

export const port = (schema: typeof ServerPort) => intFlag("port", "port number", Protocol.DEFAULT_PORT, schema)

/** Flags of both servers. */
export const serverFlags = {
  host: serverHost,
  port: port(ServerPort),
  transform,
  metricsPort: Flag.Int("metrics-port").pipe(
    Flag.withDescription(
      `serve /metrics (Prometheus), /livez and /readyz over HTTP on this port; off if not given (env ${
        envVarOf("metrics-port")
      })`,
    ),
    Flag.withFallbackConfig(Config.Int(envVarOf("metrics-port"))),
    Flag.withSchema(ServerPort),
    Flag.optional,
  ),
  metricsHost: Flag.String("metrics-host").pipe(
    Flag.withDescription(`interface of --metrics-port; default 127.0.0.1 (env ${envVarOf("metrics-host")})`),
    Flag.withFallbackConfig(Config.String(envVarOf("metrics-host"))),
    Flag.withDefault("127.0.0.1"),
  ),
  drainTimeout: secondsFlag(
    "drain-timeout",
    "seconds a shutdown waits for busy TCP connections",
    Duration.toSeconds(TcpServer.DEFAULT_DRAIN_TIMEOUT),
  ),
}

/** Flags of the TCP server. */
export const tcpFlags = {
  maxLineBytes: intFlag(
    "max-line-bytes",
    "longest TCP line a line transform accepts, in bytes",
    TcpServer.DEFAULT_MAX_LINE_BYTES,
  ),
  // No default of its own: given or not decides whether an assumed descriptor limit may lower it (TcpServer).
  maxConnections: Flag.Int("max-connections").pipe(
    Flag.withDescription(
      `TCP connections served at once, more are closed at once; default ${TcpServer.DEFAULT_MAX_CONNECTIONS}, ` +
        `less if the descriptor limit is lower (env ${envVarOf("max-connections")})`,
    ),
    Flag.withFallbackConfig(Config.Int(envVarOf("max-connections"))),
    Flag.withSchema(PositiveInt),
    Flag.optional,
  ),
  idleTimeout: secondsFlag(
    "idle-timeout",
    "seconds without bytes after which a TCP connection is closed",
    Duration.toSeconds(TcpServer.DEFAULT_IDLE_TIMEOUT),
  ),
  tlsCert: fileFlag(
    "tls-cert",
    "serve TCP over TLS with this PEM certificate (chain), with --tls-key; both files are read again on SIGHUP",
  ),
  tlsKey: fileFlag("tls-key", "the PEM private key of --tls-cert"),
}

/** Flags of the UDP server. */
export const udpFlags = {
  maxDatagramBytes: intFlag(
    "max-datagram-bytes",
    "longest datagram answered, in bytes",
    Protocol.MAX_UDP_PAYLOAD,
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: Protocol.MAX_UDP_PAYLOAD })),
  ),
  receiveBufferBytes: intFlag(
    "receive-buffer-bytes",
    "the kernel's receive buffer (the receive queue) in bytes; 0 for the system's default",
    0,
    Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  ),
  rateLimit: intFlag(
    "rate-limit",
    "datagrams a second served per source IP, bursts of twice that; 0 for no limit",
    0,
    Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  ),
  traceDatagrams: Flag.Boolean("trace-datagrams").pipe(
    Flag.withDescription(
      `a trace span per UDP datagram (with OTEL_EXPORTER_OTLP_ENDPOINT); off by default, it costs the hot path ` +
        `(env ${envVarOf("trace-datagrams")})`,
    ),
    Flag.withFallbackConfig(Config.Boolean(envVarOf("trace-datagrams"))),
    Flag.withDefault(false),
  ),
}

export type ServerFlags = Command.Command.Config.Infer<typeof serverFlags>
export type TcpFlags = Command.Command.Config.Infer<typeof tcpFlags>
export type UdpFlags = Command.Command.Config.Infer<typeof udpFlags>

export const timeout = (fallback: number) => secondsFlag("timeout", "seconds to wait for a reply", fallback)

export const attempts = intFlag("attempts", "how many times a sentence is sent before giving up", 3)

export const message = Flag.String("message").pipe(
  Flag.withAlias("m"),
  Flag.withDescription("send this one sentence, print the reply and exit"),
  Flag.optional,
)

export const Rate = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))
export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

export const rateFlag = (name: string, description: string) =>
  Flag.Finite(name).pipe(
    Flag.withDescription(`${description}, 0 to 1; default 0 (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Finite(envVarOf(name))),
    Flag.withDefault(0),
    Flag.withSchema(Rate),
  )

export const bytesFlag = (name: string, description: string, schema = PositiveInt) =>
  Flag.Int(name).pipe(
    Flag.withDescription(`${description}; off if not given (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Int(envVarOf(name))),
    Flag.withSchema(schema),
    Flag.optional,
  )

/** Flags of the proxy: where it listens, where it relays, and the faults. */
export const proxyFlags = {
  host: Flag.String("host").pipe(
    Flag.withDescription(`interface to listen on; default ${FaultProxy.DEFAULT_HOST} (env CAPS_HOST)`),
    Flag.withFallbackConfig(Config.String(envVarOf("host"))),
    Flag.optional,
  ),
  port: port(ServerPort),
  target: Flag.String("target").pipe(
    Flag.withDescription(`the server to relay to, HOST:PORT or [IPV6]:PORT (env ${envVarOf("target")})`),
    Flag.withFallbackConfig(Config.String(envVarOf("target"))),
    Flag.filterMap(
      (text) => Option.fromUndefinedOr(FaultProxy.parseHostPort(text)),
      (text) => `expected HOST:PORT, got ${JSON.stringify(text)}`,
    ),
  ),
  direction: Flag.Literals("direction", ["requests", "replies", "both"]).pipe(
    Flag.withDescription(
      `where the faults apply: requests, replies or both; default both (env ${envVarOf("direction")})`,
    ),
    Flag.withFallbackConfig(Config.Literals(["requests", "replies", "both"], envVarOf("direction"))),
    Flag.withDefault("both" as const),
  ),
  seed: intFlag(
    "seed",
    "seeds the random faults",
    1,
    Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 0xffffffff })),
  ),
  drop: rateFlag("drop", "UDP: share of datagrams dropped"),
  duplicate: rateFlag("duplicate", "UDP: share of datagrams sent twice"),
  reorder: rateFlag("reorder", "UDP: share of datagrams held back and sent after the next one"),
  delay: intFlag("delay", "UDP and TCP: milliseconds added to every datagram and chunk", 0, NonNegativeInt),
  jitter: intFlag("jitter", "UDP: milliseconds a datagram's delay varies either way", 0, NonNegativeInt),
  blackhole: Flag.Boolean("blackhole").pipe(
    Flag.withDescription(`receive (UDP) or accept (TCP), never forward (env ${envVarOf("blackhole")})`),
    Flag.withFallbackConfig(Config.Boolean(envVarOf("blackhole"))),
    Flag.withDefault(false),
  ),
  slice: bytesFlag("slice", "TCP: forward in separate writes of at most this many bytes"),
  resetAfter: bytesFlag("reset-after", "TCP: reset both sides after this many bytes", NonNegativeInt),
  closeAfter: bytesFlag("close-after", "TCP: close both sides cleanly after this many bytes", NonNegativeInt),
  bandwidth: bytesFlag("bandwidth", "TCP: at most this many bytes a second"),
  idleTimeout: secondsFlag(
    "idle-timeout",
    "seconds without bytes after which a UDP flow or a TCP connection is closed",
    Duration.toSeconds(FaultProxy.DEFAULT_IDLE_TIMEOUT),
  ),
}
