// caps proxy between real clients and servers on loopback: caps's own (the
// library in this process, the CLI as child processes) and the textbook's
// Python programs. A plain relay answers both transports; each fault does
// what it says and is counted, the seeded ones the same way every run; the
// proxy refuses bad options and loops before binding, keeps its buffers
// bounded, follows Effect's Clock, and leaves no socket behind.
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import * as Faults from "../src/Faults.ts"
import * as FaultProxy from "../src/FaultProxy.ts"
import * as TcpClient from "../src/TcpClient.ts"
import * as TcpServer from "../src/TcpServer.ts"
import * as UdpClient from "../src/UdpClient.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { capsCommand, pythonCommand, run, runCaps, skipWithoutPython, start, startPeer } from "./support/Process.ts"
import { logCapture } from "./support/Logs.ts"
import { statsOf, tcpServer, udpServer } from "./support/Servers.ts"
import {
  closedByPeer,
  connection,
  echoPeer,
  openSockets,
  sleep,
  socketsBackTo,
  tcpConnect,
  tcpExchange,
  udpExchange,
  unusedPort,
  waitUntil,
} from "./support/Sockets.ts"

const noPython = skipWithoutPython("the textbook programs through the proxy (FaultProxy.test.ts)")

type Given = Omit<FaultProxy.FaultProxyOptions, "target"> & { readonly target?: FaultProxy.FaultProxyOptions["target"] }

/** A proxy on 127.0.0.1 and a free port, in front of `target`, living as long as the calling scope. */
const proxyTo = (port: number, options: Given = {}) =>
  FaultProxy.make({ host: "127.0.0.1", port: 0, target: `127.0.0.1:${port}`, ...options })

const proxyStats = (proxy: FaultProxy.FaultProxy["Service"]) => Effect.runSync(proxy.stats)

/** caps's UDP and TCP servers in this process. */
const capsServers = Layer.mergeAll(udpServer(), tcpServer())

const udpClientOf = (port: number, attempts = 3, attemptTimeout: Duration.Input = "300 millis") =>
  UdpClient.make({ host: "127.0.0.1", port, attempts, attemptTimeout })

/** A UDP socket of the test's own: what it receives, and a way to send from it. */
const rawUdp = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ socket: Dgram.Socket; received: Array<Buffer> }>((resolve) => {
      const socket = Dgram.createSocket("udp4")
      const received: Array<Buffer> = []
      socket.on("message", (message) => received.push(message))
      socket.bind({ address: "127.0.0.1", port: 0 }, () => resolve({ socket, received }))
    })
  ),
  ({ socket }) => Effect.sync(() => socket.close()),
)

/** A TCP target that records each read of each connection, and answers nothing unless told. */
const tcpTarget = (onConnection: (socket: Net.Socket) => void = () => {}) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ port: number; reads: Array<Buffer>; connections: () => number; server: Net.Server }>(
        (resolve) => {
          const reads: Array<Buffer> = []
          let connections = 0
          const sockets = new Set<Net.Socket>()
          const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
            connections++
            sockets.add(socket)
            socket.on("data", (chunk) => reads.push(chunk))
            socket.on("error", () => {})
            socket.on("close", () => sockets.delete(socket))
            onConnection(socket)
          })
          server.on("close", () => sockets.forEach((socket) => socket.destroy()))
          server.listen({ host: "127.0.0.1", port: 0 }, () =>
            resolve({
              port: (server.address() as Net.AddressInfo).port,
              reads,
              connections: () => connections,
              server,
            }))
        },
      )
    ),
    ({ server }) =>
      Effect.sync(() => {
        server.close()
        server.emit("close")
      }),
  )

const send = (socket: Dgram.Socket, port: number, text: string) =>
  Effect.promise(() => new Promise<void>((resolve) => socket.send(text, port, "127.0.0.1", () => resolve())))

const until = (ready: () => boolean, what: string, timeoutMs = 3000) =>
  Effect.promise(() => waitUntil(ready, timeoutMs, what))

const pause = (ms: number) => Effect.promise(() => sleep(ms))

describe("the fault plan", () => {
  it("mulberry32 gives its reference sequence, so a seed means the same faults on every runtime", () => {
    const next = Faults.mulberry32(1)
    assert.deepStrictEqual([next(), next(), next()], [0.6270739405881613, 0.002735721180215478, 0.5274470399599522])
  })

  it("a seed fixes the drop pattern; another seed gives another; other faults do not move it", () => {
    const pattern = (settings: Partial<Faults.FaultSettings>) => {
      const plan = new Faults.FaultPlan({ ...Faults.none, drop: 0.3, ...settings })
      return Array.from({ length: 40 }, () => plan.datagram("replies")._tag === "Dropped" ? "x" : ".").join("")
    }
    assert.strictEqual(pattern({ seed: 1 }), pattern({ seed: 1 }))
    assert.notStrictEqual(pattern({ seed: 1 }), pattern({ seed: 2 }))
    assert.strictEqual(pattern({ seed: 1, duplicate: 0.5, reorder: 0.5, jitterMillis: 20 }), pattern({ seed: 1 }))
  })

  it("a rate is the share drawn: 0.3 drops about 30% of 20,000 datagrams, and a higher rate keeps those drops", () => {
    const dropped = (rate: number) => {
      const plan = new Faults.FaultPlan({ ...Faults.none, drop: rate, seed: 7 })
      return Array.from({ length: 20_000 }, () => plan.datagram("requests")._tag === "Dropped")
    }
    const low = dropped(0.3)
    const high = dropped(0.5)
    const share = low.filter(Boolean).length / low.length
    assert.isTrue(share > 0.28 && share < 0.32, `share ${share}`)
    assert.isTrue(low.every((drop, i) => !drop || high[i]))
  })

  it("faults apply only to the direction asked for", () => {
    const plan = new Faults.FaultPlan({ ...Faults.none, drop: 1, direction: "replies" })
    assert.strictEqual(plan.datagram("requests")._tag, "Relayed")
    assert.strictEqual(plan.datagram("replies")._tag, "Dropped")
    assert.isUndefined(new Faults.FaultPlan({ ...Faults.none, slice: 1, direction: "replies" }).tcp("requests"))
  })

  it("the ready line names the faults, their direction and the seed of the random ones", () => {
    assert.strictEqual(Faults.describe(Faults.none), "none")
    assert.strictEqual(Faults.describe({ ...Faults.none, drop: 0.3 }), "drop 0.3 (both), seed 1")
    assert.strictEqual(
      Faults.describe({ ...Faults.none, slice: 1, resetAfter: 5, direction: "replies" }),
      "slice 1 B, reset after 5 B (replies)",
    )
  })
})

describe("FaultProxy over UDP", () => {
  it.live("with no faults it relays: a caps UdpClient gets its answer from the caps UDP server behind it", () =>
    Effect.gen(function* () {
      const server = yield* UdpServer.UdpServer
      const proxy = yield* proxyTo(server.address.port)
      assert.strictEqual(proxy.faults, "none")
      const reply = yield* (yield* udpClientOf(proxy.address.port)).request("hello, straße")
      assert.strictEqual(reply, "HELLO, STRASSE")
      const { udp } = proxyStats(proxy)
      assert.deepInclude(udp, { received: 2, relayed: 2, dropped: 0, flows: 1, flowsTotal: 1 })
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--drop 1 on replies: the caps UdpClient sends 3 times, the server answers 3 times, the client ends in Timeout [failure: udp-lost-reply]", () =>
    Effect.gen(function* () {
      const server = yield* UdpServer.UdpServer
      const proxy = yield* proxyTo(server.address.port, { drop: 1, direction: "replies" })
      const error = yield* Effect.flip((yield* udpClientOf(proxy.address.port, 3, "200 millis")).request("lost"))
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(statsOf(server).answered, 3)
      assert.deepInclude(proxyStats(proxy).udp, { received: 6, relayed: 3, dropped: 3 })
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--drop 0.3 --seed 1 drops the same datagrams in two runs, the ones the plan says", () =>
    Effect.gen(function* () {
      const arrived = (seed: number) =>
        Effect.gen(function* () {
          const peer = yield* echoPeer
          const proxy = yield* proxyTo(peer.port, { drop: 0.3, seed, direction: "requests" })
          const client = yield* rawUdp
          for (let i = 0; i < 30; i++) {
            yield* send(client.socket, proxy.address.port, `datagram ${i}`)
            yield* pause(2)
          }
          yield* until(() => client.received.length + proxyStats(proxy).udp.dropped >= 30, "30 datagrams settled")
          yield* until(() => peer.received.length === client.received.length, "the echoes")
          return peer.received.map((message) => Number(message.toString().split(" ")[1]))
        }).pipe(Effect.scoped)
      const first = yield* arrived(1)
      const second = yield* arrived(1)
      const plan = new Faults.FaultPlan({ ...Faults.none, drop: 0.3, seed: 1 })
      const planned = Array.from({ length: 30 }, (_, i) => i).filter(() => plan.datagram("requests")._tag !== "Dropped")
      assert.deepStrictEqual(first, planned)
      assert.deepStrictEqual(second, planned)
      assert.isTrue(planned.length < 30 && planned.length > 10, `${planned.length} of 30 arrived`)
      assert.notDeepEqual(yield* arrived(2), planned)
    }))

  it.live("--duplicate 1 on replies: two copies reach the client; the caps UdpClient takes one and the next answer is its own [failure: udp-duplicate-reply]", () =>
    Effect.gen(function* () {
      const server = yield* UdpServer.UdpServer
      const proxy = yield* proxyTo(server.address.port, { duplicate: 1, direction: "replies" })
      const raw = yield* rawUdp
      yield* send(raw.socket, proxy.address.port, "twice")
      yield* until(() => raw.received.length === 2, "two copies")
      assert.deepStrictEqual(raw.received.map(String), ["TWICE", "TWICE"])
      const client = yield* udpClientOf(proxy.address.port)
      assert.strictEqual(yield* client.request("first"), "FIRST")
      assert.strictEqual(yield* client.request("second"), "SECOND")
      assert.strictEqual(statsOf(server).answered, 3)
      assert.strictEqual(proxyStats(proxy).udp.duplicated, 3)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--reorder 1: of two datagrams sent back to back, the target gets the second first", () =>
    Effect.gen(function* () {
      const peer = yield* echoPeer
      const proxy = yield* proxyTo(peer.port, { reorder: 1, direction: "requests" })
      const client = yield* rawUdp
      yield* send(client.socket, proxy.address.port, "one")
      yield* send(client.socket, proxy.address.port, "two")
      yield* until(() => peer.received.length === 2, "both datagrams")
      assert.deepStrictEqual(peer.received.map(String), ["two", "one"])
      assert.strictEqual(proxyStats(proxy).udp.reordered, 1)
    }).pipe(Effect.scoped))

  it.live("--reorder: a held datagram with no next one goes after the hold time, not never", () =>
    Effect.gen(function* () {
      const peer = yield* echoPeer
      const proxy = yield* proxyTo(peer.port, { reorder: 1, direction: "requests" })
      const client = yield* rawUdp
      yield* send(client.socket, proxy.address.port, "alone")
      yield* pause(300)
      assert.strictEqual(peer.received.length, 0)
      yield* until(() => peer.received.length === 1, "the held datagram", 3000)
    }).pipe(Effect.scoped))

  it.effect("--delay follows the TestClock: a datagram delayed 10 s reaches the target when the clock passes 10 s", () =>
    Effect.gen(function* () {
      const peer = yield* echoPeer
      const proxy = yield* proxyTo(peer.port, { delay: "10 seconds", direction: "requests" })
      const client = yield* rawUdp
      yield* send(client.socket, proxy.address.port, "late")
      yield* pause(100)
      yield* TestClock.adjust("9 seconds")
      yield* pause(50)
      assert.strictEqual(peer.received.length, 0)
      yield* TestClock.adjust("1 second")
      yield* until(() => client.received.length === 1, "the delayed echo")
      assert.strictEqual(proxyStats(proxy).udp.delayed, 1)
    }).pipe(Effect.scoped))

  it.live("--blackhole: the target never sees a datagram and the caps UdpClient ends in Timeout [failure: udp-lost-request]", () =>
    Effect.gen(function* () {
      const peer = yield* echoPeer
      const proxy = yield* proxyTo(peer.port, { blackhole: true })
      const error = yield* Effect.flip((yield* udpClientOf(proxy.address.port, 2, "150 millis")).request("void"))
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(peer.received.length, 0)
      assert.deepInclude(proxyStats(proxy).udp, { blackholed: 2, relayed: 0 })
    }).pipe(Effect.scoped))

  it.live("each client is a flow of its own: the target sees two senders, each client gets its own replies", () =>
    Effect.gen(function* () {
      const senders = new Set<number>()
      const target = yield* rawUdp
      target.socket.on("message", (message, from) => {
        senders.add(from.port)
        target.socket.send(`echo ${message}`, from.port, from.address)
      })
      const peer = { port: target.socket.address().port }
      const proxy = yield* proxyTo(peer.port)
      const [one, two] = yield* Effect.all([
        Effect.promise(() => udpExchange(proxy.address.port, "one")),
        Effect.promise(() => udpExchange(proxy.address.port, "two", { from: "127.0.0.2" })),
      ], { concurrency: 2 })
      assert.strictEqual(one.toString(), "echo one")
      assert.strictEqual(two.toString(), "echo two")
      assert.strictEqual(senders.size, 2)
      assert.isFalse(senders.has(proxy.address.port))
      assert.deepInclude(proxyStats(proxy).udp, { flows: 2, flowsTotal: 2 })
    }).pipe(Effect.scoped))

  it.effect("a silent flow is closed when the TestClock passes the idle timeout, and its client's next datagram opens another", () =>
    Effect.gen(function* () {
      const peer = yield* echoPeer
      const proxy = yield* proxyTo(peer.port, { idleTimeout: "60 seconds" })
      const client = yield* rawUdp
      yield* send(client.socket, proxy.address.port, "one")
      yield* until(() => client.received.length === 1, "the echo")
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(proxyStats(proxy).udp.flows, 1)
      yield* TestClock.adjust("40 seconds")
      assert.deepInclude(proxyStats(proxy).udp, { flows: 0, idleClosed: 1 })
      yield* send(client.socket, proxy.address.port, "two")
      yield* until(() => client.received.length === 2, "the second echo")
      assert.deepInclude(proxyStats(proxy).udp, { flows: 1, flowsTotal: 2 })
    }).pipe(Effect.scoped))

  it.live("the datagrams of a flow reach the target in the order they came, duplicates side by side", () =>
    Effect.gen(function* () {
      const peer = yield* echoPeer
      const proxy = yield* proxyTo(peer.port, { duplicate: 1, direction: "requests" })
      const client = yield* rawUdp
      for (let i = 0; i < 20; i++) yield* send(client.socket, proxy.address.port, `${i}`)
      yield* until(() => peer.received.length === 40, "40 datagrams")
      assert.deepStrictEqual(peer.received.map(Number), Array.from({ length: 40 }, (_, i) => Math.floor(i / 2)))
    }).pipe(Effect.scoped))

  it.live("each fault is logged, a burst of them one line a second per kind, and the counts when the scope closes", () => {
    const logs = logCapture()
    return Effect.gen(function* () {
      const peer = yield* echoPeer
      const port = yield* Effect.scoped(Effect.gen(function* () {
        const proxy = yield* proxyTo(peer.port, { drop: 1, direction: "requests" })
        const client = yield* rawUdp
        for (let i = 0; i < 10; i++) yield* send(client.socket, proxy.address.port, `burst ${i}`)
        yield* until(() => proxyStats(proxy).udp.dropped === 10, "10 drops")
        return proxy.address.port
      }))
      const drops = logs.logged.filter((line) => line.includes("dropped a"))
      assert.strictEqual(drops.length, 1, logs.logged.join("\n"))
      assert.match(drops[0], /^Info dropped a 7-byte request from 127\.0\.0\.1:\d+\/udp$/)
      assert.deepStrictEqual(logs.logged.filter((line) => line.includes("stopped:")), [
        `Info caps proxy on 127.0.0.1:${port} stopped: UDP: 10 datagrams received, 0 relayed, 10 dropped; ` +
        "TCP: 0 connections, 0 bytes relayed",
      ])
    }).pipe(Effect.provide(logs.layer))
  })

  it.live("a datagram from the target to the proxy's port is not relayed back to the target: no loop", () =>
    Effect.gen(function* () {
      const target = yield* rawUdp
      const proxy = yield* proxyTo(target.socket.address().port)
      yield* send(target.socket, proxy.address.port, "from the target")
      yield* until(() => proxyStats(proxy).udp.loopGuarded === 1, "the loop refused")
      yield* pause(100)
      assert.strictEqual(target.received.length, 0)
      assert.strictEqual(proxyStats(proxy).udp.relayed, 0)
    }).pipe(Effect.scoped))
})

describe("FaultProxy over TCP", () => {
  it.live("with no faults it relays a whole caps TcpClient session, several sentences on one connection", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const proxy = yield* proxyTo(server.address.port)
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: proxy.address.port })
      for (const sentence of ["one", "straße", "three"]) {
        assert.strictEqual(yield* client.request(sentence), sentence === "straße" ? "STRASSE" : sentence.toUpperCase())
      }
      assert.deepInclude(proxyStats(proxy).tcp, { connections: 1, open: 1 })
      assert.strictEqual(statsOf(server).connectionsTotal, 1)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("a half-close is relayed: the client still gets its whole reply, then end of stream", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const proxy = yield* proxyTo(server.address.port)
      const reply = yield* Effect.promise(() =>
        tcpExchange(proxy.address.port, ["half ", "closed"], { pauseMs: 5, halfClose: true })
      )
      assert.strictEqual(reply.data.toString(), "HALF CLOSED")
      assert.isTrue(reply.ended)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--slice 1: the server reads straße byte by byte, ß split across two reads, and the caps server still answers STRASSE [failure: utf8-split-across-reads]", () =>
    Effect.gen(function* () {
      const target = yield* tcpTarget()
      const proxy = yield* proxyTo(target.port, { slice: 1, direction: "requests" })
      // The proxy pauses after each slice so that the receiver reads it alone; a receiver stalled for longer than
      // the pause (a loaded machine) reads two slices at once, and that try proves nothing: at most three tries.
      for (let tries = 0; tries < 3; tries++) {
        target.reads.length = 0
        const socket = yield* connection(proxy.address.port)
        socket.write("straße")
        yield* until(() => target.reads.reduce((n, read) => n + read.length, 0) === 7, "7 bytes")
        socket.destroy()
        if (target.reads.length === 7) break
      }
      assert.deepStrictEqual(
        target.reads.map((read) => [...read]),
        [..."strasse"].map((_, i) =>
          [
            [0x73],
            [0x74],
            [0x72],
            [0x61],
            [0xc3],
            [0x9f],
            [0x65],
          ][i]
        ),
      )
      const server = yield* TcpServer.TcpServer
      const behind = yield* proxyTo(server.address.port, { slice: 1, direction: "requests" })
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: behind.address.port })
      assert.strictEqual(yield* client.request("straße"), "STRASSE")
      assert.isAtLeast(proxyStats(behind).tcp.slices, 8)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--reset-after 3 on replies: the caps TcpClient reads 3 bytes of its reply, then ConnectionClosed (Reset) [failure: tcp-reset-mid-reply]", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const proxy = yield* proxyTo(server.address.port, { resetAfter: 3, direction: "replies" })
      const raw = yield* Effect.promise(() =>
        new Promise<{ data: string; error: string | undefined }>((resolve) => {
          const socket = Net.connect({ host: "127.0.0.1", port: proxy.address.port })
          let data = ""
          socket.on("data", (chunk) => data += chunk)
          socket.on("error", (error) => resolve({ data, error: (error as NodeJS.ErrnoException).code }))
          socket.on("end", () => resolve({ data, error: undefined }))
          socket.write("hello\n")
        })
      )
      assert.deepStrictEqual(raw, { data: "HEL", error: "ECONNRESET" })
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: proxy.address.port })
      const error = yield* Effect.flip(client.request("hello"))
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, "Reset")
      assert.strictEqual(proxyStats(proxy).tcp.resets, 2)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--close-after 3 on replies: the client reads 3 bytes, then a clean end of stream", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const proxy = yield* proxyTo(server.address.port, { closeAfter: 3, direction: "replies" })
      const reply = yield* Effect.promise(() => tcpExchange(proxy.address.port, ["hello\n"]))
      assert.strictEqual(reply.data.toString(), "HEL")
      assert.isTrue(reply.ended)
      assert.strictEqual(proxyStats(proxy).tcp.closes, 1)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--blackhole: the connection is accepted, the target never asked, and the caps TcpClient ends in Timeout [failure: tcp-accept-no-answer]", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const proxy = yield* proxyTo(server.address.port, { blackhole: true })
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: proxy.address.port, replyTimeout: "300 millis" })
      const error = yield* Effect.flip(client.request("anyone?"))
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(statsOf(server).connectionsTotal, 0)
      assert.deepInclude(proxyStats(proxy).tcp, { connections: 1, blackholedBytes: 8, bytesRelayed: 0 })
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--delay 200 on replies: the reply comes no sooner than 200 ms", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const proxy = yield* proxyTo(server.address.port, { delay: 200, direction: "replies" })
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: proxy.address.port })
      const started = Date.now()
      assert.strictEqual(yield* client.request("slow"), "SLOW")
      assert.isAtLeast(Date.now() - started, 190)
      assert.strictEqual(proxyStats(proxy).tcp.delayed, 1)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("--bandwidth 200: 100 bytes of reply take about half a second, in paced pieces", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const proxy = yield* proxyTo(server.address.port, { bandwidth: 200, direction: "replies" })
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: proxy.address.port })
      const started = Date.now()
      assert.strictEqual(yield* client.request("x".repeat(99)), "X".repeat(99))
      const millis = Date.now() - started
      assert.isTrue(millis >= 400 && millis < 2000, `${millis} ms`)
      assert.isAtLeast(proxyStats(proxy).tcp.throttled, 4)
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live(
    "backpressure: a client that never reads stops the proxy reading from the server, memory stays bounded [failure: slow-reader]",
    () =>
      Effect.gen(function* () {
        const total = 128 * 1024 * 1024
        let written = 0
        const target = yield* tcpTarget((socket) => {
          const chunk = Buffer.alloc(64 * 1024, 0x61)
          const more = () => {
            while (written < total) {
              written += chunk.length
              if (!socket.write(chunk)) return socket.once("drain", more)
            }
            socket.end()
          }
          more()
        })
        const proxy = yield* proxyTo(target.port)
        const socket = yield* connection(proxy.address.port)
        socket.pause()
        yield* until(() => written > 0, "the target writing")
        yield* pause(1000)
        // Kernel buffers on both legs (autotuned: 8 to 10 MiB here) and the proxy's high-water mark, never 128 MiB.
        assert.isBelow(written, total / 3, `${written} bytes taken from the target`)
        let read = 0
        socket.on("data", (chunk: Buffer) => read += chunk.length)
        socket.resume()
        yield* Effect.promise(() => closedByPeer(socket, 20_000))
        assert.strictEqual(read, total)
      }).pipe(Effect.scoped),
    30_000,
  )

  it.live("a target that refuses: the client's connection is reset, and the failure counted", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      const proxy = yield* proxyTo(port)
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: proxy.address.port })
      const error = yield* Effect.flip(client.request("anyone?"))
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, "Reset")
      assert.strictEqual(proxyStats(proxy).tcp.connectFailures, 1)
    }).pipe(Effect.scoped))

  it.effect("a silent connection is closed when the TestClock passes the idle timeout, not before", () =>
    Effect.gen(function* () {
      const target = yield* tcpTarget()
      const proxy = yield* proxyTo(target.port, { idleTimeout: "60 seconds" })
      const socket = yield* connection(proxy.address.port)
      yield* until(() => target.connections() === 1, "the relay connected")
      yield* TestClock.adjust("50 seconds")
      assert.deepInclude(proxyStats(proxy).tcp, { open: 1, idleClosed: 0 })
      yield* TestClock.adjust("20 seconds")
      yield* Effect.promise(() => closedByPeer(socket))
      assert.strictEqual(proxyStats(proxy).tcp.idleClosed, 1)
    }).pipe(Effect.scoped))
})

describe("FaultProxy's options and lifecycle", () => {
  it.live("a bad option fails with InvalidOption before binding: the port it names, held by another, is not the error", () =>
    Effect.gen(function* () {
      const holder = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Net.Server>((resolve) => {
            const server = Net.createServer()
            server.listen({ host: "127.0.0.1", port: 0 }, () => resolve(server))
          })
        ),
        (server) => Effect.sync(() => server.close()),
      )
      const port = (holder.address() as Net.AddressInfo).port
      const make = (given: Given) =>
        Effect.flip(Effect.scoped(FaultProxy.make({ host: "127.0.0.1", port, target: "127.0.0.1:9", ...given })))
      const cases: ReadonlyArray<readonly [Given, string]> = [
        [{ drop: 1.5 }, "FaultProxy.drop"],
        [{ target: "nowhere" }, "FaultProxy.target"],
        [{ slice: 0 }, "FaultProxy.slice"],
        [{ delay: "soon" as Duration.Input }, "FaultProxy.delay"],
        [{ jitter: -5 }, "FaultProxy.jitter"],
        [{ seed: 2 ** 32 }, "FaultProxy.seed"],
        [{ idleTimeout: 0 }, "FaultProxy.idleTimeout"],
        [{ resetAfter: 1, closeAfter: 1 }, "FaultProxy.closeAfter"],
        [{ target: `127.0.0.1:${port}` }, "FaultProxy.target"],
      ]
      for (const [given, option] of cases) {
        const error = yield* make(given)
        assert.strictEqual(error._tag, "InvalidOption", JSON.stringify(given))
        assert.strictEqual(error._tag === "InvalidOption" && error.option, option)
      }
      assert.strictEqual((yield* make({}))._tag, "AddressInUse")
    }))

  it.live("on ::1 it relays both transports to an IPv4 target, and names the target as given", () =>
    Effect.gen(function* () {
      const udp = yield* UdpServer.UdpServer
      const tcp = yield* TcpServer.TcpServer
      const [udpProxy, tcpProxy] = yield* Effect.all([
        FaultProxy.make({ host: "::1", port: 0, target: `localhost:${udp.address.port}` }),
        FaultProxy.make({ host: "::1", port: 0, target: { host: "127.0.0.1", port: tcp.address.port } }),
      ])
      assert.strictEqual(udpProxy.address.host, "::1")
      assert.deepStrictEqual(udpProxy.target, { host: "localhost", address: "127.0.0.1", port: udp.address.port })
      const datagram = yield* Effect.promise(() => udpExchange(udpProxy.address.port, "über", { host: "::1" }))
      assert.strictEqual(datagram.toString(), "ÜBER")
      const reply = yield* Effect.promise(() =>
        tcpExchange(tcpProxy.address.port, ["über"], { host: "::1", halfClose: true })
      )
      assert.strictEqual(reply.data.toString(), "ÜBER")
    }).pipe(Effect.scoped, Effect.provide(capsServers)))

  it.live("closing its scope closes every socket: the proxy's own, each flow's and each relayed connection's", () =>
    Effect.gen(function* () {
      const udp = yield* UdpServer.UdpServer
      const tcp = yield* TcpServer.TcpServer
      yield* pause(50)
      const before = openSockets()
      const scope = yield* Scope.make()
      const [udpProxy, tcpProxy] = yield* Effect.all([proxyTo(udp.address.port), proxyTo(tcp.address.port)]).pipe(
        Scope.provide(scope),
      )
      yield* Effect.promise(() => udpExchange(udpProxy.address.port, "a flow"))
      yield* Effect.promise(() => udpExchange(udpProxy.address.port, "another", { from: "127.0.0.2" }))
      const sockets = yield* Effect.promise(() =>
        Promise.all([tcpConnect(tcpProxy.address.port), tcpConnect(tcpProxy.address.port)])
      )
      yield* until(() => statsOf(tcp).connectionsOpen === 2, "two relayed connections")
      assert.strictEqual(proxyStats(udpProxy).udp.flows, 2)
      yield* Scope.close(scope, Exit.void)
      for (const socket of sockets) yield* Effect.promise(() => closedByPeer(socket))
      for (const socket of sockets) socket.destroy()
      yield* Effect.promise(() => socketsBackTo(before))
      yield* until(() => statsOf(tcp).connectionsOpen === 0, "the server's side closed")
    }).pipe(Effect.scoped, Effect.provide(capsServers)))
})

// The textbook's programs through the proxy: what they do, observed.
describe("FaultProxy and the textbook's programs", () => {
  const bookClient = (script: "UDPClient.py" | "TCPClient.py", port: number, sentence: string, timeoutMs = 10_000) =>
    run(pythonCommand(script, ["127.0.0.1", String(port)]), { input: sentence + "\n", timeoutMs })

  it.live.skipIf(noPython)(
    "the book's clients get the book's servers' answers through a plain proxy",
    () =>
      Effect.gen(function* () {
        const [udp, tcp] = yield* Effect.all([startPeer("UDPServer.py"), startPeer("TCPServer.py")], { concurrency: 2 })
        const [udpProxy, tcpProxy] = yield* Effect.all([proxyTo(udp.port), proxyTo(tcp.port)])
        const [fromUdp, fromTcp] = yield* Effect.all([
          bookClient("UDPClient.py", udpProxy.address.port, "straße"),
          bookClient("TCPClient.py", tcpProxy.address.port, "straße"),
        ], { concurrency: 2 })
        assert.strictEqual(fromUdp.stdout, "Input lowercase sentence:STRASSE\n")
        assert.strictEqual(fromTcp.stdout, "Input lowercase sentence:From Server:  STRASSE\n")
      }),
    30_000,
  )

  it.live.skipIf(noPython)(
    "--drop 1 on replies: the book's UDPClient waits forever (killed at 3 s) where caps's ends in Timeout",
    () =>
      Effect.gen(function* () {
        const udp = yield* startPeer("UDPServer.py")
        const proxy = yield* proxyTo(udp.port, { drop: 1, direction: "replies" })
        const book = yield* bookClient("UDPClient.py", proxy.address.port, "hello", 3000)
        assert.isTrue(book.timedOut)
        assert.strictEqual(book.stdout, "Input lowercase sentence:")
        const error = yield* Effect.flip((yield* udpClientOf(proxy.address.port, 2, "200 millis")).request("hello"))
        assert.strictEqual(error._tag, "Timeout")
      }),
    30_000,
  )

  it.live.skipIf(noPython)(
    "--slice 1 on requests: the book's TCPServer takes its first read as the sentence and answers S [failure: sentence-split-across-reads]",
    () =>
      Effect.gen(function* () {
        const tcp = yield* startPeer("TCPServer.py")
        const proxy = yield* proxyTo(tcp.port, { slice: 1, direction: "requests" })
        const book = yield* bookClient("TCPClient.py", proxy.address.port, "straße")
        assert.strictEqual(book.stdout, "Input lowercase sentence:From Server:  S\n")
      }),
    30_000,
  )
})

const PROXY_READY = /^caps proxy: ready on \S+:(\d+)\/udp\+tcp /

describe("caps proxy, the command", () => {
  it.live(
    "relays both transports to caps serve, says its faults in its ready line, and logs the counts when stopped",
    () =>
      Effect.gen(function* () {
        const servers = yield* start(capsCommand(["serve", "--host", "127.0.0.1", "--port", "0"]), {
          count: 2,
          ready: /^caps (?:udp|tcp)-server: ready on \S+:(\d+)\//,
        })
        const [udpPort, tcpPort] = servers.ports
        const proxy = yield* start(
          capsCommand(["proxy", "--port", "0", "--target", `127.0.0.1:${udpPort}`, "--drop", "0.3", "--seed", "1"]),
          { ready: PROXY_READY },
        )
        assert.match(
          proxy.stdout(),
          new RegExp(
            `^caps proxy: ready on 127\\.0\\.0\\.1:${proxy.port}/udp\\+tcp -> 127\\.0\\.0\\.1:${udpPort}, ` +
              `faults: drop 0\\.3 \\(both\\), seed 1\\n$`,
          ),
        )
        const udp = yield* runCaps(["udp-client", "--host", "127.0.0.1", "--port", String(proxy.port), "-m", "hi"])
        assert.strictEqual(udp.stdout, "HI\n", udp.stderr)
        const stopped = yield* proxy.stop("SIGTERM")
        assert.strictEqual(stopped.code, 0)
        assert.match(proxy.stderr(), /caps proxy on 127\.0\.0\.1:\d+ stopped: UDP: \d+ datagrams received, \d+ relayed/)
        const tcpProxy = yield* start(
          capsCommand(["proxy", "--port", "0", "--target", `127.0.0.1:${tcpPort}`]),
          { ready: PROXY_READY },
        )
        const tcp = yield* runCaps(["tcp-client", "--host", "127.0.0.1", "--port", String(tcpProxy.port), "-m", "hé"])
        assert.strictEqual(tcp.stdout, "HÉ\n", tcp.stderr)
        assert.strictEqual((yield* tcpProxy.stop("SIGINT")).code, 0)
        assert.match(
          tcpProxy.stderr(),
          /stopped: UDP: 0 datagrams received, 0 relayed; TCP: 1 connection, \d+ bytes relayed/,
        )
      }),
    60_000,
  )

  it.live(
    "--drop 1 --direction replies: caps udp-client says it got no answer and exits 6 (Timeout)",
    () =>
      Effect.gen(function* () {
        const servers = yield* start(capsCommand(["udp-server", "--host", "127.0.0.1", "--port", "0"]), {
          ready: /^caps udp-server: ready on \S+:(\d+)\//,
        })
        const proxy = yield* start(
          capsCommand([
            "proxy",
            "--port",
            "0",
            "--target",
            `127.0.0.1:${servers.port}`,
            "--drop",
            "1",
            "--direction",
            "replies",
          ]),
          { ready: PROXY_READY },
        )
        const client = yield* runCaps([
          "udp-client",
          "--host",
          "127.0.0.1",
          "--port",
          String(proxy.port),
          "--timeout",
          "0.2",
          "-m",
          "lost",
        ])
        assert.strictEqual(client.code, 6)
        assert.strictEqual(
          client.stderr,
          `caps: no answer from 127.0.0.1:${proxy.port}/udp after 3 attempts of 200 ms\n`,
        )
      }),
    60_000,
  )

  it.live("a bad option is a usage error: one line, exit 2, nothing bound", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      const both = yield* runCaps(["proxy", "--target", "127.0.0.1:9", "--reset-after", "1", "--close-after", "1"])
      assert.strictEqual(both.code, 2)
      assert.strictEqual(
        both.stderr,
        "caps: invalid option FaultProxy.closeAfter: give either resetAfter or closeAfter, not both\n",
      )
      const loop = yield* runCaps(["proxy", "--port", String(port), "--target", `127.0.0.1:${port}`])
      assert.strictEqual(loop.code, 2)
      assert.match(loop.stderr, /^caps: invalid option FaultProxy\.target: .* it would relay to itself\n$/)
    }), 60_000)
})
