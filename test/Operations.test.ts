// The README's "Running caps" section says what the program does: its flag tables list exactly the flags (and
// variables) of each command's --help, docs/PROXY.md's those of `caps proxy`; its metrics table lists exactly
// the series the servers register, with their types and labels; its Prometheus scrape config is the one
// `npm run test:prometheus` runs, aimed at the port the systemd unit gives; its links within the README land.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { README_TARGET, readmeScrapeConfig, scrapeConfigFor } from "../scripts/ScrapeConfig.ts"
import { anchorsOf } from "./support/Anchors.ts"
import { capsCommand, isDeno, projectRoot } from "./support/Process.ts"
import { tcpServer, udpServer } from "./support/Servers.ts"

const read = (file: string) => Fs.readFileSync(Path.join(projectRoot, file), "utf8")
const README = read("README.md")

/** The text of a document's section, from its heading to the next heading of the same or a higher level. */
const section = (text: string, heading: string): string => {
  const start = text.indexOf(`\n${heading}\n`)
  assert.isAtLeast(start, 0, `no section ${heading}`)
  const level = heading.indexOf(" ")
  const rest = text.slice(start + heading.length + 2)
  const end = rest.search(new RegExp(`^#{1,${level}} `, "m"))
  return end < 0 ? rest : rest.slice(0, end)
}

/** The tables of a text, each with the paragraph before it: rows of cells, the header first. */
const tables = (text: string): Array<{ readonly before: string; readonly rows: Array<Array<string>> }> =>
  [...text.matchAll(/((?:^(?!\|).*\n)*)((?:^\|.*\n?)+)/gm)].map((m) => ({
    before: m[1],
    rows: m[2].trim().split("\n").filter((line) => !/^\|[\s|-]+\|$/.test(line)).map((line) =>
      line.slice(1, -1).split("|").map((cell) => cell.trim())
    ),
  }))

/** A flag as `--help` and the tables name it: its names (`-m --message`), and its variable or "". */
type Flags = Map<string, string>

const helpFlags = (command: string): Flags => {
  const [runtime, ...args] = capsCommand([command, "--help"])
  const help = ChildProcess.spawnSync(runtime, args, { encoding: "utf8", timeout: 30_000 })
  assert.strictEqual(help.status, 0, help.stderr)
  const block = /^FLAGS\n([\s\S]*?)\n\n/m.exec(help.stdout)?.[1]
  assert.isDefined(block, `caps ${command} --help lists its flags`)
  const flags: Flags = new Map()
  for (const line of block!.split("\n")) {
    // The names lead the line (`--message, -m string ...`); the description may name other flags.
    const words = line.trim().split(/\s+/).map((word) => word.replace(/,$/, ""))
    const names = words.slice(0, words.findIndex((word) => !word.startsWith("-")))
    flags.set(names.sort().join(" "), /\(env (CAPS_\w+)\)/.exec(line)?.[1] ?? "")
  }
  return flags
}

const namesIn = (cell: string) => [...cell.matchAll(/`(-[^`]+)`/g)].map((m) => m[1]).sort().join(" ")

/** The flags a document's tables give each command: a `commands` column, or else every row is `command`'s. */
const documentedFlags = (text: string, command?: string): Map<string, Flags> => {
  const byCommand = new Map<string, Flags>()
  for (const { before, rows } of tables(text)) {
    const [header, ...body] = rows
    if (header[0] !== "flag") continue
    const column = header.indexOf("commands")
    // "(`all` is `udp-server`, `tcp-server` and `serve`)", in the paragraph before the table.
    const all = [.../\(`all` is ([^)]*)\)/.exec(before)?.[1].matchAll(/`([a-z-]+)`/g) ?? []].map((m) => m[1])
    for (const row of body) {
      const commands = column < 0
        ? [command!]
        : row[column] === "all"
        ? all
        : [...row[column].matchAll(/`([a-z-]+)`/g)].map((m) => m[1])
      assert.isAbove(commands.length, 0, `the row of ${row[0]} names its commands`)
      for (const name of commands) {
        if (!byCommand.has(name)) byCommand.set(name, new Map())
        const flags = byCommand.get(name)!
        const names = namesIn(row[0])
        assert.isFalse(flags.has(names), `${names} of ${name} is in one row only`)
        flags.set(names, /`(CAPS_\w+)`/.exec(row[header.indexOf("env")])?.[1] ?? "")
      }
    }
  }
  return byCommand
}

const sorted = (flags: Flags | undefined) => [...(flags ?? new Map()).entries()].sort()

describe("README: Running caps", () => {
  const running = section(README, "## Running caps")

  it("the flag tables list each server's and client's flags and variables, exactly as --help does", () => {
    const documented = documentedFlags(section(running, "### Flags and environment variables"))
    const commands = ["udp-server", "tcp-server", "serve", "udp-client", "tcp-client", "ping", "check"]
    assert.deepStrictEqual([...documented.keys()].sort(), [...commands].sort())
    for (const command of commands) {
      assert.deepStrictEqual(sorted(documented.get(command)), sorted(helpFlags(command)), `caps ${command}`)
    }
  }, 120_000)

  it("docs/PROXY.md's flag table lists caps proxy's flags and variables, exactly as --help does", () => {
    const documented = documentedFlags(section(read("docs/PROXY.md"), "## Flags"), "proxy")
    assert.deepStrictEqual(sorted(documented.get("proxy")), sorted(helpFlags("proxy")))
  }, 60_000)

  it.live(
    "the metrics table lists every series the servers register, with its type and labels",
    () =>
      Effect.gen(function* () {
        const registry: Metric.MetricRegistry = new Map()
        yield* Layer.build(Layer.mergeAll(tcpServer(), udpServer())).pipe(
          Effect.provideService(Metric.MetricRegistry, registry),
        )
        const text = yield* PrometheusMetrics.format().pipe(Effect.provideService(Metric.MetricRegistry, registry))
        const exported = new Map<string, { type: string; labels: Set<string> }>()
        for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
          exported.set(name, { type, labels: new Set() })
        }
        for (const [, series, labels] of text.matchAll(/^(\w+)\{([^}]*)\}/gm)) {
          const name = series.replace(/_(bucket|sum|count)$/, "")
          const entry = exported.get(exported.has(series) ? series : name)
          assert.isDefined(entry, `${series} has a # TYPE line`)
          for (const [, label] of labels.matchAll(/(\w+)="/g)) {
            if (label !== "le") entry!.labels.add(label)
          }
        }
        const table = tables(section(running, "### Metrics")).find((t) => t.rows[0][0] === "metric")
        assert.isDefined(table, "the Metrics section has a table of metrics")
        const documented = new Map(
          table!.rows.slice(1).map(([metric, type, labels]) => [
            metric.replaceAll("`", ""),
            { type, labels: [...labels.matchAll(/`(\w+)`/g)].map((m) => m[1]).sort() },
          ]),
        )
        const DROPS = "caps_udp_datagrams_dropped_total"
        // The kernel's drop count is registered only where the platform tells it (Linux's /proc).
        if (!exported.has(DROPS)) {
          assert.isTrue(isDeno || !Fs.existsSync("/proc/net/udp"), `${DROPS} is registered on Linux`)
          exported.set(DROPS, { type: "counter", labels: new Set() })
        }
        assert.deepStrictEqual(
          [...documented.entries()].sort(),
          [...exported.entries()].map(([name, { type, labels }]) =>
            [name, { type, labels: [...labels].sort() }] as const
          )
            .sort(),
        )
      }).pipe(Effect.scoped),
    30_000,
  )

  it("the scrape config is the one npm run test:prometheus runs, aimed at the systemd unit's metrics port", () => {
    const config = readmeScrapeConfig(README)
    const unitPort = /^Environment=CAPS_METRICS_PORT=(\d+)$/m.exec(read("deploy/caps.service"))?.[1]
    assert.strictEqual(README_TARGET, `127.0.0.1:${unitPort}`)
    const tested = scrapeConfigFor(README, "127.0.0.1:4321", 1)
    assert.include(tested, '- targets: ["127.0.0.1:4321"]')
    assert.include(tested, "scrape_interval: 1s")
    // Nothing else differs.
    assert.strictEqual(
      tested.replace('"127.0.0.1:4321"', `"${README_TARGET}"`).replace("scrape_interval: 1s", "scrape_interval: 15s"),
      config,
    )
  })

  it("links within the README only to headings it has (GitHub's anchors)", () => {
    const anchors = anchorsOf("README.md")
    const links = [...README.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1])
    assert.isAtLeast(links.length, 5)
    for (const anchor of links) assert.isTrue(anchors.has(anchor), `README.md links to #${anchor}, no heading gives it`)
  })

  it("says how logs are formatted and traces exported, and gives the container health check", () => {
    for (const word of ["--log-format", "CAPS_LOG_FORMAT", "--log-level", "CAPS_LOG_LEVEL", "json", "logfmt"]) {
      assert.include(section(running, "### Logs"), word)
    }
    for (const variable of ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
      assert.include(section(running, "### Traces"), variable)
    }
    assert.include(
      section(running, "### Health checks"),
      "HEALTHCHECK --interval=30s --timeout=5s CMD caps check --host 127.0.0.1 || exit 1",
    )
  })
})
