// Preloaded with `node --require` by test/Startup.test.ts: when the process exits, writes the Node built-ins it
// loaded after this point (process.moduleLoadList, Node's own record) to the file CAPS_TEST_BUILTINS_OUT names.
const before = new Set(process.moduleLoadList)
process.on("exit", () => {
  const loaded = process.moduleLoadList
    .filter((entry) => !before.has(entry) && entry.startsWith("NativeModule "))
    .map((entry) => entry.slice("NativeModule ".length))
  require("node:fs").writeFileSync(process.env.CAPS_TEST_BUILTINS_OUT, JSON.stringify(loaded))
})
