// BASELINE, not caps: the one-shot TCP client a competent Node user would write by hand with `node:net`
// (the textbook's TCPClient.py given its sentence): connect, send the line, print the reply line, close;
// give up after five seconds. bench/run.ts times it against `caps tcp-client -m`, launched the same way.
//
//   tcp-client.mjs --host 127.0.0.1 --port P -m SENTENCE

import * as net from "node:net"
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

const socket = net.connect({ host: values.host, port: Number(values.port), noDelay: true })
socket.setTimeout(5000, () => {
  process.stderr.write("tcp-client: no answer\n")
  process.exit(6)
})
const decoder = new TextDecoder()
let reply = ""
socket.on("connect", () => socket.write(`${values.message}\n`))
socket.on("data", (chunk) => {
  reply += decoder.decode(chunk, { stream: true })
  const end = reply.indexOf("\n")
  if (end === -1) return
  process.stdout.write(`${reply.slice(0, end)}\n`)
  socket.end()
})
socket.on("error", (error) => {
  process.stderr.write(`tcp-client: ${error.message}\n`)
  process.exit(1)
})
