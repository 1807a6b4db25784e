/**
 * The caps command line: the textbook's four programs as subcommands
 * (`udp-server`, `tcp-server`, `udp-client`, `tcp-client`) plus `serve`, both
 * servers on one port number. Every flag has an environment variable
 * (`CAPS_PORT`, ...) read through Effect `Config`; a flag given wins.
 *
 * This module only parses settings and wires the library's layers together;
 * what the programs do lives in the modules named after them.
 */
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as ClientSession from "./ClientSession.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as FaultProxy from "./FaultProxy.ts"
import * as Health from "./Health.ts"
import * as ListenAddress from "./ListenAddress.ts"
import * as LogFlags from "./LogFlags.ts"
import * as MetricsEndpoint from "./MetricsEndpoint.ts"
import * as Options from "./Options.ts"
import * as Pinger from "./Pinger.ts"
import * as Protocol from "./Protocol.ts"
import * as Runtime from "./Runtime.ts"
import * as TcpClient from "./TcpClient.ts"
import * as TcpServer from "./TcpServer.ts"
import * as Tls from "./Tls.ts"
import * as TlsOptions from "./TlsOptions.ts"
import * as Transform from "./Transform.ts"
import * as UdpClient from "./UdpClient.ts"
import * as UdpServer from "./UdpServer.ts"

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

/** The version printed by `--version`. */
export const VERSION = Runtime.VERSION

const ServerPort = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))
const ClientPort = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))
const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

const serverHost = Flag.String("host").pipe(
  Flag.withDescription("interface to listen on; all interfaces, IPv6 and IPv4, if not given (env CAPS_HOST)"),
  Flag.withFallbackConfig(Config.String(envVarOf("host"))),
  Flag.optional,
)

const clientHost = Flag.String("host").pipe(
  Flag.withDescription("server host name or address; default localhost (env CAPS_HOST)"),
  Flag.withFallbackConfig(Config.String(envVarOf("host"))),
  Flag.withDefault("localhost"),
)

const transform = Flag.String("transform").pipe(
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

const intFlag = (name: string, description: string, fallback: number, schema = PositiveInt) =>
  Flag.Int(name).pipe(
    Flag.withDescription(`${description}; default ${fallback} (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Int(envVarOf(name))),
    Flag.withDefault(fallback),
    Flag.withSchema(schema),
  )

const secondsFlag = (name: string, description: string, fallback: number) =>
  Flag.Finite(name).pipe(
    Flag.withDescription(`${description}; default ${fallback} (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Finite(envVarOf(name))),
    Flag.withDefault(fallback),
    Flag.withSchema(Positive),
  )

const fileFlag = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withMetavar("FILE"),
    Flag.withDescription(`${description} (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.String(envVarOf(name))),
    Flag.optional,
  )

/** Flags of a TLS client (`tcp-client`, `check`). */
const tlsClientFlags = {
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

type TlsClientFlags = Command.Command.Config.Infer<typeof tlsClientFlags>

const clientTls = (flags: TlsClientFlags) => TlsOptions.clientTlsOf(flags.tls, flags.ca, flags.servername)

const port = (schema: typeof ServerPort) => intFlag("port", "port number", Protocol.DEFAULT_PORT, schema)

const seconds = Options.seconds

/** Flags of both servers. */
const serverFlags = {
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
const tcpFlags = {
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
const udpFlags = {
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

type ServerFlags = Command.Command.Config.Infer<typeof serverFlags>
type TcpFlags = Command.Command.Config.Infer<typeof tcpFlags>
type UdpFlags = Command.Command.Config.Infer<typeof udpFlags>

const udpLayer = (flags: ServerFlags & UdpFlags) =>
  UdpServer.layer({
    host: Option.getOrUndefined(flags.host),
    port: flags.port,
    maxDatagramBytes: flags.maxDatagramBytes,
    receiveBufferBytes: flags.receiveBufferBytes === 0 ? undefined : flags.receiveBufferBytes,
    rateLimit: flags.rateLimit === 0 ? undefined : UdpServer.rateLimitOf(flags.rateLimit),
    traceDatagrams: flags.traceDatagrams,
  })

// One of --tls-cert and --tls-key without the other is a usage error, named as the user wrote it.
const serverTls = (flags: TcpFlags): Effect.Effect<TlsOptions.ServerTls | undefined, CapsError.InvalidOption> =>
  Option.match(Option.all([flags.tlsCert, flags.tlsKey]), {
    onSome: ([cert, key]) => Effect.succeed({ cert, key }),
    onNone: () =>
      Option.isNone(flags.tlsCert) && Option.isNone(flags.tlsKey) ? Effect.succeed(undefined) : Effect.fail(
        new CapsError.InvalidOption({
          option: Option.isNone(flags.tlsKey) ? "--tls-key" : "--tls-cert",
          detail: "--tls-cert and --tls-key go together (env CAPS_TLS_CERT and CAPS_TLS_KEY)",
        }),
      ),
  })

const tcpLayer = (flags: ServerFlags & TcpFlags) =>
  Layer.unwrap(Effect.map(serverTls(flags), (tls) =>
    TcpServer.layer({
      host: Option.getOrUndefined(flags.host),
      port: flags.port,
      maxLineBytes: flags.maxLineBytes,
      maxConnections: Option.getOrUndefined(flags.maxConnections),
      idleTimeout: seconds(flags.idleTimeout),
      drainTimeout: seconds(flags.drainTimeout),
      tls,
    })))

const timeout = (fallback: number) => secondsFlag("timeout", "seconds to wait for a reply", fallback)

const attempts = intFlag("attempts", "how many times a sentence is sent before giving up", 3)

const message = Flag.String("message").pipe(
  Flag.withAlias("m"),
  Flag.withDescription("send this one sentence, print the reply and exit"),
  Flag.optional,
)

/** Set by a server once it serves: stopping a serving server by a signal is its normal end. */
export const shutdown = { byInterruptIsSuccess: false }

const ready = (
  program: string,
  address: Endpoint.Endpoint,
  flags: ServerFlags,
  certificate?: TlsOptions.CertificateInfo | undefined,
) =>
  Console.log(
    `caps ${program}: ready on ${Endpoint.format(address)} (${
      ListenAddress.describe(address.host, Option.getOrUndefined(flags.host))
    }), transform ${flags.transform.name}${
      certificate === undefined ? "" : `, TLS with ${TlsOptions.describeCertificate(certificate)}`
    }`,
  )

// A TLS server reloads its certificate on SIGHUP, logging one line; without TLS, SIGHUP keeps its default.
const readyTcp = (server: TcpServer.TcpServer["Service"], flags: ServerFlags) =>
  Effect.gen(function* () {
    const certificate = yield* server.tlsCertificate
    yield* ready("tcp-server", server.address, flags, certificate)
    if (certificate !== undefined) yield* Tls.reloadOnHangup(server.reloadTls)
  })

/** Whether the servers serve, for `/readyz` (MetricsEndpoint.ts). */
interface Readiness {
  ready: boolean
}

// Serves until interrupted; `/readyz` says ready from now until the drain begins (this scope closes before the
// servers' scopes, whose finalizers drain).
const serveForever = (readiness: Readiness) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      shutdown.byInterruptIsSuccess = true
      readiness.ready = true
    }),
    () =>
      Effect.sync(() => {
        readiness.ready = false
      }),
  ).pipe(Effect.andThen(Effect.never), Effect.scoped)

/**
 * Runs a server command; with --metrics-port, the operators' endpoint (MetricsEndpoint.ts) listens before the
 * servers bind and closes after their drain.
 */
const withOperatorsEndpoint = <A, E, R>(
  program: string,
  flags: ServerFlags,
  serving: (readiness: Readiness) => Effect.Effect<A, E, R>,
) =>
  Option.match(flags.metricsPort, {
    onNone: () => serving({ ready: false }),
    onSome: (port) =>
      Effect.gen(function* () {
        const readiness: Readiness = { ready: false }
        const address = yield* MetricsEndpoint.serve({ host: flags.metricsHost, port, ready: () => readiness.ready })
        yield* Console.log(
          `caps ${program}: metrics on http://${Endpoint.formatHostPort(address.host, address.port)}/metrics`,
        )
        return yield* serving(readiness)
      }).pipe(Effect.scoped),
  })

const udpServer = Command.make(
  "udp-server",
  { ...serverFlags, ...udpFlags },
  (flags) =>
    withOperatorsEndpoint("udp-server", flags, (readiness) =>
      Effect.gen(function* () {
        const server = yield* UdpServer.UdpServer
        yield* ready("udp-server", server.address, flags)
        return yield* serveForever(readiness)
      }).pipe(Effect.provide(udpLayer(flags).pipe(Layer.provide(Transform.layer(flags.transform)))))),
).pipe(Command.withDescription("UDP server: answers each datagram with the transformed sentence"))

const tcpServer = Command.make(
  "tcp-server",
  { ...serverFlags, ...tcpFlags },
  (flags) =>
    withOperatorsEndpoint("tcp-server", flags, (readiness) =>
      Effect.gen(function* () {
        const server = yield* TcpServer.TcpServer
        yield* readyTcp(server, flags)
        return yield* serveForever(readiness)
      }).pipe(
        Effect.scoped,
        Effect.provide(tcpLayer(flags).pipe(Layer.provide(Transform.layer(flags.transform)))),
      )),
).pipe(Command.withDescription("TCP server: serves many connections at once, answering the transformed stream"))

const serve = Command.make(
  "serve",
  { ...serverFlags, ...udpFlags, ...tcpFlags },
  (flags) =>
    // The TLS files are checked before anything binds, so that a bad one leaves nothing bound.
    Effect.andThen(
      Effect.flatMap(serverTls(flags), (tls) => tls === undefined ? Effect.void : Tls.loadServer(tls)),
      withOperatorsEndpoint("serve", flags, (readiness) =>
        Effect.gen(function* () {
          const udp = yield* UdpServer.UdpServer
          const tcp = yield* TcpServer.TcpServer
          yield* ready("udp-server", udp.address, flags)
          yield* readyTcp(tcp, flags)
          return yield* serveForever(readiness)
        }).pipe(
          Effect.scoped,
          // With port 0 each server takes whatever port it gets; otherwise both use the same number.
          Effect.provide(
            Layer.mergeAll(udpLayer(flags), tcpLayer(flags)).pipe(Layer.provide(Transform.layer(flags.transform))),
          ),
        )),
    ),
).pipe(Command.withDescription("both servers, UDP and TCP, on the same port number"))

const converse = <E>(
  request: (sentence: string) => Effect.Effect<string, E>,
  sentence: Option.Option<string>,
  replyPrefix: string,
) =>
  Option.match(sentence, {
    onNone: () => ClientSession.run(request, { replyPrefix, logFailures: LogFlags.current.format !== "text" }),
    onSome: (sentence) => request(sentence).pipe(Effect.flatMap((reply) => Console.log(reply))),
  })

const udpClient = Command.make(
  "udp-client",
  { host: clientHost, port: port(ClientPort), timeout: timeout(1), attempts, message },
  (flags) =>
    Effect.gen(function* () {
      const client = yield* UdpClient.UdpClient
      yield* converse(client.request, flags.message, "")
    }).pipe(
      Effect.provide(UdpClient.layer({
        host: flags.host,
        port: flags.port,
        attemptTimeout: seconds(flags.timeout),
        attempts: flags.attempts,
      })),
    ),
).pipe(Command.withDescription("UDP client: sends each sentence as a datagram, resending if no reply comes"))

const tcpClient = Command.make(
  "tcp-client",
  { host: clientHost, port: port(ClientPort), timeout: timeout(5), message, ...tlsClientFlags },
  (flags) =>
    Effect.gen(function* () {
      const client = yield* TcpClient.TcpClient
      yield* converse(client.request, flags.message, "From Server: ")
    }).pipe(
      Effect.provide(TcpClient.layer({
        host: flags.host,
        port: flags.port,
        connectTimeout: seconds(flags.timeout),
        replyTimeout: seconds(flags.timeout),
        tls: clientTls(flags),
      })),
    ),
).pipe(Command.withDescription("TCP client: sends each sentence as a line over one connection"))

const ping = Command.make(
  "ping",
  {
    host: clientHost,
    port: port(ClientPort),
    count: intFlag("count", "how many pings", 10),
    interval: secondsFlag("interval", "seconds from one ping to the next", 1),
    timeout: timeout(1),
  },
  (flags) =>
    Effect.gen(function* () {
      const server = Endpoint.make(flags.host, flags.port, "udp")
      yield* Console.log(
        `PING ${Endpoint.format(server)}: ${flags.count} datagrams, ${flags.interval} s apart, ` +
          `each waiting ${flags.timeout} s for its reply`,
      )
      const summary = yield* Pinger.run(
        {
          host: flags.host,
          port: flags.port,
          count: flags.count,
          interval: seconds(flags.interval),
          timeout: seconds(flags.timeout),
        },
        (result) => Console.log(Pinger.formatResult(server, result)),
      )
      yield* Console.log(["", ...Pinger.formatSummary(summary)].join("\n"))
      if (summary.received === 0) {
        return yield* new Pinger.NoReply({ transmitted: summary.transmitted, last: summary.lastError })
      }
    }),
).pipe(Command.withDescription("the book's UDP pinger: Ping <seq> <time> datagrams, their round-trip times, a summary"))

const Rate = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const rateFlag = (name: string, description: string) =>
  Flag.Finite(name).pipe(
    Flag.withDescription(`${description}, 0 to 1; default 0 (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Finite(envVarOf(name))),
    Flag.withDefault(0),
    Flag.withSchema(Rate),
  )

const bytesFlag = (name: string, description: string, schema = PositiveInt) =>
  Flag.Int(name).pipe(
    Flag.withDescription(`${description}; off if not given (env ${envVarOf(name)})`),
    Flag.withFallbackConfig(Config.Int(envVarOf(name))),
    Flag.withSchema(schema),
    Flag.optional,
  )

/** Flags of the proxy: where it listens, where it relays, and the faults. */
const proxyFlags = {
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

const proxy = Command.make(
  "proxy",
  proxyFlags,
  (flags) =>
    Effect.gen(function* () {
      const proxy = yield* FaultProxy.FaultProxy
      yield* Console.log(
        `caps proxy: ready on ${Endpoint.formatHostPort(proxy.address.host, proxy.address.port)}/udp+tcp -> ` +
          `${Endpoint.formatHostPort(proxy.target.host, proxy.target.port)}, faults: ${proxy.faults}`,
      )
      return yield* serveForever({ ready: false })
    }).pipe(
      Effect.provide(FaultProxy.layer({
        target: flags.target,
        host: Option.getOrUndefined(flags.host),
        port: flags.port,
        direction: flags.direction,
        seed: flags.seed,
        drop: flags.drop,
        duplicate: flags.duplicate,
        reorder: flags.reorder,
        delay: Duration.millis(flags.delay),
        jitter: Duration.millis(flags.jitter),
        blackhole: flags.blackhole,
        slice: Option.getOrUndefined(flags.slice),
        resetAfter: Option.getOrUndefined(flags.resetAfter),
        closeAfter: Option.getOrUndefined(flags.closeAfter),
        bandwidth: Option.getOrUndefined(flags.bandwidth),
        idleTimeout: seconds(flags.idleTimeout),
      })),
    ),
).pipe(Command.withDescription("a UDP and TCP relay to --target that injects faults, seeded (see docs/PROXY.md)"))

const check = Command.make(
  "check",
  {
    host: clientHost,
    port: port(ClientPort),
    timeout: secondsFlag("timeout", "seconds each check may take", Duration.toSeconds(Health.DEFAULT_TIMEOUT)),
    expect: Flag.String("expect").pipe(
      Flag.withDescription(
        `the reply to "${Health.PROBE}" that counts as healthy; default "${Health.DEFAULT_EXPECT}" (env ${
          envVarOf("expect")
        })`,
      ),
      Flag.withFallbackConfig(Config.String(envVarOf("expect"))),
      Flag.optional,
    ),
    ...tlsClientFlags,
  },
  (flags) =>
    Effect.gen(function* () {
      const report = yield* Health.check({
        host: flags.host,
        port: flags.port,
        timeout: seconds(flags.timeout),
        expect: Option.getOrUndefined(flags.expect),
        tls: clientTls(flags),
      })
      yield* Console.log(Health.format(report.tcp))
      yield* Console.log(Health.format(report.udp))
      if (!report.healthy) return yield* new Health.Unhealthy({ detail: Health.whatFailed(report) })
    }).pipe(
      // A check that cannot run (an unreadable CA file) is unhealthy too: never an exit code Docker reserves.
      Effect.catchTags({
        InvalidOption: (error) => Effect.fail(new Health.Unhealthy({ detail: error.message })),
        TlsFileError: (error) => Effect.fail(new Health.Unhealthy({ detail: error.message })),
      }),
    ),
).pipe(
  Command.withDescription(
    `health check: "${Health.PROBE}" over TCP and over UDP; exit 0 if both answer as expected in time, else 1`,
  ),
)

/** The `caps` command with its subcommands. */
export const caps = Command.make("caps").pipe(
  Command.withDescription("capitalisation servers and clients over UDP and TCP, after the textbook's four programs"),
  Command.withSubcommands([udpServer, tcpServer, serve, udpClient, tcpClient, ping, proxy, check]),
  Command.provide(() => LogFlags.layer),
  Command.withGlobalFlags([LogFlags.logFormat]),
)

/** Runs `caps` on the process's arguments. */
export const run = Command.run(caps, { version: VERSION })
