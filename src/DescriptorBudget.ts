/**
 * How many connections the process can hold before it runs out of file
 * descriptors. libuv answers EMFILE on accept by accepting and closing the
 * waiting connections itself, silently (and Deno's node:net stops accepting
 * for good), so a server must not get there: the TCP server caps its
 * connection limit to what the descriptor limit (`ulimit -n`) leaves, and
 * past it closes new connections itself, counted and logged. Linux tells both
 * numbers in /proc; elsewhere the budget is unknown and the limit stands.
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

/** Connections that fit in the descriptors left (at least 1), or `undefined` when unknown. */
export const connections = (): { readonly limit: number; readonly budget: number } | undefined => {
  const limit = softLimit()
  const open = openNow()
  if (limit === undefined || open === undefined) return undefined
  return { limit, budget: Math.max(1, limit - open - RESERVE) }
}
