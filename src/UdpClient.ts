/**
 * The textbook's UDPClient.py, rebuilt as a service: `request(sentence)`
 * sends one datagram and waits for the one that answers it.
 *
 * What the textbook leaves to luck is handled here: each attempt waits a
 * bounded time (1 s by default), lost datagrams are resent (3 attempts by
 * default, on a `Schedule`), an ICMP port-unreachable fails at once, and every
 * request uses a fresh socket connected to the server, so only the server can
 * answer it and a late reply to an earlier request can never be taken for
 * the answer to a later one: it arrives at a socket that is already closed.
 *
 * A host name's addresses are tried in order (IPv4 first), the next one when
 * ICMP says nothing listens at this one, so `localhost` reaches a server that
 * binds `::1` only. Deno's `node:dgram` reports no ICMP errors: there only
 * the first address is ever tried, and a closed port ends in `Timeout`.
 */
import * as NodeDatagramSocket from "@effect/platform-node/NodeDatagramSocket"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as DatagramSocket from "effect/socket/DatagramSocket"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as Options from "./Options.ts"
import * as Protocol from "./Protocol.ts"
import * as Resolver from "./Resolver.ts"
import * as SpanAttributes from "./SpanAttributes.ts"

/** How to reach the server; every field has a default. */
export interface UdpClientOptions {
  /** Server host name or address; `localhost` by default. */
  readonly host?: string | undefined
  /** Server port; 12000 by default. */
  readonly port?: number | undefined
  /** How long one attempt waits for the reply; 1 second by default. */
  readonly attemptTimeout?: Duration.Input | undefined
  /** How many times a sentence is sent before giving up; 3 by default. */
  readonly attempts?: number | undefined
  /** Longest sentence sent, in UTF-8 bytes, at most 65,507 (the IPv4 maximum, and the default). */
  readonly maxDatagramBytes?: number | undefined
}

const OptionsSchema = Schema.Struct({
  host: Schema.optional(Options.Host),
  port: Schema.optional(Options.ClientPort),
  attemptTimeout: Schema.optional(Options.PositiveDuration()),
  attempts: Schema.optional(Options.PositiveInt),
  maxDatagramBytes: Schema.optional(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: Protocol.MAX_UDP_PAYLOAD })),
  ),
})

const decodeOptions = Options.decode(OptionsSchema, "UdpClient")

// `CAPS_TIMEOUT`, as the CLI's `--timeout`: seconds, fractions allowed.
const Seconds = Schema.Finite.check(Schema.isGreaterThan(0))

export const DEFAULT_ATTEMPT_TIMEOUT = Duration.seconds(1)
export const DEFAULT_ATTEMPTS = 3

/**
 * The client's settings as the CLI reads them: `CAPS_HOST` (localhost), `CAPS_PORT` (12000),
 * `CAPS_TIMEOUT` in seconds per attempt (1) and `CAPS_ATTEMPTS` (3).
 */
export const config: Config.Config<UdpClientOptions> = Config.all({
  host: Config.schema(Options.Host, "CAPS_HOST").pipe(Config.withDefault("localhost")),
  port: Config.schema(Options.ClientPort, "CAPS_PORT").pipe(Config.withDefault(Protocol.DEFAULT_PORT)),
  timeout: Config.schema(Seconds, "CAPS_TIMEOUT").pipe(
    Config.withDefault(Duration.toSeconds(DEFAULT_ATTEMPT_TIMEOUT)),
  ),
  attempts: Config.schema(Options.PositiveInt, "CAPS_ATTEMPTS").pipe(Config.withDefault(DEFAULT_ATTEMPTS)),
}).pipe(Config.map(({ attempts, host, port, timeout }) => ({
  host,
  port,
  attemptTimeout: Duration.seconds(timeout),
  attempts,
})))

/** Everything a UDP request can fail with. */
export type UdpClientError =
  | CapsError.NameNotResolved
  | CapsError.ConnectionRefused
  | CapsError.Unreachable
  | CapsError.PermissionDenied
  | CapsError.Timeout
  | CapsError.MessageTooLarge
  | CapsError.NetworkError

/** A client of a caps (or textbook) UDP server. */
export class UdpClient extends Context.Service<UdpClient, {
  /** The server, as given. */
  readonly server: Endpoint.Endpoint
  /** Sends one sentence and returns the server's reply to it. */
  readonly request: (sentence: string) => Effect.Effect<string, UdpClientError>
}>()("caps/UdpClient") {}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** Internal: one attempt saw no reply in time. */
class AttemptTimedOut {
  readonly _tag = "AttemptTimedOut"
}

const ioError = (
  error: DatagramSocket.DatagramSocketError,
  server: Endpoint.Endpoint,
  operation: "send" | "receive",
): UdpClientError => {
  const reason = error.reason
  if (
    (reason._tag === "DatagramSocketReadError" || reason._tag === "DatagramSocketWriteError") &&
    reason.kind === "ConnectionRefused"
  ) return new CapsError.ConnectionRefused({ endpoint: server })
  const mapped = CapsError.fromConnectFailure(CapsError.socketCause(error), server, operation)
  return mapped._tag === "ConnectionClosed" ? new CapsError.ConnectionRefused({ endpoint: server }) : mapped
}

/** Builds the client. It holds nothing between requests: each request opens and closes its own socket. */
export const make = Effect.fn("UdpClient.make")(function* (
  options: UdpClientOptions = {},
): Effect.fn.Return<UdpClient["Service"], CapsError.InvalidOption, Scope.Scope> {
  yield* decodeOptions(options)
  yield* Builtins.load("node:dgram")
  const server = Endpoint.make(options.host ?? "localhost", options.port ?? Protocol.DEFAULT_PORT, "udp")
  const attemptTimeout = Options.duration(options.attemptTimeout, DEFAULT_ATTEMPT_TIMEOUT)
  const attemptMillis = Math.round(Duration.toMillis(attemptTimeout))
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS
  const maxBytes = options.maxDatagramBytes ?? Protocol.MAX_UDP_PAYLOAD
  const resolver = yield* Resolver.Resolver

  // Up to `attempts` sends to one address, on one socket connected to it.
  const exchange = (address: string, payload: Uint8Array) =>
    Effect.gen(function* () {
      // ICMP errors on a connected socket arrive as socket events, not as a failed read.
      const failed = yield* Deferred.make<never, UdpClientError>()
      const socket = yield* NodeDatagramSocket.make({
        connect: { address, port: server.port },
        onError: (error) => Deferred.doneUnsafe(failed, Exit.fail(ioError(error, server, "receive"))),
      })
      const reader = yield* socket.reader.pipe(Effect.mapError((error) => ioError(error, server, "send")))
      const writer = yield* socket.writer
      let sent = 0
      const attempt = Effect.suspend(() =>
        SpanAttributes.event("attempt", { attempt: ++sent, "network.peer.address": address })
      ).pipe(
        Effect.andThen(writer.write({ payload })),
        Effect.mapError((error) => ioError(error, server, "send")),
        Effect.andThen(reader.pull.pipe(Effect.mapError((error) => ioError(error, server, "receive")))),
        Effect.raceFirst(Deferred.await(failed)),
        Effect.timeoutOrElse({ duration: attemptTimeout, orElse: () => Effect.fail(new AttemptTimedOut()) }),
      )
      const datagrams = yield* attempt.pipe(
        Effect.retry({ schedule: Schedule.recurs(attempts - 1), while: (error) => error._tag === "AttemptTimedOut" }),
        Effect.catchTag(
          "AttemptTimedOut",
          () => Effect.fail(new CapsError.Timeout({ endpoint: server, attempts, attemptMillis })),
        ),
        Effect.ensuring(
          Effect.suspend(() =>
            Effect.annotateCurrentSpan({ ...SpanAttributes.peer(address, server.port), "caps.attempts": sent })
          ),
        ),
      )
      return decoder.decode(datagrams[0].payload)
    }).pipe(Effect.scoped)

  const request = Effect.fn("UdpClient.request", { kind: "client", attributes: SpanAttributes.server(server) })(
    function* (
      sentence: string,
    ) {
      const payload = encoder.encode(sentence)
      if (payload.length > maxBytes) {
        return yield* new CapsError.MessageTooLarge({ transport: "udp", size: payload.length, limit: maxBytes })
      }
      const addresses = yield* resolver.resolve(server.host)
      // Each address in turn while ICMP says nothing listens; the first failure is the one reported.
      let first: UdpClientError | undefined
      for (const { address } of addresses) {
        const result = yield* Effect.result(exchange(address, payload))
        if (Result.isSuccess(result)) return result.success
        first ??= result.failure
        if (result.failure._tag !== "ConnectionRefused") break
      }
      return yield* Effect.fail(first!)
    },
  )

  return UdpClient.of({ server, request })
})

/** Provides a client. */
export const layer = (options: UdpClientOptions = {}): Layer.Layer<UdpClient, CapsError.InvalidOption> =>
  Layer.effect(UdpClient, make(options))

/** Provides a client configured as the CLI is, from `CAPS_*` settings (see `config`). */
export const layerConfig: Layer.Layer<UdpClient, CapsError.InvalidOption | Config.ConfigError> = Layer.effect(
  UdpClient,
  Effect.flatMap(config, make),
)
