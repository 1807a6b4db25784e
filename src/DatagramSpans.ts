/**
 * A UDP server's datagram spans (`traceDatagrams`): one `UdpServer.datagram`
 * span per datagram, a root span of kind "server", with the sender, the local
 * endpoint, the datagram's size and what became of it
 * (`caps.datagram.result`: answered, rateLimited, failed...).
 *
 * What became of a datagram is read off the server's counters: each outcome
 * moves exactly one of them, so the span names the one that moved while it
 * was handled. A transform effect takes its datagram's span over, and it ends
 * when the effect's reply is sent (or the effect fails, or is interrupted).
 *
 * Without `traceDatagrams` the server never builds one of these, and its
 * message callback is the untraced one: tracing off costs the hot path
 * nothing.
 */
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import type { Buffer } from "node:buffer"
import type * as Dgram from "node:dgram"
import * as Endpoint from "./Endpoint.ts"
import type * as Metrics from "./Metrics.ts"
import * as SpanAttributes from "./SpanAttributes.ts"

/** The outcomes of a datagram, as its span names them: the counters of `UdpServerStats` that one datagram moves. */
export const DATAGRAM_RESULTS = [
  "answered",
  "loopGuarded",
  "rateLimited",
  "tooLarge",
  "truncated",
  "amplificationGuarded",
  "failed",
  "overloaded",
] as const
export type DatagramResult = typeof DATAGRAM_RESULTS[number]

/** The server socket's own address (`socket.address()`). */
type LocalAddress = { readonly address: string; readonly port: number }

/** A datagram's span that a transform effect took over. */
export interface TakenSpan {
  /** Runs what becomes of the datagram (its reply, or its failure), then ends the span naming the outcome. */
  readonly settle: (handle: () => void) => void
  /** Ends the span of an effect interrupted because the server stopped. */
  readonly interrupted: (exit: Exit.Exit<unknown, unknown>) => void
}

type OnMessage = (payload: Buffer, from: Dgram.RemoteInfo) => void

/** The spans of one server's datagrams. */
export class DatagramSpans {
  readonly #tracer: Tracer.Tracer
  readonly #clock: Clock.Clock
  readonly #local: LocalAddress
  readonly #outcomeCount: Record<DatagramResult, () => number>
  // The span of the datagram being handled, until a transform effect takes it over.
  #current: Tracer.Span | undefined

  constructor(counts: Metrics.UdpCounters, tracer: Tracer.Tracer, clock: Clock.Clock, local: LocalAddress) {
    this.#tracer = tracer
    this.#clock = clock
    this.#local = local
    const refused = counts.refused
    this.#outcomeCount = {
      answered: () => counts.answered,
      loopGuarded: () => refused.loop_guard,
      rateLimited: () => refused.rate_limit,
      tooLarge: () => refused.too_large,
      truncated: () => refused.truncated,
      amplificationGuarded: () => refused.amplification,
      failed: () => counts.failed,
      overloaded: () => refused.overloaded,
    }
  }

  /** `onMessage` with each datagram in a span of its own, ended when it returns unless a transform took it over. */
  traced(onMessage: OnMessage): OnMessage {
    return (payload, from) => {
      const span = this.#tracer.span({
        name: "UdpServer.datagram",
        parent: Option.none(),
        annotations: Context.empty(),
        links: [],
        startTime: this.#clock.currentTimeNanosUnsafe(),
        kind: "server",
        root: true,
        sampled: true,
      })
      const attributes = SpanAttributes.served(Endpoint.make(from.address, from.port, "udp"), this.#local)
      for (const key in attributes) span.attribute(key, attributes[key])
      span.attribute("caps.datagram.bytes", payload.length)
      const before = this.#counts()
      this.#current = span
      onMessage(payload, from)
      if (this.#current === undefined) return // taken over by a transform effect
      this.#current = undefined
      this.#end(span, before)
    }
  }

  /** Takes the current datagram's span over, for a transform effect: it ends when the effect's outcome is handled. */
  takeOver(): TakenSpan | undefined {
    const span = this.#current
    if (span === undefined) return undefined
    this.#current = undefined
    return {
      settle: (handle) => {
        const before = this.#counts()
        handle()
        this.#end(span, before)
      },
      interrupted: (exit) => span.end(this.#clock.currentTimeNanosUnsafe(), exit),
    }
  }

  #counts(): ReadonlyArray<number> {
    return DATAGRAM_RESULTS.map((result) => this.#outcomeCount[result]())
  }

  // Ends `span`, naming the one counter that moved since `before`.
  #end(span: Tracer.Span, before: ReadonlyArray<number>): void {
    const moved = DATAGRAM_RESULTS.findIndex((result, i) => this.#outcomeCount[result]() !== before[i])
    if (moved >= 0) span.attribute("caps.datagram.result", DATAGRAM_RESULTS[moved])
    span.end(this.#clock.currentTimeNanosUnsafe(), Exit.void)
  }
}
