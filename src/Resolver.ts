/**
 * Host name resolution for the clients, with its own typed failure.
 *
 * IPv4 answers come first, as the textbook's `gethostbyname` gives them: a
 * server that binds IPv4 only (the textbook's) is then reached by the name
 * `localhost` even where that name also has an IPv6 address.
 */
import * as Effect from "effect/Effect"
import * as Dns from "node:dns"
import * as Net from "node:net"
import * as CapsError from "./CapsError.ts"

/** One address of a host. */
export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** Resolves `host` (IP literals resolve to themselves without asking anyone). */
export const resolve = (host: string): Effect.Effect<ResolvedAddress, CapsError.NameNotResolved> => {
  const literal = Net.isIP(host)
  if (literal !== 0) return Effect.succeed({ address: host, family: literal === 6 ? 6 : 4 })
  return Effect.callback<ResolvedAddress, CapsError.NameNotResolved>((resume) => {
    Dns.lookup(host, { all: true }, (error, addresses) => {
      if (error) return resume(Effect.fail(new CapsError.NameNotResolved({ host, code: error.code ?? "ENOTFOUND" })))
      const chosen = addresses.find((a) => a.family === 4) ?? addresses[0]
      if (chosen === undefined) return resume(Effect.fail(new CapsError.NameNotResolved({ host, code: "ENODATA" })))
      resume(Effect.succeed({ address: chosen.address, family: chosen.family === 6 ? 6 : 4 }))
    })
  })
}
