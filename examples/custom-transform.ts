// Custom transforms: what a caps server does to a sentence, plugged in as a
// layer. One is synchronous (title case, answered in the socket's callback,
// the fast path); one is effectful: it asks another service, a glossary, that
// takes a while to answer and may fail with a typed error (UnknownWord). The
// server contains that failure: it logs it with the peer, closes only that
// connection, and goes on serving; the client gets ConnectionClosed, and its
// next sentence goes over a new connection. The servers' log lines are
// collected by the program's own logger and printed at the end.
//
// Run: node examples/custom-transform.ts
//      deno run --allow-net --allow-env examples/custom-transform.ts
//
// prints:
// udp, title (sync):     the textbook's capitalisation server -> The Textbook's Capitalisation Server
// tcp, glossary (effect): tcp and udp -> transmission control protocol and user datagram protocol
// tcp, glossary (effect): icmp -> failed with ConnectionClosed: connection to 127.0.0.1:<n>/tcp closed before a reply arrived; the sentence was sent and is not resent
// tcp, glossary (effect): dns over udp -> domain name system over user datagram protocol
// tcp-server stats: 2 connections in all, 1 failed
// what caps logged:
//   error: transform failed for 127.0.0.1:<n>/tcp: closing its connection (cause: UnknownWord, the glossary has no entry for "icmp")
//   info: udp-server on 127.0.0.1:<n>/udp stopped: 1 datagrams received, 1 answered<…>
//   info: tcp-server on 127.0.0.1:<n>/tcp stopped in <n> ms: 1 of 1 open connections closed cleanly, 0 cut at the 5000 ms drain deadline; 2 served in all
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Context, Effect, Layer, Logger, Option, Schema } from "effect"
import { TcpClient, TcpServer, Transform, UdpClient, UdpServer } from "../src/index.ts"

// --- A synchronous transform: returns the reply at once.

const title = Transform.layer({
  name: "title",
  framing: "stream", // maps any piece of text on its own, so the TCP server could answer bytes as they come
  apply: (text) => text.replace(/(^|\s)(\p{Ll})/gu, (_, space: string, letter: string) => space + letter.toUpperCase()),
})

// --- An effectful transform: asks another service, which may fail with a typed error.

class UnknownWord extends Schema.TaggedError<UnknownWord>()("UnknownWord", { word: Schema.String }) {
  override get message(): string {
    return `the glossary has no entry for ${JSON.stringify(this.word)}`
  }
}

class Glossary extends Context.Service<Glossary, {
  readonly expand: (word: string) => Effect.Effect<string, UnknownWord>
}>()("example/Glossary") {
  // Stands for a remote service: each answer takes a few milliseconds.
  static readonly layer = Layer.succeed(
    Glossary,
    Glossary.of({
      expand: (word) => {
        const entries: Record<string, string> = {
          tcp: "transmission control protocol",
          udp: "user datagram protocol",
          dns: "domain name system",
        }
        const known = ["and", "over", "the"].includes(word) ? word : entries[word]
        return Effect.sleep("5 millis").pipe(
          Effect.andThen(known === undefined ? Effect.fail(new UnknownWord({ word })) : Effect.succeed(known)),
        )
      },
    }),
  )
}

// The transform is built from the service; `Transform.make` checks its shape (InvalidOption if it is not one).
const glossary = Layer.effect(
  Transform.Transform,
  Effect.gen(function* () {
    const service = yield* Glossary
    return yield* Transform.make({
      name: "glossary",
      framing: "line", // needs whole lines: one reply line per sentence
      apply: (sentence) =>
        Effect.forEach(sentence.split(" "), service.expand).pipe(Effect.map((words) => words.join(" "))),
    })
  }),
).pipe(Layer.provide(Glossary.layer))

// --- Two servers, each with its own transform.

const Servers = Layer.mergeAll(
  UdpServer.layer({ host: "127.0.0.1", port: 0 }).pipe(Layer.provide(title)),
  // maxConnections given, so that on Deno (which cannot read the descriptor limit) there is no warning about it.
  TcpServer.layer({ host: "127.0.0.1", port: 0, maxConnections: 100 }).pipe(Layer.provide(glossary)),
)

// The program's logger keeps what the servers log, to print it at the end.
const logged: Array<string> = []
const Collect = Logger.layer([
  Logger.make(({ cause, logLevel, message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    const error = Option.getOrUndefined(Cause.findErrorOption(cause))
    const because = error instanceof Error ? ` (cause: ${(error as UnknownWord)._tag}, ${error.message})` : ""
    logged.push(`  ${logLevel.toLowerCase()}: ${text}${because}`)
  }),
])

const program = Effect.gen(function* () {
  const udp = yield* UdpServer.UdpServer
  const tcp = yield* TcpServer.TcpServer
  const overUdp = yield* UdpClient.make({ host: "127.0.0.1", port: udp.address.port })
  // A sentence whose connection broke before its reply is not sent again: the server may have seen it already.
  const overTcp = yield* TcpClient.make({ host: "127.0.0.1", port: tcp.address.port, resendUnanswered: false })

  const sentence = "the textbook's capitalisation server"
  yield* Console.log(`udp, title (sync):     ${sentence} -> ${yield* overUdp.request(sentence)}`)
  for (const sentence of ["tcp and udp", "icmp", "dns over udp"]) {
    const reply = yield* overTcp.request(sentence).pipe(
      Effect.catchTag("ConnectionClosed", (error) => Effect.succeed(`failed with ${error._tag}: ${error.message}`)),
    )
    yield* Console.log(`tcp, glossary (effect): ${sentence} -> ${reply}`)
  }
  const stats = yield* tcp.stats
  yield* Console.log(
    `tcp-server stats: ${stats.connectionsTotal} connections in all, ${stats.failedConnections} failed`,
  )
}).pipe(Effect.scoped, Effect.provide(Servers))

NodeRuntime.runMain(program.pipe(
  Effect.andThen(Effect.suspend(() => Console.log(["what caps logged:", ...logged].join("\n")))),
  Effect.provide(Collect),
))
