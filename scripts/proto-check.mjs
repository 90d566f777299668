#!/usr/bin/env node
// Drift check for the generated protobuf code: regenerate proto/src/gen from proto/**/*.proto
// and fail if anything differs from what is committed (hand edits, or a .proto changed without
// regenerating). Also runs `buf lint`. The regenerated files are left in place, so a failing
// check leaves the working tree showing what `npm run proto:gen` would change.
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative } from "node:path"

const root = new URL("..", import.meta.url).pathname
const gen = join(root, "proto/src/gen")

const snapshot = () => {
  const files = new Map()
  const walk = (dir) => {
    if (!existsSync(dir)) return
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) walk(path)
      else files.set(relative(root, path), createHash("sha256").update(readFileSync(path)).digest("hex"))
    }
  }
  walk(gen)
  return files
}

const buf = (...args) => execFileSync("npx", ["--no-install", "buf", ...args], { cwd: root, stdio: "inherit" })

const before = snapshot()
buf("generate")
buf("lint")
const after = snapshot()

const drift = []
for (const [file, hash] of after) {
  if (!before.has(file)) drift.push(`added:    ${file}`)
  else if (before.get(file) !== hash) drift.push(`changed:  ${file}`)
}
for (const file of before.keys()) if (!after.has(file)) drift.push(`removed:  ${file}`)

if (drift.length > 0) {
  console.error("proto:check: generated code differs from the .proto sources. Run `npm run proto:gen` and commit:")
  for (const line of drift) console.error(`  ${line}`)
  process.exit(1)
}
console.log(`proto:check: ${after.size} generated files match the .proto sources; buf lint passed.`)
