// The operators' endpoint of `caps serve --metrics-port`, as Prometheus and an orchestrator use it: /metrics in
// Prometheus's text format with the traffic just sent, /livez 200 while the process runs, /readyz 200 while serving
// and 503 during the drain; scrapes are not logged; a port in use is a bind error before anything else binds.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Metric } from "effect"
import * as Http from "node:http"
import * as Net from "node:net"
import * as ExitCode from "../src/ExitCode.ts"
import * as MetricsEndpoint from "../src/MetricsEndpoint.ts"
import * as Path from "node:path"
import { CAPS_READY, isDeno, projectRoot, runCaps, start, startCaps } from "./support/Process.ts"
import {
  closedByPeer,
  connection,
  openSockets,
  readAtLeast,
  sleep,
  socketsBackTo,
  tcpConnect,
  tcpExchange,
  udpExchange,
} from "./support/Sockets.ts"

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

/** A port some other server holds on 127.0.0.1, for the scope's lifetime. */
const takenPort = Effect.gen(function* () {
  const taken = Net.createServer()
  yield* Effect.acquireRelease(
    Effect.promise(() => new Promise<void>((resolve) => taken.listen({ host: "127.0.0.1", port: 0 }, resolve))),
    () => Effect.sync(() => taken.close()),
  )
  return (taken.address() as Net.AddressInfo).port
})

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
      const port = yield* takenPort
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
    "the bundle that npm start runs serves it too, on Node and on Deno",
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
      }),
    120_000,
  )
})

describe("MetricsEndpoint", () => {
  const routes = { metrics: () => "caps_x 1\n", ready: () => true }

  it("answers GET and HEAD on its three paths, 405 to other methods there, 404 elsewhere", () => {
    assert.deepStrictEqual(MetricsEndpoint.route("GET", "/metrics?name[]=caps_x", routes), {
      status: 200,
      body: "caps_x 1\n",
      contentType: MetricsEndpoint.PROMETHEUS_CONTENT_TYPE,
    })
    assert.strictEqual(MetricsEndpoint.route("HEAD", "/livez", routes).status, 200)
    assert.strictEqual(MetricsEndpoint.route("GET", "/readyz", { ...routes, ready: () => false }).status, 503)
    assert.deepStrictEqual(MetricsEndpoint.route("POST", "/metrics", routes), {
      status: 405,
      body: "method not allowed\n",
      allow: "GET, HEAD",
    })
    assert.strictEqual(MetricsEndpoint.route("DELETE", "/other", routes).status, 404)
    assert.strictEqual(MetricsEndpoint.route("GET", "/metricsx", routes).status, 404)
    assert.strictEqual(MetricsEndpoint.route("GET", "/", routes).status, 404)
  })

  it("answers 500 when serving a path throws, and goes on", () => {
    const broken = {
      ...routes,
      metrics: () => {
        throw new Error("boom")
      },
    }
    assert.deepStrictEqual(MetricsEndpoint.route("GET", "/metrics", broken), { status: 500, body: "internal error\n" })
    assert.strictEqual(MetricsEndpoint.route("GET", "/livez", broken).status, 200)
  })

  const request = (port: number, method: string, path: string, agent: Http.Agent) =>
    new Promise<{ status: number; headers: Http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const sent = Http.request({ host: "127.0.0.1", port, method, path, agent, timeout: 3000 }, (response) => {
        let body = ""
        response.setEncoding("utf8").on("data", (chunk) => (body += chunk))
        response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
      })
      sent.on("timeout", () => sent.destroy(new Error(`${method} ${path}: no answer in 3 s`)))
      sent.on("error", reject)
      sent.end()
    })

  it.live("serves the program's registry in a scope; closing it closes every connection, a half-sent request's too", () =>
    Effect.gen(function* () {
      const before = openSockets()
      const agent = new Http.Agent({ keepAlive: true })
      const requests = Metric.counter("caps_test_requests_total")
      yield* Metric.update(requests, 3)
      let ready = false
      const address = yield* MetricsEndpoint.serve({ host: "127.0.0.1", port: 0, ready: () => ready })
      const scraped = yield* Effect.promise(() => request(address.port, "GET", "/metrics", agent))
      assert.strictEqual(scraped.status, 200)
      assert.strictEqual(scraped.headers["content-type"], MetricsEndpoint.PROMETHEUS_CONTENT_TYPE)
      assert.match(scraped.body, /^caps_test_requests_total 3$/m)
      const head = yield* Effect.promise(() => request(address.port, "HEAD", "/metrics", agent))
      assert.strictEqual(head.body, "")
      assert.strictEqual(Number(head.headers["content-length"]), Buffer.byteLength(scraped.body))
      assert.strictEqual((yield* Effect.promise(() => request(address.port, "GET", "/readyz", agent))).status, 503)
      ready = true
      assert.strictEqual((yield* Effect.promise(() => request(address.port, "GET", "/readyz", agent))).status, 200)
      const post = yield* Effect.promise(() => request(address.port, "POST", "/readyz", agent))
      assert.strictEqual(post.status, 405)
      assert.strictEqual(post.headers["allow"], "GET, HEAD")
      // A request whose headers never end: the scope's close must not wait for it (headers time out after 10 s).
      const halfSent = yield* Effect.promise(() => tcpConnect(address.port))
      halfSent.on("error", () => {})
      halfSent.write("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
      yield* Effect.promise(() => sleep(100))
      return { before, agent, halfSent }
    }).pipe(
      Effect.scoped,
      // The scope has closed: the listener, the kept-alive connection and the half-sent request with it.
      Effect.flatMap(({ agent, before, halfSent }) =>
        Effect.promise(async () => {
          await closedByPeer(halfSent, 2000)
          halfSent.destroy()
          await socketsBackTo(before, 2000)
        }).pipe(Effect.ensuring(Effect.sync(() => agent.destroy())))
      ),
    ))

  it.live("holds MAX_CONNECTIONS connections at once, closing more as they arrive, and serves again when one closes", () =>
    Effect.gen(function* () {
      const address = yield* MetricsEndpoint.serve({ host: "127.0.0.1", port: 0, ready: () => true })
      /** A kept-alive connection that asked for /livez: whether it was answered or closed unanswered. */
      const ask = Effect.acquireRelease(
        Effect.promise(async () => {
          const socket = await tcpConnect(address.port)
          socket.on("error", () => {})
          socket.write("GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
          // One closed as it arrives may be reset, having sent a request the endpoint never read.
          const reply = (await readAtLeast(socket, 1).catch(() => Buffer.alloc(0))).toString()
          return { socket, answered: reply.startsWith("HTTP/1.1 200 OK") }
        }),
        ({ socket }) => Effect.sync(() => socket.destroy()),
      )
      const held = []
      for (let i = 0; i < MetricsEndpoint.MAX_CONNECTIONS; i++) held.push(yield* ask)
      assert.deepStrictEqual(held.map((conn) => conn.answered), held.map(() => true))
      assert.isFalse((yield* ask).answered, "one more is closed unanswered")
      held[0].socket.destroy()
      yield* Effect.promise(() => sleep(100))
      assert.isTrue((yield* ask).answered, "served again once one has closed")
    }).pipe(Effect.scoped))

  it.live("a port in use is a typed AddressInUse naming it, and nothing is left listening", () =>
    Effect.gen(function* () {
      const port = yield* takenPort
      const error = yield* Effect.flip(MetricsEndpoint.serve({ host: "127.0.0.1", port, ready: () => true }))
      assert.strictEqual(error._tag, "AddressInUse")
      assert.include(error.message, `127.0.0.1:${port}`)
    }).pipe(Effect.scoped))
})
