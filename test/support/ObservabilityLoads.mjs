// Loaded with `node --import`: says on stderr which of Effect's observability modules the program loads, so a
// test can check that the OTLP exporter is loaded only when asked for (Node's synchronous module hooks).
import { registerHooks } from "node:module"

const OBSERVABILITY = /\/effect\/(?:dist|src)\/observability\/([A-Za-z]+)\.[jt]s$/

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context)
    const match = OBSERVABILITY.exec(resolved.url)
    if (match !== null) process.stderr.write(`loaded effect/observability/${match[1]}\n`)
    return resolved
  },
})
