// BASELINE, not caps: the one-shot UDP client a competent Node user would write by hand with `node:dgram`
// (the textbook's UDPClient.py given its sentence): send one datagram, print the reply, exit; give up after
// a second. bench/run.ts times it against `caps udp-client -m`, launched the same way.
//
//   udp-client.mjs --host 127.0.0.1 --port P -m SENTENCE

import * as dgram from "node:dgram"
import process from "node:process"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "12000" },
    message: { type: "string", short: "m", default: "hello" },
  },
})

const socket = dgram.createSocket(values.host.includes(":") ? "udp6" : "udp4")
const timer = setTimeout(() => {
  process.stderr.write("udp-client: no answer\n")
  process.exit(6)
}, 1000)

socket.on("message", (reply) => {
  clearTimeout(timer)
  process.stdout.write(`${new TextDecoder().decode(reply)}\n`)
  socket.close()
})
socket.on("error", (error) => {
  process.stderr.write(`udp-client: ${error.message}\n`)
  process.exit(1)
})
socket.send(new TextEncoder().encode(values.message), Number(values.port), values.host)
