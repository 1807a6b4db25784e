// scripts/otlp-print.mjs: a stand-in for an OpenTelemetry collector, to see what caps exports without one.
//
//   node scripts/otlp-print.mjs [PORT]    listens on 127.0.0.1:PORT (4318, OTLP/HTTP's port, by default)
//
// It takes OTLP/HTTP JSON exports (run caps with OTEL_EXPORTER_OTLP_PROTOCOL=http/json) and prints one line per
// client or server span: its name, its attributes as `key=value` and its events in brackets (internal spans, such
// as TcpServer.make, are left out). Anything else it answers 415. It runs until stopped (Ctrl-C).
import * as Http from "node:http"

const port = Number(process.argv[2] ?? 4318)
const CLIENT_OR_SERVER = new Set([2, 3])

const valueOf = (value) => value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue

const pairs = (attributes) => (attributes ?? []).map(({ key, value }) => `${key}=${valueOf(value)}`)

const print = (data) => {
  for (const { scopeSpans } of data.resourceSpans ?? []) {
    for (const { spans } of scopeSpans ?? []) {
      for (const span of spans ?? []) {
        if (!CLIENT_OR_SERVER.has(span.kind)) continue
        const attributes = pairs(span.attributes)
        const events = (span.events ?? []).map((event) => `[${[event.name, ...pairs(event.attributes)].join(" ")}]`)
        console.log([span.name, ...attributes, ...events].join(" "))
      }
    }
  }
}

const server = Http.createServer((request, response) => {
  const chunks = []
  request.on("data", (chunk) => chunks.push(chunk))
  request.on("end", () => {
    if (!(request.headers["content-type"] ?? "").includes("json")) {
      return response.writeHead(415).end("send OTLP/HTTP JSON: OTEL_EXPORTER_OTLP_PROTOCOL=http/json\n")
    }
    try {
      print(JSON.parse(Buffer.concat(chunks).toString("utf8")))
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    } catch (error) {
      response.writeHead(400).end(`${error}\n`)
    }
  })
})
server.listen({ host: "127.0.0.1", port }, () => console.error(`otlp-print: listening on 127.0.0.1:${port}`))
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.closeAllConnections()
    server.close(() => process.exit(0))
  })
}
