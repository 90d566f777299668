// Summarize a V8 .cpuprofile of a tsx-run process: self and inclusive time per function, with the
// TypeScript positions restored. tsx transforms each .ts file with esbuild (minified whitespace,
// so every frame is on line 1); the same transform is redone here to read its source map.
//
//   node bench/src/fanout/profile.mjs <file.cpuprofile> [filter-regexp]
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, "..", "..", "..")

let esbuild
const loadEsbuild = () => {
  if (esbuild === undefined) {
    const fromTsx = createRequire(join(root, "node_modules", "tsx", "package.json"))
    esbuild = fromTsx("esbuild")
  }
  return esbuild
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const decodeMappings = (mappings) => {
  // Returns per generated line an array of [genCol, srcLine, srcCol] (sources[0] only).
  const lines = []
  let srcLine = 0
  let srcCol = 0
  let src = 0
  for (const line of mappings.split(";")) {
    const segs = []
    let genCol = 0
    for (const seg of line.split(",")) {
      if (seg === "") continue
      const values = []
      let value = 0
      let shift = 0
      for (const ch of seg) {
        const d = B64.indexOf(ch)
        value += (d & 31) << shift
        if (d & 32) shift += 5
        else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1)
          value = 0
          shift = 0
        }
      }
      genCol += values[0]
      if (values.length >= 4) {
        src += values[1]
        srcLine += values[2]
        srcCol += values[3]
        segs.push([genCol, srcLine, srcCol, src])
      }
    }
    lines.push(segs)
  }
  return lines
}

const maps = new Map()
const sourceMapOf = (path) => {
  if (maps.has(path)) return maps.get(path)
  let map
  try {
    const code = readFileSync(path, "utf8")
    const out = loadEsbuild().transformSync(code, {
      loader: path.endsWith(".tsx") ? "tsx" : "ts",
      format: "esm",
      target: `node${process.versions.node}`,
      sourcemap: "external",
      minifyWhitespace: true,
      keepNames: true,
      sourcefile: path
    })
    map = decodeMappings(JSON.parse(out.map).mappings)
  } catch {
    map = undefined
  }
  maps.set(path, map)
  return map
}

/** The original 1-based line of generated (0-based) line/column in a .ts file, if known. */
const originalLine = (path, line, column) => {
  const map = sourceMapOf(path)
  const segs = map?.[line]
  if (!segs || segs.length === 0) return undefined
  let best
  for (const s of segs) {
    if (s[0] <= column) best = s
    else break
  }
  return best ? best[1] + 1 : undefined
}

const frameName = (cf) => {
  const fn = cf.functionName || "(anonymous)"
  if (!cf.url) return fn
  const path = cf.url.startsWith("file://") ? fileURLToPath(cf.url) : cf.url
  const rel = path.startsWith(root) ? relative(root, path) : path
  let line = cf.lineNumber + 1
  if (/\.tsx?$/.test(path) && !rel.startsWith("node_modules")) line = originalLine(path, cf.lineNumber, cf.columnNumber) ?? `${line}:${cf.columnNumber + 1}`
  return `${fn} ${rel}:${line}`
}

export const summarizeProfile = (file, { top = 30, filter } = {}) => {
  const profile = JSON.parse(readFileSync(file, "utf8"))
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map()
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id)
  const sampleTime = new Map()
  for (let i = 0; i < profile.samples.length; i++) sampleTime.set(profile.samples[i], (sampleTime.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0))
  const names = new Map()
  const nameOf = (id) => {
    let n = names.get(id)
    if (n === undefined) names.set(id, n = frameName(byId.get(id).callFrame))
    return n
  }
  const self = new Map()
  const inclusive = new Map()
  let total = 0
  // Samples inside the inspector itself (stopping the profile) are not the program's.
  const inInspector = (id) => {
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) if (byId.get(cur).callFrame.url === "node:inspector") return true
    return false
  }
  for (const [id, us] of sampleTime) {
    if (inInspector(id)) continue
    total += us
    self.set(nameOf(id), (self.get(nameOf(id)) ?? 0) + us)
    const seen = new Set()
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = nameOf(cur)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + us)
    }
  }
  const idle = self.get("(idle)") ?? 0
  const busy = total - idle
  const rows = (map, f) =>
    [...map].filter(([k]) => k !== "(idle)" && k !== "(root)" && (!f || f.test(k))).sort((a, b) => b[1] - a[1]).slice(0, top)
      .map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), shareOfBusy: Math.round((us / busy) * 1000) / 1000 }))
  return {
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    gcMs: Math.round((self.get("(garbage collector)") ?? 0) / 1000),
    self: rows(self),
    inclusive: rows(inclusive, filter)
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const s = summarizeProfile(process.argv[2], { top: 40, filter: process.argv[3] ? new RegExp(process.argv[3]) : undefined })
  console.log(`total ${s.totalMs} ms, busy ${s.busyMs} ms, GC ${s.gcMs} ms`)
  console.log("--- self time")
  for (const r of s.self) console.log(String(r.ms).padStart(7), `${(r.shareOfBusy * 100).toFixed(1)}%`.padStart(6), r.fn)
  console.log("--- inclusive time")
  for (const r of s.inclusive) console.log(String(r.ms).padStart(7), `${(r.shareOfBusy * 100).toFixed(1)}%`.padStart(6), r.fn)
}
