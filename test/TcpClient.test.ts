// The TCP client against caps's server and raw peers that close, reset,
// stall, dribble or talk unasked: replies are framed (never one read),
// connections are reused, a connection the server closed while idle is
// noticed at once, a sentence is resent only in the one case that is safe,
// and every failure is a typed error.
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import * as Net from "node:net"
import * as Resolver from "../src/Resolver.ts"
import * as TcpClient from "../src/TcpClient.ts"
import * as TcpServer from "../src/TcpServer.ts"
import type * as Transform from "../src/Transform.ts"
import { startCaps } from "./support/Process.ts"
import { closedByPeer, openSockets, socketsBackTo, unusedPort, waitUntil } from "./support/Sockets.ts"
import { statsOf, tcpServer } from "./support/Servers.ts"
import { recordingTracer } from "./support/Spans.ts"

/** A raw TCP server on 127.0.0.1 whose connections are handled by `onConnection`; closed with the scope. */
const rawServer = (onConnection: (socket: Net.Socket, index: number) => void) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ port: number; server: Net.Server; connections: Array<Net.Socket> }>((resolve) => {
        const connections: Array<Net.Socket> = []
        const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
          connections.push(socket)
          socket.on("error", () => {})
          // Close our side when the client closes its side, so only the client's sockets are counted.
          socket.on("end", () => socket.end())
          onConnection(socket, connections.length - 1)
        })
        server.listen(
          { host: "127.0.0.1", port: 0 },
          () => resolve({ port: (server.address() as Net.AddressInfo).port, server, connections }),
        )
      })
    ),
    ({ connections, server }) =>
      Effect.sync(() => {
        for (const socket of connections) socket.destroy()
        server.close()
      }),
  )

/** Answers each complete line, upper-cased, like caps; `then` decides what happens after each reply. */
const lineServer = (after: (socket: Net.Socket) => void = () => {}) =>
  rawServer((socket) => {
    let buffered = ""
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString()
      let at: number
      while ((at = buffered.indexOf("\n")) !== -1) {
        socket.write(buffered.slice(0, at).toUpperCase() + "\n")
        buffered = buffered.slice(at + 1)
        after(socket)
      }
    })
  })

/** Calls `onLine` with each complete line of each connection, and the connection's index; records the lines. */
const linePeer = (onLine: (line: string, socket: Net.Socket, connection: number) => void) =>
  Effect.gen(function* () {
    const received: Array<Array<string>> = []
    const peer = yield* rawServer((socket, index) => {
      received[index] = []
      let buffered = ""
      socket.on("data", (chunk: Buffer) => {
        buffered += chunk.toString()
        let at: number
        while ((at = buffered.indexOf("\n")) !== -1) {
          const line = buffered.slice(0, at)
          buffered = buffered.slice(at + 1)
          received[index].push(line)
          onLine(line, socket, index)
        }
      })
    })
    return { ...peer, received }
  })

/** A caps TCP server in this process, on `port` (0: any), that `stop` shuts down as its scope closing does. */
const capsServer = (options: TcpServer.TcpServerOptions = {}) =>
  Effect.gen(function* () {
    const scope = yield* Effect.acquireRelease(Scope.make(), (scope) => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(tcpServer(options), scope)
    const server = Context.get(context, TcpServer.TcpServer)
    return { port: server.address.port, server, stop: Scope.close(scope, Exit.void) }
  })

/** Runs `effect`, failing the test unless it takes less than `ms` milliseconds. */
const within = <A, E, R>(ms: number, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const started = Date.now()
    const result = yield* effect
    const took = Date.now() - started
    assert.isBelow(took, ms, `took ${took} ms`)
    return result
  })

const clientOf = (port: number, options: TcpClient.TcpClientOptions = {}) =>
  TcpClient.make({ host: "127.0.0.1", port, ...options })

describe("TcpClient", () => {
  it.live("sends many sentences over one connection to a caps server", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const tcp = yield* clientOf(server.address.port)
      assert.strictEqual(yield* tcp.request("one"), "ONE")
      assert.strictEqual(yield* tcp.request("two straße"), "TWO STRASSE")
      assert.strictEqual(yield* tcp.request(""), "")
      assert.strictEqual(statsOf(server).connectionsTotal, 1)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        tcpServer(),
      ),
    ))

  it.live("assembles a reply that arrives one byte at a time", () =>
    Effect.gen(function* () {
      const dribble = yield* rawServer((socket) =>
        socket.once("data", async () => {
          for (const byte of Buffer.from("SLOW ß\n")) {
            socket.write(Buffer.from([byte]))
            await new Promise((resolve) => setTimeout(resolve, 5))
          }
        })
      )
      const tcp = yield* clientOf(dribble.port)
      assert.strictEqual(yield* tcp.request("slow ß"), "SLOW ß")
    }).pipe(Effect.scoped))

  it.live("takes end of stream as the end of a reply without newline (the textbook server's way)", () =>
    Effect.gen(function* () {
      const textbook = yield* rawServer((socket) =>
        socket.once("data", (chunk: Buffer) => socket.end(chunk.toString().trim().toUpperCase()))
      )
      const tcp = yield* clientOf(textbook.port)
      assert.strictEqual(yield* tcp.request("bare"), "BARE")
      // The server closed the connection: the next sentence goes over a new one, transparently.
      assert.strictEqual(yield* tcp.request("again"), "AGAIN")
      assert.strictEqual(textbook.connections.length, 2)
    }).pipe(Effect.scoped))

  it.live("reopens a connection the server closed after its last reply", () =>
    Effect.gen(function* () {
      const oneShot = yield* lineServer((socket) => socket.end())
      const tcp = yield* clientOf(oneShot.port)
      for (const word of ["a", "b", "c"]) assert.strictEqual(yield* tcp.request(word), word.toUpperCase())
      assert.strictEqual(oneShot.connections.length, 3)
    }).pipe(Effect.scoped))

  it.live("fails with ConnectionRefused when nothing listens", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      const tcp = yield* clientOf(port)
      const error = yield* tcp.request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionRefused")
      assert.strictEqual(error.message, `connection refused by 127.0.0.1:${port}/tcp`)
    }).pipe(Effect.scoped))

  it.live("fails with Timeout when the server accepts but never answers, and closes that connection [failure: tcp-accept-no-answer]", () =>
    Effect.gen(function* () {
      const mute = yield* rawServer(() => {})
      const tcp = yield* clientOf(mute.port, { replyTimeout: "150 millis" })
      const error = yield* tcp.request("hello?").pipe(Effect.flip)
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(error.message, `no answer from 127.0.0.1:${mute.port}/tcp after 1 attempt of 150 ms`)
      yield* Effect.promise(() => closedByPeer(mute.connections[0]))
      assert.strictEqual((yield* tcp.request("still there?").pipe(Effect.flip))._tag, "Timeout")
      assert.strictEqual(mute.connections.length, 2)
    }).pipe(Effect.scoped))

  it.live("fails with ConnectionClosed, not resending, when a fresh connection is closed before any reply", () =>
    Effect.gen(function* () {
      const rude = yield* rawServer((socket) => socket.once("data", () => socket.end()))
      const tcp = yield* clientOf(rude.port)
      const error = yield* tcp.request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, "Closed")
      assert.strictEqual(
        error.message,
        `connection to 127.0.0.1:${rude.port}/tcp closed before a reply arrived; the sentence was sent and is not resent`,
      )
      assert.strictEqual(rude.connections.length, 1)
    }).pipe(Effect.scoped))

  it.live("fails with ConnectionClosed (Reset) when the server resets the connection [failure: tcp-reset-mid-reply]", () =>
    Effect.gen(function* () {
      const resetting = yield* rawServer((socket) => socket.once("data", () => socket.resetAndDestroy()))
      const tcp = yield* clientOf(resetting.port)
      const error = yield* tcp.request("hello").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.include(error.message, "reset")
    }).pipe(Effect.scoped))

  it.live("a reply that comes after its timeout is never read as the answer to the next sentence", () =>
    Effect.gen(function* () {
      const slowFirst = yield* rawServer((socket, index) =>
        socket.on("data", (chunk: Buffer) => {
          const reply = chunk.toString().toUpperCase()
          if (index === 0) setTimeout(() => socket.writable && socket.write(reply), 300)
          else socket.write(reply)
        })
      )
      const tcp = yield* clientOf(slowFirst.port, { replyTimeout: "100 millis" })
      assert.strictEqual((yield* tcp.request("first").pipe(Effect.flip))._tag, "Timeout")
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* tcp.request("second"), "SECOND")
    }).pipe(Effect.scoped))

  it.live("refuses a sentence with a line break in it as MalformedInput", () =>
    Effect.gen(function* () {
      const tcp = yield* clientOf(9)
      const error = yield* tcp.request("two\nlines").pipe(Effect.flip)
      assert.strictEqual(error._tag, "MalformedInput")
    }).pipe(Effect.scoped))

  it.live("fails with NameNotResolved for a host name that has no address", () =>
    Effect.gen(function* () {
      const tcp = yield* TcpClient.make({ host: `${"b".repeat(70)}.invalid`, port: 12000 })
      assert.strictEqual((yield* tcp.request("x").pipe(Effect.flip))._tag, "NameNotResolved")
    }).pipe(Effect.scoped))

  it.live("closes its connection when its scope closes, leaking no descriptors", () =>
    Effect.gen(function* () {
      const server = yield* lineServer()
      const before = openSockets()
      yield* Effect.gen(function* () {
        const tcp = yield* clientOf(server.port)
        for (let i = 0; i < 20; i++) assert.strictEqual(yield* tcp.request(`n${i}`), `N${i}`)
      }).pipe(Effect.scoped)
      yield* Effect.promise(() => socketsBackTo(before))
    }).pipe(Effect.scoped))
})

describe("TcpClient: the server closes between two sentences", () => {
  // Without resending, so that these prove the close was noticed while idle, not recovered from afterwards.
  const noResend = { resendUnanswered: false }

  it.live("a caps server that restarts between two sentences answers the second over a fresh connection, at once [failure: server-restart]", () =>
    Effect.gen(function* () {
      const first = yield* capsServer()
      const tcp = yield* clientOf(first.port, noResend)
      assert.strictEqual(yield* tcp.request("one"), "ONE")
      yield* first.stop
      const second = yield* capsServer({ port: first.port })
      assert.strictEqual(yield* within(1000, tcp.request("two")), "TWO")
      assert.strictEqual(statsOf(second.server).connectionsTotal, 1)
    }).pipe(Effect.scoped))

  it.live("a caps server that stops between two sentences: the second is refused at once, not timed out", () =>
    Effect.gen(function* () {
      const server = yield* capsServer()
      const tcp = yield* clientOf(server.port, noResend)
      assert.strictEqual(yield* tcp.request("one"), "ONE")
      yield* server.stop
      const error = yield* within(1000, tcp.request("two").pipe(Effect.flip))
      assert.strictEqual(error._tag, "ConnectionRefused")
    }).pipe(Effect.scoped))

  it.live(
    "a caps server killed with SIGKILL mid-session: the next sentence is refused at once",
    () =>
      Effect.gen(function* () {
        const server = yield* startCaps(["tcp-server", "--host", "127.0.0.1", "--port", "0"])
        const tcp = yield* clientOf(server.port)
        assert.strictEqual(yield* tcp.request("one"), "ONE")
        const stopped = yield* server.stop("SIGKILL")
        assert.strictEqual(stopped.signal, "SIGKILL")
        const error = yield* within(1000, tcp.request("two").pipe(Effect.flip))
        assert.strictEqual(error._tag, "ConnectionRefused")
      }).pipe(Effect.scoped),
    30_000,
  )

  for (const close of ["end", "reset"] as const) {
    it.live(`a server that closes an idle connection (${close}) is noticed: the next sentence goes over a new one`, () =>
      Effect.gen(function* () {
        const closing = yield* linePeer((line, socket) => {
          socket.write(line.toUpperCase() + "\n")
          setTimeout(() => close === "end" ? socket.end() : socket.resetAndDestroy(), 20)
        })
        const tcp = yield* clientOf(closing.port, noResend)
        assert.strictEqual(yield* tcp.request("a"), "A")
        // Wait until the server has closed it; the client must have seen that, not write into it.
        yield* Effect.promise(() => waitUntil(() => closing.connections[0].destroyed, 2000, "server closed"))
        yield* Effect.sleep("50 millis")
        assert.strictEqual(yield* tcp.request("b"), "B")
        assert.deepStrictEqual(closing.received, [["a"], ["b"]])
      }).pipe(Effect.scoped))
  }
})

describe("TcpClient: what is resent", () => {
  // The race of a server closing an idle connection as a sentence is written, made certain: the server
  // answers the first sentence of each connection and closes (or resets) the connection on the second.
  const closesOnSecond = (close: "end" | "reset") =>
    linePeer((line, socket, connection) => {
      if (connection === 0 && line === "second") return close === "end" ? socket.end() : socket.resetAndDestroy()
      socket.write(line.toUpperCase() + "\n")
    })

  it.live("a sentence written on a reused connection that is reset unanswered is resent once", () =>
    Effect.gen(function* () {
      const peer = yield* closesOnSecond("reset")
      const tcp = yield* clientOf(peer.port)
      assert.strictEqual(yield* tcp.request("first"), "FIRST")
      assert.strictEqual(yield* tcp.request("second"), "SECOND")
      assert.deepStrictEqual(peer.received, [["first", "second"], ["second"]])
    }).pipe(Effect.scoped))

  it.live("the resend is a second attempt event of the request's span", () =>
    Effect.gen(function* () {
      const { spans, tracer } = recordingTracer()
      const peer = yield* closesOnSecond("reset")
      const tcp = yield* clientOf(peer.port)
      yield* tcp.request("first")
      yield* tcp.request("second").pipe(Effect.withTracer(tracer))
      const request = spans.find((span) => span.name === "TcpClient.request")!
      assert.deepStrictEqual(request.events.map(([name, , attributes]) => [name, attributes.attempt]), [
        ["attempt", 1],
        ["attempt", 2],
      ])
      assert.strictEqual(request.attributes.get("caps.resent"), true)
    }).pipe(Effect.scoped))

  it.live("a clean end of stream after the sentence was written is not resent: the server may have read it", () =>
    Effect.gen(function* () {
      const peer = yield* closesOnSecond("end")
      const tcp = yield* clientOf(peer.port)
      assert.strictEqual(yield* tcp.request("first"), "FIRST")
      const error = yield* tcp.request("second").pipe(Effect.flip)
      assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, "Closed")
      assert.deepStrictEqual(peer.received, [["first", "second"]])
    }).pipe(Effect.scoped))

  it.live("with idempotent: true, a clean end of stream after the sentence was written is resent once", () =>
    Effect.gen(function* () {
      const peer = yield* closesOnSecond("end")
      const tcp = yield* clientOf(peer.port, { idempotent: true })
      assert.strictEqual(yield* tcp.request("first"), "FIRST")
      assert.strictEqual(yield* tcp.request("second"), "SECOND")
      assert.deepStrictEqual(peer.received, [["first", "second"], ["second"]])
    }).pipe(Effect.scoped))

  it.live("with idempotent: true and resendUnanswered: false, neither close is resent", () =>
    Effect.gen(function* () {
      for (const close of ["end", "reset"] as const) {
        const peer = yield* closesOnSecond(close)
        const tcp = yield* clientOf(peer.port, { idempotent: true, resendUnanswered: false })
        assert.strictEqual(yield* tcp.request("first"), "FIRST")
        const error = yield* tcp.request("second").pipe(Effect.flip)
        assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, close === "end" ? "Closed" : "Reset")
        assert.deepStrictEqual(peer.received, [["first", "second"]])
      }
    }).pipe(Effect.scoped))

  it.live("even with idempotent: true, a fresh connection that closes before replying is not resent", () =>
    Effect.gen(function* () {
      // Nothing was reused: this server closes without answering, and would again.
      const peer = yield* linePeer((_line, socket) => socket.end())
      const tcp = yield* clientOf(peer.port, { idempotent: true })
      const error = yield* tcp.request("once").pipe(Effect.flip)
      assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, "Closed")
      assert.deepStrictEqual(peer.received, [["once"]])
    }).pipe(Effect.scoped))

  it.live("a caps server whose transform fails on a reused connection sees that sentence once, not twice", () => {
    let seen = 0
    const failing: Transform.TransformShape = {
      name: "fails-on-boom",
      framing: "line",
      apply: (s) => s === "boom" ? Effect.sync(() => seen++).pipe(Effect.andThen(Effect.fail("no"))) : s,
    }
    return Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const tcp = yield* clientOf(server.address.port)
      assert.strictEqual(yield* tcp.request("ok"), "ok")
      const error = yield* tcp.request("boom").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.strictEqual(seen, 1)
    }).pipe(Effect.scoped, Effect.provide(tcpServer({}, failing)))
  })

  it.live("with resendUnanswered: false that sentence is not resent: ConnectionClosed says so", () =>
    Effect.gen(function* () {
      const peer = yield* closesOnSecond("reset")
      const tcp = yield* clientOf(peer.port, { resendUnanswered: false })
      assert.strictEqual(yield* tcp.request("first"), "FIRST")
      const error = yield* tcp.request("second").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.include(error.message, "the sentence was sent and is not resent")
      assert.deepStrictEqual(peer.received, [["first", "second"]])
      // The next sentence goes over a fresh connection.
      assert.strictEqual(yield* tcp.request("third"), "THIRD")
    }).pipe(Effect.scoped))

  it.live("a sentence whose reply had begun when the connection broke is never resent", () =>
    Effect.gen(function* () {
      const peer = yield* linePeer((line, socket) => {
        if (line !== "second") return socket.write(line.toUpperCase() + "\n")
        socket.write("SEC")
        setTimeout(() => socket.resetAndDestroy(), 50)
      })
      const tcp = yield* clientOf(peer.port)
      assert.strictEqual(yield* tcp.request("first"), "FIRST")
      const error = yield* tcp.request("second").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ConnectionClosed")
      assert.strictEqual(error._tag === "ConnectionClosed" && error.kind, "Reset")
      assert.include(error.message, "not resent")
      assert.deepStrictEqual(peer.received, [["first", "second"]])
    }).pipe(Effect.scoped))

  it.live("a resent sentence whose fresh connection breaks too fails, sent twice at most", () =>
    Effect.gen(function* () {
      // Answers only the first sentence of the first connection; resets every other connection on its first line.
      const peer = yield* linePeer((line, socket, connection) => {
        if (connection === 0 && line === "first") return socket.write("FIRST\n")
        socket.resetAndDestroy()
      })
      const tcp = yield* clientOf(peer.port)
      assert.strictEqual(yield* tcp.request("first"), "FIRST")
      assert.strictEqual((yield* tcp.request("second").pipe(Effect.flip))._tag, "ConnectionClosed")
      assert.deepStrictEqual(peer.received, [["first", "second"], ["second"]])
    }).pipe(Effect.scoped))
})

describe("TcpClient: unsolicited bytes", () => {
  it.live("a reply with a second line in the same read fails with ProtocolViolation; the next uses a new connection", () =>
    Effect.gen(function* () {
      const chatty = yield* linePeer((line, socket, connection) =>
        socket.write(connection === 0 ? `${line.toUpperCase()}\nEXTRA\n` : `${line.toUpperCase()}\n`)
      )
      const tcp = yield* clientOf(chatty.port)
      const error = yield* tcp.request("one").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ProtocolViolation")
      assert.strictEqual(
        error.message,
        `protocol violation by 127.0.0.1:${chatty.port}/tcp: 6 more bytes came with the reply, after its newline ` +
          "(a reply is one line)",
      )
      yield* Effect.promise(() => closedByPeer(chatty.connections[0]))
      assert.strictEqual(yield* tcp.request("two"), "TWO")
      assert.deepStrictEqual(chatty.received, [["one"], ["two"]])
    }).pipe(Effect.scoped))

  it.live("bytes sent unasked poison the connection: the next request fails unsent, the one after is answered", () =>
    Effect.gen(function* () {
      const late = yield* linePeer((line, socket, connection) => {
        socket.write(line.toUpperCase() + "\n")
        if (connection === 0) setTimeout(() => socket.write("LATE\n"), 20)
      })
      const tcp = yield* clientOf(late.port)
      assert.strictEqual(yield* tcp.request("one"), "ONE")
      // The client closes the connection as soon as the unasked bytes arrive.
      yield* Effect.promise(() => closedByPeer(late.connections[0]))
      const error = yield* tcp.request("two").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ProtocolViolation")
      assert.include(error.message, "5 bytes arrived unasked")
      assert.include(error.message, "this sentence not sent")
      assert.strictEqual(yield* tcp.request("three"), "THREE")
      assert.deepStrictEqual(late.received, [["one"], ["three"]])
    }).pipe(Effect.scoped))
})

describe("TcpClient: addresses", () => {
  // This host's /etc/hosts gives localhost 127.0.0.1 only; many give it ::1 too, which the resolver here says.
  const dualStack = Resolver.fixed({
    localhost: [{ address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }],
  })

  it.live("a client of localhost reaches a server that listens on ::1 only, trying 127.0.0.1 first", () =>
    Effect.gen(function* () {
      const server = yield* capsServer({ host: "::1" })
      const tcp = yield* TcpClient.make({ host: "localhost", port: server.port })
      assert.strictEqual(yield* tcp.request("over six"), "OVER SIX")
      assert.strictEqual(statsOf(server.server).connectionsTotal, 1)
    }).pipe(Effect.scoped, Effect.provideService(Resolver.Resolver, dualStack)))

  it.live("when nothing listens at any address of the name, the request is refused", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(unusedPort)
      const tcp = yield* TcpClient.make({ host: "localhost", port })
      const error = yield* tcp.request("anyone").pipe(Effect.flip)
      assert.strictEqual(error.message, `connection refused by localhost:${port}/tcp`)
    }).pipe(Effect.scoped, Effect.provideService(Resolver.Resolver, dualStack)))

  it.effect("the system resolver gives IPv4 addresses first, and literals as they are", () =>
    Effect.gen(function* () {
      const addresses = yield* Resolver.system.resolve("localhost")
      assert.strictEqual(addresses[0].family, 4)
      assert.deepStrictEqual(yield* Resolver.system.resolve("::1"), [{ address: "::1", family: 6 }])
      assert.deepStrictEqual(
        Resolver.ipv4First([
          { address: "::1", family: 6 },
          { address: "127.0.0.2", family: 4 },
          { address: "fe80::1", family: 6 },
          { address: "127.0.0.1", family: 4 },
        ]).map((a) => a.address),
        ["127.0.0.2", "127.0.0.1", "::1", "fe80::1"],
      )
    }))
})

describe("TcpClient: the library surface", () => {
  const invalid: ReadonlyArray<[keyof TcpClient.TcpClientOptions, unknown]> = [
    ["port", 0],
    ["port", 70000],
    ["port", 80.5],
    ["host", ""],
    ["replyTimeout", 0],
    ["replyTimeout", "forever"],
    ["connectTimeout", Duration.infinity],
    ["connectTimeout", -1],
    ["maxReplyBytes", 0],
    ["resendUnanswered", "yes"],
    ["idempotent", 1],
    ["tls", "yes"],
  ]
  for (const [option, value] of invalid) {
    it.effect(`make fails with InvalidOption naming TcpClient.${option} for ${String(value)}`, () =>
      Effect.gen(function* () {
        const error = yield* TcpClient.make({ [option]: value }).pipe(Effect.flip)
        assert.strictEqual(error._tag, "InvalidOption")
        assert.strictEqual(error._tag === "InvalidOption" && error.option, `TcpClient.${option}`)
      }).pipe(Effect.scoped))
  }

  const inMillis = (options: TcpClient.TcpClientOptions) => ({
    ...options,
    connectTimeout: Duration.toMillis(Duration.fromInputUnsafe(options.connectTimeout!)),
    replyTimeout: Duration.toMillis(Duration.fromInputUnsafe(options.replyTimeout!)),
  })

  it.effect("config reads CAPS_HOST, CAPS_PORT and CAPS_TIMEOUT (seconds), with the CLI's defaults", () =>
    Effect.gen(function* () {
      const read = yield* TcpClient.config.parse(
        ConfigProvider.fromEnv({ env: { CAPS_HOST: "127.0.0.2", CAPS_PORT: "4000", CAPS_TIMEOUT: "0.25" } }),
      )
      assert.deepStrictEqual(inMillis(read), {
        host: "127.0.0.2",
        port: 4000,
        connectTimeout: 250,
        replyTimeout: 250,
        idempotent: true,
      })
      const defaults = yield* TcpClient.config.parse(ConfigProvider.fromUnknown({}))
      assert.deepStrictEqual(inMillis(defaults), {
        host: "localhost",
        port: 12000,
        connectTimeout: 5000,
        replyTimeout: 5000,
        idempotent: true,
      })
      const bad = yield* TcpClient.config.parse(ConfigProvider.fromUnknown({ CAPS_PORT: "0" })).pipe(Effect.flip)
      assert.include(bad.message, "CAPS_PORT")
    }))

  it.live("layerConfig builds a client from CAPS_* settings that talks to the server they name", () =>
    Effect.gen(function* () {
      const server = yield* linePeer((line, socket) => socket.write(line.toUpperCase() + "\n"))
      const reply = yield* TcpClient.TcpClient.use((tcp) => tcp.request("configured")).pipe(
        Effect.provide(TcpClient.layerConfig),
        Effect.provide(ConfigProvider.layer(
          ConfigProvider.fromUnknown({ CAPS_HOST: "127.0.0.1", CAPS_PORT: String(server.port) }),
        )),
      )
      assert.strictEqual(reply, "CONFIGURED")
    }).pipe(Effect.scoped))

  it.live("a request is traced as a TcpClient.request span, with name resolution inside it", () =>
    Effect.gen(function* () {
      const { spans, tracer } = recordingTracer()
      const server = yield* linePeer((line, socket) => socket.write(line.toUpperCase() + "\n"))
      const tcp = yield* clientOf(server.port)
      yield* tcp.request("traced").pipe(Effect.withTracer(tracer))
      assert.deepStrictEqual(spans.map((span) => span.name), ["TcpClient.request", "Resolver.resolve"])
      const parent = spans[1].parent
      assert.isTrue(parent._tag === "Some" && parent.value === spans[0])
    }).pipe(Effect.scoped))

  it.live("the request span names the server and the address reached, in OpenTelemetry's attribute names", () =>
    Effect.gen(function* () {
      const { spans, tracer } = recordingTracer()
      const server = yield* linePeer((line, socket) => socket.write(line.toUpperCase() + "\n"))
      const tcp = yield* clientOf(server.port)
      yield* tcp.request("traced").pipe(Effect.withTracer(tracer))
      const [request] = spans
      assert.strictEqual(request.kind, "client")
      assert.deepStrictEqual(Object.fromEntries(request.attributes), {
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "network.transport": "tcp",
        "network.peer.address": "127.0.0.1",
        "network.peer.port": server.port,
      })
      assert.deepStrictEqual(request.events.map(([name, , attributes]) => [name, attributes]), [
        ["attempt", { attempt: 1 }],
      ])
    }).pipe(Effect.scoped))
})
