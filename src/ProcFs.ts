/**
 * Reading Linux's /proc, where the kernel tells what Node does not (descriptor
 * limits, UDP drop counts). Under Deno a read needs `--allow-read`, and without
 * it Deno would stop at a permission prompt in a terminal: so the permission
 * is asked first, silently, and without it the answer is simply unknown.
 */
import * as Builtins from "./Builtins.ts"

interface DenoPermissions {
  readonly permissions: {
    readonly querySync: (descriptor: { readonly name: "read"; readonly path: string }) => { readonly state: string }
  }
}

const mayRead = (path: string): boolean => {
  const deno = (globalThis as { readonly Deno?: DenoPermissions }).Deno
  return deno === undefined || deno.permissions.querySync({ name: "read", path }).state === "granted"
}

/** The text of a /proc file, or `undefined` where it cannot be read. */
export const readText = (path: string): string | undefined => {
  try {
    return mayRead(path) ? Builtins.fs().readFileSync(path, "utf8") : undefined
  } catch {
    return undefined
  }
}

/** The entries of a /proc directory, or `undefined` where it cannot be read. */
export const readDirectory = (path: string): ReadonlyArray<string> | undefined => {
  try {
    return mayRead(path) ? Builtins.fs().readdirSync(path) : undefined
  } catch {
    return undefined
  }
}
