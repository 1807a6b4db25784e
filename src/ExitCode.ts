/**
 * The process exit codes of the caps programs, one per typed failure, so that
 * scripts can tell a refused connection from a timeout without parsing text.
 * The table in README.md is this one.
 */
import type * as CapsError from "./CapsError.ts"

/** Exit codes for outcomes that are not a typed failure. */
export const SUCCESS = 0
export const INTERNAL = 1
export const USAGE = 2
export const INTERRUPTED = 130
/** `caps check`: a check failed, or could not run (Docker's HEALTHCHECK takes 1 as unhealthy and reserves 2). */
export const UNHEALTHY = 1

/** The exit code of each typed failure. */
export const ofError: { readonly [Tag in CapsError.CapsError["_tag"]]: number } = {
  NameNotResolved: 3,
  ConnectionRefused: 4,
  Unreachable: 5,
  Timeout: 6,
  ConnectionClosed: 7,
  MessageTooLarge: 8,
  MalformedInput: 9,
  AddressInUse: 10,
  AddressNotAvailable: 11,
  PermissionDenied: 12,
  NetworkError: 13,
  ProtocolViolation: 14,
  TlsError: 15,
  TlsFileError: 16,
  InvalidOption: USAGE,
}

/**
 * The exit code of a failure: its tag's code; a session whose sentences failed exits with its first
 * failure's code, a ping with no reply at all with its last ping's, a failed health check with 1; anything else
 * is internal.
 */
export const ofFailure = (failure: unknown): number => {
  const tagged = failure as { readonly _tag?: unknown; readonly first?: unknown }
  if (tagged._tag === "SentencesFailed") return ofFailure(tagged.first)
  if (tagged._tag === "Unhealthy") return UNHEALTHY
  if (tagged._tag === "NoReply") return ofFailure((failure as { readonly last?: unknown }).last)
  const tag = tagged._tag
  return typeof tag === "string" && tag in ofError ? ofError[tag as keyof typeof ofError] : INTERNAL
}
