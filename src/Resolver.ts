/**
 * Host name resolution for the clients (and the servers' `--host`), with its own typed failure.
 *
 * A name gives every address it has, IPv4 first, the one the textbook's
 * `gethostbyname` would pick: a server that binds IPv4 only (the textbook's)
 * is reached at once by the name `localhost` even where that name also has an
 * IPv6 address. The clients try the addresses in this order and move on when
 * one refuses, so a server that binds `::1` only is reached by that name too.
 *
 * `Resolver` is a service with the system's resolver as its default, so that
 * an embedder (or a test) can answer names its own way.
 */
import type * as Arr from "effect/Array"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"

/** One address of a host. */
export interface ResolvedAddress {
  readonly address: string
  readonly family: 4 | 6
}

/** The addresses of a host, in the order to try them. */
export type Addresses = Arr.NonEmptyReadonlyArray<ResolvedAddress>

/** Turns a host name into its addresses. */
export interface ResolverShape {
  readonly resolve: (host: string) => Effect.Effect<Addresses, CapsError.NameNotResolved>
}

/** IPv4 addresses first, each family in the order given. */
export const ipv4First = (addresses: Addresses): Addresses => {
  const [first, ...rest] = addresses
  const ordered = [first, ...rest].sort((a, b) => a.family - b.family)
  return [ordered[0], ...ordered.slice(1)]
}

const literal = (host: string): Addresses | undefined => {
  const family = Endpoint.ipVersion(host)
  return family === 0 ? undefined : [{ address: host, family: family === 6 ? 6 : 4 }]
}

/** The system's resolver (`getaddrinfo`, so /etc/hosts and DNS); IP literals resolve to themselves without asking. */
export const system: ResolverShape = {
  resolve: Effect.fn("Resolver.resolve")(function* (host: string) {
    const own = literal(host)
    if (own !== undefined) return own
    return yield* Effect.callback<Addresses, CapsError.NameNotResolved>((resume) => {
      Builtins.dns().lookup(host, { all: true }, (error, found) => {
        if (error) return resume(Effect.fail(new CapsError.NameNotResolved({ host, code: error.code ?? "ENOTFOUND" })))
        const [first, ...rest] = found.map(({ address, family }): ResolvedAddress => ({
          address,
          family: family === 6 ? 6 : 4,
        }))
        if (first === undefined) return resume(Effect.fail(new CapsError.NameNotResolved({ host, code: "ENODATA" })))
        resume(Effect.succeed(ipv4First([first, ...rest])))
      })
    })
  }),
}

/** A resolver that knows only the names given (IP literals resolve to themselves), e.g. for tests. */
export const fixed = (names: Readonly<Record<string, Addresses>>): ResolverShape => ({
  resolve: (host) => {
    const addresses = literal(host) ?? (Object.hasOwn(names, host) ? names[host] : undefined)
    return addresses === undefined
      ? Effect.fail(new CapsError.NameNotResolved({ host, code: "ENOTFOUND" }))
      : Effect.succeed(addresses)
  },
})

/** The resolver the clients use; the system's unless another is provided. */
export const Resolver: Context.Reference<ResolverShape> = Context.Reference<ResolverShape>("caps/Resolver", {
  defaultValue: () => system,
})

/** Resolves `host` with the current `Resolver`. */
export const resolve = (host: string): Effect.Effect<Addresses, CapsError.NameNotResolved> =>
  Resolver.use((resolver) => resolver.resolve(host))
