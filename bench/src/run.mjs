#!/usr/bin/env node
// Runs the benchmark suites, each in a Node process of its own (TypeScript through tsx,
// workspace packages through the "@openagents/source" export condition), in order, and stops at
// the first that fails. `node src/run.mjs journal` runs only the suites whose name starts so.
// Each suite prints its tables and writes bench/results/<name>.json; README.md records a run.
import { spawnSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))

/** name: what `run.mjs <prefix>` matches; file: the entry, relative to src/. */
const suites = [
  { name: "journal", file: "journal.ts" },
  { name: "client-apply", file: "client-apply.ts" },
  { name: "client-bundle-size", file: "bundle-size.mjs" },
  { name: "fanout", file: "fanout/run.mjs" },
  { name: "runtime-ingest", file: "runtime-ingest.ts" }
]

const only = process.argv.slice(2)
for (const suite of suites) {
  if (only.length > 0 && !only.some((prefix) => suite.name.startsWith(prefix))) continue
  console.log(`bench: ${suite.name}`)
  const result = spawnSync(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", join(here, suite.file)], {
    cwd: join(here, ".."),
    stdio: "inherit"
  })
  if (result.status !== 0) {
    console.error(`bench: suite ${suite.name} failed (${result.signal ?? `exit ${result.status}`})`)
    process.exit(result.status ?? 1)
  }
}
