/**
 * The Node built-ins that only some commands use, loaded when first used rather than when caps starts.
 *
 * `node:tls` with `node:crypto` (TLS), `node:dns` (host names), `node:http` (`--metrics-port`) and `node:readline`
 * (sessions read from standard input) took a third of a one-shot client's start: `caps udp-client -m hello --host
 * 127.0.0.1` uses none of them, and with them loaded at start it ran about 1.4x as long. Deno loads even `node:fs`
 * and `node:os` only when asked, so they are here too. A module that needs one asks here at the point of use;
 * `process.getBuiltinModule` (Node and Deno) keeps each once loaded, so later calls are a lookup. Types come from
 * `import type`, which costs nothing at run time.
 */
import type * as NodeCrypto from "node:crypto"
import type * as NodeDgram from "node:dgram"
import type * as NodeDns from "node:dns"
import type * as NodeFs from "node:fs"
import type * as NodeHttp from "node:http"
import type * as NodeNet from "node:net"
import type * as NodeOs from "node:os"
import type * as NodeReadline from "node:readline"
import type * as NodeTls from "node:tls"

/** `node:tls`: TLS connections and servers (`--tls-*`). */
export const tls = (): typeof NodeTls => process.getBuiltinModule("node:tls")

/** `node:crypto`: reading certificates and keys for TLS. */
export const crypto = (): typeof NodeCrypto => process.getBuiltinModule("node:crypto")

/** `node:dgram`: UDP (the servers, the clients, the proxy). A TCP client does without it. */
export const dgram = (): typeof NodeDgram => process.getBuiltinModule("node:dgram")

/** `node:dns`: resolving a host name that is not an IP literal. */
export const dns = (): typeof NodeDns => process.getBuiltinModule("node:dns")

/**
 * `node:fs`: files (certificates, /proc). Node loads it as it starts; Deno only when asked, some 10 ms of a
 * one-shot client's start there.
 */
export const fs = (): typeof NodeFs => process.getBuiltinModule("node:fs")

/** `node:http`: the operators' endpoint (`--metrics-port`). */
export const http = (): typeof NodeHttp => process.getBuiltinModule("node:http")

/**
 * `node:net`: TCP (the servers, the clients, the proxy) and the IPv6 pattern. Deno's `node:net` loads `node:dns` with
 * it, some 4 to 6 ms of a start that a UDP client or server does without. (Node loads it anyway when its standard
 * output is a pipe or a terminal.)
 */
export const net = (): typeof NodeNet => process.getBuiltinModule("node:net")

/** `node:os`: the host's network interfaces (the fault proxy's loop check). */
export const os = (): typeof NodeOs => process.getBuiltinModule("node:os")

/** `node:readline`: the lines of a session read from standard input. */
export const readline = (): typeof NodeReadline => process.getBuiltinModule("node:readline")
