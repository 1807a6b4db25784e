/**
 * Where a server listens when no host is given: every interface, IPv6 and
 * IPv4 at once. On Linux (and Deno there) one socket bound to `::` accepts
 * both families; a host without IPv6 refuses `::`, and the server falls back
 * to `0.0.0.0`, IPv4 only.
 */
import * as Effect from "effect/Effect"
import * as CapsError from "./CapsError.ts"

/** The wildcard addresses tried, in order, when no host is given. */
export const ANY_HOSTS = ["::", "0.0.0.0"] as const

/** Binds `host`, or the wildcard addresses in turn when it is undefined. */
export const bind = <A, R>(
  host: string | undefined,
  bindHost: (host: string) => Effect.Effect<A, CapsError.BindError, R>,
): Effect.Effect<A, CapsError.BindError, R> =>
  host !== undefined ? bindHost(host) : bindHost(ANY_HOSTS[0]).pipe(
    Effect.catchTag("AddressNotAvailable", () => bindHost(ANY_HOSTS[1])),
  )

/** How a ready line describes a bound host. */
export const describe = (host: string): string =>
  host === "::" ? "all interfaces, IPv6 and IPv4" : host === "0.0.0.0" ? "all IPv4 interfaces" : host
