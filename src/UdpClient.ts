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
 */
import * as NodeDatagramSocket from "@effect/platform-node/NodeDatagramSocket"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as DatagramSocket from "effect/socket/DatagramSocket"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as Resolver from "./Resolver.ts"
import { MAX_UDP_PAYLOAD } from "./UdpServer.ts"

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
  /** Longest sentence sent, in UTF-8 bytes; 65,507 (the IPv4 maximum) by default. */
  readonly maxDatagramBytes?: number | undefined
}

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
) => {
  const reason = error.reason
  if (
    (reason._tag === "DatagramSocketReadError" || reason._tag === "DatagramSocketWriteError") &&
    reason.kind === "ConnectionRefused"
  ) return new CapsError.ConnectionRefused({ endpoint: server })
  return CapsError.fromConnectFailure(CapsError.socketCause(error), server, operation)
}

const narrow = (error: CapsError.ConnectError): UdpClientError =>
  error._tag === "ConnectionClosed" ? new CapsError.ConnectionRefused({ endpoint: error.endpoint }) : error

/** Builds the client; it opens nothing until a request is made. */
export const make = (options: UdpClientOptions = {}): UdpClient["Service"] => {
  const server = Endpoint.make(options.host ?? "localhost", options.port ?? 12000, "udp")
  const attemptTimeout = Duration.fromInputUnsafe(options.attemptTimeout ?? Duration.seconds(1))
  const attempts = Math.max(1, options.attempts ?? 3)
  const maxBytes = Math.min(options.maxDatagramBytes ?? MAX_UDP_PAYLOAD, MAX_UDP_PAYLOAD)

  const request = (sentence: string): Effect.Effect<string, UdpClientError> =>
    Effect.gen(function* () {
      const payload = encoder.encode(sentence)
      if (payload.length > maxBytes) {
        return yield* new CapsError.MessageTooLarge({ transport: "udp", size: payload.length, limit: maxBytes })
      }
      const [resolved] = yield* Resolver.resolve(server.host)
      // ICMP errors on a connected socket arrive as socket events, not as a failed read.
      const failed = yield* Deferred.make<never, UdpClientError>()
      const socket = yield* NodeDatagramSocket.make({
        connect: { address: resolved.address, port: server.port },
        onError: (error) => Deferred.doneUnsafe(failed, Exit.fail(narrow(ioError(error, server, "receive")))),
      })
      const reader = yield* socket.reader.pipe(
        Effect.mapError((error) => narrow(ioError(error, server, "send"))),
      )
      const writer = yield* socket.writer
      const attempt = writer.write({ payload }).pipe(
        Effect.mapError((error) => narrow(ioError(error, server, "send"))),
        Effect.andThen(reader.pull.pipe(Effect.mapError((error) => narrow(ioError(error, server, "receive"))))),
        Effect.raceFirst(Deferred.await(failed)),
        Effect.timeoutOrElse({
          duration: attemptTimeout,
          orElse: () => Effect.fail(new AttemptTimedOut()),
        }),
      )
      const datagrams = yield* attempt.pipe(
        Effect.retry({
          schedule: Schedule.recurs(attempts - 1),
          while: (error) => error._tag === "AttemptTimedOut",
        }),
        Effect.catchTag("AttemptTimedOut", () =>
          Effect.fail(
            new CapsError.Timeout({
              endpoint: server,
              attempts,
              attemptMillis: Math.round(Duration.toMillis(attemptTimeout)),
            }),
          )),
      )
      return decoder.decode(datagrams[0].payload)
    }).pipe(Effect.scoped)

  return UdpClient.of({ server, request })
}

/** Provides a client. */
export const layer = (options: UdpClientOptions = {}): Layer.Layer<UdpClient> =>
  Layer.sync(UdpClient, () => make(options))
