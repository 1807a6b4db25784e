// The operators' endpoint of `caps serve --metrics-port`, as Prometheus and an orchestrator use it: /metrics in
// Prometheus's text format with the traffic just sent, /livez 200 while the process runs, /readyz 200 while serving
// and 503 during the drain; scrapes are not logged; a port in use is a bind error before anything else binds.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Net from "node:net"
import * as ExitCode from "../src/ExitCode.ts"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CAPS_READY, isDeno, projectRoot, runCaps, start, startCaps } from "./support/Process.ts"
import { connection, sleep, tcpExchange, udpExchange } from "./support/Sockets.ts"

const MiB = 1024 * 1024
const METRICS_READY = /^caps serve: metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics$/m

const get = (port: number, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() }
  })

const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((line) => line.startsWith(series + " "))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe("caps serve --metrics-port", () => {
  it.live("serves /metrics, /livez and /readyz; /readyz is 503 during the drain while /livez stays 200", () =>
    Effect.gen(function* () {
      const server = yield* startCaps([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--drain-timeout",
        "3",
      ])
      const metricsPort = Number(METRICS_READY.exec(server.stdout())?.[1])
      assert.isTrue(metricsPort > 0, `the metrics ready line:\n${server.stdout()}`)
      const [udpPort, tcpPort] = server.ports

      const live = yield* get(metricsPort, "/livez")
      assert.strictEqual(live.status, 200)
      assert.strictEqual((yield* get(metricsPort, "/readyz")).status, 200)
      const before = yield* get(metricsPort, "/metrics")
      assert.strictEqual(before.status, 200)
      assert.include(before.type, "text/plain; version=0.0.4")
      assert.strictEqual(sample(before.body, 'caps_requests_total{transport="udp",result="answered"}'), 0)

      const reply = yield* Effect.promise(() => tcpExchange(tcpPort, ["hello"], { halfClose: true }))
      assert.strictEqual(reply.data.toString(), "HELLO")
      for (const sentence of ["one", "two"]) {
        assert.strictEqual(
          (yield* Effect.promise(() => udpExchange(udpPort, sentence))).toString(),
          sentence.toUpperCase(),
        )
      }
      const after = (yield* get(metricsPort, "/metrics")).body
      assert.strictEqual(sample(after, 'caps_requests_total{transport="udp",result="answered"}'), 2)
      assert.strictEqual(sample(after, 'caps_requests_total{transport="tcp",result="answered"}'), 1)
      assert.strictEqual(sample(after, "caps_tcp_connections_total"), 1)
      assert.strictEqual(sample(after, 'caps_request_size_bytes_sum{transport="udp"}'), 6)
      assert.strictEqual(sample(after, "caps_tcp_connections_active"), 0)

      // A reader that never reads holds the drain until its deadline.
      const slow = yield* connection(tcpPort)
      slow.on("error", () => {})
      slow.pause()
      slow.write(Buffer.alloc(8 * MiB, 0x61))
      yield* Effect.promise(() => sleep(200))
      const stopping = yield* Effect.forkChild(server.stop("SIGTERM", 10_000))
      let draining = 0
      for (let i = 0; i < 40 && draining !== 503; i++) {
        draining = (yield* get(metricsPort, "/readyz")).status
        if (draining !== 503) yield* Effect.promise(() => sleep(50))
      }
      assert.strictEqual(draining, 503, "not ready once the drain has begun")
      assert.strictEqual((yield* get(metricsPort, "/livez")).status, 200, "still alive while draining")
      const stopped = yield* Fiber.join(stopping)
      assert.isFalse(stopped.forced)
      assert.strictEqual(stopped.code, 0)
      // Five scrapes and three probes, and not one line about them.
      assert.notMatch(server.stderr(), /metrics|livez|readyz|GET/, server.stderr())
    }))

  it.live("a metrics port in use fails like a server's port in use, and nothing is left bound", () =>
    Effect.gen(function* () {
      const taken = Net.createServer()
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => taken.listen({ host: "127.0.0.1", port: 0 }, resolve))),
        () => Effect.sync(() => taken.close()),
      )
      const port = (taken.address() as Net.AddressInfo).port
      const finished = yield* runCaps(["serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", String(port)])
      assert.strictEqual(finished.code, ExitCode.ofError.AddressInUse, finished.stderr)
      assert.include(finished.stderr, `127.0.0.1:${port}`)
      assert.notInclude(finished.stdout, "ready on", "no server bound before the endpoint")
    }))

  it.live("an impossible --metrics-port is a usage error", () =>
    Effect.gen(function* () {
      const finished = yield* runCaps(["serve", "--metrics-port", "70000"])
      assert.strictEqual(finished.code, ExitCode.USAGE, finished.stderr)
      assert.include(finished.stderr, "--metrics-port")
    }))

  it.live.skipIf(isDeno)(
    "the bundle that npm start runs serves it too, on Node and on Deno, from a file of its own",
    () =>
      Effect.gen(function* () {
        const args = ["serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--max-connections", "50"]
        const deno = Path.join(projectRoot, "node_modules", ".bin", "deno")
        const launches = [
          // scripts/caps.mjs runs dist/caps.mjs, built again first if src/ changed.
          [process.execPath, Path.join(projectRoot, "scripts", "caps.mjs"), ...args],
          // Deno runs the CommonJS bundle when it may read it, and the ESM one when it may not.
          [
            deno,
            "run",
            "--allow-net",
            "--allow-env",
            "--allow-read",
            Path.join(projectRoot, "dist", "caps.mjs"),
            ...args,
          ],
          [deno, "run", "--allow-net", "--allow-env", Path.join(projectRoot, "dist", "caps.mjs"), ...args],
        ]
        for (const command of launches) {
          yield* Effect.scoped(Effect.gen(function* () {
            const server = yield* start(command, { ready: CAPS_READY, count: 2, readyTimeoutMs: 60_000 })
            const metricsPort = Number(METRICS_READY.exec(server.stdout())?.[1])
            const scraped = yield* get(metricsPort, "/metrics")
            assert.strictEqual(scraped.status, 200, command.join(" "))
            assert.match(scraped.body, /^caps_build_info\{version="[^"]+",runtime="(node|deno)"/m, command.join(" "))
          }))
        }
        // The endpoint is a bundle of its own, loaded only with --metrics-port: the main bundle holds none of it.
        assert.notInclude(Fs.readFileSync(Path.join(projectRoot, "dist", "caps.bundle.cjs"), "utf8"), "version=0.0.4")
        assert.include(Fs.readFileSync(Path.join(projectRoot, "dist", "caps.metrics.cjs"), "utf8"), "version=0.0.4")
      }),
    120_000,
  )
})
