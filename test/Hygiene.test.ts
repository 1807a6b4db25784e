// Descriptor and fiber hygiene of the TCP server: 10,000 connect/disconnect
// cycles, clients that reset mid-request, clients that half-close, and client
// processes killed mid-write all leave no descriptor behind (this process's
// TCP and UDP sockets never end above where they started), bring
// `stats().connectionsOpen` back to 0, and leave the server answering.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as TcpServer from "../src/TcpServer.ts"
import { skipWithoutPython } from "./support/Process.ts"
import {
  openSockets,
  sleep,
  socketsBackTo,
  spawnPeerProcess,
  tcpConnect,
  tcpExchange,
  waitUntil,
} from "./support/Sockets.ts"
import { statsOf, withTcpServer } from "./support/Servers.ts"

const noPython = skipWithoutPython("the killed-client test of Hygiene.test.ts")

/** Waits until the server holds no connection, then checks that no descriptor was left behind. */
const settled = (server: TcpServer.TcpServer["Service"], socketsBefore: number) =>
  Effect.promise(async () => {
    await waitUntil(() => statsOf(server).connectionsOpen === 0, 5000, "every connection closed by the server")
    await socketsBackTo(socketsBefore)
    assert.strictEqual(statsOf(server).connectionsOpen, 0)
  })

/** The server answers a normal request. */
const alive = (port: number) =>
  Effect.promise(() => tcpExchange(port, ["still alive"], { halfClose: true })).pipe(
    Effect.map((reply) => {
      assert.strictEqual(reply.data.toString(), "STILL ALIVE")
      assert.isTrue(reply.ended)
    }),
  )

/** Opens a connection and closes it at once; resolves when it is closed on this side. */
const connectAndClose = (port: number): Promise<void> =>
  tcpConnect(port).then((socket) =>
    new Promise<void>((resolve) => {
      socket.once("close", () => resolve())
      socket.destroy()
    })
  )

/**
 * Runtimes open some descriptors lazily, which are not leaks: Deno opens a Unix socket pair about half a
 * second after it starts, whatever the program does. A baseline is taken after that, and after a few
 * hundred connect/close cycles.
 */
const warmUp = (server: TcpServer.TcpServer["Service"]) =>
  Effect.promise(async () => {
    await sleep(Math.max(0, 1500 - process.uptime() * 1000))
    for (let i = 0; i < 4; i++) {
      const total = statsOf(server).connectionsTotal + 100
      await Promise.all(Array.from({ length: 100 }, () => connectAndClose(server.address.port)))
      await waitUntil(() => statsOf(server).connectionsTotal >= total, 5000, "the warm-up connections accepted")
    }
    await waitUntil(() => statsOf(server).connectionsOpen === 0, 5000, "the warm-up connections closed")
  })

// A client process that writes as fast as it can and never reads, until it is killed.
const WRITER = `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
chunk = b"killed mid-write " * 4096
while True:
    s.sendall(chunk)
`

describe("TcpServer descriptor and fiber hygiene", () => {
  it.live(
    "10,000 connect/disconnect cycles, 250 at a time, leave no descriptor and no connection behind",
    () =>
      withTcpServer((server) =>
        Effect.gen(function* () {
          const port = server.address.port
          const batch = (size: number) =>
            Effect.promise(async () => {
              const total = statsOf(server).connectionsTotal + size
              await Promise.all(Array.from({ length: size }, () => connectAndClose(port)))
              // A cycle ends when the server has accepted the connection too: a client can connect and close
              // before it is accepted, and without this the kernel's accept queue overflows (SYNs dropped, 1 s
              // retransmits) because the clients outrun the server in this same process.
              await waitUntil(() => statsOf(server).connectionsTotal >= total, 5000, "the server to accept the batch")
            })
          yield* warmUp(server)
          const totalBefore = statsOf(server).connectionsTotal
          const socketsBefore = openSockets()
          const started = Date.now()
          for (let i = 0; i < 40; i++) yield* batch(250)
          const millis = Date.now() - started
          yield* settled(server, socketsBefore)
          console.log(`10,000 connect/disconnect cycles in ${millis} ms; sockets ${socketsBefore} -> ${openSockets()}`)
          assert.strictEqual(statsOf(server).connectionsTotal - totalBefore, 10_000)
          assert.strictEqual(statsOf(server).connectionsRejected, 0)
          yield* alive(port)
        })
      ),
    30_000,
  )

  it.live("200 clients that reset mid-request leave no descriptor and no connection behind", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const port = server.address.port
        yield* warmUp(server)
        const socketsBefore = openSockets()
        const sockets = yield* Effect.promise(() => Promise.all(Array.from({ length: 200 }, () => tcpConnect(port))))
        yield* Effect.promise(() => waitUntil(() => statsOf(server).connectionsOpen === 200, 3000, "200 connections"))
        for (const [i, socket] of sockets.entries()) {
          socket.write(`half a sentence from client ${i}, then a reset`)
          socket.resetAndDestroy()
        }
        yield* settled(server, socketsBefore)
        yield* alive(port)
      })
    ))

  it.live("200 clients that send then half-close each get their full reply, then EOF, and leave nothing behind", () =>
    withTcpServer((server) =>
      Effect.gen(function* () {
        const port = server.address.port
        yield* warmUp(server)
        const socketsBefore = openSockets()
        const replies = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 200 }, (_, i) =>
            tcpExchange(port, [`client ${i} says `, "straße ".repeat(i)], { pauseMs: 1, halfClose: true })))
        )
        replies.forEach((reply, i) => {
          assert.strictEqual(reply.data.toString(), `CLIENT ${i} SAYS ${"STRASSE ".repeat(i)}`)
          assert.isTrue(reply.ended, `client ${i} got EOF after its reply`)
        })
        yield* settled(server, socketsBefore)
        yield* alive(port)
      })
    ))

  it.live.skipIf(noPython)(
    "client processes killed with SIGKILL mid-write leave no descriptor and no connection behind",
    () =>
      withTcpServer((server) =>
        Effect.gen(function* () {
          const port = server.address.port
          yield* warmUp(server)
          const socketsBefore = openSockets()
          const writers = yield* Effect.acquireRelease(
            Effect.sync(() =>
              Array.from({ length: 5 }, () => spawnPeerProcess("python3", ["-c", WRITER, String(port)]))
            ),
            (peers) => Effect.promise(() => Promise.all(peers.map((peer) => peer.kill()))),
          )
          yield* Effect.promise(() =>
            waitUntil(
              () => writers.every((writer) => writer.stdout().includes("connected")),
              10_000,
              "the writers connected",
            )
          )
          yield* Effect.promise(() => waitUntil(() => statsOf(server).connectionsOpen === 5, 3000, "5 connections"))
          // Let them write until the server holds back (it answers to writers that never read).
          yield* Effect.promise(() => sleep(200))
          yield* Effect.promise(() => Promise.all(writers.map((writer) => writer.kill("SIGKILL"))))
          for (const writer of writers) {
            assert.strictEqual((yield* Effect.promise(() => writer.exited)).signal, "SIGKILL")
          }
          yield* settled(server, socketsBefore)
          yield* alive(port)
        })
      ),
    30_000,
  )
})
