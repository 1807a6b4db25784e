// Property tests over real sockets: for arbitrary Unicode sentences the caps
// clients get back exactly Python's str.upper() of what they sent, over UDP
// and over TCP, whatever the characters and however TCP splits the bytes.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fc from "fast-check"
import * as TcpClient from "../src/TcpClient.ts"
import * as TcpServer from "../src/TcpServer.ts"
import * as UdpClient from "../src/UdpClient.ts"
import * as UdpServer from "../src/UdpServer.ts"
import { expectedUpper } from "./support/Oracle.ts"
import { tcpExchange } from "./support/Sockets.ts"
import { tcpServer, udpServer } from "./support/Servers.ts"

const servers = Layer.mergeAll(udpServer(), tcpServer())

// Full Unicode, including astral characters and unassigned code points; no newline (TCP's line end).
const sentences = fc.sample(
  fc.string({ unit: "binary", maxLength: 60 }).map((s) => s.replaceAll("\n", " ")),
  { numRuns: 200, seed: 7 },
)

describe("upper over the wire", () => {
  it.live("UDP: every reply equals the expected upper-casing of its sentence", () =>
    Effect.gen(function* () {
      const server = yield* UdpServer.UdpServer
      const client = yield* UdpClient.make({ host: "127.0.0.1", port: server.address.port })
      const expected = expectedUpper(sentences)
      for (const [i, sentence] of sentences.entries()) {
        assert.strictEqual(yield* client.request(sentence), expected[i], JSON.stringify(sentence))
      }
    }).pipe(Effect.scoped, Effect.provide(servers)))

  it.live("TCP: every reply equals the expected upper-casing of its sentence", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const client = yield* TcpClient.make({ host: "127.0.0.1", port: server.address.port })
      const expected = expectedUpper(sentences)
      for (const [i, sentence] of sentences.entries()) {
        assert.strictEqual(yield* client.request(sentence), expected[i], JSON.stringify(sentence))
      }
    }).pipe(Effect.scoped, Effect.provide(servers)))

  it.live("TCP: the reply is the same however the bytes are split into writes", () =>
    Effect.gen(function* () {
      const server = yield* TcpServer.TcpServer
      const cases = fc.sample(
        fc.tuple(fc.string({ unit: "binary", minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 7 })),
        { numRuns: 40, seed: 11 },
      )
      const expected = expectedUpper(cases.map(([text]) => text))
      for (const [i, [text, step]] of cases.entries()) {
        const bytes = new TextEncoder().encode(text)
        const pieces: Array<Uint8Array> = []
        for (let at = 0; at < bytes.length; at += step) pieces.push(bytes.subarray(at, at + step))
        const reply = yield* Effect.promise(() =>
          tcpExchange(server.address.port, pieces, { pauseMs: 1, halfClose: true })
        )
        assert.strictEqual(reply.data.toString(), expected[i], JSON.stringify(text))
      }
    }).pipe(Effect.provide(servers)))
})
