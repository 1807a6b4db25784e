/**
 * TLS for caps's TCP transport: the server's certificate and key and the
 * client's trust, read and checked before anything is bound or opened; the
 * client's verification of the server; the handshake's failures as typed
 * errors (the client's) and log lines (the server's); the reload on SIGHUP.
 *
 * The options themselves are in `TlsOptions`. The files are parsed with
 * `node:crypto` when they are read, since Deno's `tls.createSecureContext`
 * accepts anything and a bad file would only show at the first handshake.
 *
 * The client verifies the server's certificate itself, right after the
 * handshake and before it writes a byte (`rejectUnauthorized: false`, then
 * `authorized` and the name): Node's error codes tell an expired certificate
 * from one nobody vouches for, but Deno's give UNABLE_TO_VERIFY_LEAF_SIGNATURE
 * for both, so the certificate's own dates decide. The name checked is the
 * host as given (or `servername`), not the address it resolved to.
 *
 * UDP stays plaintext: DTLS is in neither Node's nor Deno's standard library,
 * and the textbook protocol is one datagram per sentence, with no connection
 * for a handshake to set up.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Crypto from "node:crypto"
import type * as NodeTls from "node:tls"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as Runtime from "./Runtime.ts"
import * as TlsOptions from "./TlsOptions.ts"

/** A server's certificate and key, read and checked: what `tls.createServer` and `setSecureContext` take. */
export interface ServerCredentials {
  readonly context: { readonly cert: Buffer; readonly key: Buffer }
  readonly certificate: TlsOptions.CertificateInfo
}

const firstLine = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).split("\n")[0].replace(/^error:[0-9A-F]+:/, "")

const read = (role: CapsError.TlsFileError["role"], file: string) =>
  Effect.callback<Buffer, CapsError.TlsFileError>((resume) => {
    const unreadable = (detail: string) =>
      resume(Effect.fail(new CapsError.TlsFileError({ role, file, kind: "Unreadable", detail })))
    // Asked first, a missing permission is a clear error rather than a prompt.
    if (!Runtime.mayRead(file)) return unreadable(`Deno needs --allow-read for it (e.g. --allow-read=${file})`)
    Builtins.fs().readFile(file, (error, data) => {
      if (error === null) return resume(Effect.succeed(data))
      const code = CapsError.errno(error)
      unreadable(
        code === "ENOENT"
          ? "no such file"
          : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : code === "EISDIR"
          ? "it is a directory"
          : firstLine(error),
      )
    })
  })

const invalid = (role: CapsError.TlsFileError["role"], file: string, detail: string) =>
  new CapsError.TlsFileError({ role, file, kind: "Invalid", detail })

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

// Every certificate of a PEM file, parsed; a file with none, or one that does not parse, is invalid.
const certificatesOf = (role: "cert" | "ca", file: string, pem: Buffer) =>
  Effect.suspend(() => {
    const blocks = pem.toString("latin1").match(PEM_CERTIFICATE) ?? []
    if (blocks.length === 0) return Effect.fail(invalid(role, file, "no -----BEGIN CERTIFICATE----- block"))
    try {
      return Effect.succeed(blocks.map((block) => new (Builtins.crypto().X509Certificate)(block)))
    } catch (error) {
      return Effect.fail(invalid(role, file, firstLine(error)))
    }
  })

const infoOf = (certificate: Crypto.X509Certificate): TlsOptions.CertificateInfo => ({
  subject: certificate.subject,
  serialNumber: certificate.serialNumber,
  validFrom: new Date(certificate.validFrom),
  validTo: new Date(certificate.validTo),
})

/** Reads a server's certificate and key and checks that they are PEM and belong together. */
export const loadServer = Effect.fnUntraced(function* (files: TlsOptions.ServerTls) {
  const cert = yield* read("cert", files.cert)
  const key = yield* read("key", files.key)
  const [leaf] = yield* certificatesOf("cert", files.cert, cert)
  const privateKey = yield* Effect.try({
    try: () => Builtins.crypto().createPrivateKey(key),
    catch: (error) => invalid("key", files.key, firstLine(error)),
  })
  if (!leaf.checkPrivateKey(privateKey)) {
    return yield* new CapsError.TlsFileError({
      role: "key",
      file: files.key,
      kind: "KeyMismatch",
      detail: `the first certificate of ${files.cert} (${leaf.subject.replaceAll("\n", ", ")}) has another key`,
    })
  }
  return { context: { cert, key }, certificate: infoOf(leaf) } satisfies ServerCredentials
})

/** A client's TLS settings, read: the CAs it trusts (undefined: the system's) and the name to check. */
export interface ClientCredentials {
  readonly ca: Buffer | undefined
  readonly servername: string | undefined
}

/** Reads a client's CA file, if one is given, and checks that it holds certificates. */
export const loadClient = (
  tls: true | TlsOptions.ClientTls,
): Effect.Effect<ClientCredentials, CapsError.TlsFileError> =>
  Effect.gen(function* () {
    const options: TlsOptions.ClientTls = tls === true ? {} : tls
    if (options.ca === undefined) return { ca: undefined, servername: options.servername }
    const ca = yield* read("ca", options.ca)
    yield* certificatesOf("ca", options.ca, ca)
    return { ca, servername: options.servername }
  })

// What OpenSSL (Node) and rustls (Deno) say when the other side does not speak TLS at all.
const NOT_TLS =
  /WRONG_VERSION_NUMBER|UNEXPECTED_MESSAGE|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|RECORD_LAYER_FAILURE|InvalidContentType|HandshakePayloadTooLarge|wrong version number|unexpected message|corrupt message/

const codeAndMessage = (cause: unknown): string => `${CapsError.errno(cause) ?? ""} ${firstLine(cause)}`

/** Whether a failure of `tls.connect` happened in the handshake (else it is the TCP connection's). */
const isHandshakeFailure = (cause: unknown): boolean => {
  const code = CapsError.errno(cause) ?? ""
  return code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") ||
    /before secure TLS connection|TLS|SSL/.test(firstLine(cause))
}

/** Maps a failure of a TLS client's connection, before it was secure, to its typed error. */
export const fromConnectFailure = (
  cause: unknown,
  endpoint: Endpoint.Endpoint,
): CapsError.TlsError | CapsError.ConnectError => {
  if (!isHandshakeFailure(cause)) return CapsError.fromConnectFailure(cause, endpoint)
  if (NOT_TLS.test(codeAndMessage(cause))) {
    return new CapsError.TlsError({ endpoint, kind: "NotTls", detail: firstLine(cause) })
  }
  const detail = /before secure TLS connection/.test(firstLine(cause))
    ? "the server closed the connection during the handshake"
    : firstLine(cause)
  return new CapsError.TlsError({ endpoint, kind: "Handshake", detail })
}

const EXPIRED = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"])

const UNTRUSTED: Readonly<Record<string, string>> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: "it is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "a self-signed certificate in its chain",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its issuer is not a trusted CA",
  UNABLE_TO_GET_ISSUER_CERT: "its issuer is not a trusted CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its issuer is not a trusted CA",
}

/**
 * Whether a TLS socket just secured may carry sentences: its certificate is trusted, valid now and issued
 * for `name`. Called before anything is written; `nowMillis` from the caller's `Clock`.
 */
export const verify = (
  socket: NodeTls.TLSSocket,
  name: string,
  endpoint: Endpoint.Endpoint,
  nowMillis: number,
): CapsError.TlsError | undefined => {
  const certificate = socket.getPeerCertificate()
  if (certificate === null || Object.keys(certificate).length === 0) {
    return new CapsError.TlsError({ endpoint, kind: "Handshake", detail: "the server presented no certificate" })
  }
  const validFrom = new Date(certificate.valid_from).getTime()
  const validTo = new Date(certificate.valid_to).getTime()
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? "")
    if (EXPIRED.has(code) || nowMillis > validTo || nowMillis < validFrom) {
      const detail = nowMillis < validFrom
        ? `is not valid before ${new Date(validFrom).toISOString()}`
        : `expired on ${new Date(validTo).toISOString()}`
      return new CapsError.TlsError({ endpoint, kind: "Expired", detail })
    }
    return new CapsError.TlsError({ endpoint, kind: "Untrusted", detail: UNTRUSTED[code] ?? code })
  }
  const identity = Builtins.tls().checkServerIdentity(name, certificate)
  if (identity !== undefined) {
    return new CapsError.TlsError({
      endpoint,
      kind: "HostnameMismatch",
      detail: `is not issued for ${JSON.stringify(name)} (it names ${
        certificate.subjectaltname ?? "no alternative names"
      })`,
    })
  }
  return undefined
}

/** What `tls.connect` is given to open a client's connection to `address` (the resolved one). */
export const connectOptions = (
  credentials: ClientCredentials,
  host: string,
  address: string,
  port: number,
): NodeTls.ConnectionOptions => {
  const name = credentials.servername ?? host
  return {
    host: address,
    port,
    ...(credentials.ca === undefined ? {} : { ca: credentials.ca }),
    // RFC 6066 forbids an IP address as SNI; the name is checked by `verify`.
    ...(Endpoint.ipVersion(name) === 0 ? { servername: name } : {}),
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  }
}

/** The name a client's certificate check uses. */
export const nameToCheck = (credentials: ClientCredentials, host: string): string => credentials.servername ?? host

/**
 * Whether bytes begin with a TLS record header (content type 20 to 23, version 3.x): a plaintext client
 * that gets one as its reply is talking to a TLS server (Deno's sends an alert record, then closes).
 */
export const isRecordHeader = (bytes: Uint8Array): boolean =>
  bytes.length >= 3 && bytes[0] >= 20 && bytes[0] <= 23 && bytes[1] === 3 && bytes[2] <= 4

/** Why a client's handshake with the server failed, for the server's log line. */
export const describeHandshakeFailure = (error: unknown): string => {
  const text = codeAndMessage(error)
  const code = CapsError.errno(error) ?? "error"
  if (NOT_TLS.test(text)) return `not TLS, a plaintext client? (${code})`
  if (/CERTIFICATE_EXPIRED|CertificateExpired/.test(text)) return `the client says the certificate expired (${code})`
  if (/UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|UnknownCA|BadCertificate/.test(text)) {
    return `the client does not trust the certificate (${code})`
  }
  if (code === "ERR_TLS_HANDSHAKE_TIMEOUT") return `no complete handshake in time (${code})`
  if (code === "ECONNRESET" || code === "EPIPE") {
    return `the client closed the connection during the handshake (${code})`
  }
  return `${firstLine(error)} (${code})`
}

/**
 * Calls `reload` on each SIGHUP for as long as the scope is open, logging one line each time: the
 * certificate now served, or why the reload failed (and the previous certificate is still served).
 */
export const reloadOnHangup = <E extends { readonly message: string }>(
  reload: Effect.Effect<TlsOptions.CertificateInfo | undefined, E>,
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const once = reload.pipe(
      Effect.flatMap((info) =>
        info === undefined ? Effect.void : Effect.logInfo(
          `SIGHUP: reloaded the TLS certificate, now ${
            TlsOptions.describeCertificate(info)
          }; open connections keep theirs`,
        )
      ),
      Effect.catch((error) =>
        Effect.logError(`SIGHUP: TLS certificate not reloaded, still serving the previous one: ${error.message}`)
      ),
    )
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const onHangup = () => {
          runFork(once)
        }
        process.on("SIGHUP", onHangup)
        return onHangup
      }),
      (onHangup) => Effect.sync(() => process.off("SIGHUP", onHangup)),
    )
  })
