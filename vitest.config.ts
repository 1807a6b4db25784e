// The same test files run on Node (`vitest run`) and on Deno
// (`deno run -A node_modules/vitest/vitest.mjs run`).
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Socket tests are real I/O on loopback; a handful of files at once keeps a 2-core machine responsive.
    maxWorkers: 2,
  },
})
