// A tracer that records every span it starts, as an embedder's tracer would
// see them, so a test can check the names and nesting of caps's spans.
import * as Tracer from "effect/Tracer"

/** A tracer and the spans it has started, in order. */
export const recordingTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    },
  })
  return { spans, tracer }
}
