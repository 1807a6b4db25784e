// BASELINE, not caps: the UDP uppercase server a competent Node user would write by hand with `node:dgram`.
//
// bench/run.ts measures caps's UDP server against this file, so it is deliberately plain: each datagram is
// decoded on its own (a datagram is a whole message), uppercased and sent back to its sender. Plain JavaScript,
// as such a server is written: nothing to strip or compile at start-up. Runs unchanged with
// `node udp-server.mjs` and `deno run --allow-net --allow-env udp-server.mjs`.
//
//   udp-server.mjs --host 127.0.0.1 --port 0   ->  prints "ready udp 127.0.0.1:PORT" once bound

import * as dgram from "node:dgram"
import process from "node:process"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { host: { type: "string", default: "127.0.0.1" }, port: { type: "string", default: "0" } },
})

const decoder = new TextDecoder()
const encoder = new TextEncoder()
const socket = dgram.createSocket(values.host.includes(":") ? "udp6" : "udp4")

socket.on("message", (message, peer) => {
  socket.send(encoder.encode(decoder.decode(message).toUpperCase()), peer.port, peer.address)
})

let bound = false
// A failed send (e.g. the peer went away) is reported here: losing one reply must not stop the server, but
// failing to bind must.
socket.on("error", (error) => {
  process.stderr.write(`udp-server: ${error.message}\n`)
  if (!bound) process.exit(1)
})

socket.bind(Number(values.port), values.host, () => {
  bound = true
  const address = socket.address()
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address
  process.stdout.write(`ready udp ${host}:${address.port}\n`)
})
