// Run by test/HttpResponder.test.ts as `node --allow-natives-syntax socket-shapes.ts`: serves a TCP server and the
// operators' endpoint in one process, as `caps serve --metrics-port` does, sends each one request, and prints
// whether V8 gave their server-side sockets the same hidden class. A scrape on sockets of another shape made V8
// deoptimise the TCP server's read and write path (HttpResponder.ts).
import { Effect } from "effect"
import * as Net from "node:net"
import * as MetricsEndpoint from "../../src/MetricsEndpoint.ts"
import * as TcpServer from "../../src/TcpServer.ts"

const haveSameMap = new Function("a", "b", "return %HaveSameMap(a, b)") as (a: object, b: object) => boolean

/** Sends `text` and resolves once the reply matches `until`, the connection left open. */
const ask = (port: number, text: string, until: RegExp) =>
  new Promise<Net.Socket>((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let got = ""
    socket.on("data", (chunk) => {
      got += chunk
      if (until.test(got)) resolve(socket)
    })
    socket.on("error", reject)
    socket.write(text)
  })

/** The accepted socket of the server on `port`, found without reading its addresses (which would add fields). */
const acceptedOn = (port: number): Net.Socket => {
  const handles = (process as unknown as { _getActiveHandles: () => Array<unknown> })._getActiveHandles()
  const accepted = handles.filter((handle): handle is Net.Socket & { server: Net.Server | null } =>
    handle instanceof Net.Socket && (handle as { server?: Net.Server | null }).server != null
  )
  const found = accepted.find((socket) => (socket.server!.address() as Net.AddressInfo).port === port)
  if (found === undefined) throw new Error(`no accepted socket on port ${port}`)
  return found
}

await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  const tcp = yield* TcpServer.make({ host: "127.0.0.1", port: 0 })
  const endpoint = yield* MetricsEndpoint.serve({ host: "127.0.0.1", port: 0, ready: () => true })
  const clients = yield* Effect.promise(() =>
    Promise.all([
      ask(tcp.address.port, "hello\n", /HELLO\n/),
      ask(endpoint.port, "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n", /ok\n$/),
    ])
  )
  console.log(`same shape: ${haveSameMap(acceptedOn(tcp.address.port), acceptedOn(endpoint.port))}`)
  for (const client of clients) client.destroy()
})))
