/**
 * Is a caps server up and answering? `check` sends one probe sentence over
 * TCP and one over UDP, both at once, each within the timeout, and says of
 * each whether it was answered correctly: what `caps check` prints for a
 * container's health check (Docker's HEALTHCHECK, a Kubernetes exec probe),
 * and what an embedder can run as its own readiness check.
 *
 * Correct means the reply is exactly `expect`: by default the probe
 * upper-cased, as a server with the default transform answers it. Checking
 * only that some reply came would pass a server whose transform is broken; a
 * server with another transform is checked with the reply it gives
 * (`count:s` answers the probe with `1`). Each side is one request on a fresh
 * client: TCP over TLS when asked (the certificate checked as `TcpClient`
 * does), UDP in plaintext, with its usual resends inside the timeout.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as Options from "./Options.ts"
import * as Protocol from "./Protocol.ts"
import * as TcpClient from "./TcpClient.ts"
import type * as TlsOptions from "./TlsOptions.ts"
import * as UdpClient from "./UdpClient.ts"

/** The sentence sent to each server. */
export const PROBE = "caps health check"

/** What a server with the default transform answers: the probe upper-cased. */
export const DEFAULT_EXPECT = PROBE.toUpperCase()

export const DEFAULT_TIMEOUT = Duration.seconds(3)

/** What to check; every field has a default. */
export interface HealthOptions {
  /** The servers' host; `localhost` by default. */
  readonly host?: string | undefined
  /** The port of both servers, as `caps serve` binds them; 12000 by default. */
  readonly port?: number | undefined
  /** The TCP server's port, if not `port`. */
  readonly tcpPort?: number | undefined
  /** The UDP server's port, if not `port`. */
  readonly udpPort?: number | undefined
  /** TCP over TLS, as `TcpClient`'s option. */
  readonly tls?: boolean | TlsOptions.ClientTls | undefined
  /** How long each check may take, 3 seconds by default (UDP: three attempts of a third of it). */
  readonly timeout?: Duration.Input | undefined
  /** The reply that counts as correct; `DEFAULT_EXPECT` by default. */
  readonly expect?: string | undefined
}

const OptionsSchema = Schema.Struct({
  host: Schema.optional(Options.Host),
  port: Schema.optional(Options.ClientPort),
  tcpPort: Schema.optional(Options.ClientPort),
  udpPort: Schema.optional(Options.ClientPort),
  timeout: Schema.optional(Options.PositiveDuration()),
  expect: Schema.optional(Schema.String),
})

const decodeOptions = Options.decode(OptionsSchema, "Health")

/** A server answered the probe, but not with the expected reply. */
export class WrongReply extends Schema.TaggedError<WrongReply>()("WrongReply", {
  endpoint: Schema.Struct({ host: Schema.String, port: Schema.Number, transport: Schema.Literals(["udp", "tcp"]) }),
  expected: Schema.String,
  got: Schema.String,
}) {
  override get message(): string {
    return `${Endpoint.format(this.endpoint)} answered ${JSON.stringify(this.got)}, expected ${
      JSON.stringify(this.expected)
    }`
  }
}

/** How one transport's check went. */
export type Probe =
  | {
    readonly ok: true
    readonly endpoint: Endpoint.Endpoint
    readonly tls: boolean
    readonly reply: string
    readonly millis: number
  }
  | {
    readonly ok: false
    readonly endpoint: Endpoint.Endpoint
    readonly tls: boolean
    readonly error: TcpClient.TcpClientError | UdpClient.UdpClientError | WrongReply
    readonly millis: number
  }

/** Both checks; `healthy` when both passed. */
export interface Report {
  readonly healthy: boolean
  readonly tcp: Probe
  readonly udp: Probe
}

/** One line for a check: `tcp ok: 127.0.0.1:12000/tcp answered "CAPS HEALTH CHECK" in 2 ms`, or what failed. */
export const format = (probe: Probe): string => {
  const transport = probe.endpoint.transport
  return probe.ok
    ? `${transport} ok: ${Endpoint.format(probe.endpoint)}${probe.tls ? " (TLS)" : ""} answered ${
      JSON.stringify(probe.reply)
    } in ${probe.millis} ms`
    : `${transport} failed: ${probe.error.message}`
}

/** A check that did not pass, for the CLI: exit code 1 (`ExitCode.UNHEALTHY`). */
export class Unhealthy extends Schema.TaggedError<Unhealthy>()("Unhealthy", {
  detail: Schema.String,
}) {
  override get message(): string {
    return `unhealthy: ${this.detail}`
  }
}

/** Why a report is not healthy, in a few words: `the udp check failed`. */
export const whatFailed = (report: Report): string => {
  const failed = [report.tcp, report.udp].filter((probe) => !probe.ok).map((probe) => probe.endpoint.transport)
  return failed.length === 0
    ? "nothing failed"
    : `the ${failed.join(" and ")} check${failed.length > 1 ? "s" : ""} failed`
}

/** Checks both servers at once; fails only for bad options (and an unreadable CA file), never for a failed check. */
export const check: (
  options?: HealthOptions,
) => Effect.Effect<Report, CapsError.InvalidOption | CapsError.TlsFileError> = Effect.fn("Health.check")(function* (
  options: HealthOptions = {},
) {
  yield* decodeOptions(options)
  const host = options.host ?? "localhost"
  const port = options.port ?? Protocol.DEFAULT_PORT
  const timeout = Options.duration(options.timeout, DEFAULT_TIMEOUT)
  const expected = options.expect ?? DEFAULT_EXPECT
  const tls = options.tls !== undefined && options.tls !== false
  const tcp = yield* TcpClient.make({
    host,
    port: options.tcpPort ?? port,
    connectTimeout: timeout,
    replyTimeout: timeout,
    tls: options.tls,
  })
  const udp = yield* UdpClient.make({
    host,
    port: options.udpPort ?? port,
    attemptTimeout: Duration.millis(Math.max(1, Math.round(Duration.toMillis(timeout) / 3))),
    attempts: 3,
  })

  const probe = <E extends TcpClient.TcpClientError | UdpClient.UdpClientError>(
    endpoint: Endpoint.Endpoint,
    viaTls: boolean,
    request: Effect.Effect<string, E>,
  ): Effect.Effect<Probe> =>
    Effect.gen(function* () {
      const started = yield* Clock.currentTimeMillis
      const outcome = yield* Effect.result(request.pipe(
        // Connecting and the reply each have the timeout: together they have it too.
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new CapsError.Timeout({ endpoint, attempts: 1, attemptMillis: Math.round(Duration.toMillis(timeout)) }),
            ),
        }),
      ))
      const millis = (yield* Clock.currentTimeMillis) - started
      if (outcome._tag === "Failure") return { ok: false, endpoint, tls: viaTls, error: outcome.failure, millis }
      if (outcome.success !== expected) {
        const error = new WrongReply({ endpoint, expected, got: outcome.success })
        return { ok: false, endpoint, tls: viaTls, error, millis }
      }
      return { ok: true, endpoint, tls: viaTls, reply: outcome.success, millis }
    })

  const [tcpProbe, udpProbe] = yield* Effect.all([
    probe(tcp.server, tls, tcp.request(PROBE)),
    probe(udp.server, false, udp.request(PROBE)),
  ], { concurrency: 2 })
  return { healthy: tcpProbe.ok && udpProbe.ok, tcp: tcpProbe, udp: udpProbe }
}, Effect.scoped)
