/**
 * The caps command line: the textbook's four programs as subcommands
 * (`udp-server`, `tcp-server`, `udp-client`, `tcp-client`) plus `serve`, both
 * servers on one port number, `ping`, `proxy` and `check`. Every flag has an
 * environment variable (`CAPS_PORT`, ...) read through Effect `Config`; a
 * flag given wins. The flags are in `CliFlags.ts`.
 *
 * This module only wires the library's layers together from the flags; what
 * the programs do lives in the modules named after them.
 */
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as ClientSession from "./ClientSession.ts"
import {
  attempts,
  clientHost,
  ClientPort,
  envVarOf,
  intFlag,
  message,
  port,
  proxyFlags,
  secondsFlag,
  type ServerFlags,
  serverFlags,
  type TcpFlags,
  tcpFlags,
  timeout,
  type TlsClientFlags,
  tlsClientFlags,
  type UdpFlags,
  udpFlags,
} from "./CliFlags.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as FaultProxy from "./FaultProxy.ts"
import * as Health from "./Health.ts"
import * as ListenAddress from "./ListenAddress.ts"
import * as LogFlags from "./LogFlags.ts"
import * as MetricsEndpoint from "./MetricsEndpoint.ts"
import * as Options from "./Options.ts"
import * as Pinger from "./Pinger.ts"
import * as Runtime from "./Runtime.ts"
import * as TcpClient from "./TcpClient.ts"
import * as TcpServer from "./TcpServer.ts"
import * as Tls from "./Tls.ts"
import * as TlsOptions from "./TlsOptions.ts"
import * as Transform from "./Transform.ts"
import * as UdpClient from "./UdpClient.ts"
import * as UdpServer from "./UdpServer.ts"

/** The version printed by `--version`. */
export const VERSION = Runtime.VERSION

const clientTls = (flags: TlsClientFlags) => TlsOptions.clientTlsOf(flags.tls, flags.ca, flags.servername)

const seconds = Options.seconds

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
        // Its sentences go to servers that capitalise or count (caps's or the book's): sending one twice is harmless.
        idempotent: true,
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
