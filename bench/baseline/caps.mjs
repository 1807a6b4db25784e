// BASELINE, not caps: the hand-written counterparts of `caps <command>`, behind one command, so that
// bench/run.ts can launch them exactly as the README launches caps: `npm run bench:baseline -- serve ...`
// beside `npm start`, `npm run bench:baseline -- udp-client -m hello ...` beside `npm run caps -- ...`.
//
//   caps.mjs serve|tcp-server|udp-server|tcp-client|udp-client [--host H] [--port P] [-m SENTENCE]

import process from "node:process"

const command = process.argv[2]
// The programs read their flags from process.argv.slice(2), as when they run on their own.
process.argv.splice(2, 1)
switch (command) {
  case "serve":
    await import("./serve.mjs")
    break
  case "tcp-server":
    await import("./tcp-server.mjs")
    break
  case "udp-server":
    await import("./udp-server.mjs")
    break
  case "tcp-client":
    await import("./tcp-client.mjs")
    break
  case "udp-client":
    await import("./udp-client.mjs")
    break
  default:
    process.stderr.write(`baseline: unknown command ${JSON.stringify(command)}\n`)
    process.exit(2)
}
