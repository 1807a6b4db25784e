/**
 * Reading Linux's /proc, where the kernel tells what Node does not (descriptor
 * limits, UDP drop counts). Under Deno a read needs `--allow-read`, and without
 * it Deno would stop at a permission prompt in a terminal: so the permission
 * is asked first, silently, and without it the answer is simply unknown.
 * Deno reads with its own file API: node:fs would be loaded for these reads
 * alone, some 5 ms of every server start, and Deno 2.9 refuses them anyway
 * without `--allow-all` (/proc/net is /proc/self/net).
 */
import * as Builtins from "./Builtins.ts"
import * as Runtime from "./Runtime.ts"

interface DenoFiles {
  readonly readTextFileSync: (path: string) => string
  readonly readDirSync: (path: string) => Iterable<{ readonly name: string }>
}

const deno = (globalThis as { readonly Deno?: DenoFiles }).Deno

/** The text of a /proc file, or `undefined` where it cannot be read. */
export const readText = (path: string): string | undefined => {
  try {
    if (deno === undefined) return Builtins.fs().readFileSync(path, "utf8")
    return Runtime.mayRead(path) ? deno.readTextFileSync(path) : undefined
  } catch {
    return undefined
  }
}

/** The entries of a /proc directory, or `undefined` where it cannot be read. */
export const readDirectory = (path: string): ReadonlyArray<string> | undefined => {
  try {
    if (deno === undefined) return Builtins.fs().readdirSync(path)
    return Runtime.mayRead(path) ? Array.from(deno.readDirSync(path), (entry) => entry.name) : undefined
  } catch {
    return undefined
  }
}
