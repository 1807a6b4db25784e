// The CLI's traces, end to end: real `caps` commands as child processes, with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at an OTLP/HTTP receiver started here. A one-shot client and a server stopped by SIGINT export
// their spans at shutdown (the batch interval is set far beyond the test, so nothing else sends them); the
// standard variables are honoured; unset, the exporter is not even loaded.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { VERSION } from "../src/Cli.ts"
import { isDeno, projectRoot, run, runCaps, startCaps } from "./support/Process.ts"
import { otlpReceiver, type ReceivedSpan, spansOf } from "./support/OtlpReceiver.ts"
import { echoPeer, udpPeer } from "./support/Sockets.ts"

// OTLP's span kinds.
const SERVER = 2
const CLIENT = 3

// Spans reach the receiver only when the program ends: the periodic export would come after a minute.
const exporting = (url: string, extra: Record<string, string | undefined> = {}) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: url,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: undefined,
  OTEL_BSP_SCHEDULE_DELAY: "60000",
  OTEL_SERVICE_NAME: undefined,
  OTEL_RESOURCE_ATTRIBUTES: undefined,
  OTEL_TRACES_EXPORTER: undefined,
  OTEL_SDK_DISABLED: undefined,
  ...extra,
})

const succeeded = (what: string, finished: { code: number | null; stdout: string; stderr: string }) => {
  assert.strictEqual(finished.code, 0, `${what}:\n${finished.stdout}${finished.stderr}`)
  return finished
}

const only = (spans: ReadonlyArray<ReceivedSpan>, name: string): ReceivedSpan => {
  const found = spans.filter((span) => span.name === name)
  assert.strictEqual(found.length, 1, `one ${name} span among ${spans.map((span) => span.name).join(", ")}`)
  return found[0]
}

describe("caps exports its spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set", () => {
  it.live(
    "a one-shot tcp-client and udp-client export their request spans as they exit; caps serve, its connection " +
      "and datagram spans after SIGINT",
    () =>
      Effect.gen(function* () {
        const receiver = yield* otlpReceiver
        const server = yield* startCaps(
          ["serve", "--host", "127.0.0.1", "--port", "0", "--trace-datagrams"],
          { env: exporting(receiver.url, { OTEL_SERVICE_NAME: "caps-under-test" }) },
        )
        const [udpPort, tcpPort] = server.ports
        succeeded(
          "tcp-client",
          yield* runCaps(["tcp-client", "-m", "hello", "--host", "127.0.0.1", "--port", String(tcpPort)], {
            env: exporting(receiver.url),
          }),
        )
        succeeded(
          "udp-client",
          yield* runCaps(["udp-client", "-m", "hello", "--host", "127.0.0.1", "--port", String(udpPort)], {
            env: exporting(receiver.url),
          }),
        )
        assert.isTrue(receiver.received.every((request) => request.path === "/v1/traces"))
        const clients = spansOf(receiver.received)
        const tcp = only(clients, "TcpClient.request")
        assert.strictEqual(tcp.kind, CLIENT)
        assert.deepInclude(tcp.attributes, {
          "server.address": "127.0.0.1",
          "server.port": tcpPort,
          "network.transport": "tcp",
          "network.peer.address": "127.0.0.1",
        })
        assert.deepStrictEqual(tcp.events, [{ name: "attempt", attributes: { attempt: 1 } }])
        assert.deepInclude(tcp.resource, { "service.name": "caps", "service.version": VERSION })
        const udp = only(clients, "UdpClient.request")
        assert.deepInclude(udp.attributes, { "server.port": udpPort, "network.transport": "udp", "caps.attempts": 1 })
        assert.isFalse(clients.some((span) => span.name.startsWith("TcpServer.")), "nothing from the server yet")

        const before = receiver.received.length
        const stopped = yield* server.stop("SIGINT", 10_000)
        assert.strictEqual(stopped.code, 0, server.stderr())
        const served = spansOf(receiver.received.slice(before))
        const connection = only(served, "TcpServer.connection")
        assert.strictEqual(connection.kind, SERVER)
        assert.isUndefined(connection.parentSpanId)
        assert.deepInclude(connection.attributes, {
          "network.transport": "tcp",
          "client.address": "127.0.0.1",
          "server.port": tcpPort,
          "caps.connection.end": "eof",
          "caps.connection.requests": 1,
        })
        assert.strictEqual(connection.resource["service.name"], "caps-under-test")
        const datagram = only(served, "UdpServer.datagram")
        assert.deepInclude(datagram.attributes, {
          "network.transport": "udp",
          "server.port": udpPort,
          "caps.datagram.result": "answered",
        })
      }),
    60_000,
  )

  it.live(
    "a UDP request that is answered only when resent shows an attempt event for each send",
    () =>
      Effect.gen(function* () {
        const receiver = yield* otlpReceiver
        const peer = yield* Effect.acquireRelease(
          Effect.promise(() => udpPeer((message, index) => index === 0 ? undefined : { payload: message })),
          (peer) => Effect.sync(peer.close),
        )
        const finished = succeeded(
          "udp-client",
          yield* runCaps(
            ["udp-client", "-m", "again", "--host", "127.0.0.1", "--port", String(peer.port), "--timeout", "0.3"],
            { env: exporting(receiver.url) },
          ),
        )
        assert.strictEqual(finished.stdout.trim(), "again")
        const request = only(spansOf(receiver.received), "UdpClient.request")
        assert.deepStrictEqual(request.events.map((event) => [event.name, event.attributes.attempt]), [
          ["attempt", 1],
          ["attempt", 2],
        ])
        assert.strictEqual(request.attributes["caps.attempts"], 2)
      }),
    30_000,
  )

  it.live(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the full URL; without a protocol, the body is protobuf",
    () =>
      Effect.gen(function* () {
        const receiver = yield* otlpReceiver
        const peer = yield* echoPeer
        succeeded(
          "udp-client",
          yield* runCaps(["udp-client", "-m", "hi", "--host", "127.0.0.1", "--port", String(peer.port)], {
            env: exporting("", {
              OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
              OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/collector/traces`,
              OTEL_EXPORTER_OTLP_PROTOCOL: undefined,
            }),
          }),
        )
        assert.deepStrictEqual(receiver.received.map((request) => [request.path, request.contentType]), [
          ["/collector/traces", "application/x-protobuf"],
        ])
        // Protobuf keeps strings as they are: the span's name and attribute keys are there in UTF-8.
        const body = receiver.received[0].body.toString("latin1")
        assert.include(body, "UdpClient.request")
        assert.include(body, "server.address")
      }),
    30_000,
  )

  it.live("OTEL_TRACES_EXPORTER=none turns exporting off even with an endpoint set", () =>
    Effect.gen(function* () {
      const receiver = yield* otlpReceiver
      const peer = yield* echoPeer
      succeeded(
        "udp-client",
        yield* runCaps(["udp-client", "-m", "hi", "--host", "127.0.0.1", "--port", String(peer.port)], {
          env: exporting(receiver.url, { OTEL_TRACES_EXPORTER: "none" }),
        }),
      )
      assert.deepStrictEqual(receiver.received, [])
    }), 30_000)

  it.live(
    "a malformed endpoint or an OTLP protocol caps does not speak is a usage error naming the variable",
    () =>
      Effect.gen(function* () {
        const notUrl = yield* runCaps(["udp-client", "-m", "hi"], {
          env: exporting("not a url"),
        })
        assert.strictEqual(notUrl.code, 2, notUrl.stderr)
        assert.include(notUrl.stderr, "invalid option OTEL_EXPORTER_OTLP_ENDPOINT: expected a URL")
        const grpc = yield* runCaps(["udp-client", "-m", "hi"], {
          env: exporting("http://127.0.0.1:4317", { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }),
        })
        assert.strictEqual(grpc.code, 2, grpc.stderr)
        assert.include(grpc.stderr, "invalid option OTEL_EXPORTER_OTLP_PROTOCOL")
      }),
    30_000,
  )
})

// Which of Effect's observability modules a run of the sources loads, seen by a module hook (Node's own API): the
// OTLP exporter's (Otlp*) only when an endpoint is set.
const LOADS = Path.join(projectRoot, "test", "support", "ObservabilityLoads.mjs")

describe("with no OTLP endpoint, tracing costs nothing at start-up", () => {
  it.live.skipIf(isDeno)(
    "the exporter is never loaded; with one, it is (Node: module hooks)",
    () =>
      Effect.gen(function* () {
        const receiver = yield* otlpReceiver
        const peer = yield* echoPeer
        const client = (env: Record<string, string | undefined>) =>
          run([
            process.execPath,
            "--import",
            LOADS,
            Path.join(projectRoot, "src", "main.ts"),
            "udp-client",
            "-m",
            "hi",
            "--host",
            "127.0.0.1",
            "--port",
            String(peer.port),
          ], { env })
        const unset = succeeded(
          "unset",
          yield* client(exporting("", { OTEL_EXPORTER_OTLP_ENDPOINT: undefined, OTEL_SERVICE_NAME: "caps" })),
        )
        assert.notInclude(unset.stderr, "loaded effect/observability/Otlp")
        assert.deepStrictEqual(receiver.received, [])
        const set = succeeded("set", yield* client(exporting(receiver.url)))
        assert.include(set.stderr, "loaded effect/observability/OtlpTracer")
        assert.strictEqual(spansOf(receiver.received).filter((span) => span.name === "UdpClient.request").length, 1)
      }),
    30_000,
  )

  it.live.skipIf(isDeno)(
    "the bundle that npm start and npm run caps run exports them too, on Node and on Deno",
    () =>
      Effect.gen(function* () {
        const receiver = yield* otlpReceiver
        const peer = yield* echoPeer
        // scripts/caps.mjs runs dist/caps.mjs, built again first if src/ changed.
        succeeded(
          "bundle",
          yield* run([
            process.execPath,
            Path.join(projectRoot, "scripts", "caps.mjs"),
            "udp-client",
            "-m",
            "hi",
            "--host",
            "127.0.0.1",
            "--port",
            String(peer.port),
          ], { env: exporting(receiver.url), timeoutMs: 60_000 }),
        )
        // The exporter is a bundle of its own, loaded only now: the main bundle holds none of it.
        const main = Fs.readFileSync(Path.join(projectRoot, "dist", "caps.bundle.cjs"), "utf8")
        assert.notInclude(main, "OTel-OTLP-Exporter")
        assert.include(Fs.readFileSync(Path.join(projectRoot, "dist", "caps.trace.cjs"), "utf8"), "OTel-OTLP-Exporter")
        // Deno runs the CommonJS bundle when it may read it, and the ESM one when it may not.
        const deno = Path.join(projectRoot, "node_modules", ".bin", "deno")
        for (const read of [["--allow-read"], []]) {
          succeeded(
            `deno run ${read.join(" ")}`,
            yield* run([
              deno,
              "run",
              "--allow-net",
              "--allow-env",
              ...read,
              Path.join(projectRoot, "dist", "caps.mjs"),
              "udp-client",
              "-m",
              "hi",
              "--host",
              "127.0.0.1",
              "--port",
              String(peer.port),
            ], { env: exporting(receiver.url), timeoutMs: 60_000 }),
          )
        }
        assert.strictEqual(spansOf(receiver.received).filter((span) => span.name === "UdpClient.request").length, 3)
      }),
    120_000,
  )
})
