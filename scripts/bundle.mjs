// scripts/bundle.mjs: builds dist/caps.mjs, the whole caps program in one bundled file, and says whether the
// bundle on disk was built from the sources as they are now.
//
//   node scripts/bundle.mjs              build (npm run build:bundle; deno task build runs it on Deno)
//   node scripts/bundle.mjs --if-stale   build only if src/ (or the dependencies) changed since the last build,
//                                        and make the code caches if they are not made for this bundle: npm's
//                                        `prepare` (`npm ci` in a clone leaves a bundle ready) and `npm run bench`
//   node scripts/bundle.mjs --no-warm    build without the warm-up below (scripts/caps.mjs after an edit)
//
// It reports on stderr: stdout is npm's, e.g. `npm pack --json` runs it (prepare, prepack) and prints JSON there.
//
// Why a bundle: `node src/main.ts` loads some 400 modules (Effect, the platform, caps) and strips the types of
// caps's own; one bundled file starts several times faster and with half the memory. The output, in dist/:
//   caps.bundle.cjs   the program (src/main.ts and everything it imports), minified, as CommonJS for node:vm
//   caps.bundle.mjs   the same as ESM, for Deno without read access
//   caps.mjs          the `caps` executable, scripts/bin.mjs: loads caps.bundle.cjs with V8's code cache of an
//                     earlier run of the same command (see there)
//   caps.trace.{cjs,mjs}  src/TraceExport.ts, the OTLP exporter, with its own copy of what it needs of Effect: both
//                     bundles import it only when OTEL_EXPORTER_OTLP_ENDPOINT is set. In the main bundle, a module
//                     imported lazily makes every module it shares with the rest initialised lazily (rolldown
//                     wraps them), which costs every start a few milliseconds; as a file of its own it costs
//                     nothing until traces are asked for (see TraceExport.ts for how the two copies meet)
//   caps.inputs.json  what it was built from: the size and modification time of every file under src/, of the
//                     build's own scripts and of the lockfiles; isFresh() compares them with the files on disk
//   caps.warmed.json  the bundle the code caches below were made for, and on which runtimes (isWarm())
// Then the warm-up runs each command once on the pinned Node and Deno, against servers of its own on loopback, so
// the code caches exist before a user's first start (Deno's README command may not write its own).
//
// Patches to dependencies make start-up cheaper without changing behaviour (each is reported if it no longer
// applies, and the build goes on without it):
//   - effect/cli/CliOutput builds an Intl.Segmenter when it is loaded (about 17 ms: ICU's break rules), used only
//     to measure text in help pages: it is built on first use instead.
//   - @effect/platform-node-shared's NodeSocket and NodeSocketServer import node:tls (with node:crypto, about
//     10 ms on Node and 30 ms on Deno) for TLS connections caps never makes, NodeDatagramSocket imports node:dns
//     for host names (caps resolves them itself, src/Resolver.ts) and node:os for IPv6 scope ids, NodeTerminal
//     imports node:readline for the prompts of --wizard: each is loaded on first use instead, as caps's own are
//     (src/Builtins.ts).
//   - effect/internal/effect takes node:async_hooks through process.getBuiltinModule, which on Deno loads
//     node:module (4 ms): it is imported instead.
//   - effect/Utils and effect/internal/effect read the stack of an Error as they load, to choose how to call
//     continuations; the first stack trace of the bundle costs 3 to 4 ms. On V8 the choice is always the same, and
//     is made without it (see PATCHES).
//
// The freshness check is used by scripts/caps.mjs on every start, so this module imports nothing at load time
// (rolldown and node:fs only inside build()): it reads files with Node's fs on Node and with Deno's own API on
// Deno, where loading node:fs costs tens of milliseconds.

const isDeno = "Deno" in globalThis
const io = isDeno
  ? {
    list: (dir) => [...globalThis.Deno.readDirSync(dir)].map((entry) => [entry.name, entry.isDirectory]),
    stat: (file) => {
      const stat = globalThis.Deno.statSync(file)
      return [stat.size, stat.mtime?.getTime() ?? 0]
    },
    read: (file) => globalThis.Deno.readTextFileSync(file),
  }
  : (() => {
    const fs = process.getBuiltinModule("node:fs")
    return {
      list: (dir) => fs.readdirSync(dir, { withFileTypes: true }).map((entry) => [entry.name, entry.isDirectory()]),
      stat: (file) => {
        const stat = fs.statSync(file)
        return [stat.size, Math.floor(stat.mtimeMs)]
      },
      read: (file) => fs.readFileSync(file, "utf8"),
    }
  })()

export const ROOT = import.meta.dirname.replace(/[\\/]scripts$/, "")
/** This script. */
export const SCRIPT = import.meta.filename
export const DIST = `${ROOT}/dist`
/** The bundled program: CommonJS for node:vm and its code cache (see scripts/bin.mjs), ESM for Deno without it. */
export const BUNDLE = `${DIST}/caps.bundle.cjs`
export const BUNDLE_ESM = `${DIST}/caps.bundle.mjs`
/** The executable (package.json "bin"). */
export const ENTRY = `${DIST}/caps.mjs`
/**
 * The modules bundled apart, each with its own copy of what it needs of Effect, and imported by the main bundle
 * only when asked for: `source` is imported as `./<source>` by `importer` (under src/), and built into
 * `caps.<name>.cjs` and `caps.<name>.mjs`, CommonJS and ESM as the main bundle.
 */
const APART = [
  { name: "trace", source: "TraceExport.ts", importer: "main.ts", what: "the OTLP exporter" },
].map((apart) => ({
  ...apart,
  id: `caps:${apart.name}`,
  cjs: `${DIST}/caps.${apart.name}.cjs`,
  esm: `${DIST}/caps.${apart.name}.mjs`,
}))
const INPUTS = `${DIST}/caps.inputs.json`
/**
 * The bundle the code caches were last made for, and on which runtimes. A build run by scripts/caps.mjs after an
 * edit (`--no-warm`, to be quick) makes none, and Deno's README command may not write its own, so until caches are
 * made for it Deno compiles the bundle at every start (tens of milliseconds): `--if-stale` makes them.
 */
const WARMED = `${DIST}/caps.warmed.json`

/** Files whose change makes the bundle stale, relative to ROOT, beside everything under src/. */
const EXTRA_INPUTS = ["scripts/bundle.mjs", "scripts/bin.mjs", "package-lock.json", "node_modules/.package-lock.json"]

function filesUnder(dir) {
  const out = []
  let entries
  try {
    entries = io.list(`${ROOT}/${dir}`)
  } catch {
    return out
  }
  for (const [name, isDirectory] of entries) {
    const relative = `${dir}/${name}`
    if (isDirectory) out.push(...filesUnder(relative))
    else out.push(relative)
  }
  return out
}

/**
 * The state of the bundle's inputs: for each file, its size and modification time in whole milliseconds
 * (what Node and Deno both report), or null when it does not exist. Any edit changes one or the other.
 */
export function inputsState() {
  const state = {}
  for (const file of [...filesUnder("src").sort(), ...EXTRA_INPUTS]) {
    try {
      state[file] = io.stat(`${ROOT}/${file}`)
    } catch {
      state[file] = null
    }
  }
  return state
}

/** Whether the code caches were made for the bundle as it is, on every runtime that can make them. */
export function isWarm() {
  try {
    const warmed = JSON.parse(io.read(WARMED))
    return JSON.stringify(warmed.bundle) === JSON.stringify(io.stat(BUNDLE)) &&
      warmRuntimes().every(([name]) => warmed.runtimes.includes(name))
  } catch {
    return false
  }
}

/** Makes the code caches for the bundle as it is, and records for which runtimes they were made. */
async function warmUp(quiet) {
  const started = performance.now()
  const warmed = await warm()
  writeAtomically(WARMED, JSON.stringify({ bundle: io.stat(BUNDLE), runtimes: warmed }) + "\n")
  if (!quiet) {
    console.error(`bundle: code caches for ${warmed.join(", ")} in ${(performance.now() - started).toFixed(0)} ms`)
  }
}

/** Whether dist/ holds a bundle built from the inputs as they are now. */
export function isFresh() {
  let recorded
  try {
    recorded = JSON.parse(io.read(INPUTS))
    for (const file of [BUNDLE, BUNDLE_ESM, ENTRY, ...APART.flatMap((apart) => [apart.cjs, apart.esm])]) io.stat(file)
  } catch {
    return false
  }
  const current = inputsState()
  const keys = Object.keys(current)
  if (keys.length !== Object.keys(recorded).length) return false
  return keys.every((key) => JSON.stringify(current[key]) === JSON.stringify(recorded[key]))
}

/** A patch making @effect/platform-node-shared's `import * as <name> from "<builtin>"` in `<module>` load it on first use. */
function lazyBuiltin(module, name, builtin) {
  return {
    what: `${module}: ${builtin} loaded on first use`,
    file: new RegExp(`[\\\\/]platform-node-shared[\\\\/]dist[\\\\/]${module}\\.js$`),
    from: new RegExp(`import \\* as ${name} from "${builtin}";`),
    // From caps's own Builtins, which has it once a start's socket loaded it (on Deno, without node:module).
    to: `import { builtin as builtinFor${name} } from ${JSON.stringify(`${ROOT}/src/Builtins.ts`)};\n` +
      `const ${name} = new Proxy({}, { get: (_, key) => builtinFor${name}("${builtin}")[key] });`,
  }
}

export const PATCHES = [
  {
    what: "effect/cli/CliOutput: Intl.Segmenter built on first use",
    file: /[\\/]effect[\\/]dist[\\/]cli[\\/]CliOutput\.js$/,
    from:
      /const graphemeSegmenter = \/\*#__PURE__\*\/new Intl\.Segmenter\(undefined, \{\s*granularity: "grapheme"\s*\}\);/,
    to: "let graphemeSegmenterInstance;\n" +
      "const graphemeSegmenter = { segment: (text) => (graphemeSegmenterInstance ??= " +
      'new Intl.Segmenter(undefined, { granularity: "grapheme" })).segment(text) };',
  },
  lazyBuiltin("NodeSocket", "Tls", "node:tls"),
  lazyBuiltin("NodeSocketServer", "Tls", "node:tls"),
  lazyBuiltin("NodeDatagramSocket", "Dns", "node:dns"),
  lazyBuiltin("NodeDatagramSocket", "Os", "node:os"),
  lazyBuiltin("NodeDatagramSocket", "Dgram", "node:dgram"),
  lazyBuiltin("NodePath", "NodeUrl", "node:url"),
  {
    // Its one use of node:net is isIP, on every address a UDP client sends to; Deno's node:net loads node:dns with
    // it, some 4 to 6 ms of a start. Node's IPv4 pattern (lib/internal/net.js) answers for IPv4 and names, as in
    // src/Endpoint.ts: test/Startup.test.ts and test/Endpoint.test.ts hold both to net.isIP.
    what: "NodeDatagramSocket: node:net loaded only for an address with a colon",
    file: /[\\/]platform-node-shared[\\/]dist[\\/]NodeDatagramSocket\.js$/,
    from: /import \* as Net from "node:net";/,
    to: "const IPV4 = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\\.){3}" +
      "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/;\n" +
      "const Net = { isIP: (address) => IPV4.test(address) ? 4 : " +
      'address.includes(":") ? process.getBuiltinModule("node:net").isIP(address) : 0 };',
  },
  lazyBuiltin("NodeTerminal", "readline", "node:readline"),
  {
    // Effect's fibers take AsyncResource from node:async_hooks through process.getBuiltinModule as it loads. On
    // Deno the first call of that loads node:module, some 4 ms of a start; imported, as the bundle's other
    // built-ins are (scripts/bin.mjs), it costs nothing more. The same class, on both runtimes.
    what: "effect/internal/effect: node:async_hooks imported",
    file: /[\\/]effect[\\/]dist[\\/]internal[\\/]effect\.js$/,
    from:
      /const AsyncResource = \/\*#__PURE__\*\/\(\(\) => \{\s*try \{\s*return globalThis\.process\?\.getBuiltinModule\?\.\("node:async_hooks"\)\?\.AsyncResource;\s*\} catch \{\s*return undefined;\s*\}\s*\}\)\(\);/,
    to:
      'import { AsyncResource as NodeAsyncResource } from "node:async_hooks";\nconst AsyncResource = NodeAsyncResource;',
  },
  {
    // The other probe of the same kind (see the next patch), in Effect's fibers: whether V8 names a continuation
    // stored under a property in its stack traces. It always does; the answer is given without the stack trace.
    what: "effect/internal/effect: continuation marks found without a stack trace",
    file: /[\\/]effect[\\/]dist[\\/]internal[\\/]effect\.js$/,
    from:
      /setStackTraceLimit\(1\);\s*const error = \/\*#__PURE__\*\/probe\[marker\]\(\);\s*setStackTraceLimit\(limit\);\s*return error\.stack\?\.includes\("\[as " \+ marker \+ "\]"\) === true;/,
    to: "return true;",
  },
  {
    // effect/Utils picks how Effect calls continuations by making an Error and reading its stack, once, as it
    // loads: the first stack trace of a frame in the bundle costs 3 ms, on Node and on Deno alike (V8 makes up
    // the bundle's source positions for it). On V8 the answer is always the same, the plain call, which the patch
    // returns at once; test/Startup.test.ts runs Effect's own probe on each runtime and holds it to that answer.
    what: "effect/Utils: the internal call picked without a stack trace",
    file: /[\\/]effect[\\/]dist[\\/]Utils\.js$/,
    from:
      /setStackTraceLimit\(2\);\s*const error = standard\[InternalTypeId\]\(\(\) => new Error\(\)\);\s*setStackTraceLimit\(limit\);\s*return error\.stack\?\.includes\(InternalTypeId\) === true \? standard\[InternalTypeId\] : forced\[InternalTypeId\];/,
    to: "return standard[InternalTypeId];",
  },
]

// Reports, for each patch, whether its file was in the bundle and whether the patch applied to it.
function startupPatches(seen, applied) {
  return {
    name: "caps-startup-patches",
    transform(code, id) {
      let out = code
      for (const patch of PATCHES) {
        if (!patch.file.test(id)) continue
        seen.add(patch.what)
        if (patch.from.test(out)) {
          out = out.replace(patch.from, () => patch.to) // literally: a "$" in it is not a replacement pattern
          applied.add(patch.what)
        }
      }
      return out === code ? null : { code: out, map: null }
    },
  }
}

// The lazy import of a module bundled apart becomes an import of its own bundle, beside the main one.
const importsApart = {
  name: "caps-imports-apart",
  resolveId(specifier, importer) {
    const apart = APART.find((apart) =>
      specifier === `./${apart.source}` && (importer ?? "").endsWith(`${"/"}src${"/"}${apart.importer}`)
    )
    return apart === undefined ? null : { id: apart.id, external: true }
  },
}

/** The built-ins a CommonJS bundle requires (as it loads: rolldown's requires are its imports). */
export function bundleBuiltins(cjs) {
  return [...new Set([...cjs.matchAll(/\brequire\((["`])(node:[\w/]+)\1\)/g)].map((match) => match[2]))].sort()
}

// scripts/bin.mjs with the list of the bundle's built-ins it imports before loading it.
function withBundleBuiltins(bin, cjs) {
  const marker = "const BUNDLE_BUILTINS = []"
  if (!bin.includes(marker)) throw new Error(`scripts/bin.mjs has no ${marker}`)
  return bin.replace(marker, () => `const BUNDLE_BUILTINS = ${JSON.stringify(bundleBuiltins(cjs))}`)
}

function writeAtomically(file, contents) {
  const fs = process.getBuiltinModule("node:fs")
  const temporary = `${file}.${process.pid}.tmp`
  fs.writeFileSync(temporary, contents)
  fs.renameSync(temporary, file)
}

/**
 * Builds the bundle. Every file is written to a temporary name and renamed into place, and the inputs last,
 * so a process starting meanwhile (or a second build at the same time) sees either the old bundle or the new.
 */
export async function build({ quiet = false, warm = true } = {}) {
  const fs = process.getBuiltinModule("node:fs")
  const path = process.getBuiltinModule("node:path")
  const started = performance.now()
  // The inputs as they were before reading them: an edit during the build makes the next start rebuild.
  const inputs = inputsState()
  // A variable: Deno would load rolldown's package.json at every start of scripts/caps.mjs for a literal one.
  const bundler = "rolldown"
  const { rolldown } = await import(bundler)
  const seen = new Set()
  const applied = new Set()
  const bundle = await rolldown({
    input: path.join(ROOT, "src", "main.ts"),
    cwd: ROOT,
    platform: "node",
    logLevel: "warn",
    // effect's ConfigProvider reads import.meta.env (Vite's); in CommonJS it is undefined, as on Node and Deno.
    checks: { emptyImportMeta: false },
    plugins: [startupPatches(seen, applied), importsApart],
  })
  const generate = async (format) => {
    const output = await bundle.generate({
      format,
      minify: true,
      codeSplitting: false,
      comments: false,
      // The bundles apart in the same format: node:vm's loader of the CommonJS bundle takes require, not import.
      paths: Object.fromEntries(
        APART.map((apart) => [apart.id, `./caps.${apart.name}.${format === "cjs" ? "cjs" : "mjs"}`]),
      ),
      dynamicImportInCjs: false,
    })
    const chunks = output.output.filter((item) => item.type === "chunk")
    if (chunks.length !== 1) throw new Error(`expected one chunk, rolldown made ${chunks.length}`)
    return chunks[0].code
  }
  // src/main.ts's #! line would be a syntax error inside the CommonJS wrapper.
  const cjs = (await generate("cjs")).replace(/^#!/, "//")
  const esm = await generate("esm")
  await bundle.close()
  const builtApart = []
  for (const apart of APART) {
    for (
      const [code, form] of [[cjs, `require("./caps.${apart.name}.cjs")`], [esm, `import("./caps.${apart.name}.mjs")`]]
    ) {
      if (!code.includes(form) && !code.includes(form.replaceAll('"', "`"))) {
        throw new Error(`the bundle has no ${form}`)
      }
    }
    const apartBundle = await rolldown({
      input: path.join(ROOT, "src", apart.source),
      cwd: ROOT,
      platform: "node",
      logLevel: "warn",
      checks: { emptyImportMeta: false },
      plugins: [startupPatches(seen, applied)],
    })
    const apartIn = async (format) => {
      const chunks = (await apartBundle.generate({ format, minify: true, codeSplitting: false, comments: false }))
        .output.filter((item) => item.type === "chunk")
      if (chunks.length !== 1) throw new Error(`expected one chunk for ${apart.what}, rolldown made ${chunks.length}`)
      return chunks[0].code
    }
    builtApart.push({ apart, cjs: await apartIn("cjs"), esm: await apartIn("esm") })
    await apartBundle.close()
  }
  for (const patch of PATCHES) {
    if (seen.has(patch.what) && !applied.has(patch.what)) {
      console.warn(`bundle: a start-up patch no longer applies, built without it: ${patch.what}`)
    }
  }
  fs.mkdirSync(DIST, { recursive: true })
  writeAtomically(BUNDLE, cjs)
  writeAtomically(BUNDLE_ESM, esm)
  for (const { apart, cjs, esm } of builtApart) {
    writeAtomically(apart.cjs, cjs)
    writeAtomically(apart.esm, esm)
  }
  writeAtomically(ENTRY, withBundleBuiltins(fs.readFileSync(`${ROOT}/scripts/bin.mjs`, "utf8"), cjs))
  fs.chmodSync(ENTRY, 0o755)
  writeAtomically(INPUTS, JSON.stringify(inputs, null, 1) + "\n")
  const size = (fs.statSync(BUNDLE).size / 1024).toFixed(0)
  const apartSizes = APART.map((apart) =>
    `caps.${apart.name}.{cjs,mjs} (${(fs.statSync(apart.cjs).size / 1024).toFixed(0)} KiB)`
  )
  if (!quiet) {
    const ms = (performance.now() - started).toFixed(0)
    console.error(
      `bundle: ${path.relative(process.cwd(), ENTRY)} + caps.bundle.{cjs,mjs} (${size} KiB), ` +
        `${apartSizes.join(", ")} in ${ms} ms`,
    )
  }
  if (warm) await warmUp(quiet)
}

/** The runtimes that can warm the caches: the pinned Node and Deno, or else the one running this build. */
function warmRuntimes() {
  const fs = process.getBuiltinModule("node:fs")
  const runtimes = []
  const pinnedNode = `${ROOT}/node_modules/.bin/node`
  const pinnedDeno = `${ROOT}/node_modules/.bin/deno`
  if (fs.existsSync(pinnedNode)) runtimes.push(["node", [pinnedNode]])
  else if (!isDeno) runtimes.push(["node", [process.execPath]])
  const deno = fs.existsSync(pinnedDeno) ? pinnedDeno : isDeno ? globalThis.Deno.execPath() : null
  if (deno !== null) runtimes.push(["deno", [deno, "run", "-A"]])
  return runtimes
}

/**
 * Runs every command once on each runtime, as dist/caps.mjs, so that each leaves its code cache behind: the
 * clients and --version against small uppercasing servers of this process, the servers until they answer one
 * request each, then SIGTERM. A failure only costs the first start its compile time, so it is reported, not fatal.
 */
async function warm() {
  const net = process.getBuiltinModule("node:net")
  const dgram = process.getBuiltinModule("node:dgram")
  const { spawn } = process.getBuiltinModule("node:child_process")
  const host = "127.0.0.1"
  const tcp = net.createServer((socket) => {
    socket.on("data", (data) => socket.write(data.toString("utf8").toUpperCase())).on("error", () => socket.destroy())
  })
  await new Promise((resolve) => tcp.listen(0, host, resolve))
  const udp = dgram.createSocket("udp4")
  udp.on("message", (message, peer) => udp.send(message.toString("utf8").toUpperCase(), peer.port, peer.address))
  await new Promise((resolve) => udp.bind(0, host, resolve))
  const ports = { tcp: String(tcp.address().port), udp: String(udp.address().port) }

  const run = (argv, onLine) =>
    new Promise((resolve) => {
      const child = spawn(argv[0], argv.slice(1), {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "ignore"],
        env: { ...process.env, DENO_NO_PROMPT: "1", DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      })
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
      let buffered = ""
      child.stdout.setEncoding("utf8").on("data", (text) => {
        buffered += text
        const lines = buffered.split("\n")
        buffered = lines.pop()
        for (const line of lines) onLine?.(line, child)
      })
      child.on("close", (code) => {
        clearTimeout(timer)
        resolve(code)
      })
    })
  // A server's ready line names its address: one request there, then the end of the server. It counts as warmed
  // once it has answered: its code cache is written as it exits (how that exit is reported varies: Deno's
  // child_process, when the build runs on Deno, reports a signal).
  const serveOnce = async (argv, expected) => {
    let answered = 0
    await run(argv, (line, child) => {
      const match = /ready on .*:(\d+)\/(udp|tcp)\b/.exec(line)
      if (match === null) return
      const done = () => ++answered === expected && child.kill("SIGTERM")
      if (match[2] === "udp") {
        const socket = dgram.createSocket("udp4")
        socket.on("message", () => socket.close(done))
        socket.send("warm", Number(match[1]), host)
      } else {
        const socket = net.connect(Number(match[1]), host, () => socket.write("warm\n"))
        socket.on("data", () => socket.end(done)).on("error", () => socket.destroy())
      }
    })
    return answered === expected
  }
  const warmed = []
  try {
    for (const [name, prefix] of warmRuntimes()) {
      const caps = [...prefix, ENTRY]
      const steps = {
        "udp-client": (await run([...caps, "udp-client", "-m", "warm", "--host", host, "--port", ports.udp])) === 0,
        "tcp-client": (await run([...caps, "tcp-client", "-m", "warm", "--host", host, "--port", ports.tcp])) === 0,
        "--version": (await run([...caps, "--version"])) === 0,
        "udp-server": await serveOnce([...caps, "udp-server", "--host", host, "--port", "0"], 1),
        "tcp-server": await serveOnce([...caps, "tcp-server", "--host", host, "--port", "0"], 1),
        "serve": await serveOnce([...caps, "serve", "--host", host, "--port", "0"], 2),
      }
      const failed = Object.keys(steps).filter((step) => !steps[step])
      if (failed.length === 0) warmed.push(name)
      else console.warn(`bundle: warming the code caches on ${name} failed for ${failed.join(", ")}`)
    }
  } finally {
    tcp.close()
    udp.close()
  }
  return warmed
}

// Run as a script, not imported by scripts/caps.mjs. Node 20 (CI's) has no import.meta.main; on Deno, touching
// `process` at all would load Deno's Node compatibility layer, tens of milliseconds at every start.
const isMain = isDeno
  ? import.meta.main
  : process.argv[1] !== undefined && process.getBuiltinModule("node:path").resolve(process.argv[1]) === SCRIPT
if (isMain) {
  const ifStale = process.argv.includes("--if-stale")
  if (ifStale && isFresh()) {
    console.error("bundle: dist/caps.mjs is up to date")
    if (!isWarm()) await warmUp(false)
  } else {
    await build({ warm: !process.argv.includes("--no-warm") })
  }
}
