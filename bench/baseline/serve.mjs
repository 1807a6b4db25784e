// BASELINE, not caps: both hand-written servers in one process on one port number, the counterpart of
// `caps serve` (what `npm start` runs), so the two are compared doing the same job.
//
//   serve.mjs --host 127.0.0.1 --port P   ->  prints "ready tcp ..." and "ready udp ..." once both are bound

import "./tcp-server.mjs"
import "./udp-server.mjs"
