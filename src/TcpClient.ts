/**
 * The textbook's TCPClient.py, rebuilt as a service: `request(sentence)`
 * sends one `\n`-terminated line and reads the reply up to its `\n`.
 *
 * One connection carries many sentences and is opened on first use. One read
 * is never taken as a whole reply: bytes are framed until the newline, and
 * end of stream also ends a reply (the textbook server answers once, without
 * waiting for more, and closes). A reused connection that turns out to have
 * been closed by the server before the request is reopened once, so the
 * textbook server (one sentence per connection) serves a whole session.
 * Any failure or timeout discards the connection, so a late reply can never
 * be read as the answer to the next sentence.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type * as Socket from "effect/socket/Socket"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import { LineFramer } from "./LineFramer.ts"
import * as Resolver from "./Resolver.ts"

/** How to reach the server; every field has a default. */
export interface TcpClientOptions {
  /** Server host name or address; `localhost` by default. */
  readonly host?: string | undefined
  /** Server port; 12000 by default. */
  readonly port?: number | undefined
  /** How long connecting may take; 5 seconds by default. */
  readonly connectTimeout?: Duration.Input | undefined
  /** How long a reply may take once the sentence is sent; 5 seconds by default. */
  readonly replyTimeout?: Duration.Input | undefined
  /** Longest reply accepted, in bytes; 16 MiB by default. */
  readonly maxReplyBytes?: number | undefined
}

/** Everything a TCP request can fail with. */
export type TcpClientError =
  | CapsError.NameNotResolved
  | CapsError.ConnectionRefused
  | CapsError.Unreachable
  | CapsError.PermissionDenied
  | CapsError.Timeout
  | CapsError.ConnectionClosed
  | CapsError.MessageTooLarge
  | CapsError.MalformedInput
  | CapsError.NetworkError

/** A client of a caps (or textbook) TCP server. */
export class TcpClient extends Context.Service<TcpClient, {
  /** The server, as given. */
  readonly server: Endpoint.Endpoint
  /** Sends one sentence and returns the server's reply to it. */
  readonly request: (sentence: string) => Effect.Effect<string, TcpClientError>
}>()("caps/TcpClient") {}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

interface OpenConnection {
  readonly scope: Scope.Closeable
  readonly reader: Socket.Reader
  readonly writer: Socket.Writer
  readonly framer: LineFramer
}

/** Builds the client; the connection it holds is closed with the current scope. */
export const make = (options: TcpClientOptions = {}): Effect.Effect<TcpClient["Service"], never, Scope.Scope> =>
  Effect.gen(function* () {
    const server = Endpoint.make(options.host ?? "localhost", options.port ?? 12000, "tcp")
    const connectTimeout = Duration.fromInputUnsafe(options.connectTimeout ?? Duration.seconds(5))
    const replyTimeout = Duration.fromInputUnsafe(options.replyTimeout ?? Duration.seconds(5))
    const maxReplyBytes = options.maxReplyBytes ?? 16 * 1024 * 1024
    const lock = yield* Semaphore.make(1)
    let current: OpenConnection | undefined

    const discard = Effect.suspend(() => {
      const connection = current
      current = undefined
      return connection === undefined ? Effect.void : Scope.close(connection.scope, Exit.void)
    })
    yield* Effect.addFinalizer(() => discard)

    const connectFailure = (error: Socket.SocketError) => {
      const reason = error.reason
      if (reason._tag === "SocketOpenError" && reason.kind === "Timeout") {
        return new CapsError.Timeout({
          endpoint: server,
          attempts: 1,
          attemptMillis: Math.round(Duration.toMillis(connectTimeout)),
        })
      }
      return CapsError.fromConnectFailure(CapsError.socketCause(error), server)
    }

    const open = Effect.gen(function* () {
      const [resolved] = yield* Resolver.resolve(server.host)
      const scope = yield* Scope.make()
      const socket = yield* NodeSocket.makeNet({
        host: resolved.address,
        port: server.port,
        noDelay: true,
        openTimeout: connectTimeout,
      })
      const opened = yield* Effect.all([socket.reader, socket.writer]).pipe(
        Scope.provide(scope),
        Effect.mapError(connectFailure),
        Effect.onError(() => Scope.close(scope, Exit.void)),
      )
      const connection: OpenConnection = {
        scope,
        reader: opened[0],
        writer: opened[1],
        framer: new LineFramer(maxReplyBytes),
      }
      current = connection
      return connection
    })

    // Reads up to the reply's newline, or to end of stream.
    const readReply = (connection: OpenConnection): Effect.Effect<Uint8Array, TcpClientError> =>
      Effect.gen(function* () {
        while (true) {
          const chunks = yield* connection.reader.pull.pipe(
            Effect.catch((error) => {
              const reason = error.reason
              if (reason._tag === "SocketCloseError" && reason.code === 1000) return Effect.succeed(undefined)
              return Effect.fail(CapsError.fromConnectFailure(CapsError.socketCause(error), server, "receive"))
            }),
          )
          if (chunks === undefined) {
            const rest = connection.framer.end()
            if (rest !== undefined) return rest
            return yield* new CapsError.ConnectionClosed({ endpoint: server, kind: "Closed" })
          }
          for (const chunk of chunks) {
            const framed = connection.framer.push(typeof chunk === "string" ? encoder.encode(chunk) : chunk)
            if (framed._tag === "TooLong") {
              return yield* new CapsError.MessageTooLarge({ transport: "tcp", size: framed.size, limit: maxReplyBytes })
            }
            if (framed.lines.length > 0) return framed.lines[0]
          }
        }
      })

    const exchange = (connection: OpenConnection, line: Uint8Array) =>
      connection.writer.write(line).pipe(
        Effect.mapError((error) => CapsError.fromConnectFailure(CapsError.socketCause(error), server, "send")),
        Effect.andThen(readReply(connection)),
        Effect.timeoutOrElse({
          duration: replyTimeout,
          orElse: () =>
            Effect.fail(
              new CapsError.Timeout({
                endpoint: server,
                attempts: 1,
                attemptMillis: Math.round(Duration.toMillis(replyTimeout)),
              }),
            ),
        }),
      )

    const request = (sentence: string): Effect.Effect<string, TcpClientError> =>
      Effect.gen(function* () {
        if (sentence.includes("\n")) {
          return yield* new CapsError.MalformedInput({
            detail: "a sentence sent over TCP cannot contain a line break (it would be two sentences)",
          })
        }
        const line = encoder.encode(sentence + "\n")
        const reused = current
        const reply = reused !== undefined
          ? yield* exchange(reused, line).pipe(
            // The server may have closed an idle connection (the textbook one always does): reopen once.
            Effect.catchTag(
              "ConnectionClosed",
              () => discard.pipe(Effect.andThen(open), Effect.flatMap((connection) => exchange(connection, line))),
            ),
          )
          : yield* open.pipe(Effect.flatMap((connection) => exchange(connection, line)))
        return decoder.decode(reply)
      }).pipe(
        Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : discard),
        lock.withPermit,
      )

    return TcpClient.of({ server, request })
  })

/** Provides a client whose connection lives as long as the layer. */
export const layer = (options: TcpClientOptions = {}): Layer.Layer<TcpClient> => Layer.effect(TcpClient, make(options))
