/**
 * The runtimes caps supports, checked before anything else runs: the
 * platform packages need Node 22.19 or later (or Deno 2). An older Node is
 * usually the system one used by mistake instead of the project's pinned Node,
 * so the message says how to get the right one. Also what the code that
 * differs between the two asks: which runtime this is, and whether Deno lets
 * it read a file.
 */

const MINIMUM_NODE = [22, 19] as const

/** Whether this is Deno (its Node compatibility), not Node. */
export const isDeno = "Deno" in globalThis

interface DenoPermissions {
  readonly permissions: {
    readonly querySync: (descriptor: { readonly name: "read"; readonly path: string }) => { readonly state: string }
  }
}

/**
 * Whether this process may read `path`: always on Node; on Deno, whether `--allow-read` covers it, asked silently
 * (Deno would otherwise stop at a permission prompt in a terminal).
 */
export const mayRead = (path: string): boolean => {
  const deno = (globalThis as { readonly Deno?: DenoPermissions }).Deno
  return deno === undefined || deno.permissions.querySync({ name: "read", path }).state === "granted"
}

/** The running Node version, or Deno's Node-compatibility version. */
const nodeVersion = (): ReadonlyArray<number> => process.versions.node.split(".").map(Number)

/** Whether this runtime can run caps. */
export const isSupported = (): boolean => {
  if (isDeno) return true
  const [major, minor] = nodeVersion()
  return major > MINIMUM_NODE[0] || (major === MINIMUM_NODE[0] && minor >= MINIMUM_NODE[1])
}

/** Why this runtime cannot run caps, or `undefined` when it can. */
export const problem = (): string | undefined =>
  isSupported()
    ? undefined
    : `Node ${process.versions.node} is too old; caps needs Node ${MINIMUM_NODE.join(".")} or later. ` +
      `Run it through npm (npm start, npm test), which uses the Node pinned in package.json after npm ci.`

/** caps's version (package.json's). */
export const VERSION = "0.1.0"

/** Which caps runs on which runtime: the labels of `caps_build_info`. */
export const buildLabels = (): Record<string, string> => ({
  version: VERSION,
  runtime: isDeno ? "deno" : "node",
  runtime_version: isDeno
    ? (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno
    : process.versions.node,
})
