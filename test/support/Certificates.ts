// Throwaway certificates for the TLS tests, made at test time with the
// `openssl` command in a temporary directory: a CA, server certificates it
// signs (for localhost, 127.0.0.1 and ::1), an expired one, and a second CA
// nobody trusts. Nothing here is checked in, so nothing can expire in git.
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** Whether the `openssl` command can be run here. */
export const hasOpenssl: boolean = ChildProcess.spawnSync("openssl", ["version"], { timeout: 10_000 }).status === 0

/** Whether the `socat` command can be run here. */
export const hasSocat: boolean = ChildProcess.spawnSync("socat", ["-V"], { timeout: 10_000 }).status === 0

const openssl = (cwd: string, args: ReadonlyArray<string>): void => {
  if (!hasOpenssl) {
    throw new Error("the TLS tests need the openssl command (Debian: apt-get install -y openssl)")
  }
  const ran = ChildProcess.spawnSync("openssl", args, { cwd, encoding: "utf8", timeout: 20_000 })
  if (ran.status !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${ran.stdout}${ran.stderr}`)
}

/** A certificate and its key, as files. */
export interface Pair {
  readonly cert: string
  readonly key: string
}

/** The files of a test PKI. */
export interface Pki {
  readonly dir: string
  /** The CA the clients are told to trust. */
  readonly ca: string
  /** Signed by `ca`, for localhost, 127.0.0.1 and ::1, CN `caps test server`. */
  readonly server: Pair
  /** Signed by `ca` for the same names, with another CN (`caps test server 2`) and serial. */
  readonly renewed: Pair
  /** Signed by `ca` for the same names, valid only on 1 January 2020. */
  readonly expired: Pair
  /** Signed by `ca` for the name localhost only, no address. */
  readonly localhostOnly: Pair
  /** Signed by a CA the clients do not know. */
  readonly untrusted: Pair
  /** A second CA, that signed `untrusted`. */
  readonly otherCa: string
  /** Writes `text` to a file in the directory, returning its path. */
  readonly write: (name: string, text: string | Buffer) => string
  readonly remove: () => void
}

const SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
const LOCALHOST_ONLY = "subjectAltName=DNS:localhost\n"

/** Makes a fresh PKI in a temporary directory (remove it with `remove`). */
export const makePki = (): Pki => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "caps-tls-"))
  const file = (name: string) => Path.join(dir, name)
  Fs.writeFileSync(file("san.cnf"), SAN)
  Fs.writeFileSync(file("localhost.cnf"), LOCALHOST_ONLY)
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
  const ca = (name: string, cn: string) =>
    openssl(dir, [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "3",
      "-subj",
      `/CN=${cn}`,
    ])
  const csr = (name: string, cn: string) =>
    openssl(dir, ["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`])
  const sign = (name: string, by: string, serial: string, extensions = "san.cnf") =>
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${by}.pem`,
      "-CAkey",
      `${by}.key`,
      "-set_serial",
      serial,
      "-days",
      "2",
      "-extfile",
      extensions,
      "-out",
      `${name}.pem`,
    ])
  ca("ca", "caps test CA")
  ca("other-ca", "caps untrusted CA")
  csr("server", "caps test server")
  sign("server", "ca", "0x1001")
  csr("renewed", "caps test server 2")
  sign("renewed", "ca", "0x1002")
  csr("localhost-only", "caps test server")
  sign("localhost-only", "ca", "0x1003", "localhost.cnf")
  csr("untrusted", "caps test server")
  sign("untrusted", "other-ca", "0x2001")
  // `openssl x509` cannot back-date a certificate; `openssl ca` can.
  csr("expired", "caps test server")
  Fs.writeFileSync(file("index.txt"), "")
  Fs.writeFileSync(file("serial"), "3001\n")
  Fs.writeFileSync(
    file("ca.cnf"),
    [
      "[ca]",
      "default_ca = d",
      "[d]",
      "database = index.txt",
      "new_certs_dir = .",
      "serial = serial",
      "default_md = sha256",
      "policy = p",
      "certificate = ca.pem",
      "private_key = ca.key",
      "unique_subject = no",
      "[p]",
      "commonName = supplied",
      "",
    ].join("\n"),
  )
  openssl(dir, [
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-in",
    "expired.csr",
    "-out",
    "expired.pem",
    "-startdate",
    "20200101000000Z",
    "-enddate",
    "20200102000000Z",
    "-extfile",
    "san.cnf",
    "-notext",
  ])
  const pair = (name: string): Pair => ({ cert: file(`${name}.pem`), key: file(`${name}.key`) })
  return {
    dir,
    ca: file("ca.pem"),
    server: pair("server"),
    renewed: pair("renewed"),
    expired: pair("expired"),
    localhostOnly: pair("localhost-only"),
    untrusted: pair("untrusted"),
    otherCa: file("other-ca.pem"),
    write: (name, text) => {
      Fs.writeFileSync(file(name), text)
      return file(name)
    },
    remove: () => Fs.rmSync(dir, { recursive: true, force: true }),
  }
}
