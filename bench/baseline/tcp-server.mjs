// BASELINE, not caps: the TCP uppercase server a competent Node user would write by hand with `node:net`.
//
// bench/run.ts measures caps's TCP server against this file, so it is deliberately plain and idiomatic rather
// than tuned: one streaming TextDecoder per connection (so a character split across two reads survives),
// `toUpperCase()`, write back, and the usual backpressure (pause while `write()` says the buffer is full,
// resume on 'drain'). Plain JavaScript, as such a server is written: nothing to strip or compile at start-up.
// Runs unchanged with `node tcp-server.mjs` and `deno run --allow-net --allow-env tcp-server.mjs`.
//
//   tcp-server.mjs --host 127.0.0.1 --port 0   ->  prints "ready tcp 127.0.0.1:PORT" once listening

import * as net from "node:net"
import process from "node:process"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { host: { type: "string", default: "127.0.0.1" }, port: { type: "string", default: "0" } },
})

const encoder = new TextEncoder()

// noDelay: replies are small and requests may be pipelined; with Nagle on, a reply can wait for the client's ACK.
const server = net.createServer({ noDelay: true }, (socket) => {
  const decoder = new TextDecoder()
  socket.on("data", (chunk) => {
    const text = decoder.decode(chunk, { stream: true })
    if (text.length === 0) return
    if (!socket.write(encoder.encode(text.toUpperCase()))) socket.pause()
  })
  socket.on("drain", () => socket.resume())
  // A client resetting its connection is normal for a benchmark; it must not take the server down.
  socket.on("error", () => socket.destroy())
})

server.on("error", (error) => {
  process.stderr.write(`tcp-server: ${error.message}\n`)
  process.exit(1)
})

server.listen(Number(values.port), values.host, () => {
  const address = server.address()
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address
  process.stdout.write(`ready tcp ${host}:${address.port}\n`)
})
