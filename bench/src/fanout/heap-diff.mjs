#!/usr/bin/env node
// Diagnostics for the memory result (not part of run.mjs): where a server's JS heap per idle
// connection goes. Starts a server child (server.ts, --expose-gc), makes one warm-up connection,
// takes a heap snapshot, adds N idle connections (khala: hello + subscribe, one topic each),
// takes another, and prints the difference per connection by V8 object type and name, plus the
// owners of the largest kinds of objects.
//
//   node bench/src/fanout/heap-diff.mjs [N=2000] [kind=khala] [--bundle-dir=DIR]
import { fork } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import os from "node:os"
import { setTimeout } from "node:timers"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, "..", "..", "..")
const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"))
const N = Number(positional[0] ?? 2000)
const kind = positional[1] ?? "khala"
const tmp = mkdtempSync(join(os.tmpdir(), "khala-heap-diff-"))
const children = []
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL")
  rmSync(tmp, { recursive: true, force: true })
})

const start = (file, extra = []) => {
  const c = fork(join(here, file), [], {
    cwd: root,
    execArgv: ["--conditions=@openagents/source", "--import", "tsx", ...extra],
    serialization: "advanced",
    stdio: ["ignore", "ignore", "inherit", "ipc"]
  })
  children.push(c)
  const inbox = []
  const waiting = []
  c.on("message", (m) => {
    const i = waiting.findIndex((w) => w.type === m.type || m.type === "error")
    if (i < 0) {
      inbox.push(m)
      return
    }
    const [w] = waiting.splice(i, 1)
    if (m.type === "error") w.reject(new Error(m.message))
    else w.resolve(m)
  })
  c.next = (type) => new Promise((resolve, reject) => {
    const i = inbox.findIndex((m) => m.type === type)
    if (i >= 0) resolve(inbox.splice(i, 1)[0])
    else waiting.push({ type, resolve, reject })
  })
  c.request = (msg, type) => {
    const p = c.next(type)
    c.send(msg)
    return p
  }
  return c
}

const readSnapshot = (file) => {
  const snap = JSON.parse(readFileSync(file, "utf8"))
  const meta = snap.snapshot.meta
  const f = (name) => meta.node_fields.indexOf(name)
  return { snap, meta, nf: meta.node_fields.length, ef: meta.edge_fields.length, ti: f("type"), ni: f("name"), si: f("self_size"), eci: f("edge_count") }
}
const labelOf = (s, i) => {
  const type = s.meta.node_types[0][s.snap.nodes[i + s.ti]]
  let name = s.snap.strings[s.snap.nodes[i + s.ni]]
  if (type.includes("string")) name = "(strings)"
  return `${type}:${name.slice(0, 50)}`
}
const aggregate = (s) => {
  const m = new Map()
  for (let i = 0; i < s.snap.nodes.length; i += s.nf) {
    const k = labelOf(s, i)
    const e = m.get(k) ?? { n: 0, size: 0 }
    e.n++
    e.size += s.snap.nodes[i + s.si]
    m.set(k, e)
  }
  return m
}
/** Who holds the objects labelled `target` (by owner label and edge name). */
const owners = (s, target) => {
  const { snap, meta } = s
  const eti = meta.edge_fields.indexOf("type")
  const eni = meta.edge_fields.indexOf("name_or_index")
  const toi = meta.edge_fields.indexOf("to_node")
  const etypes = meta.edge_types[0]
  const m = new Map()
  let e = 0
  for (let i = 0; i < snap.nodes.length; i += s.nf) {
    const count = snap.nodes[i + s.eci]
    for (let k = 0; k < count; k++, e += s.ef) {
      const to = snap.edges[e + toi]
      if (labelOf(s, to) !== target) continue
      const et = etypes[snap.edges[e + eti]]
      if (et === "weak") continue
      const key = `${labelOf(s, i)} -[${et === "element" || et === "hidden" ? "#" : snap.strings[snap.edges[e + eni]]}]->`
      const a = m.get(key) ?? { n: 0, size: 0 }
      a.n++
      a.size += snap.nodes[to + s.si]
      m.set(key, a)
    }
  }
  return [...m].sort((a, b) => b[1].size - a[1].size).slice(0, 6)
}

const server = start("server.ts", ["--expose-gc"])
await server.next("spawned")
const ready = await server.request({ type: "init", kind, topology: "idle", topics: N + 1 }, "ready")
const warm = start("client.ts")
await warm.next("spawned")
await warm.request({ type: "init", kind, url: ready.url, connections: 1, offset: N, topology: "idle" }, "ready")
const before = (await server.request({ type: "heap-snapshot", file: join(tmp, "before.heapsnapshot") }, "heap-snapshot")).file
const client = start("client.ts")
await client.next("spawned")
await client.request({ type: "init", kind, url: ready.url, connections: N, topology: "idle", concurrency: 200 }, "ready")
await new Promise((r) => setTimeout(r, 1000))
const after = (await server.request({ type: "heap-snapshot", file: join(tmp, "after.heapsnapshot") }, "heap-snapshot")).file
for (const c of children) c.kill("SIGKILL")

const a = readSnapshot(before)
const b = readSnapshot(after)
const ma = aggregate(a)
const mb = aggregate(b)
const rows = []
let total = 0
for (const [k, v] of mb) {
  const o = ma.get(k) ?? { n: 0, size: 0 }
  total += v.size - o.size
  rows.push({ k, objects: (v.n - o.n) / N, bytes: (v.size - o.size) / N })
}
rows.sort((x, y) => y.bytes - x.bytes)
console.log(`${kind}: JS heap (live objects) per idle connection: ${(total / N).toFixed(0)} B over ${N} connections`)
for (const r of rows.slice(0, 16)) console.log(`${r.bytes.toFixed(0).padStart(7)} B ${r.objects.toFixed(2).padStart(6)} objects  ${r.k}`)
for (const target of rows.slice(0, 3).map((r) => r.k)) {
  console.log(`held by (after):  ${target}`)
  for (const [k, v] of owners(b, target)) console.log(`  ${String(v.n).padStart(7)} × ${(v.size / v.n).toFixed(0).padStart(5)} B  ${k}`)
}
process.exit(0)
