/**
 * The textbook's TCPClient.py, rebuilt as a service: `request(sentence)`
 * sends one `\n`-terminated line and reads the reply up to its `\n`.
 *
 * One connection carries many sentences. It is opened on first use, to each
 * address of the host in turn (IPv4 first) until one accepts. The client owns
 * its `node:net` socket, reading it all the time as the servers do, instead
 * of `effect/socket`, whose reader reads only while a pull waits: a server
 * that closed an idle connection went unseen until the next reply timed out.
 * Here each event of the socket is seen when it happens:
 * - the server closes the connection (FIN or reset) while it is idle: the next
 *   sentence goes over a fresh connection, or is refused at once if nothing
 *   listens any more;
 * - bytes arrive while no sentence waits for a reply: the connection is
 *   poisoned and closed, the next request fails with `ProtocolViolation`
 *   without sending its sentence, and the one after uses a fresh connection;
 * - a reply is exactly one line, or what came before end of stream (the
 *   textbook server answers without newline and closes); bytes beyond the
 *   reply's newline in the same read fail that request with `ProtocolViolation`.
 *
 * Resending: a sentence is sent again, once, on a fresh connection, only if it
 * was written on a reused connection that the server then reset before a
 * single byte of its reply arrived. That reset is what the kernel answers to
 * bytes that reach a socket already closed: the server closed an idle
 * connection just as the sentence was written, and never read it (the case
 * Go's net/http transport retries). A clean end of stream instead may follow
 * a read (a caps server closes a connection whose transform failed after
 * reading the line, with a FIN), so it is resent only with `idempotent: true`,
 * which says the server may see a sentence twice (HTTP retries idempotent
 * requests alone for the same reason). The client cannot tell the two closes
 * apart: before writing on a reused connection it lets the event loop read
 * what has reached it, so a close already there is seen first, but a close
 * that comes during the few microseconds between that read and the write (the
 * textbook server closes right after its reply; a loaded machine delays it)
 * crosses the sentence, and only the server's kernel sees that it came too
 * early. Any other break after sending fails with `ConnectionClosed` and is
 * never resent; `resendUnanswered: false` turns every resend off. Any failure
 * or timeout discards the connection, so a late reply can never be read as
 * the answer to the next sentence.
 *
 * With `tls`, each connection is TLS, and its server's certificate is checked
 * (trusted, valid now, issued for the host's name: see `Tls.verify`) before a
 * sentence is written; a failure is a `TlsError` saying which. Connecting
 * includes the handshake, within the connect timeout. A plaintext client that
 * gets a TLS record as its reply is talking to a TLS server: that is a
 * `ProtocolViolation` saying so, not a reply.
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type * as Net from "node:net"
import type * as NodeTls from "node:tls"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import { LineFramer } from "./LineFramer.ts"
import * as Options from "./Options.ts"
import * as Protocol from "./Protocol.ts"
import * as Resolver from "./Resolver.ts"
import * as SpanAttributes from "./SpanAttributes.ts"
import * as Tls from "./Tls.ts"
import * as TlsOptions from "./TlsOptions.ts"

/** How to reach the server; every field has a default. */
export interface TcpClientOptions {
  /** Server host name or address; `localhost` by default. */
  readonly host?: string | undefined
  /** Server port; 12000 by default. */
  readonly port?: number | undefined
  /** How long connecting to one address may take; 5 seconds by default. */
  readonly connectTimeout?: Duration.Input | undefined
  /** How long a reply may take once the sentence is sent; 5 seconds by default. */
  readonly replyTimeout?: Duration.Input | undefined
  /** Longest reply accepted, in bytes; 16 MiB by default. */
  readonly maxReplyBytes?: number | undefined
  /**
   * Whether a sentence written on a reused connection that the server reset before any byte of the
   * reply arrived (it never read it) is sent once more, on a fresh connection; true by default. False turns every
   * resend off, `idempotent`'s too.
   */
  readonly resendUnanswered?: boolean | undefined
  /**
   * Whether the server may see a sentence twice without harm, as the textbook's and every transform of caps's own
   * servers may (the same sentence gets the same reply and changes nothing). Then a sentence written on a reused
   * connection that the server closed cleanly before any byte of the reply is sent once more too: that is how a
   * close which crossed the sentence looks, and also how a server that read the sentence and closed looks. False by
   * default, since a plug-in transform need not be idempotent; the CLI's client sets it.
   */
  readonly idempotent?: boolean | undefined
  /**
   * Speak TLS: `true` trusts the system's CAs and checks the certificate against `host`; `{ ca, servername }`
   * trusts the CAs of the PEM file `ca` instead, and checks (and sends as SNI) `servername`. Plaintext by default.
   */
  readonly tls?: boolean | TlsOptions.ClientTls | undefined
}

const OptionsSchema = Schema.Struct({
  host: Schema.optional(Options.Host),
  port: Schema.optional(Options.ClientPort),
  connectTimeout: Schema.optional(Options.PositiveDuration()),
  replyTimeout: Schema.optional(Options.PositiveDuration()),
  maxReplyBytes: Schema.optional(Options.PositiveInt),
  resendUnanswered: Schema.optional(Schema.Boolean),
  idempotent: Schema.optional(Schema.Boolean),
  tls: Schema.optional(TlsOptions.ClientTlsOption),
})

const decodeOptions = Options.decode(OptionsSchema, "TcpClient")

// `CAPS_TIMEOUT`, as the CLI's `--timeout`: seconds, fractions allowed.
const Seconds = Schema.Finite.check(Schema.isGreaterThan(0))

export const DEFAULT_TIMEOUT = Duration.seconds(5)
export const DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024

/**
 * The client's settings as the CLI reads them: `CAPS_HOST` (localhost), `CAPS_PORT` (12000) and
 * `CAPS_TIMEOUT` in seconds (5), which bounds both connecting and waiting for a reply, and `CAPS_TLS`,
 * `CAPS_CA`, `CAPS_SERVERNAME` (see `TlsOptions.clientConfig`). As the CLI's, it takes the server to be
 * `idempotent`.
 */
export const config: Config.Config<TcpClientOptions> = Config.all({
  host: Config.schema(Options.Host, "CAPS_HOST").pipe(Config.withDefault("localhost")),
  port: Config.schema(Options.ClientPort, "CAPS_PORT").pipe(Config.withDefault(Protocol.DEFAULT_PORT)),
  timeout: Config.schema(Seconds, "CAPS_TIMEOUT").pipe(
    Config.withDefault(Duration.toSeconds(DEFAULT_TIMEOUT)),
  ),
  tls: TlsOptions.clientConfig,
}).pipe(Config.map(({ host, port, timeout, tls }) => ({
  host,
  port,
  connectTimeout: Duration.seconds(timeout),
  replyTimeout: Duration.seconds(timeout),
  idempotent: true,
  ...(tls === undefined ? {} : { tls }),
})))

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
  | CapsError.ProtocolViolation
  | CapsError.NetworkError
  | CapsError.TlsError

/** A client of a caps (or textbook) TCP server. */
export class TcpClient extends Context.Service<TcpClient, {
  /** The server, as given. */
  readonly server: Endpoint.Endpoint
  /** Sends one sentence and returns the server's reply to it. */
  readonly request: (sentence: string) => Effect.Effect<string, TcpClientError>
}>()("caps/TcpClient") {}

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })
const NEWLINE = 0x0a

/** How one sentence's exchange ended. */
type Outcome =
  | { readonly _tag: "Reply"; readonly line: Uint8Array }
  /** The connection closed or was reset before the reply was whole; `replyStarted` if any byte of it came. */
  | { readonly _tag: "Broken"; readonly kind: "Closed" | "Reset"; readonly replyStarted: boolean }
  | { readonly _tag: "Failed"; readonly error: TcpClientError }

/** Why a connection can carry no more sentences. */
type Ended = { readonly _tag: "Closed" } | { readonly _tag: "Unasked"; readonly bytes: number }

/**
 * One open connection, read all the time: what the server does while no sentence waits (close, reset,
 * unasked bytes) is recorded in `ended` as it happens.
 */
class Connection {
  /** Replies received on it: a connection with none is fresh. */
  answered = 0
  /** Set once the connection can carry no more sentences; its socket is closed by then. */
  ended: Ended | undefined
  readonly #socket: Net.Socket
  readonly #server: Endpoint.Endpoint
  readonly #framer: LineFramer
  readonly #plaintext: boolean
  #waiter: ((outcome: Outcome) => void) | undefined
  #replyBytes = 0
  #sent: Uint8Array | undefined

  constructor(socket: Net.Socket, server: Endpoint.Endpoint, maxReplyBytes: number, plaintext: boolean) {
    this.#socket = socket
    this.#server = server
    this.#plaintext = plaintext
    this.#framer = new LineFramer(maxReplyBytes)
    socket.on("data", (chunk: Buffer) => this.#onData(chunk))
    socket.on("end", () => this.#onEnd())
    socket.on("error", (error) => this.#onError(error))
    socket.on("close", () => this.#broken("Closed"))
  }

  /** Writes `line` and waits for its reply; interrupting the wait leaves the connection to be closed. */
  exchange(line: Uint8Array): Effect.Effect<Outcome> {
    return Effect.callback<Outcome>((resume) => {
      this.#replyBytes = 0
      this.#sent = line
      this.#waiter = (outcome) => resume(Effect.succeed(outcome))
      // A failed write is reported by the socket's `error` event.
      this.#socket.write(line)
      return Effect.sync(() => {
        this.#waiter = undefined
      })
    })
  }

  /** Whether a sentence may be written on it: nothing ended it, and its socket still takes writes. */
  get usable(): boolean {
    return this.ended === undefined && this.#socket.writable
  }

  close(): void {
    this.#end({ _tag: "Closed" })
  }

  #settle(outcome: Outcome): void {
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.(outcome)
  }

  #end(ended: Ended): void {
    this.ended ??= ended
    this.#socket.destroy()
  }

  #fail(error: TcpClientError): void {
    this.#end({ _tag: "Closed" })
    this.#settle({ _tag: "Failed", error })
  }

  #onData(chunk: Buffer): void {
    if (this.ended !== undefined) return
    if (this.#waiter === undefined) return this.#end({ _tag: "Unasked", bytes: chunk.length })
    if (this.#replyBytes === 0 && this.#plaintext && Tls.isRecordHeader(chunk) && !Tls.isRecordHeader(this.#sent!)) {
      return this.#fail(
        new CapsError.ProtocolViolation({
          endpoint: this.#server,
          detail: "it answered with a TLS record: it is a TLS server (connect with --tls)",
        }),
      )
    }
    this.#replyBytes += chunk.length
    const framed = this.#framer.push(chunk)
    if (framed._tag === "TooLong") {
      return this.#fail(
        new CapsError.MessageTooLarge({ transport: "tcp", size: framed.size, limit: this.#framer.maxLineBytes }),
      )
    }
    if (framed.lines.length === 0) return
    // No newline came before this read, so its first newline ends the reply.
    const beyond = chunk.length - chunk.indexOf(NEWLINE) - 1
    if (beyond > 0) {
      return this.#fail(
        new CapsError.ProtocolViolation({
          endpoint: this.#server,
          detail: `${beyond} more bytes came with the reply, after its newline (a reply is one line)`,
        }),
      )
    }
    this.answered++
    this.#settle({ _tag: "Reply", line: framed.lines[0] })
  }

  #onEnd(): void {
    const rest = this.#waiter === undefined ? undefined : this.#framer.end()
    this.#end({ _tag: "Closed" })
    if (rest === undefined) return this.#broken("Closed")
    // The textbook server's way: the reply is what came before end of stream.
    this.answered++
    this.#settle({ _tag: "Reply", line: rest })
  }

  #onError(cause: Error): void {
    this.#end({ _tag: "Closed" })
    const error = CapsError.fromConnectFailure(cause, this.#server, "receive")
    if (error._tag === "ConnectionClosed") return this.#broken("Reset")
    this.#settle({ _tag: "Failed", error })
  }

  #broken(kind: "Closed" | "Reset"): void {
    this.ended ??= { _tag: "Closed" }
    this.#settle({ _tag: "Broken", kind, replyStarted: this.#replyBytes > 0 })
  }
}

// Two immediates apart: the event loop polls the sockets between them, on Node and on Deno.
const nextPoll = Effect.callback<void>((resume) => {
  setImmediate(() => setImmediate(() => resume(Effect.void)))
})

/** Whether connecting to the next address of the host is worth trying after this failure. */
const triesNextAddress = (error: CapsError.ConnectError | CapsError.Timeout | CapsError.TlsError): boolean =>
  error._tag === "ConnectionRefused" || error._tag === "Unreachable"

/** Builds the client (nothing is opened until the first request); its connection is closed with the scope. */
export const make = Effect.fn("TcpClient.make")(function* (
  options: TcpClientOptions = {},
): Effect.fn.Return<TcpClient["Service"], CapsError.InvalidOption | CapsError.TlsFileError, Scope.Scope> {
  yield* decodeOptions(options)
  const tls = options.tls === undefined || options.tls === false ? undefined : yield* Tls.loadClient(options.tls)
  yield* Builtins.load(tls === undefined ? "node:net" : "node:tls")
  const server = Endpoint.make(options.host ?? "localhost", options.port ?? Protocol.DEFAULT_PORT, "tcp")
  const connectTimeout = Options.duration(options.connectTimeout, DEFAULT_TIMEOUT)
  const replyTimeout = Options.duration(options.replyTimeout, DEFAULT_TIMEOUT)
  const maxReplyBytes = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES
  const resendUnanswered = options.resendUnanswered ?? true
  // A reset says the server never read the sentence; a clean close may follow a read (see the header).
  const resendsAfter = (kind: "Closed" | "Reset"): boolean =>
    resendUnanswered && (kind === "Reset" || options.idempotent === true)
  const resolver = yield* Resolver.Resolver
  const lock = yield* Semaphore.make(1)
  let current: Connection | undefined

  const discard = Effect.sync(() => {
    current?.close()
    current = undefined
  })
  yield* Effect.addFinalizer(() => discard)

  const timeout = (duration: Duration.Duration, attempts: number) =>
    new CapsError.Timeout({ endpoint: server, attempts, attemptMillis: Math.round(Duration.toMillis(duration)) })

  // The connection becomes `current` as it opens, so that interruption at any point leaves it to `discard`.
  const connectTo = (address: string) =>
    Effect.callback<Connection, CapsError.ConnectError | CapsError.TlsError>((resume) => {
      const socket = tls === undefined
        ? Builtins.net().connect({ host: address, port: server.port, noDelay: true })
        : Builtins.tls().connect(Tls.connectOptions(tls, server.host, address, server.port))
      const onError = (cause: Error) => {
        socket.destroy()
        resume(Effect.fail(
          tls === undefined ? CapsError.fromConnectFailure(cause, server) : Tls.fromConnectFailure(cause, server),
        ))
      }
      socket.once("error", onError)
      socket.once(tls === undefined ? "connect" : "secureConnect", () => {
        socket.off("error", onError)
        if (tls !== undefined) {
          socket.setNoDelay(true)
          // Checked before a byte is written: nothing goes to a server that is not the one asked for.
          const refused = Tls.verify(
            socket as NodeTls.TLSSocket,
            Tls.nameToCheck(tls, server.host),
            server,
            // The system's time, as the TLS library's own check of the certificate uses.
            Date.now(),
          )
          if (refused !== undefined) {
            socket.destroy()
            return resume(Effect.fail(refused))
          }
        }
        current = new Connection(socket, server, maxReplyBytes, tls === undefined)
        resume(Effect.succeed(current))
      })
      return Effect.sync(() => socket.destroy())
    }).pipe(Effect.timeoutOrElse({ duration: connectTimeout, orElse: () => Effect.fail(timeout(connectTimeout, 1)) }))

  // Each address of the host in turn; the first failure is the one reported.
  const open = Effect.gen(function* () {
    const addresses = yield* resolver.resolve(server.host)
    let first: CapsError.ConnectError | CapsError.Timeout | CapsError.TlsError | undefined
    for (const { address } of addresses) {
      const result = yield* Effect.result(connectTo(address))
      if (Result.isSuccess(result)) {
        yield* Effect.annotateCurrentSpan(SpanAttributes.peer(address, server.port))
        return result.success
      }
      first ??= result.failure
      if (!triesNextAddress(result.failure)) break
    }
    return yield* Effect.fail(first!)
  })

  const request = Effect.fn("TcpClient.request", { kind: "client", attributes: SpanAttributes.server(server) })(
    function* (sentence: string) {
      if (sentence.includes("\n")) {
        return yield* new CapsError.MalformedInput({
          detail: "a sentence sent over TCP cannot contain a line break (it would be two sentences)",
        })
      }
      const held = current
      if (held !== undefined && !held.usable) {
        current = undefined
        held.close()
        if (held.ended?._tag === "Unasked") {
          return yield* new CapsError.ProtocolViolation({
            endpoint: server,
            detail: `${held.ended.bytes} bytes arrived unasked, while no sentence was waiting for a reply; ` +
              "the connection was closed and this sentence not sent",
          })
        }
      }
      const line = encoder.encode(sentence + "\n")
      // A server that answers and closes (the textbook's) sends its FIN right after the reply: let the event
      // loop read what has reached the socket, so that a close already there is seen before writing into it.
      if (current !== undefined) {
        yield* nextPoll
        if (!current.usable) yield* discard
      }
      let connection = current ?? (yield* open)
      for (let sends = 1;; sends++) {
        const reused = connection.answered > 0
        yield* SpanAttributes.event("attempt", { attempt: sends })
        const outcome = yield* connection.exchange(line).pipe(
          Effect.timeoutOrElse({ duration: replyTimeout, orElse: () => Effect.fail(timeout(replyTimeout, sends)) }),
        )
        if (outcome._tag === "Reply") return decoder.decode(outcome.line)
        if (outcome._tag === "Failed") return yield* Effect.fail(outcome.error)
        yield* discard
        // Only a break before any byte of the reply, of a connection that had answered before (see the header).
        if (!(reused && !outcome.replyStarted && resendsAfter(outcome.kind))) {
          return yield* new CapsError.ConnectionClosed({ endpoint: server, kind: outcome.kind, sentenceSent: true })
        }
        yield* Effect.annotateCurrentSpan("caps.resent", true)
        connection = yield* open
      }
    },
    (effect) => effect.pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : discard), lock.withPermit),
  )

  return TcpClient.of({ server, request })
})

/** Provides a client whose connection lives as long as the layer. */
export const layer = (
  options: TcpClientOptions = {},
): Layer.Layer<TcpClient, CapsError.InvalidOption | CapsError.TlsFileError> => Layer.effect(TcpClient, make(options))

/** Provides a client configured as the CLI is, from `CAPS_*` settings (see `config`). */
export const layerConfig: Layer.Layer<
  TcpClient,
  CapsError.InvalidOption | CapsError.TlsFileError | Config.ConfigError
> = Layer.effect(
  TcpClient,
  Effect.flatMap(config, make),
)
