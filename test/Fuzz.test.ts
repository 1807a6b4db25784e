// Bounded fuzzing with fast-check (fixed seeds, a fixed number of runs):
// random byte strings, valid UTF-8 or not, sent over TCP in random pieces with
// or without a half-close, and as UDP datagrams. The servers stay alive and
// answer each with the upper-casing of its UTF-8 decoding, each invalid
// sequence replaced by U+FFFD: `TextDecoder` is the oracle, with `ignoreBOM`
// because caps, like the textbook's `bytes.decode()`, keeps a leading BOM.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import * as Net from "node:net"
import * as TcpServer from "../src/TcpServer.ts"
import * as Transform from "../src/Transform.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { sleep, tcpExchange, udpExchange } from "./support/Sockets.ts"
import { statsOf, tcpServer, udpServer } from "./support/Servers.ts"

const decodeAll = (bytes: Uint8Array): string => new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes)
/** What a streaming decoder has given out before the end of the stream: a trailing partial character waits. */
const decodeSoFar = (bytes: Uint8Array): string =>
  new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes, { stream: true })
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

// Byte sequences that decoders get wrong: overlong forms, surrogates, values past U+10FFFF, lone
// continuation bytes, truncated sequences, a BOM, and U+FFFD itself.
const tricky: ReadonlyArray<ReadonlyArray<number>> = [
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5],
  [0xff],
  [0x80],
  [0xbf, 0xbf],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xc3],
  [0xef, 0xbb, 0xbf],
  [0xef, 0xbf, 0xbd],
]

/** Random payloads: valid text of every plane, random bytes, and mixtures with tricky sequences. */
const payload = (maxLength: number): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.string({ unit: "binary", maxLength }).map(utf8),
    fc.uint8Array({ maxLength }),
    fc.array(
      fc.oneof(
        fc.string({ unit: "grapheme", maxLength: 8 }).map(utf8),
        fc.string({ maxLength: 8 }).map(utf8),
        fc.constantFrom(...tricky).map((bytes) => Uint8Array.from(bytes)),
        fc.uint8Array({ maxLength: 4 }),
      ),
      { maxLength: Math.max(1, Math.floor(maxLength / 8)) },
    ).map(concat),
  )

/** Cuts `bytes` at the given positions (taken modulo its length + 1) into pieces, in order. */
const cut = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const pieces: Array<Uint8Array> = []
  let start = 0
  for (const point of [...points, bytes.length]) {
    if (point > start) pieces.push(bytes.subarray(start, point))
    start = point
  }
  return pieces
}

/**
 * Sends the pieces on one connection, 1 ms apart so that they arrive as separate reads, and collects
 * the reply: until the server closes after a half-close, or otherwise until `expectBytes` arrived and
 * 20 ms more passed without anything else.
 */
const converse = (
  port: number,
  pieces: ReadonlyArray<Uint8Array>,
  halfClose: boolean,
  expectBytes: number,
): Promise<{ readonly data: Buffer; readonly ended: boolean }> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    let ended = false
    const socket = Net.connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true })
    const timer = setTimeout(() => finish(new Error(`no complete reply within 1 s (got ${size} bytes)`)), 1000)
    const finish = (error?: Error) => {
      clearTimeout(timer)
      socket.destroy()
      if (error !== undefined) reject(error)
      else resolve({ data: Buffer.concat(chunks), ended })
    }
    let settle: ReturnType<typeof setTimeout> | undefined
    const maybeSettle = () => {
      if (halfClose || size < expectBytes) return
      if (settle !== undefined) clearTimeout(settle)
      settle = setTimeout(() => finish(), 20)
    }
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      size += chunk.length
      maybeSettle()
    })
    socket.on("end", () => {
      ended = true
      finish()
    })
    socket.on("error", (error) => finish(error))
    socket.on("connect", async () => {
      for (const piece of pieces) {
        socket.write(piece)
        await sleep(1)
      }
      if (halfClose) socket.end()
      else maybeSettle()
    })
  })

// Shrinking a failure stops after 15 s, so that a failing property reports before the test's timeout.
const bounded = { interruptAfterTimeLimit: 15_000, markInterruptAsFailure: true }

const countIn = (text: string, letter: string): number => text.split(letter).length - 1

describe("fuzzing the TCP server", () => {
  it.live(
    "random bytes in random pieces, half-closed or not: the reply is the decoder's upper-casing",
    () =>
      Effect.gen(function* () {
        const server = yield* TcpServer.TcpServer
        const port = server.address.port
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              payload(256),
              fc.array(fc.nat(), { maxLength: 4 }),
              fc.boolean(),
              async (bytes, cuts, halfClose) => {
                const expected = utf8((halfClose ? decodeAll(bytes) : decodeSoFar(bytes)).toUpperCase())
                const reply = await converse(port, cut(bytes, cuts), halfClose, expected.length)
                assert.deepStrictEqual(
                  [...reply.data],
                  [...expected],
                  `bytes [${bytes}] in pieces at ${cuts}, half-close ${halfClose}`,
                )
                assert.strictEqual(reply.ended, halfClose)
              },
            ),
            { seed: 20_240_611, numRuns: 150, ...bounded },
          )
        )
        assert.strictEqual(statsOf(server).connectionsTotal, 150)
        const reply = yield* Effect.promise(() => tcpExchange(port, ["still alive"], { halfClose: true }))
        assert.strictEqual(reply.data.toString(), "STILL ALIVE")
      }).pipe(Effect.provide(tcpServer())),
    30_000,
  )

  it.live(
    "random lines in random pieces for count:s: one count per line, the last line answered on half-close",
    () =>
      Effect.gen(function* () {
        const server = yield* TcpServer.TcpServer
        const port = server.address.port
        const line = fc.oneof(
          fc.string({ unit: fc.constantFrom("s", "S", "ß", "a", " ", "é", "😀"), maxLength: 20 }).map(utf8),
          payload(24).map((bytes) => bytes.filter((byte) => byte !== 0x0a)),
        )
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              fc.array(line, { maxLength: 6 }),
              fc.boolean(),
              fc.array(fc.nat(), { maxLength: 4 }),
              async (
                lines,
                lastHasNewline,
                cuts,
              ) => {
                const parts = lines.flatMap((l, i) => i < lines.length - 1 || lastHasNewline ? [l, utf8("\n")] : [l])
                const bytes = concat(parts)
                const whole = lines.map((l) => String(countIn(decodeAll(l), "s")))
                const last = !lastHasNewline && lines.length > 0 && lines[lines.length - 1].length > 0
                const expected = whole.map((n, i) =>
                  i === lines.length - 1 && !lastHasNewline ? (last ? n : "") : n + "\n"
                )
                  .join("")
                const reply = await converse(port, cut(bytes, cuts), true, 0)
                assert.strictEqual(reply.data.toString(), expected, `lines ${JSON.stringify(lines.map((l) => [...l]))}`)
                assert.isTrue(reply.ended)
              },
            ),
            { seed: 7_031_994, numRuns: 100, ...bounded },
          )
        )
        const reply = yield* Effect.promise(() => tcpExchange(port, ["sass\n"], { halfClose: true }))
        assert.strictEqual(reply.data.toString(), "3\n")
      }).pipe(Effect.provide(tcpServer({}, Transform.count("s")))),
    30_000,
  )
})

describe("fuzzing the UDP server", () => {
  it.live(
    "random datagrams, valid UTF-8 or not: each is answered with the decoder's upper-casing",
    () =>
      Effect.gen(function* () {
        const server = yield* UdpServer.UdpServer
        const port = server.address.port
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(payload(512), async (bytes) => {
              const reply = await udpExchange(port, bytes)
              assert.deepStrictEqual([...reply], [...utf8(decodeAll(bytes).toUpperCase())], `datagram [${bytes}]`)
            }),
            { seed: 1_984, numRuns: 300, ...bounded },
          )
        )
        const stats = statsOf(server)
        assert.strictEqual(stats.received, 300)
        assert.strictEqual(stats.answered, 300)
        assert.strictEqual(stats.amplificationGuarded, 0, "upper-casing never grows UTF-8 more than 3x")
        assert.strictEqual((yield* Effect.promise(() => udpExchange(port, "still alive"))).toString(), "STILL ALIVE")
      }).pipe(
        Effect.provide(
          udpServer(),
        ),
      ),
    30_000,
  )
})
