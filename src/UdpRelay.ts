/**
 * The UDP half of `caps proxy`: relays datagrams between clients and the
 * target through a table of flows, the way a NAT does, and applies the fault
 * plan to each datagram on its way.
 *
 * A client's first datagram opens a flow: an upstream socket of its own,
 * connected to the target, so the target sees one sender per client and the
 * kernel lets only the target answer on it. What the target sends back goes
 * to that client from the proxy's own port, which is where the client sent
 * its datagram: a client with a connected socket (caps's `UdpClient`) takes
 * only that. A flow silent in both directions for the idle timeout is closed
 * (the sweep, on the proxy's `Clock`); the table holds at most `maxFlows`,
 * and a new client past that is not relayed, counted and logged.
 *
 * No reply loops: a datagram reaching the proxy's port from the target (or
 * from the proxy's own port) is never forwarded, since forwarding it would
 * send it to the target again; `FaultProxy` refuses a target that is the
 * proxy itself before binding.
 *
 * Delays run on Effect's `Clock` (`Effect.sleep` in fibers of the proxy's
 * scope, at most `MAX_SCHEDULED` at once, more are dropped and counted), so
 * a test can drive them with `TestClock`. Everything else happens in the
 * sockets' callbacks, each wrapped so that nothing can throw into the event
 * loop: what goes wrong there costs one datagram, logged.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Dgram from "node:dgram"
import type * as Net from "node:net"
import * as Builtins from "./Builtins.ts"
import * as CapsError from "./CapsError.ts"
import * as Endpoint from "./Endpoint.ts"
import type * as Faults from "./Faults.ts"
import type * as ProxyStats from "./ProxyStats.ts"

/** Datagrams waiting for a delay (or a reorder hold) at once; more are dropped and counted as `overflow`. */
export const MAX_SCHEDULED = 4096

/** How long a datagram held back for reordering waits for the next one before it goes anyway. */
export const REORDER_HOLD_MILLIS = 1000

// Datagrams waiting in one direction of a flow for the one before to be sent (or for the upstream socket to
// connect); more are not relayed, and counted as `overflow`.
const MAX_OUTBOX = 256

/** The target, resolved. */
export interface Target {
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
}

/** What the relay needs from the proxy. */
export interface UdpRelayOptions {
  /** The proxy's bound socket, where clients send. */
  readonly front: Dgram.Socket
  readonly target: Target
  readonly plan: Faults.FaultPlan
  readonly idleMillis: number
  readonly maxFlows: number
  readonly report: ProxyStats.Report
  /** Runs an effect in a fiber of the proxy's scope (interrupted when it closes). */
  readonly runFork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
}

interface Held {
  readonly payload: Buffer
  readonly timer: Fiber.Fiber<void>
}

// Sends in one direction of a flow go one at a time, each after the last one's callback: Deno's node:dgram
// puts datagrams sent in one turn of the event loop on the wire in reverse order (Deno 2.9).
interface Outbox {
  readonly queue: Array<Buffer>
  sending: boolean
}

interface Flow {
  readonly client: Endpoint.Endpoint
  readonly key: string
  readonly upstream: Dgram.Socket
  connected: boolean
  closed: boolean
  socketClosed: boolean
  readonly outbox: { readonly requests: Outbox; readonly replies: Outbox }
  active: boolean
  lastActive: number
  readonly held: { requests?: Held | undefined; replies?: Held | undefined }
}

const keyOf = (address: string, port: number) => `${address}|${port}`

/** The flow table and the datagram faults. */
export class UdpRelay {
  readonly #options: UdpRelayOptions
  readonly #flows = new Map<string, Flow>()
  readonly #frontAddress: Net.AddressInfo
  readonly #scheduled = new Set<Fiber.Fiber<void>>()
  readonly #stats = {
    received: 0,
    relayed: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    delayed: 0,
    blackholed: 0,
    flowsTotal: 0,
    loopGuarded: 0,
    overflow: 0,
    sendErrors: 0,
    idleClosed: 0,
  }
  #now: number

  constructor(options: UdpRelayOptions, nowMillis: number) {
    this.#options = options
    this.#frontAddress = options.front.address()
    this.#now = nowMillis
  }

  get stats(): ProxyStats.UdpStats {
    return { ...this.#stats, flows: this.#flows.size }
  }

  /** A datagram at the proxy's port; the socket's `message` callback. */
  readonly onClientDatagram = (payload: Buffer, from: Dgram.RemoteInfo): void => {
    const client = Endpoint.make(from.address, from.port, "udp")
    try {
      this.#stats.received++
      if (this.#isLoop(from)) {
        this.#stats.loopGuarded++
        return this.#options.report(
          "warning",
          "Loop",
          client,
          () =>
            `not relaying a datagram from ${Endpoint.format(client)}: it comes from the target or the proxy itself, ` +
            `and relaying it would start a loop`,
        )
      }
      const flow = this.#flows.get(keyOf(from.address, from.port)) ?? this.#open(client, from)
      if (flow === undefined) return
      this.#touch(flow)
      this.#pass(flow, "requests", payload)
    } catch (defect) {
      this.#failed(client, defect)
    }
  }

  /** Closes flows silent for the idle timeout; called by the proxy's sweep with its `Clock`'s time. */
  sweep(nowMillis: number): void {
    this.#now = nowMillis
    for (const flow of this.#flows.values()) {
      if (flow.active || flow.held.requests !== undefined || flow.held.replies !== undefined) {
        flow.active = false
        flow.lastActive = nowMillis
      } else if (nowMillis - flow.lastActive >= this.#options.idleMillis) {
        this.#stats.idleClosed++
        this.#close(flow)
      }
    }
  }

  /** Closes every flow and stops what waits; resumes once the upstream sockets are closed. */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    for (const fiber of this.#scheduled) fiber.interruptUnsafe()
    this.#scheduled.clear()
    const flows = [...this.#flows.values()]
    return Effect.forEach(flows, (flow) => this.#close(flow), { concurrency: "unbounded", discard: true })
  })

  #isLoop(from: Dgram.RemoteInfo): boolean {
    const { target } = this.#options
    const address = Endpoint.make(from.address, from.port, "udp").host
    if (from.port === target.port && address === Endpoint.make(target.address, 0, "udp").host) return true
    return from.port === this.#frontAddress.port && address === Endpoint.make(this.#frontAddress.address, 0, "udp").host
  }

  #open(client: Endpoint.Endpoint, from: Dgram.RemoteInfo): Flow | undefined {
    const { target, maxFlows } = this.#options
    if (this.#flows.size >= maxFlows) {
      this.#stats.overflow++
      this.#options.report(
        "warning",
        "TableFull",
        client,
        () => `not relaying ${Endpoint.format(client)}: ${maxFlows} UDP flows are open already`,
      )
      return undefined
    }
    const upstream = Builtins.dgram().createSocket(target.family === 6 ? "udp6" : "udp4")
    const flow: Flow = {
      client,
      key: keyOf(from.address, from.port),
      upstream,
      connected: false,
      closed: false,
      socketClosed: false,
      outbox: { requests: { queue: [], sending: false }, replies: { queue: [], sending: false } },
      active: true,
      lastActive: this.#now,
      held: {},
    }
    upstream.once("close", () => {
      flow.socketClosed = true
    })
    upstream.on("message", (payload) => {
      try {
        this.#stats.received++
        this.#touch(flow)
        this.#pass(flow, "replies", payload)
      } catch (defect) {
        this.#failed(client, defect)
      }
    })
    upstream.on("error", (error) => {
      this.#stats.sendErrors++
      this.#options.report(
        "warning",
        "TargetError",
        client,
        () =>
          `the target ${this.#targetName()} reported ${CapsError.errno(error) ?? "an error"} ` +
          `for ${Endpoint.format(client)}'s flow (${error.message})`,
      )
    })
    upstream.connect(target.port, target.address, () => {
      flow.connected = true
      this.#flush(flow, "requests")
    })
    this.#flows.set(flow.key, flow)
    this.#stats.flowsTotal++
    return flow
  }

  #close(flow: Flow): Effect.Effect<void> {
    if (flow.closed) return Effect.void
    flow.closed = true
    this.#flows.delete(flow.key)
    for (const direction of ["requests", "replies"] as const) {
      flow.held[direction]?.timer.interruptUnsafe()
      flow.held[direction] = undefined
    }
    try {
      flow.upstream.close()
    } catch {
      flow.socketClosed = true // already closed
    }
    // Waits for 'close': Deno frees the port only then.
    return Effect.callback<void>((resume) => {
      if (flow.socketClosed) return resume(Effect.void)
      flow.upstream.once("close", () => resume(Effect.void))
    })
  }

  #touch(flow: Flow): void {
    flow.active = true
  }

  #targetName(): string {
    const { target } = this.#options
    return Endpoint.format(Endpoint.make(target.address, target.port, "udp"))
  }

  // One datagram in one direction: its fate, then on its way (now, later, twice, or after the next one).
  #pass(flow: Flow, direction: Faults.Direction, payload: Buffer): void {
    const fate = this.#options.plan.datagram(direction)
    const report = (kind: string, verb: string, after = "") =>
      this.#options.report(
        "info",
        kind,
        flow.client,
        () =>
          `${verb} a ${payload.length}-byte ` +
          (direction === "requests" ? "request from " : "reply to ") + Endpoint.format(flow.client) + after,
      )
    switch (fate._tag) {
      case "Blackholed":
        this.#stats.blackholed++
        return report("Blackholed", "blackholed")
      case "Dropped":
        this.#stats.dropped++
        return report("Dropped", "dropped")
    }
    if (fate.held && flow.held[direction] === undefined) {
      if (this.#scheduled.size >= MAX_SCHEDULED) return this.#overflow(flow)
      this.#stats.reordered++
      report("Reordered", "held back", ", to send after the next one")
      const timer = this.#schedule(REORDER_HOLD_MILLIS, () => {
        if (flow.held[direction]?.timer !== timer) return
        flow.held[direction] = undefined
        this.#deliver(flow, direction, [payload])
      })
      flow.held[direction] = { payload, timer }
      return
    }
    const batch = fate.copies === 2 ? [payload, payload] : [payload]
    if (fate.copies === 2) {
      this.#stats.duplicated++
      report("Duplicated", "duplicated")
    }
    const held = flow.held[direction]
    if (held !== undefined) {
      held.timer.interruptUnsafe()
      flow.held[direction] = undefined
      batch.push(held.payload)
    }
    if (fate.delayMillis === 0) return this.#deliver(flow, direction, batch)
    if (this.#scheduled.size >= MAX_SCHEDULED) return this.#overflow(flow)
    this.#stats.delayed++
    report("Delayed", "delayed", ` by ${fate.delayMillis} ms`)
    this.#schedule(fate.delayMillis, () => this.#deliver(flow, direction, batch))
  }

  #overflow(flow: Flow): void {
    this.#stats.overflow++
    this.#options.report(
      "warning",
      "Overflow",
      flow.client,
      () => `not relaying a datagram of ${Endpoint.format(flow.client)}: ${MAX_SCHEDULED} datagrams wait already`,
    )
  }

  #schedule(millis: number, then: () => void): Fiber.Fiber<void> {
    const fiber: Fiber.Fiber<void> = this.#options.runFork(
      Effect.sleep(millis).pipe(
        Effect.andThen(Effect.sync(() => {
          if (!this.#scheduled.delete(fiber)) return
          try {
            then()
          } catch (defect) {
            this.#failed(Endpoint.make(this.#frontAddress.address, this.#frontAddress.port, "udp"), defect)
          }
        })),
        Effect.onInterrupt(() => Effect.sync(() => this.#scheduled.delete(fiber))),
      ),
    )
    this.#scheduled.add(fiber)
    return fiber
  }

  #deliver(flow: Flow, direction: Faults.Direction, batch: ReadonlyArray<Buffer>): void {
    if (flow.closed) return
    const outbox = flow.outbox[direction]
    for (const payload of batch) {
      if (outbox.queue.length >= MAX_OUTBOX) this.#overflow(flow)
      else outbox.queue.push(payload)
    }
    if (!outbox.sending) this.#flush(flow, direction)
  }

  // Sends the next datagram waiting in one direction of a flow; its callback sends the one after.
  #flush(flow: Flow, direction: Faults.Direction): void {
    const outbox = flow.outbox[direction]
    outbox.sending = false
    if (flow.closed || (direction === "requests" && !flow.connected)) return
    const payload = outbox.queue.shift()
    if (payload === undefined) return
    outbox.sending = true
    const done = (error: Error | null) => {
      try {
        if (error !== null) this.#sendFailed(flow, payload, error)
        this.#flush(flow, direction)
      } catch (defect) {
        this.#failed(flow.client, defect)
      }
    }
    try {
      if (direction === "requests") flow.upstream.send(payload, done)
      else this.#options.front.send(payload, flow.client.port, flow.client.host, done)
      this.#stats.relayed++
    } catch (error) {
      // Closed meanwhile (the idle sweep, the proxy stopping): this datagram is lost, and counted.
      outbox.sending = false
      this.#sendFailed(flow, payload, error instanceof Error ? error : new Error(String(error)))
    }
  }

  #sendFailed(flow: Flow, payload: Buffer, error: Error): void {
    this.#stats.sendErrors++
    this.#options.report(
      "warning",
      "SendError",
      flow.client,
      () =>
        `relaying a ${payload.length}-byte datagram of ${Endpoint.format(flow.client)}'s flow failed: ` +
        `${CapsError.errno(error) ?? "error"} (${error.message})`,
    )
  }

  #failed(peer: Endpoint.Endpoint, defect: unknown): void {
    this.#options.report(
      "warning",
      "Defect",
      peer,
      () => `relaying a datagram of ${Endpoint.format(peer)} failed: ${Cause.pretty(Cause.die(defect))}`,
    )
  }
}
