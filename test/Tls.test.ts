// TLS on the TCP transport, in the library: caps's client and server talk
// TLS to each other and to real peers nobody here wrote (`openssl s_client`,
// `socat OPENSSL:`); half-close, backpressure and the lingering close still
// hold over TLS; each mismatch (plaintext against TLS either way, an
// untrusted, expired or misnamed certificate) ends in one typed error before a
// byte of the sentence is sent; bad files fail `make` before binding; a reload
// serves new connections the new certificate and leaves open ones alone.
// Certificates are made at test time with `openssl` (test/support/Certificates.ts).
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import * as TcpClient from "../src/TcpClient.ts"
import * as TcpServer from "../src/TcpServer.ts"
import * as Transform from "../src/Transform.ts"
import { hasSocat, makePki } from "./support/Certificates.ts"
import { logCapture } from "./support/Logs.ts"
import { isDeno, run } from "./support/Process.ts"
import { statsOf, tcpServer, withTcpServer } from "./support/Servers.ts"
import { closedByPeer, readAtLeast, sleep, spawnPeerProcess, tcpConnect, waitUntil } from "./support/Sockets.ts"

const pki = makePki()
afterAll(() => pki.remove())

const MiB = 1024 * 1024

/** A TLS server's options: the test PKI's server certificate. */
const tls = (extra: TcpServer.TcpServerOptions = {}): TcpServer.TcpServerOptions => ({ tls: pki.server, ...extra })

/** A raw TLS connection that trusts the test CA, resolved once secure; destroyed with the test's scope. */
const tlsSocket = (port: number, options: NodeTls.ConnectionOptions = {}) =>
  Effect.acquireRelease(
    Effect.callback<NodeTls.TLSSocket, Error>((resume) => {
      const socket = NodeTls.connect({ host: "127.0.0.1", port, ca: Fs.readFileSync(pki.ca), ...options })
      socket.once("secureConnect", () => resume(Effect.succeed(socket)))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (socket) => Effect.sync(() => socket.destroy()),
  )

/** A TLS client of the caps server on `port` that trusts the test CA. */
const tlsClient = (port: number, options: TcpClient.TcpClientOptions = {}) =>
  TcpClient.make({ host: "127.0.0.1", port, tls: { ca: pki.ca }, ...options })

/** Copies a certificate and key to files of their own, which a test may overwrite. */
const ownFiles = (name: string, from = pki.server) => ({
  cert: pki.write(`${name}.pem`, Fs.readFileSync(from.cert)),
  key: pki.write(`${name}.key`, Fs.readFileSync(from.key)),
})

/** A raw TLS server on 127.0.0.1 with `cert`, recording every byte it receives; closed with the scope. */
const recordingTlsServer = (cert: { readonly cert: string; readonly key: string }) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly server: NodeTls.Server; readonly received: Array<Buffer> }>(
      (resume) => {
        const received: Array<Buffer> = []
        const server = NodeTls.createServer(
          { cert: Fs.readFileSync(cert.cert), key: Fs.readFileSync(cert.key) },
          (socket) => {
            socket.on("data", (chunk: Buffer) => received.push(chunk))
            socket.on("error", () => {})
          },
        )
        server.on("tlsClientError", () => {})
        server.listen({ host: "127.0.0.1", port: 0 }, () =>
          resume(Effect.succeed({ port: (server.address() as Net.AddressInfo).port, server, received })))
      },
    ),
    ({ server }) =>
      Effect.sync(() => server.close()),
  )

describe("TLS round trips", () => {
  it.live("a caps TLS client and server exchange sentences over one connection; the name checked is the host given", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const client = yield* tlsClient(server.address.port)
        assert.strictEqual(yield* client.request("hello, tls"), "HELLO, TLS")
        assert.strictEqual(yield* client.request("straße"), "STRASSE")
        // `localhost` resolves to 127.0.0.1, but the certificate is checked against the name asked for.
        const byName = yield* tlsClient(server.address.port, { host: "localhost" })
        assert.strictEqual(yield* byName.request("by name"), "BY NAME")
        const stats = statsOf(server)
        assert.strictEqual(stats.connectionsTotal, 2)
        assert.strictEqual(stats.tlsHandshakeFailures, 0)
      }), tls()))

  it.live("openssl s_client, verifying the certificate and the IP, gets the upper-cased reply", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const peer = spawnPeerProcess("openssl", [
          "s_client",
          "-connect",
          `127.0.0.1:${server.address.port}`,
          "-CAfile",
          pki.ca,
          "-verify_return_error",
          "-verify_ip",
          "127.0.0.1",
          "-quiet",
        ])
        yield* Effect.addFinalizer(() => Effect.promise(() => peer.kill()))
        peer.send("hello from openssl\n")
        yield* Effect.promise(() =>
          waitUntil(() => peer.stdout().includes("\n"), 10_000, "s_client's reply").catch(() => {
            throw new Error(`no reply; s_client said:\n${peer.stdout()}${peer.stderr()}`)
          })
        )
        assert.strictEqual(peer.stdout(), "HELLO FROM OPENSSL\n")
      }), tls()))

  it.live(
    "socat OPENSSL: gets the reply, and after its half-close a final line answered late",
    () =>
      Effect.gen(function* () {
        const upper = yield* TcpServer.make({ host: "127.0.0.1", port: 0, ...tls() })
        // An effectful transform: its reply comes well after the client's close_notify.
        const slowCount: Transform.TransformShape = {
          name: "slow-count",
          framing: "line",
          apply: (line) => Effect.as(Effect.sleep("100 millis"), String(line.split("s").length - 1)),
        }
        const counting = yield* TcpServer.make({ host: "127.0.0.1", port: 0, ...tls() }).pipe(
          Effect.provide(Transform.layer(slowCount)),
        )
        if (!hasSocat) throw new Error("this test needs the socat command (Debian: apt-get install -y socat)")
        const socat = (port: number, input: string) =>
          run(["socat", "-t", "5", "-", `OPENSSL:127.0.0.1:${port},cafile=${pki.ca}`], { input, timeoutMs: 10_000 })
        const replied = yield* socat(upper.address.port, "hello from socat\n")
        assert.strictEqual(replied.code, 0, replied.stderr)
        assert.strictEqual(replied.stdout, "HELLO FROM SOCAT\n")
        // No newline: a line transform answers only when the client ends its side, which over TLS is close_notify.
        const counted = yield* socat(counting.address.port, "she sells sea shells")
        assert.strictEqual(counted.code, 0, counted.stderr)
        assert.strictEqual(counted.stdout, "6")
      }),
  )

  // Deno 2.9's node:tls goes on reading a TLS socket from the kernel while it is paused, into memory (64 MiB sent
  // to a paused server socket: 130 MB more resident); only the plaintext server is bounded there (README).
  it.live.skipIf(isDeno)(
    "a TLS client that writes without reading is stopped being read, then gets every reply",
    () =>
      withTcpServer((server) =>
        Effect.gen(function* () {
          const socket = yield* tlsSocket(server.address.port)
          socket.pause()
          const size = 32 * MiB
          const chunk = Buffer.alloc(MiB, "a")
          for (let written = 0; written < size; written += chunk.length) socket.write(chunk)
          yield* Effect.promise(() => sleep(700))
          // The kernels' buffers and the server's own hold a few MiB; had it gone on reading, nothing would wait here.
          assert.isAbove(socket.writableLength, 16 * MiB, "the server stopped reading a client that does not read")
          const reading = readAtLeast(socket, size, 20_000)
          socket.resume()
          const reply = yield* Effect.promise(() => reading)
          assert.strictEqual(reply.length, size)
          assert.isTrue(reply.every((byte) => byte === 0x41))
        }), tls()),
    40_000,
  )

  it.live("a connection the server ends while the client still sends is closed lingering: its replies are not reset", () =>
    withTcpServer(
      (server) =>
        Effect.gen(function* () {
          const socket = yield* tlsSocket(server.address.port)
          socket.pause()
          let outcome = "open"
          socket.on("end", () => outcome = outcome === "open" ? "end" : outcome)
          socket.on("error", (error: NodeJS.ErrnoException) => outcome = outcome === "open" ? `${error.code}` : outcome)
          // One line, answered into the client's receive buffer; then a line too long: the server closes this
          // connection while bytes keep coming, which a plain close would answer with a reset that loses the reply.
          socket.write("sea shells\n")
          yield* Effect.promise(() => sleep(100))
          socket.write("x".repeat(4096))
          for (let i = 0; i < 20; i++) {
            yield* Effect.promise(() => sleep(10))
            if (!socket.destroyed) socket.write("x".repeat(1024))
          }
          const reading = readAtLeast(socket, 1 << 20, 3000)
          socket.resume()
          const reply = yield* Effect.promise(() => reading)
          assert.strictEqual(reply.toString(), "3\n")
          assert.strictEqual(outcome, "end")
        }),
      tls({ maxLineBytes: 1024 }),
      Transform.count("s"),
    ))

  it.live("a reply still being written when the scope closes is delivered whole over TLS, then the connection ends", () =>
    Effect.gen(function* () {
      const inflate: Transform.TransformShape = {
        name: "inflate",
        framing: "stream",
        apply: (text) => text.toUpperCase().repeat(1_000_000),
      }
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      const server = yield* TcpServer.make({ host: "127.0.0.1", port: 0, ...tls({ drainTimeout: "5 seconds" }) }).pipe(
        Scope.provide(scope),
        Effect.provide(Transform.layer(inflate)),
      )
      const socket = yield* tlsSocket(server.address.port)
      socket.pause()
      socket.write("ping")
      yield* Effect.promise(() => sleep(150))
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.promise(() => sleep(100))
      let ended = false
      socket.on("end", () => ended = true)
      const reading = readAtLeast(socket, 4_000_000, 10_000)
      socket.resume()
      const reply = yield* Effect.promise(() => reading)
      yield* Fiber.join(closing)
      // Deno 2.9's TLS client never reports the end of a stream it was paused on for megabytes (a Node or Deno
      // server alike); the server's side of it is the same on both runtimes.
      if (!isDeno) yield* Effect.promise(() => waitUntil(() => ended, 3000, "the end of the connection"))
      assert.strictEqual(reply.length, 4_000_000)
      assert.isTrue(reply.every((byte, i) => byte === "PING".charCodeAt(i % 4)))
    }))
})

describe("TLS mismatches: one typed error each", () => {
  it.live("a plaintext client of a TLS server: closed without a reply (Node) or a TLS record (Deno), never garbage", () => {
    const logs = logCapture()
    return withTcpServer((server) =>
      Effect.gen(function* () {
        const port = server.address.port
        const plain = yield* TcpClient.make({ host: "127.0.0.1", port })
        const error = yield* Effect.flip(plain.request("hello"))
        // Node's TLS server closes at once; Deno's sends an alert record first, which the client recognises.
        assert.strictEqual(error._tag, isDeno ? "ProtocolViolation" : "ConnectionClosed", error.message)
        if (isDeno) assert.include(error.message, "it answered with a TLS record: it is a TLS server")
        yield* Effect.promise(() => waitUntil(() => statsOf(server).tlsHandshakeFailures === 1, 2000, "counted"))
        // Four more at once: each counted, one line logged.
        yield* Effect.forEach(
          [1, 2, 3, 4],
          () =>
            Effect.promise(async () => {
              const socket = await tcpConnect(port)
              socket.on("error", () => {})
              socket.write("plaintext\n")
              await readAtLeast(socket, 1 << 20, 2000).catch(() => Buffer.alloc(0))
              socket.destroy()
            }),
          { concurrency: 4 },
        )
        yield* Effect.promise(() => waitUntil(() => statsOf(server).tlsHandshakeFailures === 5, 2000, "all counted"))
        const warnings = logs.logged.filter((line) => line.includes("TLS handshake failed"))
        assert.strictEqual(warnings.length, 1, logs.logged.join("\n"))
        assert.match(
          warnings[0],
          /TLS handshake failed from 127\.0\.0\.1:\d+\/tcp on .*: not TLS, a plaintext client\?/,
        )
        // The server goes on serving TLS clients.
        assert.strictEqual(yield* (yield* tlsClient(port)).request("still here"), "STILL HERE")
      }), tls()).pipe(Effect.provide(logs.layer))
  })

  it.live("a TLS client of a plaintext server fails with TlsError NotTls", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const client = yield* tlsClient(server.address.port)
        const error = yield* Effect.flip(client.request("hello"))
        assert.strictEqual(error._tag, "TlsError")
        assert.strictEqual(error._tag === "TlsError" && error.kind, "NotTls", error.message)
        assert.match(
          error.message,
          /^TLS: 127\.0\.0\.1:\d+\/tcp does not answer in TLS \(.*\); is it a plaintext server\?$/,
        )
      })
    ))

  const refusedBy = (
    name: string,
    cert: { readonly cert: string; readonly key: string },
    clientTls: TcpClient.TcpClientOptions["tls"],
    kind: string,
    message: RegExp,
  ) =>
    it.live(`${name}: TlsError ${kind}, and not a byte of the sentence reaches the server`, () =>
      Effect.gen(function* () {
        const server = yield* recordingTlsServer(cert)
        const client = yield* TcpClient.make({ host: "127.0.0.1", port: server.port, tls: clientTls })
        const error = yield* Effect.flip(client.request("secret sentence"))
        assert.strictEqual(error._tag === "TlsError" ? error.kind : error._tag, kind, error.message)
        assert.match(error.message, message)
        yield* Effect.promise(() => sleep(100))
        assert.deepStrictEqual(Buffer.concat(server.received).toString(), "")
      }))

  refusedBy(
    "a certificate no trusted CA signed (the system's CAs)",
    pki.server,
    true,
    "Untrusted",
    /^TLS: the certificate of 127\.0\.0\.1:\d+\/tcp is not trusted \(.+\); trust its CA with --ca$/,
  )
  refusedBy(
    "a certificate signed by another CA than the one given",
    pki.untrusted,
    { ca: pki.ca },
    "Untrusted",
    /is not trusted/,
  )
  refusedBy(
    "an expired certificate",
    pki.expired,
    { ca: pki.ca },
    "Expired",
    /^TLS: the certificate of 127\.0\.0\.1:\d+\/tcp expired on 2020-01-02T00:00:00\.000Z$/,
  )
  refusedBy(
    "a certificate for other names than the servername",
    pki.server,
    { ca: pki.ca, servername: "example.com" },
    "HostnameMismatch",
    /^TLS: the certificate of 127\.0\.0\.1:\d+\/tcp is not issued for "example\.com" \(it names DNS:localhost, /,
  )

  it.live("the name checked is the host as given, not the address it resolved to", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const byName = yield* tlsClient(server.address.port, { host: "localhost" })
        assert.strictEqual(yield* byName.request("by name"), "BY NAME")
        const byAddress = yield* tlsClient(server.address.port)
        const error = yield* Effect.flip(byAddress.request("by address"))
        assert.strictEqual(error._tag === "TlsError" && error.kind, "HostnameMismatch", error.message)
        assert.include(error.message, `is not issued for "127.0.0.1" (it names DNS:localhost)`)
      }), { tls: pki.localhostOnly }))

  it.live("a servername that the certificate names is accepted, whatever address the host is", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const client = yield* tlsClient(server.address.port, { tls: { ca: pki.ca, servername: "localhost" } })
        assert.strictEqual(yield* client.request("named"), "NAMED")
      }), { tls: pki.localhostOnly }))

  it.live("a client that closes during the handshake is counted and its socket closed at once, not at a timeout", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const socket = yield* Effect.promise(() => tcpConnect(server.address.port))
        yield* Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))
        socket.end()
        yield* Effect.promise(() => closedByPeer(socket, 2000))
        yield* Effect.promise(() =>
          waitUntil(() => statsOf(server).tlsHandshakeFailures === 1, 2000, "the failed handshake counted")
        )
        assert.strictEqual(statsOf(server).connectionsOpen, 0)
      }), tls({ idleTimeout: "30 seconds" })))

  it.live("a TLS connection past maxConnections is closed at once and counted as rejected, not as a handshake failure", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const held = yield* tlsClient(server.address.port)
        assert.strictEqual(yield* held.request("one"), "ONE")
        const turnedAway = yield* tlsClient(server.address.port)
        const error = yield* Effect.flip(turnedAway.request("two"))
        assert.strictEqual(error._tag, "TlsError", error.message)
        yield* Effect.promise(() => sleep(100))
        assert.strictEqual(statsOf(server).connectionsRejected, 1)
        assert.strictEqual(statsOf(server).tlsHandshakeFailures, 0)
        assert.strictEqual(yield* held.request("three"), "THREE")
      }), tls({ maxConnections: 1 })))
})

describe("TLS files", () => {
  const garbage = pki.write("garbage.pem", "not a certificate\n")
  const fileCases: ReadonlyArray<[string, { cert: string; key: string }, string, string, RegExp]> = [
    [
      "a missing certificate",
      { cert: `${pki.dir}/missing.pem`, key: pki.server.key },
      "cert",
      "Unreadable",
      /^cannot read the TLS certificate file .*missing\.pem: no such file$/,
    ],
    [
      "a certificate file that holds no certificate",
      { cert: garbage, key: pki.server.key },
      "cert",
      "Invalid",
      /holds no valid PEM certificate/,
    ],
    ["a key file that holds no key", { cert: pki.server.cert, key: garbage }, "key", "Invalid", /private key/],
    [
      "the key of another certificate",
      { cert: pki.server.cert, key: pki.renewed.key },
      "key",
      "KeyMismatch",
      /is not the key of the certificate/,
    ],
  ]
  for (const [name, files, role, kind, message] of fileCases) {
    it.live(`${name} fails make with TlsFileError ${kind}, before the port is bound`, () =>
      Effect.gen(function* () {
        // The port is taken: had the server bound first, the error would be AddressInUse.
        const taken = yield* Effect.acquireRelease(
          Effect.callback<Net.Server>((resume) => {
            const holder = Net.createServer()
            holder.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(holder)))
          }),
          (holder) => Effect.sync(() => holder.close()),
        )
        const port = (taken.address() as Net.AddressInfo).port
        const error = yield* Effect.flip(TcpServer.make({ host: "127.0.0.1", port, tls: files }))
        assert.strictEqual(error._tag, "TlsFileError", error.message)
        if (error._tag !== "TlsFileError") return
        assert.strictEqual(error.role, role)
        assert.strictEqual(error.kind, kind)
        assert.match(error.message, message)
      }))
  }

  it.live("a client's missing or empty CA file fails make with TlsFileError (ca)", () =>
    Effect.gen(function* () {
      for (const [ca, kind] of [[`${pki.dir}/nope.pem`, "Unreadable"], [garbage, "Invalid"]] as const) {
        const error = yield* Effect.flip(TcpClient.make({ host: "127.0.0.1", port: 1, tls: { ca } }))
        assert.strictEqual(error._tag, "TlsFileError")
        assert.strictEqual(error._tag === "TlsFileError" && `${error.role} ${error.kind}`, `ca ${kind}`)
      }
    }))

  it.live("an empty CA path or servername fails make with InvalidOption naming it", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<[TcpClient.TcpClientOptions["tls"], string]> = [
        [{ ca: "" }, "TcpClient.tls.ca"],
        [{ servername: "" }, "TcpClient.tls.servername"],
      ]
      for (const [tls, option] of cases) {
        const error = yield* Effect.flip(TcpClient.make({ host: "127.0.0.1", port: 1, tls }))
        assert.strictEqual(error._tag === "InvalidOption" && error.option, option, error.message)
      }
      const server = yield* Effect.flip(TcpServer.make({ host: "127.0.0.1", port: 0, tls: { cert: "", key: "k" } }))
      assert.strictEqual(server._tag === "InvalidOption" && server.option, "TcpServer.tls.cert", server.message)
    }))

  it.live("layerConfig serves TLS from CAPS_TLS_CERT and CAPS_TLS_KEY, and refuses one without the other", () =>
    Effect.gen(function* () {
      const env = (vars: Record<string, string>) =>
        ConfigProvider.layer(ConfigProvider.fromUnknown({ CAPS_HOST: "127.0.0.1", CAPS_PORT: "0", ...vars }))
      const port = yield* TcpServer.TcpServer.use((server) => Effect.succeed(server.address.port)).pipe(
        Effect.andThen((port) =>
          Effect.gen(function* () {
            const certificate = yield* TcpServer.TcpServer.use((server) => server.tlsCertificate)
            assert.strictEqual(certificate?.subject, "CN=caps test server")
            const client = yield* TcpClient.TcpClient
            assert.strictEqual(yield* client.request("configured"), "CONFIGURED")
            return port
          }).pipe(
            Effect.provide(TcpClient.layerConfig.pipe(
              Layer.provide(env({ CAPS_PORT: String(port), CAPS_TLS: "true", CAPS_CA: pki.ca })),
            )),
          )
        ),
        Effect.provide(TcpServer.layerConfig.pipe(
          Layer.provide(env({ CAPS_TLS_CERT: pki.server.cert, CAPS_TLS_KEY: pki.server.key })),
        )),
      )
      assert.isAbove(port, 0)
      const error = yield* Effect.flip(
        Layer.build(TcpServer.layerConfig).pipe(Effect.provide(env({ CAPS_TLS_CERT: pki.server.cert }))),
      )
      assert.strictEqual(error._tag, "InvalidOption")
      assert.include(error.message, "TcpServer.tls.key")
    }))
})

describe("TLS reload", () => {
  it.live("reloadTls serves new connections the new certificate; an open connection keeps being served", () =>
    Effect.gen(function* () {
      const files = ownFiles("reloaded")
      const server = yield* TcpServer.make({ host: "127.0.0.1", port: 0, tls: files })
      const port = server.address.port
      const before = yield* tlsSocket(port)
      assert.strictEqual(before.getPeerCertificate().serialNumber, "1001")
      const open = yield* tlsClient(port)
      assert.strictEqual(yield* open.request("before"), "BEFORE")

      Fs.copyFileSync(pki.renewed.cert, files.cert)
      Fs.copyFileSync(pki.renewed.key, files.key)
      const reloaded = yield* server.reloadTls
      assert.strictEqual(reloaded?.subject, "CN=caps test server 2")
      assert.strictEqual(reloaded?.serialNumber, "1002")

      assert.strictEqual(yield* open.request("after"), "AFTER", "the open connection is still served")
      assert.strictEqual(statsOf(server).connectionsTotal, 2, "over the same connection")
      const after = yield* tlsSocket(port)
      assert.strictEqual(after.getPeerCertificate().serialNumber, "1002")
      assert.strictEqual(after.getPeerCertificate().subject.CN, "caps test server 2")

      // A broken file is refused, and the certificate served stays the one that worked.
      Fs.writeFileSync(files.key, "broken\n")
      const error = yield* Effect.flip(server.reloadTls)
      assert.strictEqual(error._tag === "TlsFileError" && error.kind, "Invalid")
      assert.strictEqual((yield* server.tlsCertificate)?.serialNumber, "1002")
      assert.strictEqual((yield* tlsSocket(port)).getPeerCertificate().serialNumber, "1002")
    }))

  it.live("a server without TLS has nothing to reload", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      assert.isUndefined(yield* server.reloadTls)
      assert.isUndefined(yield* server.tlsCertificate)
    }).pipe(Effect.provide(tcpServer())))
})
