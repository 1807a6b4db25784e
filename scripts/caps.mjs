#!/usr/bin/env node
// scripts/caps.mjs: the `caps` command of a checkout. `npm start` and `npm run caps -- ...` run it on the pinned
// Node; the README's Deno command runs it with `deno run --allow-net --allow-env --allow-read`.
//
// It runs dist/caps.mjs, the bundled program (see scripts/bundle.mjs: several times faster to start, half the
// memory of src/main.ts), but only when dist/ was built from src/ as it is now, so an edit is never hidden by an
// old bundle. When src/ has changed, Node rebuilds the bundle first (about a second, once, with one line on
// stderr); Deno runs the sources instead, since it may not write or spawn, and so does Node if the build fails (the
// sources then report the error). Deno without --allow-read can neither check nor import the sources: it runs the
// bundle as built, and says so.
//
// Plain JavaScript that imports nothing it does not need, because its own cost is paid at every start. Deno loads
// every module an import() with a literal specifier names before the program starts, run or not: the sources'
// specifier is a variable, or each start would read and hash all of src/ first (some 10 ms of every start).

import * as Bundle from "./bundle.mjs"

const isDeno = "Deno" in globalThis

/** Whether this process may read the checkout; Deno asks, and would prompt for it at a terminal. */
function mayRead() {
  if (!isDeno) return true
  return globalThis.Deno.permissions.querySync({ name: "read", path: Bundle.ROOT }).state === "granted"
}

function rebuild() {
  process.stderr.write("caps: dist/caps.mjs is not built from src/ as it is now; building it (npm run build:bundle)\n")
  const { spawnSync } = process.getBuiltinModule("node:child_process")
  // Without the warm-up: the first start of each command writes its own code cache.
  const built = spawnSync(process.execPath, [Bundle.SCRIPT, "--no-warm"], { stdio: "ignore" })
  if (built.status === 0) return true
  // A syntax error, say: the sources report it better than the bundler would.
  process.stderr.write("caps: the build failed (npm run build:bundle says why); running the sources\n")
  return false
}

// The bundle's specifier is literal: Deno needs no read permission to import it.
if (!mayRead()) {
  process.stderr.write(
    "caps: without --allow-read, Deno cannot check that dist/caps.mjs is built from src/ as it is now; " +
      "running it as built\n",
  )
  await import("../dist/caps.mjs")
} else if (Bundle.isFresh()) {
  await import("../dist/caps.mjs")
} else if (!isDeno && rebuild()) {
  await import("../dist/caps.mjs")
} else {
  if (isDeno) {
    process.stderr.write(
      "caps: dist/caps.mjs is not built from src/ as it is now; running the sources " +
        "(npm run build:bundle or deno task build makes it)\n",
    )
  }
  const sources = "../src/main.ts"
  await import(sources)
}
