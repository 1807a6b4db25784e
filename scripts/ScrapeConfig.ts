// The Prometheus scrape configuration the README gives operators, as scripts/test-prometheus.ts uses it: read
// from the README's ```yaml block that names `job_name: caps`, with only its target and its scrape interval
// replaced (the script's caps listens on a free port, and a 1 s interval keeps the run short). The script
// never writes a configuration of its own, so the README's cannot drift from the one that is tested.
import * as Fs from "node:fs"
import * as Path from "node:path"

/** What the README's block says, and what the script puts in its place. */
export const README_TARGET = "127.0.0.1:9464"
export const README_INTERVAL = "scrape_interval: 15s"

/** The README's scrape configuration, as written. */
export const readmeScrapeConfig = (readme: string): string => {
  const blocks = [...readme.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1])
    .filter((body) => /^\s*- job_name: caps$/m.test(body))
  if (blocks.length !== 1) {
    throw new Error(`README.md should have one \`\`\`yaml block with "- job_name: caps", found ${blocks.length}`)
  }
  return blocks[0]
}

const replaceOnce = (text: string, what: string, by: string): string => {
  const count = text.split(what).length - 1
  if (count !== 1) throw new Error(`README.md's scrape config should say ${JSON.stringify(what)} once, not ${count}`)
  return text.replace(what, by)
}

/** The README's scrape configuration, pointed at `target` (host:port) and scraping every `intervalSeconds`. */
export const scrapeConfigFor = (readme: string, target: string, intervalSeconds: number): string =>
  replaceOnce(
    replaceOnce(readmeScrapeConfig(readme), `"${README_TARGET}"`, JSON.stringify(target)),
    README_INTERVAL,
    `scrape_interval: ${intervalSeconds}s`,
  )

/** The README of the checkout at `root`. */
export const readReadme = (root: string): string => Fs.readFileSync(Path.join(root, "README.md"), "utf8")
