#!/usr/bin/env node
// scripts/bin.mjs: the `caps` executable, copied to dist/caps.mjs by scripts/bundle.mjs (package.json "bin"); it
// runs from there, beside the bundled program it loads.
//
// It compiles caps.bundle.cjs with V8's code cache of an earlier run of the same command, made when that run
// ended: the cache then holds every function the command ran, where Node's and Deno's own caches hold only what
// was compiled before the program started (the top level), so a start compiles next to nothing. One cache file
// per command and runtime version; V8 rejects a file that does not match the bundle or the runtime, and it is then
// made again. Where the caches are:
//   - Node: $XDG_CACHE_HOME/caps (~/.cache/caps), written by the first run of a command (or the build's warm-up).
//   - Deno: node_modules/.cache/caps of the checkout, inside what `--allow-read=.` lets it read. The README's
//     command may not write, so the build (scripts/bundle.mjs) makes them; Deno writes one only if allowed to.
// Deno without read access cannot load a file this way and imports caps.bundle.mjs, the same program as ESM.
//
// The built-ins the bundle requires as it loads are imported here (import(), not process.getBuiltinModule or
// createRequire): on Deno, the first of those two loads node:module, some 4 ms of every start, and on Node both
// ways cost the same. Anything else the bundle requires (caps.trace.cjs) goes through createRequire.

const deno = globalThis.Deno
const granted = (descriptor) => deno.permissions.querySync(descriptor).state === "granted"

if (deno !== undefined && !granted({ name: "read", path: import.meta.dirname })) {
  await import("./caps.bundle.mjs")
} else {
  // Deno loads node:fs only when asked (some 10 ms): it reads with its own API, and writes a cache with node:fs.
  const nodeFs = () => process.getBuiltinModule("node:fs")
  const readText = deno !== undefined
    ? (file) => deno.readTextFileSync(file)
    : (file) => nodeFs().readFileSync(file, "utf8")
  const readBytes = deno !== undefined ? (file) => deno.readFileSync(file) : (file) => nodeFs().readFileSync(file)
  // The bundle's built-ins, listed here by scripts/bundle.mjs as it copies this file to dist/caps.mjs.
  const BUNDLE_BUILTINS = []
  const [vm, path, ...builtins] = await Promise.all(
    ["node:vm", "node:path", ...BUNDLE_BUILTINS].map((id) => import(id)),
  )
  const required = new Map(BUNDLE_BUILTINS.map((id, i) => [id, builtins[i].default]))
  const bundle = path.join(import.meta.dirname, "caps.bundle.cjs")
  let requireOthers
  const require = (id) =>
    required.get(id) ?? (requireOthers ??= process.getBuiltinModule("node:module").createRequire(bundle))(id)
  const cacheDir = deno !== undefined
    ? path.join(import.meta.dirname, "..", "node_modules", ".cache", "caps")
    : path.join(
      process.env.XDG_CACHE_HOME || path.join(process.getBuiltinModule("node:os").homedir(), ".cache"),
      "caps",
    )
  const command = /^[a-z][a-z-]*$/.test(process.argv[2] ?? "") ? process.argv[2] : "other"
  const runtime = deno !== undefined ? `deno${deno.version.deno}` : `node${process.versions.node}`
  let key = 5381
  for (const char of bundle) key = (key * 33 + char.charCodeAt(0)) >>> 0
  const cacheFile = path.join(cacheDir, `${command}-${runtime}-${key.toString(36)}.v8`)
  const mayRead = deno === undefined || granted({ name: "read", path: cacheDir })
  const mayWrite = deno === undefined || granted({ name: "write", path: cacheDir })
  let cachedData
  try {
    if (mayRead) cachedData = readBytes(cacheFile)
  } catch {
    // Not made yet.
  }
  // Node's CommonJS wrapper (node:module's wrap).
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${readText(bundle)}\n});`
  const script = new vm.Script(wrapped, {
    filename: bundle,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  })
  if (mayWrite && (cachedData === undefined || script.cachedDataRejected)) {
    process.once("exit", () => {
      try {
        const fs = nodeFs()
        fs.mkdirSync(cacheDir, { recursive: true })
        fs.writeFileSync(`${cacheFile}.${process.pid}`, script.createCachedData())
        fs.renameSync(`${cacheFile}.${process.pid}`, cacheFile)
        // Caches of bundles that are gone (a rebuilt checkout, a removed install) are not read again: a month
        // unused, they go.
        for (const name of fs.readdirSync(cacheDir)) {
          const file = path.join(cacheDir, name)
          if (name.endsWith(".v8") && Date.now() - fs.statSync(file).atimeMs > 30 * 86_400_000) fs.rmSync(file)
        }
      } catch {
        // A cache that cannot be written only costs the next start its compile time.
      }
    })
  }
  const module = { exports: {} }
  script.runInThisContext()(module.exports, require, module, bundle, import.meta.dirname)
}
