#!/usr/bin/env node
// After `npm run build`: load every exported entry of every @openagents package the way users
// do — plain Node resolution (no source condition), once through `import` (ESM) and once through
// `require` (CJS) — and check the declared type files exist. Catches an `exports` mistake before
// a user does.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"

const root = new URL("..", import.meta.url).pathname
const require = createRequire(join(root, "package.json"))
const dirs = ["proto", ...readdirSync(join(root, "packages")).map((d) => `packages/${d}`)]
// Conformance-suite entries import vitest, which only loads inside its runner: they are checked
// for their files but not loaded. An entry counts as one when its source, following the
// package's own relative imports, imports vitest; every other entry — test servers and clients
// included — must load in plain Node.
const importsVitest = (file, seen = new Set()) => {
  if (seen.has(file)) return false
  seen.add(file)
  const text = readFileSync(file, "utf8")
  for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
    if (spec === "vitest" || spec === "@effect/vitest") return true
    if (spec.startsWith(".") && importsVitest(resolve(dirname(file), spec.replace(/\.js$/, ".ts")), seen)) return true
  }
  return false
}
let failures = 0
let checked = 0
for (const dir of dirs) {
  const manifest = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"))
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    if (subpath === "./package.json") continue
    const specifier = subpath === "." ? manifest.name : `${manifest.name}/${subpath.slice(2)}`
    try {
      for (const file of [target.import.types, target.import.default, target.require.types, target.require.default]) {
        if (!existsSync(join(root, dir, file))) throw new Error(`missing ${dir}/${file}`)
      }
      if (importsVitest(join(root, dir, target["@openagents/source"]))) {
        checked++
        continue
      }
      const esm = await import(specifier)
      const cjs = require(specifier)
      const esmKeys = Object.keys(esm).filter((k) => k !== "default").sort().join(",")
      const cjsKeys = Object.keys(cjs).filter((k) => k !== "default" && k !== "__esModule").sort().join(",")
      if (esmKeys !== cjsKeys) throw new Error(`ESM and CJS export different names: [${esmKeys}] vs [${cjsKeys}]`)
      checked++
    } catch (error) {
      failures++
      console.error(`check-dist: ${specifier}: ${error instanceof Error ? error.message : error}`)
    }
  }
}
if (failures > 0) process.exit(1)
console.log(`check-dist: ${checked} entry points load as ESM and CJS with their type declarations.`)
