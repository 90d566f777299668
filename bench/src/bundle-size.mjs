#!/usr/bin/env node
// Browser bundle size of @openagents/khala-client entries: bundled with esbuild for the browser
// (ESM, minified, tree-shaken), gzipped at level 9. The budget for the main entry is 40 KiB,
// including anything it pulls in. The baseline beside it: protobuf-es's runtime with the generated
// sync schemas, which the client deliberately does not ship (ADR 0008).
import { build } from "esbuild"
import { mkdirSync, writeFileSync } from "node:fs"
import { gzipSync } from "node:zlib"

const root = new URL("../../", import.meta.url).pathname
const BUDGET = 40 * 1024

const measure = async (name, contents) => {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    write: false,
    conditions: ["@openagents/source"],
    external: ["react", "effect", "effect/*"],
    logLevel: "error"
  })
  const code = result.outputFiles[0].contents
  return { name, minified: code.length, gzipped: gzipSync(code, { level: 9 }).length }
}

const rows = [
  await measure("@openagents/khala-client (createClient + stores)", `export * from "@openagents/khala-client"`),
  await measure("@openagents/khala-client/react (hooks; react external)", `export * from "@openagents/khala-client/react"`),
  await measure("baseline: protobuf-es runtime + generated sync schemas", `
    import { fromBinary, toBinary, create } from "@bufbuild/protobuf"
    import * as S from "@openagents/proto/sync/v1"
    export const f = (b) => fromBinary(S.UpdateBatchSchema, fromBinary(S.KhalaFrameSchema, b).payload)
    export const g = () => toBinary(S.HelloSchema, create(S.HelloSchema, {}))
    export const all = S`)
]

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`
console.log("entry".padEnd(60), "minified".padStart(10), "gzipped".padStart(10))
for (const r of rows) console.log(r.name.padEnd(60), kib(r.minified).padStart(10), kib(r.gzipped).padStart(10))
const main = rows[0]
console.log(`\nmain entry: ${kib(main.gzipped)} gzipped = ${((main.gzipped / BUDGET) * 100).toFixed(0)}% of the 40 KiB budget; ${(rows[2].gzipped / main.gzipped).toFixed(1)}× smaller than the protobuf-es baseline alone`)
mkdirSync(new URL("../results/", import.meta.url), { recursive: true })
writeFileSync(new URL("../results/bundle-size.json", import.meta.url), JSON.stringify({ budgetBytes: BUDGET, rows, measuredAt: new Date().toISOString() }, null, 2))
if (main.gzipped > BUDGET) {
  console.error("over budget")
  process.exit(1)
}
