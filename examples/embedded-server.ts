// A caps server embedded in another Effect program, as a layer: it binds while
// the layer is built, serves while the program does its own work, and shuts
// down gracefully (docs/PROTOCOL.md, "Shutdown") when the program's scope
// ends. The program here is a stand-in "app" with work of its own; its TCP
// client stays connected until after the servers have stopped, so the drain
// has an open (idle) connection to close. Afterwards nothing listens any more.
//
// Run: node examples/embedded-server.ts
//      deno run --allow-net --allow-env examples/embedded-server.ts
//
// prints:
// app: caps serves on 127.0.0.1:<n>/udp and 127.0.0.1:<n>/tcp
// app: step 1 of 3 (its own work)
// app: a TCP client asked, caps answered HELLO, STEP 1
// app: step 2 of 3 (its own work)
// app: a UDP client asked, caps answered HELLO, STEP 2
// app: step 3 of 3 (its own work)
// app: a TCP client asked, caps answered HELLO, STEP 3
// app: work done; leaving the scope that holds the servers
// [caps info] udp-server on 127.0.0.1:<n>/udp stopped: 1 datagrams received, 1 answered<…>
// [caps info] tcp-server on 127.0.0.1:<n>/tcp stopped in <n> ms: 1 of 1 open connections closed cleanly, 0 cut at the 5000 ms drain deadline; 1 served in all
// app: servers stopped; the TCP client that was still connected closes now
// app: afterwards, ConnectionRefused: connection refused by 127.0.0.1:<n>/tcp
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Logger } from "effect"
import { TcpClient, TcpServer, UdpClient, UdpServer } from "../src/index.ts"

// Both servers, as the CLI's `serve` runs them; port 0 lets the system pick free ports.
const CapsServers = Layer.mergeAll(
  UdpServer.layer({ host: "127.0.0.1", port: 0 }),
  // maxConnections given, so that on Deno (which cannot read the descriptor limit) there is no warning about it.
  TcpServer.layer({ host: "127.0.0.1", port: 0, maxConnections: 100 }),
)

// The servers log through Effect's logger; the app decides where that goes (here: one short line each).
const AppLogger = Logger.layer([
  Logger.make(({ logLevel, message }) =>
    console.log(`[caps ${logLevel.toLowerCase()}] ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  ),
])

// The app's own work, one step of it.
const doStep = (step: number) =>
  Console.log(`app: step ${step} of 3 (its own work)`).pipe(Effect.andThen(Effect.sleep("20 millis")))

const app = Effect.gen(function* () {
  const udp = yield* UdpServer.UdpServer // already bound: no datagram sent from here on is lost
  const tcp = yield* TcpServer.TcpServer
  yield* Console.log(
    `app: caps serves on ${udp.address.host}:${udp.address.port}/udp and ` +
      `${tcp.address.host}:${tcp.address.port}/tcp`,
  )

  // Clients of the embedded servers (in a real app they would be other programs).
  const overTcp = yield* TcpClient.make({ host: "127.0.0.1", port: tcp.address.port })
  const overUdp = yield* UdpClient.make({ host: "127.0.0.1", port: udp.address.port })

  for (const step of [1, 2, 3]) {
    yield* doStep(step)
    const [transport, client] = step === 2 ? ["UDP", overUdp] as const : ["TCP", overTcp] as const
    yield* Console.log(
      `app: a ${transport} client asked, caps answered ${yield* client.request(`hello, step ${step}`)}`,
    )
  }
  yield* Console.log("app: work done; leaving the scope that holds the servers")
  return tcp.address.port
})

const program = Effect.gen(function* () {
  // `Effect.provide` builds the layer for `app` and closes it when `app` ends: that is the graceful shutdown.
  // The clients' scope is the outer one (`Effect.scoped` below), so the TCP client is still connected then.
  const port = yield* app.pipe(Effect.provide(CapsServers))
  yield* Console.log("app: servers stopped; the TCP client that was still connected closes now")
  return port
}).pipe(
  Effect.scoped,
  // Once the scope is closed, the port is closed too: a new client is refused.
  Effect.flatMap((port) =>
    TcpClient.make({ host: "127.0.0.1", port }).pipe(
      Effect.flatMap((client) => client.request("anyone there?")),
      Effect.scoped,
      Effect.catchTag("ConnectionRefused", (error) => Console.log(`app: afterwards, ${error._tag}: ${error.message}`)),
    )
  ),
  Effect.provide(AppLogger),
)

NodeRuntime.runMain(program)
