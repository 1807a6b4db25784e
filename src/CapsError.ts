/**
 * The typed failures of caps: one class for each thing the textbook programs
 * ignore, each with a one-line human message that names what failed and where.
 *
 * They form a flat union rather than one wrapper with a reason so that a
 * caller handles exactly the cases a function can produce (`Effect.catchTag`),
 * and the program's edge maps each tag to its documented exit code (`ExitCode.ts`).
 */
import * as Schema from "effect/Schema"
import * as Endpoint from "./Endpoint.ts"

const EndpointSchema = Schema.Struct({
  host: Schema.String,
  port: Schema.Number,
  transport: Schema.Literals(["udp", "tcp"]),
})

const millis = (ms: number): string => ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`

/** The host name has no address (DNS or /etc/hosts said no, or could not be asked). */
export class NameNotResolved extends Schema.TaggedError<NameNotResolved>()("NameNotResolved", {
  host: Schema.String,
  code: Schema.String,
}) {
  override get message(): string {
    return `cannot resolve host name ${JSON.stringify(this.host)} (${this.code})`
  }
}

/** TCP: nothing listens there (RST). UDP: the peer answered ICMP port unreachable. */
export class ConnectionRefused extends Schema.TaggedError<ConnectionRefused>()("ConnectionRefused", {
  endpoint: EndpointSchema,
}) {
  override get message(): string {
    return this.endpoint.transport === "tcp"
      ? `connection refused by ${Endpoint.format(this.endpoint)}`
      : `port unreachable: ${Endpoint.format(this.endpoint)} answered that nothing listens there`
  }
}

/** The network or host cannot be reached at all (no route, network down). */
export class Unreachable extends Schema.TaggedError<Unreachable>()("Unreachable", {
  endpoint: EndpointSchema,
  code: Schema.String,
}) {
  override get message(): string {
    return `cannot reach ${Endpoint.format(this.endpoint)} (${this.code})`
  }
}

/** No (complete) answer in time; `attempts` counts the tries that were made. */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  endpoint: EndpointSchema,
  attempts: Schema.Int,
  attemptMillis: Schema.Int,
}) {
  override get message(): string {
    const attempts = this.attempts === 1 ? "1 attempt" : `${this.attempts} attempts`
    return `no answer from ${Endpoint.format(this.endpoint)} after ${attempts} of ${millis(this.attemptMillis)}`
  }
}

/** Another socket already holds the address a server wants to bind. */
export class AddressInUse extends Schema.TaggedError<AddressInUse>()("AddressInUse", {
  endpoint: EndpointSchema,
}) {
  override get message(): string {
    return `address already in use: ${Endpoint.format(this.endpoint)}`
  }
}

/** The host has no interface with that address, so a server cannot bind it. */
export class AddressNotAvailable extends Schema.TaggedError<AddressNotAvailable>()("AddressNotAvailable", {
  endpoint: EndpointSchema,
}) {
  override get message(): string {
    return `address not available on this host: ${Endpoint.format(this.endpoint)}`
  }
}

/** The operating system refused (typically a port below 1024 without privileges). */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", {
  endpoint: EndpointSchema,
}) {
  override get message(): string {
    const hint = this.endpoint.port > 0 && this.endpoint.port < 1024 ? " (ports below 1024 need privileges)" : ""
    return `permission denied for ${Endpoint.format(this.endpoint)}${hint}`
  }
}

/** A sentence or datagram is larger than the protocol or the configured maximum allows. */
export class MessageTooLarge extends Schema.TaggedError<MessageTooLarge>()("MessageTooLarge", {
  transport: Schema.Literals(["udp", "tcp"]),
  size: Schema.Int,
  limit: Schema.Int,
  /** `size` is what was read of it, and it may have been longer (a datagram cut short by the read). */
  atLeast: Schema.optional(Schema.Boolean),
}) {
  override get message(): string {
    const what = this.transport === "udp" ? "UDP datagram" : "TCP line"
    const size = this.atLeast === true ? `at least ${this.size}` : `${this.size}`
    return `${what} of ${size} bytes exceeds the limit of ${this.limit} bytes`
  }
}

/** The connection was reset, or closed before a whole reply arrived. */
export class ConnectionClosed extends Schema.TaggedError<ConnectionClosed>()("ConnectionClosed", {
  endpoint: EndpointSchema,
  kind: Schema.Literals(["Reset", "Closed"]),
  /** The sentence had been written (and, a transform being possibly not idempotent, is not sent again). */
  sentenceSent: Schema.optional(Schema.Boolean),
}) {
  override get message(): string {
    const broke = this.kind === "Reset"
      ? `connection to ${Endpoint.format(this.endpoint)} was reset mid-reply`
      : `connection to ${Endpoint.format(this.endpoint)} closed before a reply arrived`
    return this.sentenceSent === true ? `${broke}; the sentence was sent and is not resent` : broke
  }
}

/** Input that caps cannot frame or decode as asked (e.g. a line break inside one sentence). */
export class MalformedInput extends Schema.TaggedError<MalformedInput>()("MalformedInput", {
  detail: Schema.String,
}) {
  override get message(): string {
    return `malformed input: ${this.detail}`
  }
}

/** The peer broke the protocol: for example a server that answers one sentence with more than one line. */
export class ProtocolViolation extends Schema.TaggedError<ProtocolViolation>()("ProtocolViolation", {
  endpoint: EndpointSchema,
  detail: Schema.String,
}) {
  override get message(): string {
    return `protocol violation by ${Endpoint.format(this.endpoint)}: ${this.detail}`
  }
}

/** An option given to a server, a client or a transform is out of its range; nothing was bound or opened. */
export class InvalidOption extends Schema.TaggedError<InvalidOption>()("InvalidOption", {
  /** The option as its owner names it, e.g. `TcpServer.drainTimeout`. */
  option: Schema.String,
  detail: Schema.String,
}) {
  override get message(): string {
    return `invalid option ${this.option}: ${this.detail}`
  }
}

/** Any other operating-system failure, with its errno name and text, so nothing escapes untyped. */
export class NetworkError extends Schema.TaggedError<NetworkError>()("NetworkError", {
  endpoint: EndpointSchema,
  operation: Schema.Literals(["bind", "connect", "send", "receive"]),
  code: Schema.String,
  detail: Schema.String,
  /** The platform's own error, kept for logs and debuggers. */
  cause: Schema.optional(Schema.Defect()),
}) {
  override get message(): string {
    return `${this.operation} ${Endpoint.format(this.endpoint)} failed: ${this.detail} (${this.code})`
  }
}

/**
 * A TLS connection could not be set up or trusted; nothing was sent over it. `Untrusted`: its certificate is
 * not signed by a trusted CA; `Expired`: outside its validity period; `HostnameMismatch`: not issued for the
 * name asked; `NotTls`: the server answered, but not in TLS (a plaintext server); `Handshake`: any other
 * handshake failure (an alert from the server, a close during the handshake).
 */
export class TlsError extends Schema.TaggedError<TlsError>()("TlsError", {
  endpoint: EndpointSchema,
  kind: Schema.Literals(["Untrusted", "Expired", "HostnameMismatch", "NotTls", "Handshake"]),
  detail: Schema.String,
}) {
  override get message(): string {
    const at = Endpoint.format(this.endpoint)
    return this.kind === "Untrusted"
      ? `TLS: the certificate of ${at} is not trusted (${this.detail}); trust its CA with --ca`
      : this.kind === "NotTls"
      ? `TLS: ${at} does not answer in TLS (${this.detail}); is it a plaintext server?`
      : this.kind === "Handshake"
      ? `TLS handshake with ${at} failed: ${this.detail}`
      // Expired, HostnameMismatch: the detail says how ("expired on ...", "is not issued for ...").
      : `TLS: the certificate of ${at} ${this.detail}`
  }
}

/**
 * A TLS file cannot be used: it cannot be read, it is not the PEM it should be, or the key is not the
 * certificate's. Reported before anything is bound or opened (and by a reload, which keeps what it had).
 */
export class TlsFileError extends Schema.TaggedError<TlsFileError>()("TlsFileError", {
  /** What the file should hold: the server's certificate (chain), its private key, or the CAs a client trusts. */
  role: Schema.Literals(["cert", "key", "ca"]),
  file: Schema.String,
  kind: Schema.Literals(["Unreadable", "Invalid", "KeyMismatch"]),
  detail: Schema.String,
}) {
  override get message(): string {
    const what = this.role === "cert" ? "certificate" : this.role === "key" ? "private key" : "CA certificate"
    return this.kind === "Unreadable"
      ? `cannot read the TLS ${what} file ${this.file}: ${this.detail}`
      : this.kind === "Invalid"
      ? `the TLS ${what} file ${this.file} holds no valid PEM ${what}: ${this.detail}`
      : `the TLS private key file ${this.file} is not the key of the certificate: ${this.detail}`
  }
}

/** Every failure caps reports. */
export type CapsError =
  | NameNotResolved
  | ConnectionRefused
  | Unreachable
  | Timeout
  | AddressInUse
  | AddressNotAvailable
  | PermissionDenied
  | MessageTooLarge
  | ConnectionClosed
  | MalformedInput
  | ProtocolViolation
  | InvalidOption
  | NetworkError
  | TlsError
  | TlsFileError

/** Failures of reaching a server or exchanging bytes with it. */
export type ConnectError = ConnectionRefused | Unreachable | PermissionDenied | ConnectionClosed | NetworkError

/** Failures of binding a server. */
export type BindError = AddressInUse | AddressNotAvailable | PermissionDenied | NetworkError

const errnoOf = (cause: unknown): string | undefined => {
  const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}

/** The errno name of a Node system error (`EADDRINUSE`, ...), looking through `cause` chains. */
export const errno = (error: unknown): string | undefined => {
  for (let current = error, depth = 0; current !== undefined && depth < 5; depth++) {
    const code = errnoOf(current)
    if (code !== undefined) return code
    current = typeof current === "object" && current !== null ? (current as { cause?: unknown }).cause : undefined
  }
  return undefined
}

const networkError = (
  cause: unknown,
  endpoint: Endpoint.Endpoint,
  operation: NetworkError["operation"],
): NetworkError =>
  new NetworkError({
    endpoint,
    operation,
    code: errno(cause) ?? "EUNKNOWN",
    detail: cause instanceof Error ? cause.message : String(cause),
    cause,
  })

/** Maps a failure to bind `endpoint` to its typed error. */
export const fromBindFailure = (cause: unknown, endpoint: Endpoint.Endpoint): BindError => {
  switch (errno(cause)) {
    case "EADDRINUSE":
      return new AddressInUse({ endpoint })
    case "EADDRNOTAVAIL":
    case "EAFNOSUPPORT":
    // Deno's node:net reports a listen on an address the host lacks as EINVAL.
    case "EINVAL":
      return new AddressNotAvailable({ endpoint })
    case "EACCES":
    case "EPERM":
      return new PermissionDenied({ endpoint })
    default:
      return networkError(cause, endpoint, "bind")
  }
}

/** The platform's error under an `effect/socket` error (its reason's `cause`), or the error itself. */
export const socketCause = (error: { readonly reason: object }): unknown =>
  "cause" in error.reason ? error.reason.cause : error

/** Maps a failure to reach or talk to `endpoint` to its typed error. */
export const fromConnectFailure = (
  cause: unknown,
  endpoint: Endpoint.Endpoint,
  operation: "connect" | "send" | "receive" = "connect",
): ConnectError => {
  const code = errno(cause)
  switch (code) {
    case "ECONNREFUSED":
      return new ConnectionRefused({ endpoint })
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "EHOSTDOWN":
    case "ENETDOWN":
      return new Unreachable({ endpoint, code })
    case "EACCES":
    case "EPERM":
      return new PermissionDenied({ endpoint })
    case "ECONNRESET":
    case "EPIPE":
      return new ConnectionClosed({ endpoint, kind: "Reset" })
    default:
      return networkError(cause, endpoint, operation)
  }
}
