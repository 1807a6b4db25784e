/**
 * How many connections the process can hold before it runs out of file
 * descriptors. libuv answers EMFILE on accept by accepting and closing the
 * waiting connections itself, silently (and Deno's node:net stops accepting
 * for good), so a server must not get there: the TCP server caps its
 * connection limit to what the descriptor limit (`ulimit -n`) leaves, and
 * past it closes new connections itself, counted and logged. Linux tells both
 * numbers in /proc; where they cannot be read, the usual limit of 1024 is
 * assumed unless a connection limit is given explicitly.
 */
import * as ProcFs from "./ProcFs.ts"

/** Descriptors kept free for everything that is not a client connection (logs, DNS, the UDP socket...). */
export const RESERVE = 16

/** The soft limit on open descriptors (`ulimit -n`), where the platform tells it. */
export const softLimit = (): number | undefined => {
  const line = ProcFs.readText("/proc/self/limits")?.split("\n").find((l) => l.startsWith("Max open files"))
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0]
  return soft === undefined || soft === "unlimited" ? undefined : Number(soft)
}

/** Descriptors open now, where the platform tells it. */
export const openNow = (): number | undefined => {
  return ProcFs.readDirectory("/proc/self/fd")?.length
}

/** The usual soft limit, assumed where the platform does not tell (Deno reads /proc/self only with --allow-all). */
export const ASSUMED_LIMIT = 1024

/** Connections that fit in the descriptors left (at least 1); `known` says whether the limit was read or assumed. */
export const connections = (): { readonly limit: number; readonly budget: number; readonly known: boolean } => {
  const limit = softLimit()
  const open = openNow()
  if (limit === undefined || open === undefined) {
    return { limit: ASSUMED_LIMIT, budget: ASSUMED_LIMIT - 2 * RESERVE, known: false }
  }
  return { limit, budget: Math.max(1, limit - open - RESERVE), known: true }
}
