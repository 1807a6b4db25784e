/**
 * Where a server listens. With no host given: every interface, IPv6 and IPv4
 * at once. On Linux (and Deno there) one socket bound to `::` accepts both
 * families; a host without IPv6 refuses `::`, and the server falls back to
 * `0.0.0.0`, IPv4 only.
 *
 * A host name (`localhost`, the machine's own name) is resolved here, before
 * binding, to its first address, IPv4 first, as the clients resolve it (the
 * same `Resolver` service, so an embedder's resolver serves both): Node's
 * `dgram` cannot bind a name at all on a socket whose family it must know
 * first, so both servers bind the same literal address on both runtimes, and
 * the ready line can say which.
 */
import * as Effect from "effect/Effect"
import type * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import * as Resolver from "./Resolver.ts"

/** The wildcard addresses tried, in order, when no host is given. */
export const ANY_HOSTS = ["::", "0.0.0.0"] as const

/** The address a server binds for `host`: itself for an IP literal, else its first address, IPv4 first. */
export const addressOf = (host: string): Effect.Effect<string, CapsError.NameNotResolved> =>
  Effect.map(Resolver.resolve(host), (addresses) => addresses[0].address)

/** Binds `host` (resolved first if it is a name), or the wildcard addresses in turn when it is undefined. */
export const bind = <A, R>(
  host: string | undefined,
  bindHost: (host: string) => Effect.Effect<A, CapsError.BindError, R>,
): Effect.Effect<A, CapsError.BindError | CapsError.NameNotResolved, R> =>
  host !== undefined ? Effect.flatMap(addressOf(host), bindHost) : bindHost(ANY_HOSTS[0]).pipe(
    Effect.catchTag("AddressNotAvailable", () => bindHost(ANY_HOSTS[1])),
  )

/** How a ready line describes a bound host, given the host that was asked for. */
export const describe = (bound: string, requested?: string | undefined): string =>
  requested !== undefined && Endpoint.ipVersion(requested) === 0
    ? `${requested}`
    : bound === "::"
    ? "all interfaces, IPv6 and IPv4"
    : bound === "0.0.0.0"
    ? "all IPv4 interfaces"
    : bound
