// caps and the textbook's own four programs (test/peers/*.py) are
// interchangeable: in every pairing of a client with a server, caps or the
// book's, the answers are the ones the book's client gets from the book's
// server (Python's str.upper(), non-ASCII included).
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as TcpClient from "../src/TcpClient.ts"
import * as UdpClient from "../src/UdpClient.ts"
import {
  PEER_READY,
  pythonCommand,
  run,
  runCaps,
  skipWithoutPython,
  start,
  startCaps,
  startPeer,
} from "./support/Process.ts"

const noPython = skipWithoutPython("the textbook programs in test/peers (Textbook.test.ts)")

const PROMPT = "Input lowercase sentence:"
const SENTENCES = ["hello world", "straße ﬃ ǆ", "ﬁnal ΐ café, it's 12:00!"]
// Python's str.upper() of SENTENCES, written out: ß -> SS, ﬃ -> FFI, ǆ -> Ǆ, ﬁ -> FI, ΐ -> Ι + two combining marks.
const UPPER = ["HELLO WORLD", "STRASSE FFI \u01c4", "FINAL \u0399\u0308\u0301 CAF\u00c9, IT'S 12:00!"]

// The book's client, its sentence piped in; returns everything it printed.
const bookClient = (script: "UDPClient.py" | "TCPClient.py", port: number, sentence: string) =>
  run(pythonCommand(script, ["127.0.0.1", String(port)]), { input: sentence + "\n", timeoutMs: 10_000 }).pipe(
    Effect.map((finished) => {
      assert.strictEqual(finished.code, 0, `${script} failed: ${finished.stderr}`)
      assert.strictEqual(finished.stderr, "")
      return finished.stdout
    }),
  )

// What the book's UDP client prints, as a reply: prompt, then the reply on its own line.
const udpReplyOf = (printed: string): string => {
  assert.isTrue(printed.startsWith(PROMPT) && printed.endsWith("\n"), JSON.stringify(printed))
  return printed.slice(PROMPT.length, -1)
}

// The book's TCP client prints `print('From Server: ', reply)`: two spaces, the second from print's separator.
const tcpReplyOf = (printed: string): string => {
  const prefix = PROMPT + "From Server:  "
  assert.isTrue(printed.startsWith(prefix) && printed.endsWith("\n"), JSON.stringify(printed))
  return printed.slice(prefix.length, -1)
}

// The book's answers to SENTENCES, from the book's own pair of programs.
const bookUdpAnswers = (bookPort: number) =>
  Effect.forEach(SENTENCES, (sentence) => bookClient("UDPClient.py", bookPort, sentence).pipe(Effect.map(udpReplyOf)))
const bookTcpAnswers = (bookPort: number) =>
  Effect.forEach(SENTENCES, (sentence) => bookClient("TCPClient.py", bookPort, sentence).pipe(Effect.map(tcpReplyOf)))

// The book's TCPServer.py, unchanged, as a loaded machine may run it: each close() comes up to 0.5 ms after the reply
// instead of microseconds, so it often crosses the client's next sentence (the client has let the event loop read
// what came, found nothing, and is writing). The server's kernel then answers that sentence with a reset after the
// close, which a client never sees: to it the close came after the sentence, as if the server had read it.
const LATE_CLOSE = `
import random, runpy, socket, sys, time
close = socket.socket.close
socket.socket.close = lambda self: (time.sleep(random.uniform(0, 0.0005)), close(self))[1]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
`
const [python, ...bookServer] = pythonCommand("TCPServer.py", ["127.0.0.1", "0"])
const startLateClosingPeer = start([python, "-c", LATE_CLOSE, ...bookServer], { ready: PEER_READY })
const MANY = Array.from({ length: 200 }, (_, i) => `sentence ${i}`)

const startCapsServers = startCaps(["serve", "--host", "127.0.0.1", "--port", "0"]).pipe(
  Effect.map((server) => ({ udp: server.ports[0], tcp: server.ports[1] })),
)

describe("textbook UDP programs and caps", () => {
  it.live.skipIf(noPython)(
    "the book's UDPClient prints the same from caps's UDP server as from the book's UDPServer",
    () =>
      Effect.gen(function* () {
        const [book, caps] = yield* Effect.all([startPeer("UDPServer.py"), startCapsServers], { concurrency: 2 })
        for (const sentence of SENTENCES) {
          const fromBook = yield* bookClient("UDPClient.py", book.port, sentence)
          const fromCaps = yield* bookClient("UDPClient.py", caps.udp, sentence)
          assert.strictEqual(fromCaps, fromBook, sentence)
        }
        const answers = yield* bookUdpAnswers(book.port)
        assert.deepStrictEqual(answers, UPPER)
      }),
    60_000,
  )

  it.live.skipIf(noPython)(
    "caps's UdpClient library gets from the book's UDPServer the book client's answers",
    () =>
      Effect.gen(function* () {
        const book = yield* startPeer("UDPServer.py")
        const expected = yield* bookUdpAnswers(book.port)
        const client = yield* UdpClient.make({
          host: "127.0.0.1",
          port: book.port,
          attemptTimeout: "2 seconds",
          attempts: 2,
        })
        const replies = yield* Effect.forEach(SENTENCES, client.request)
        assert.deepStrictEqual(replies, expected)
      }),
    60_000,
  )

  it.live.skipIf(noPython)(
    "the caps udp-client CLI (--message and piped lines) gets the book's answers from both servers",
    () =>
      Effect.gen(function* () {
        const [book, caps] = yield* Effect.all([startPeer("UDPServer.py"), startCapsServers], { concurrency: 2 })
        const expected = yield* bookUdpAnswers(book.port)
        const client = (port: number, args: ReadonlyArray<string>, input?: string) =>
          runCaps(["udp-client", "--host", "127.0.0.1", "--port", String(port), ...args], { input }).pipe(
            Effect.map((finished) => {
              assert.strictEqual(finished.code, 0, finished.stderr)
              return finished
            }),
          )
        const [message, piped, capsPiped] = yield* Effect.all([
          client(book.port, ["-m", SENTENCES[1]]),
          client(book.port, [], SENTENCES.join("\n") + "\n"),
          client(caps.udp, [], SENTENCES.join("\n") + "\n"),
        ], { concurrency: 3 })
        assert.strictEqual(message.stdout, expected[1] + "\n")
        assert.strictEqual(piped.stdout, expected.join("\n") + "\n")
        assert.strictEqual(capsPiped.stdout, piped.stdout)
      }),
    60_000,
  )
})

describe("textbook TCP programs and caps", () => {
  it.live.skipIf(noPython)(
    "the book's TCPClient (no newline, one recv) prints the same from caps's TCP server as from the book's TCPServer",
    () =>
      Effect.gen(function* () {
        const [book, caps] = yield* Effect.all([startPeer("TCPServer.py"), startCapsServers], { concurrency: 2 })
        for (const sentence of SENTENCES) {
          const fromBook = yield* bookClient("TCPClient.py", book.port, sentence)
          const fromCaps = yield* bookClient("TCPClient.py", caps.tcp, sentence)
          assert.strictEqual(fromCaps, fromBook, sentence)
        }
        assert.deepStrictEqual(yield* bookTcpAnswers(book.port), UPPER)
      }),
    60_000,
  )

  it.live.skipIf(noPython)(
    "caps's TcpClient library carries a whole session to the book's TCPServer, reconnecting after each close",
    () =>
      Effect.gen(function* () {
        const book = yield* startPeer("TCPServer.py")
        const expected = yield* bookTcpAnswers(book.port)
        // The book's server capitalises, so a sentence it may have read can go again (see the next test).
        const client = yield* TcpClient.make({ host: "127.0.0.1", port: book.port, idempotent: true })
        // Each sentence twice: the book's server closes the connection after every reply.
        const replies = yield* Effect.forEach([...SENTENCES, ...SENTENCES], client.request)
        assert.deepStrictEqual(replies, [...expected, ...expected])
      }),
    60_000,
  )

  it.live.skipIf(noPython)(
    "when the book's TCPServer closes late, crossing the next sentence, an idempotent TcpClient still gets every reply",
    () =>
      Effect.gen(function* () {
        const book = yield* startLateClosingPeer
        const client = yield* TcpClient.make({ host: "127.0.0.1", port: book.port, idempotent: true })
        const replies = yield* Effect.forEach(MANY, client.request)
        assert.deepStrictEqual(replies, MANY.map((sentence) => sentence.toUpperCase()))
      }),
    60_000,
  )

  it.live.skipIf(noPython)(
    "the caps tcp-client CLI, piped 200 lines, gets every answer from the book's TCPServer when its closes come late",
    () =>
      Effect.gen(function* () {
        const book = yield* startLateClosingPeer
        const finished = yield* runCaps(["tcp-client", "--host", "127.0.0.1", "--port", String(book.port)], {
          input: MANY.join("\n") + "\n",
        })
        assert.strictEqual(finished.stderr, "")
        assert.strictEqual(finished.code, 0)
        assert.strictEqual(finished.stdout, MANY.map((sentence) => sentence.toUpperCase() + "\n").join(""))
      }),
    60_000,
  )

  it.live.skipIf(noPython)(
    "the caps tcp-client CLI, piped several lines, gets one answer per line from the book's TCPServer as from caps's",
    () =>
      Effect.gen(function* () {
        const [book, caps] = yield* Effect.all([startPeer("TCPServer.py"), startCapsServers], { concurrency: 2 })
        const expected = yield* bookTcpAnswers(book.port)
        const client = (port: number, input: string) =>
          runCaps(["tcp-client", "--host", "127.0.0.1", "--port", String(port)], { input }).pipe(
            Effect.map((finished) => {
              assert.strictEqual(finished.code, 0, finished.stderr)
              return finished.stdout
            }),
          )
        const [abc, sentences, capsSentences] = yield* Effect.all([
          client(book.port, "a\nb\nc\n"),
          client(book.port, SENTENCES.join("\n") + "\n"),
          client(caps.tcp, SENTENCES.join("\n") + "\n"),
        ], { concurrency: 1 })
        assert.strictEqual(abc, "A\nB\nC\n")
        assert.strictEqual(sentences, expected.join("\n") + "\n")
        assert.strictEqual(capsSentences, sentences)
      }),
    60_000,
  )
})
