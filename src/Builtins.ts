/**
 * The Node built-ins that only some commands use, loaded when first used rather than when caps starts.
 *
 * `node:tls` with `node:crypto` (TLS), `node:dns` (host names), `node:http` (the operators' endpoint then) and
 * `node:readline` (sessions read from standard input) took a third of a one-shot client's start: `caps udp-client
 * -m hello --host 127.0.0.1` uses none of them, and with them loaded at start it ran about 1.4x as long. Deno loads
 * even `node:fs` and `node:os` only when asked, so they are here too. A module that needs one asks here at the point of use;
 * `process.getBuiltinModule` (Node and Deno) keeps each once loaded, so later calls are a lookup. Types come from
 * `import type`, which costs nothing at run time.
 *
 * On Deno, the first call of `process.getBuiltinModule` loads `node:module` as well, some 4 ms of a start, where
 * `import()` does not: the sockets a start opens first `load` the built-in they use, and it is then taken from here.
 */
import type * as NodeCrypto from "node:crypto"
import type * as NodeDgram from "node:dgram"
import type * as NodeDns from "node:dns"
import type * as NodeFs from "node:fs"
import type * as NodeNet from "node:net"
import type * as NodeOs from "node:os"
import type * as NodeReadline from "node:readline"
import type * as NodeTls from "node:tls"
import * as Effect from "effect/Effect"
import * as Runtime from "./Runtime.ts"

/** The built-ins caps loads on first use. */
export type Id =
  | "node:crypto"
  | "node:dgram"
  | "node:dns"
  | "node:fs"
  | "node:net"
  | "node:os"
  | "node:readline"
  | "node:tls"
  | "node:url"

// What `load` imported; undefined for one it could not (tried once).
const imported = new Map<Id, unknown>()

// import() hidden from the bundler, which makes it a require() in the CommonJS bundle (scripts/bundle.mjs), and
// a require that the bundle does not preload goes through node:module (scripts/bin.mjs). Where a host gives code
// made this way no import() (vitest's module runner, say), the built-in comes from process.getBuiltinModule.
const importBuiltin = (id: Id): Promise<void> =>
  Promise.resolve()
    .then(() => (new Function("id", "return import(id)") as (id: Id) => Promise<{ readonly default: unknown }>)(id))
    .then((module) => void imported.set(id, module.default), () => void imported.set(id, undefined))

/**
 * Imports built-ins before their first use, on Deno (see above). On Node, `process.getBuiltinModule` costs no more,
 * and `import()` in the bundle's node:vm script prints an ExperimentalWarning, so nothing is done.
 */
export const load = (...ids: ReadonlyArray<Id>): Effect.Effect<void> => {
  const missing = Runtime.isDeno ? ids.filter((id) => !imported.has(id)) : []
  if (missing.length === 0) return Effect.void
  return Effect.promise(() => Promise.all(missing.map(importBuiltin))).pipe(Effect.asVoid)
}

/** A built-in: as `load` imported it, or else from `process.getBuiltinModule`. */
export const builtin = <A>(id: Id): A => (imported.get(id) ?? process.getBuiltinModule(id)) as A

/** `node:tls`: TLS connections and servers (`--tls-*`). */
export const tls = (): typeof NodeTls => builtin("node:tls")

/** `node:crypto`: reading certificates and keys for TLS. */
export const crypto = (): typeof NodeCrypto => builtin("node:crypto")

/** `node:dgram`: UDP (the servers, the clients, the proxy). A TCP client does without it. */
export const dgram = (): typeof NodeDgram => builtin("node:dgram")

/** `node:dns`: resolving a host name that is not an IP literal. */
export const dns = (): typeof NodeDns => builtin("node:dns")

/**
 * `node:fs`: files (certificates, /proc). Node loads it as it starts; Deno only when asked, some 10 ms of a
 * one-shot client's start there.
 */
export const fs = (): typeof NodeFs => builtin("node:fs")

/**
 * `node:net`: TCP (the servers, the clients, the proxy). Deno's `node:net` loads `node:dns` with
 * it, some 4 to 6 ms of a start that a UDP client or server does without. (Node loads it anyway when its standard
 * output is a pipe or a terminal.)
 */
export const net = (): typeof NodeNet => builtin("node:net")

/** `node:os`: the host's network interfaces (the fault proxy's loop check). */
export const os = (): typeof NodeOs => builtin("node:os")

/** `node:readline`: the lines of a session read from standard input. */
export const readline = (): typeof NodeReadline => builtin("node:readline")
