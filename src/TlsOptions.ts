/**
 * What TLS for TCP is given and reports, apart from how it is done (`Tls`):
 * the server's certificate and key files, the client's trust (a CA file) and
 * the name it checks, as options, `CAPS_*` settings and CLI flags take them,
 * and what a certificate is, for ready lines and logs.
 *
 * Certificates and keys are file paths, not PEM contents: a server reads them
 * again from the same files on reload (`TcpServer.reloadTls`, SIGHUP for the
 * CLI), which is how a renewal (certbot, a secret mounted into a container)
 * hands a running server its new certificate.
 */
import * as Config from "effect/Config"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Options from "./Options.ts"

/** A path to a file: not empty. */
export const FilePath = Schema.String.check(
  Schema.makeFilter((s) => s.length > 0 || "expected a file path, got none"),
)

/** A server's TLS files: its certificate (the leaf first, then any intermediates) and its private key, in PEM. */
export interface ServerTls {
  readonly cert: string
  readonly key: string
}

/** `ServerTls` as the server's options check it. */
export const ServerTls = Schema.Struct({ cert: FilePath, key: FilePath })

/** How a client trusts its server; every field has a default. */
export interface ClientTls {
  /** PEM file of the CAs to trust instead of the system's; the system's by default. */
  readonly ca?: string | undefined
  /** The name the certificate must be issued for (and sent as SNI); the host as given by default. */
  readonly servername?: string | undefined
}

/** A client's `tls` option: `true` (the system's CAs, the host's name), an object, or `false` for plaintext. */
export const ClientTlsOption = Schema.Union([
  Schema.Struct({ ca: Schema.optional(FilePath), servername: Schema.optional(Options.Host) }),
  Schema.Boolean,
])

/**
 * A server's TLS files from `CAPS_TLS_CERT` and `CAPS_TLS_KEY`: TLS when either is set (one without the other
 * is refused when the options are decoded), plaintext when neither is.
 */
export const serverConfig: Config.Config<ServerTls | undefined> = Config.all({
  cert: Config.option(Config.String(Options.envVarOf("tls-cert"))),
  key: Config.option(Config.String(Options.envVarOf("tls-key"))),
}).pipe(
  Config.map(({ cert, key }) =>
    Option.isNone(cert) && Option.isNone(key)
      ? undefined
      : { cert: Option.getOrElse(cert, () => ""), key: Option.getOrElse(key, () => "") }
  ),
)

/**
 * Whether a client uses TLS, and how: `--tls` asks for it, and `--ca` or `--servername` imply it unless
 * `--no-tls` (`CAPS_TLS=false`) says otherwise.
 */
export const clientTlsOf = (
  tls: Option.Option<boolean>,
  ca: Option.Option<string>,
  servername: Option.Option<string>,
): true | ClientTls | undefined => {
  const on = Option.getOrElse(tls, () => Option.isSome(ca) || Option.isSome(servername))
  if (!on) return undefined
  if (Option.isNone(ca) && Option.isNone(servername)) return true
  return { ca: Option.getOrUndefined(ca), servername: Option.getOrUndefined(servername) }
}

/** A client's TLS settings from `CAPS_TLS`, `CAPS_CA` and `CAPS_SERVERNAME` (see `clientTlsOf`). */
export const clientConfig: Config.Config<true | ClientTls | undefined> = Config.all({
  tls: Config.option(Config.Boolean(Options.envVarOf("tls"))),
  ca: Config.option(Config.String(Options.envVarOf("ca"))),
  servername: Config.option(Config.String(Options.envVarOf("servername"))),
}).pipe(Config.map(({ ca, servername, tls }) => clientTlsOf(tls, ca, servername)))

/** What a certificate is, for log lines: who it names, its serial number, when it is valid. */
export interface CertificateInfo {
  readonly subject: string
  readonly serialNumber: string
  readonly validFrom: Date
  readonly validTo: Date
}

/** One line for logs: `CN=localhost, serial 01, valid until 2026-12-03T09:18:04.000Z`. */
export const describeCertificate = (info: CertificateInfo): string =>
  `${info.subject.replaceAll("\n", ", ")}, serial ${info.serialNumber}, valid until ${info.validTo.toISOString()}`
