// The health check in the library, `Health.check`: healthy only when both the
// TCP and the UDP server answer the probe with the expected reply within the
// timeout; a server down, silent or answering otherwise fails its own check,
// and the report says which and why.
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import * as Health from "../src/Health.ts"
import * as TcpServer from "../src/TcpServer.ts"
import * as Transform from "../src/Transform.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { makePki } from "./support/Certificates.ts"
import { isDeno } from "./support/Process.ts"
import { udpPeer, unusedPort } from "./support/Sockets.ts"

const pki = makePki()
afterAll(() => pki.remove())

/** caps's TCP and UDP servers in this process, on free loopback ports. */
const servers = (transform: Transform.TransformShape = Transform.upper, tcp: TcpServer.TcpServerOptions = {}) =>
  Effect.all([
    TcpServer.make({ host: "127.0.0.1", port: 0, ...tcp }),
    UdpServer.make({ host: "127.0.0.1", port: 0 }),
  ]).pipe(
    Effect.map(([tcp, udp]) => ({ tcpPort: tcp.address.port, udpPort: udp.address.port })),
    Effect.provide(Transform.layer(transform)),
  )

const check = (options: Health.HealthOptions) => Health.check({ host: "127.0.0.1", timeout: "1 second", ...options })

/** A TCP server that accepts and never answers; closed with the scope. */
const silentTcp = Effect.acquireRelease(
  Effect.callback<{ readonly server: Net.Server; readonly port: number }>((resume) => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
    })
    server.on("close", () => sockets.forEach((socket) => socket.destroy()))
    server.listen(
      { host: "127.0.0.1", port: 0 },
      () => resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port })),
    )
  }),
  ({ server }) => Effect.sync(() => server.close()),
)

describe("Health.check", () => {
  it.live("is healthy when both servers answer the probe upper-cased", () =>
    Effect.gen(function* () {
      const { tcpPort, udpPort } = yield* servers()
      const report = yield* check({ tcpPort, udpPort })
      assert.isTrue(report.healthy)
      assert.isTrue(report.tcp.ok && report.tcp.reply === "CAPS HEALTH CHECK")
      assert.isTrue(report.udp.ok && report.udp.reply === "CAPS HEALTH CHECK")
      assert.match(Health.format(report.tcp), /^tcp ok: 127\.0\.0\.1:\d+\/tcp answered "CAPS HEALTH CHECK" in \d+ ms$/)
      assert.match(Health.format(report.udp), /^udp ok: 127\.0\.0\.1:\d+\/udp answered "CAPS HEALTH CHECK" in \d+ ms$/)
    }))

  it.live("a TCP server that is down fails the TCP check only", () =>
    Effect.gen(function* () {
      const { udpPort } = yield* servers()
      const tcpPort = yield* Effect.promise(unusedPort)
      const report = yield* check({ tcpPort, udpPort })
      assert.isFalse(report.healthy)
      assert.isTrue(!report.tcp.ok && report.tcp.error._tag === "ConnectionRefused")
      assert.isTrue(report.udp.ok)
      assert.strictEqual(Health.whatFailed(report), "the tcp check failed")
      assert.match(Health.format(report.tcp), /^tcp failed: connection refused by 127\.0\.0\.1:\d+\/tcp$/)
    }))

  it.live("a UDP server that is down fails the UDP check only, within the timeout", () =>
    Effect.gen(function* () {
      const { tcpPort } = yield* servers()
      const udpPort = yield* Effect.promise(unusedPort)
      const started = Date.now()
      const report = yield* check({ tcpPort, udpPort, timeout: "600 millis" })
      assert.isBelow(Date.now() - started, 1500)
      assert.isFalse(report.healthy)
      assert.isTrue(report.tcp.ok)
      // Node reports ICMP port unreachable; Deno's node:dgram does not, so there it is a timeout.
      assert.isTrue(!report.udp.ok && report.udp.error._tag === (isDeno ? "Timeout" : "ConnectionRefused"))
      assert.strictEqual(Health.whatFailed(report), "the udp check failed")
    }))

  it.live("servers that never answer fail both checks at the timeout, checked at the same time", () =>
    Effect.gen(function* () {
      const silent = yield* silentTcp
      const deaf = yield* Effect.acquireRelease(
        Effect.promise(() => udpPeer(() => undefined)),
        (peer) => Effect.sync(() => peer.close()),
      )
      const started = Date.now()
      const report = yield* check({ tcpPort: silent.port, udpPort: deaf.port, timeout: "600 millis" })
      const took = Date.now() - started
      assert.isTrue(took >= 550 && took < 1000, `took ${took} ms: both at once, each within the timeout`)
      assert.isTrue(!report.tcp.ok && report.tcp.error._tag === "Timeout")
      assert.isTrue(!report.udp.ok && report.udp.error._tag === "Timeout")
      assert.strictEqual(deaf.received.length, 3, "three attempts within the timeout")
    }))

  it.live("the timeout bounds a check as a whole: a slow handshake and a slow reply together exceed it", () =>
    Effect.gen(function* () {
      const { udpPort } = yield* servers()
      // Each step takes 350 ms, under the 600 ms timeout; together they take 700.
      const slow = yield* Effect.acquireRelease(
        Effect.callback<NodeTls.Server>((resume) => {
          const context = NodeTls.createSecureContext({
            cert: Fs.readFileSync(pki.server.cert),
            key: Fs.readFileSync(pki.server.key),
          })
          const server = NodeTls.createServer({
            ...{ cert: Fs.readFileSync(pki.server.cert), key: Fs.readFileSync(pki.server.key) },
            SNICallback: (_name, done) => setTimeout(() => done(null, context), 350),
          }, (socket) => {
            socket.on("error", () => {})
            socket.once("data", (chunk: Buffer) => setTimeout(() => socket.write(chunk.toString().toUpperCase()), 350))
          })
          server.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close()),
      )
      const tcpPort = (slow.address() as Net.AddressInfo).port
      const report = yield* check({ host: "localhost", tcpPort, udpPort, tls: { ca: pki.ca }, timeout: "600 millis" })
      assert.isTrue(!report.tcp.ok && report.tcp.error._tag === "Timeout", Health.format(report.tcp))
      assert.isTrue(report.udp.ok, Health.format(report.udp))
    }))

  it.live("a server with another transform answers otherwise: failed, unless expect says what it answers", () =>
    Effect.gen(function* () {
      const counting = yield* Transform.count("s")
      const { tcpPort, udpPort } = yield* servers(counting)
      const report = yield* check({ tcpPort, udpPort })
      assert.isFalse(report.healthy)
      assert.isTrue(!report.tcp.ok && report.tcp.error._tag === "WrongReply")
      assert.match(
        Health.format(report.udp),
        /^udp failed: 127\.0\.0\.1:\d+\/udp answered "1", expected "CAPS HEALTH CHECK"$/,
      )
      assert.isTrue((yield* check({ tcpPort, udpPort, expect: "1" })).healthy)
    }))

  it.live("checks TCP over TLS when asked, the certificate verified", () =>
    Effect.gen(function* () {
      const { tcpPort, udpPort } = yield* servers(Transform.upper, { tls: pki.server })
      const report = yield* check({ tcpPort, udpPort, tls: { ca: pki.ca } })
      assert.isTrue(report.healthy)
      assert.match(Health.format(report.tcp), /^tcp ok: 127\.0\.0\.1:\d+\/tcp \(TLS\) answered "CAPS HEALTH CHECK"/)
      const untrusting = yield* check({ tcpPort, udpPort, tls: true })
      assert.isTrue(!untrusting.tcp.ok && untrusting.tcp.error._tag === "TlsError")
      const plaintext = yield* check({ tcpPort, udpPort })
      assert.isFalse(plaintext.tcp.ok)
    }))

  it.live("bad options fail before anything is sent", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Health.check({ port: 0 }))
      assert.strictEqual(error._tag === "InvalidOption" && error.option, "Health.port")
      const timeout = yield* Effect.flip(Health.check({ timeout: 0 }))
      assert.strictEqual(timeout._tag === "InvalidOption" && timeout.option, "Health.timeout")
    }))
})
