// Mutation testing (`npm run mutate`, see docs/MUTATION.md): the safety code is changed one operator
// at a time, and each change must make some test fail.
// @ts-check
/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  // Only the tests that import a mutated module run (vitest's `related`), and of those only the tests
  // that executed the mutated code (`perTest`). Tests that run caps as a child process can kill no
  // mutant: the mutant is switched on in the test runner's process only.
  // No `testFiles`: with it, Stryker 10.1 switches static mutants (module-level values) on after the
  // modules are loaded, so they survive whatever the tests do (stryker-js#6144).
  vitest: { configFile: "vitest.mutate.config.ts", related: true },
  coverageAnalysis: "perTest",
  // Stryker rewrites tsconfig.json through the TypeScript compiler API, which TypeScript 7 no longer
  // has. Nothing needs rewriting (no `extends`, no project references): point it at no file.
  tsconfigFile: "none",
  mutate: [
    // The pure safety modules: guards, framing, decoding, throttling, limits, option and errno mapping.
    "src/UdpGuard.ts",
    "src/LineFramer.ts",
    "src/Utf8.ts",
    "src/WarningThrottle.ts",
    "src/DescriptorBudget.ts",
    "src/UdpDrops.ts",
    "src/Options.ts",
    "src/Endpoint.ts",
    "src/CapsError.ts",
    // The servers: held datagrams, limits, idle timeout, drain.
    "src/UdpSocket.ts",
    "src/UdpServer.ts",
    "src/TcpConnection.ts",
    "src/TcpListener.ts",
    "src/TcpServer.ts",
  ],
  ignorePatterns: ["dist", "bench/.build", "bench/results.json", "scratch", ".vitest-cache", "*.tgz"],
  // Two cores, shared: one test runner. The socket tests have deadlines of their own; a mutant is only
  // called a timeout (which counts as killed) when it runs 20 s longer than the tests did unmutated.
  concurrency: 1,
  timeoutMS: 20_000,
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "reports/mutation/mutation.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  clearTextReporter: { allowColor: false, reportTests: false },
}
