// A small OTLP/HTTP receiver, as a collector would be: it takes every POST on 127.0.0.1 (a free port), answers
// 200, and keeps the requests; `spans` reads the spans of the JSON ones (OTLP's JSON encoding).
import { Effect } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"

/** One request the receiver got. */
export interface Received {
  readonly path: string
  readonly contentType: string
  readonly body: Buffer
}

/** A span as a test reads it: its attribute values unwrapped from OTLP's `AnyValue`s. */
export interface ReceivedSpan {
  readonly name: string
  readonly kind: number
  readonly parentSpanId: string | undefined
  readonly attributes: Record<string, unknown>
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Record<string, unknown> }>
  /** The attributes of the resource it was exported with (`service.name`...). */
  readonly resource: Record<string, unknown>
}

interface KeyValue {
  readonly key: string
  readonly value: {
    readonly stringValue?: string
    readonly intValue?: number | string
    readonly boolValue?: boolean
    readonly doubleValue?: number
  }
}

const unwrap = (attributes: ReadonlyArray<KeyValue> | undefined): Record<string, unknown> =>
  Object.fromEntries(
    (attributes ?? []).map(({ key, value }) => [
      key,
      value.stringValue ?? (value.intValue === undefined ? undefined : Number(value.intValue)) ?? value.boolValue ??
        value.doubleValue,
    ]),
  )

// What a test reads of OTLP's JSON encoding of an export request.
interface TracesData {
  readonly resourceSpans: ReadonlyArray<{
    readonly resource?: { readonly attributes?: ReadonlyArray<KeyValue> }
    readonly scopeSpans: ReadonlyArray<{
      readonly spans: ReadonlyArray<{
        readonly name: string
        readonly kind: number
        readonly parentSpanId?: string
        readonly attributes?: ReadonlyArray<KeyValue>
        readonly events?: ReadonlyArray<{ readonly name: string; readonly attributes?: ReadonlyArray<KeyValue> }>
      }>
    }>
  }>
}

/** The spans of the JSON-encoded requests, in the order they arrived. */
export const spansOf = (received: ReadonlyArray<Received>): Array<ReceivedSpan> =>
  received.filter((request) => request.contentType.includes("json")).flatMap((request) => {
    const data = JSON.parse(request.body.toString("utf8")) as TracesData
    return data.resourceSpans.flatMap((resourceSpans) => {
      const resource = unwrap(resourceSpans.resource?.attributes)
      return resourceSpans.scopeSpans.flatMap((scopeSpans) =>
        scopeSpans.spans.map((span): ReceivedSpan => ({
          name: span.name,
          kind: span.kind,
          parentSpanId: span.parentSpanId,
          attributes: unwrap(span.attributes),
          events: (span.events ?? []).map((event) => ({ name: event.name, attributes: unwrap(event.attributes) })),
          resource,
        }))
      )
    })
  })

/** Starts the receiver; it is closed with the scope. */
export const otlpReceiver = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ readonly url: string; readonly received: Array<Received>; readonly server: Http.Server }>(
      (resolve) => {
        const received: Array<Received> = []
        const server = Http.createServer((request, response) => {
          const chunks: Array<Buffer> = []
          request.on("data", (chunk: Buffer) => chunks.push(chunk))
          request.on("end", () => {
            received.push({
              path: request.url ?? "",
              contentType: request.headers["content-type"] ?? "",
              body: Buffer.concat(chunks),
            })
            response.writeHead(200, { "content-type": "application/json" }).end("{}")
          })
        })
        server.listen({ host: "127.0.0.1", port: 0 }, () => {
          const { port } = server.address() as Net.AddressInfo
          resolve({ url: `http://127.0.0.1:${port}`, received, server })
        })
      },
    )
  ),
  ({ server }) =>
    Effect.promise(() =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
    ),
)
