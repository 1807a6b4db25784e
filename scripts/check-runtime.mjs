// Fails loudly when npm scripts run on an unsupported Node: usually the system
// Node 20, because the pinned `node` devDependency was not installed (npm ci
// with install scripts disabled, or not run at all). Plain JavaScript on
// purpose, so that an old Node can still run it and say what is wrong.
const [major, minor] = process.versions.node.split(".").map(Number)
const ok = "Deno" in globalThis || major > 22 || (major === 22 && minor >= 19)
if (!ok) {
  console.error(
    `\n  caps: unsupported runtime: Node ${process.versions.node} at ${process.execPath}\n` +
      `  caps needs Node >= 22.19. The project pins one as a devDependency (package.json "node");\n` +
      `  run \`npm ci\` (with install scripts allowed) so that npm scripts use it.\n`,
  )
  process.exit(1)
}
console.log(`runtime: Node ${process.versions.node} (${process.execPath})`)
