#!/usr/bin/env node
// Print the tables of bench/results/fanout.json as Markdown (for FANOUT.md).
//
//   node bench/src/fanout/report.mjs [results.json]
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const r = JSON.parse(readFileSync(process.argv[2] ?? join(here, "..", "..", "results", "fanout.json"), "utf8"))
const k = (x) => (x === undefined ? "–" : x >= 10_000 ? `${Math.round(x / 1000)}k` : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : String(x))
/** Median user-mode (non-kernel) server CPU µs per delivery over the measured rounds. */
const userUs = (p) => {
  const xs = p.rounds.map((x) => x.serverCpuPerDeliveryUs * (1 - (x.serverSystemCpuShare ?? 0))).sort((a, b) => a - b)
  return xs[Math.floor(xs.length / 2)].toFixed(2)
}
const table = (head, rows) => {
  console.log(`| ${head.join(" | ")} |`)
  console.log(`|${head.map(() => "---").join("|")}|`)
  for (const row of rows) console.log(`| ${row.join(" | ")} |`)
  console.log()
}

const m = r.machine
console.log(`Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}, ulimit -n ${m.ulimitNofile?.join("/")}; runtime: ${r.options.runtime}`)
console.log(`Started ${r.startedAt}; waited ${Math.round((r.waitForQuiet?.waitedMs ?? 0) / 1000)} s for a quiet machine (quiet: ${r.waitForQuiet?.quiet}); measured for ${r.measuredSeconds} s.`)
console.log(`Load per phase (loadavg1 before→after; CPU cores used by other processes, approximate): ${Object.entries(r.phaseLoad ?? {}).map(([p, l]) => `${p} ${l.loadavg1Before}→${l.loadavg1After}, others ${l.foreignCores ?? "?"} cores`).join("; ")}\n`)

if (r.throughput) {
  const titles = {
    "1x1000": "1 topic × 1,000 subscribers",
    "1000x1": "1,000 topics × 1 subscriber (khala: one commit per event)",
    "1000x1-tx": "1,000 topics × 1 subscriber (khala: one commit per 1,000 events, one to each topic)"
  }
  for (const topology of Object.keys(titles)) {
    if (!r.throughput.some((e) => e.topology === topology)) continue
    console.log(`### ${titles[topology]}\n`)
    const rows = []
    for (const payloadBytes of [100, 2048]) {
      const get = (kind) => r.throughput.find((e) => e.topology === topology && e.kind === kind)?.payloads.find((p) => p.payloadBytes === payloadBytes)
      const kh = get("khala")
      const u = get("uws-raw")
      const w = get("ws-loop")
      const s = get("socketio")
      if (!kh || !u || !w) continue
      const rounds = (p) => p.rounds.map((x) => k(x.deliveriesPerSec)).join(" / ")
      rows.push([
        `${payloadBytes} B (${kh.bytesPerFrame} B frames)`,
        `**${k(kh.deliveriesPerSec)}** (${rounds(kh)})`,
        `${k(u.deliveriesPerSec)} (${rounds(u)})`,
        `${k(w.deliveriesPerSec)} (${rounds(w)})`,
        s ? `${k(s.deliveriesPerSec)} (${rounds(s)})` : "–",
        `**${(kh.deliveriesPerSec / u.deliveriesPerSec).toFixed(2)}**`,
        `**${(kh.deliveriesPerSec / w.deliveriesPerSec).toFixed(1)}×**`,
        s ? `**${(kh.deliveriesPerSec / s.deliveriesPerSec).toFixed(1)}×** (CPU ${(s.serverCpuPerDeliveryUs / kh.serverCpuPerDeliveryUs).toFixed(1)}×; Socket.IO ${s.serverCpuPerDeliveryUs} µs)` : "–",
        `${kh.serverCpuPerDeliveryUs} / ${u.serverCpuPerDeliveryUs} / ${w.serverCpuPerDeliveryUs}` +
          (kh.rounds[0].serverSystemCpuShare === undefined ? "" : ` (user ${[kh, u, w].map((p) => userUs(p)).join(" / ")})`),
        `${(u.serverCpuPerDeliveryUs / kh.serverCpuPerDeliveryUs).toFixed(2)} / ${(w.serverCpuPerDeliveryUs / kh.serverCpuPerDeliveryUs).toFixed(1)}×`,
        kh.serverFanoutCpuPerDeliveryUs === undefined
          ? "–"
          : `${kh.serverCommitUsPerEvent} + ${kh.serverFanoutCpuPerDeliveryUs} + ${kh.serverOtherCpuPerDeliveryUs}; without the commits ` +
            `**${(u.serverCpuPerDeliveryUs / (kh.serverFanoutCpuPerDeliveryUs + kh.serverOtherCpuPerDeliveryUs)).toFixed(2)}–${(u.serverCpuPerDeliveryUs / kh.serverFanoutCpuPerDeliveryUs).toFixed(2)}** of uws, ` +
            `${(w.serverCpuPerDeliveryUs / (kh.serverFanoutCpuPerDeliveryUs + kh.serverOtherCpuPerDeliveryUs)).toFixed(1)}–${(w.serverCpuPerDeliveryUs / kh.serverFanoutCpuPerDeliveryUs).toFixed(1)}× ws`,
        `${kh.rounds.map((x) => x.updatesPerFrame).join("/")}`,
        `${[kh, u, w, s].filter(Boolean).map((p) => p.rounds.map((x) => x.clientCpuShare.join("+")).join(",")).join(" · ")}`,
        `${[kh, u, w, s].filter(Boolean).map((p) => p.rounds.map((x) => x.foreignCores).join(",")).join(" · ")}`
      ])
    }
    table(["payload", "khala deliveries/s (rounds)", "uws-raw", "ws-loop", "socketio", "khala/uws-raw", "khala/ws-loop", "khala/socketio", "server CPU µs/delivery khala / uws / ws", "CPU-normalized khala/uws, khala/ws", "khala server CPU µs (1000x1): commit/event + hub fanout path/delivery + other/delivery; CPU-normalized without the commits (all the rest … hub only)", "updates/frame (khala)", "client CPU share khala · uws · ws · socketio", "others' cores per round khala · uws · ws · socketio"], rows)
  }
}

if (r.latency) {
  console.log("### Commit → receive latency, 1 topic × 1,000 subscribers, 100 events/s for 10 s, 100 B\n")
  table(
    ["server", "reference", "p50 ms", "p95", "p99", "p99.9", "max", "publish start → last subscriber p50/p99", "received", "server / client CPU", "others' cores"],
    r.latency.map((l) => [
      l.kind,
      l.commitReference,
      l.commitToReceiveMs.p50,
      l.commitToReceiveMs.p95,
      `**${l.commitToReceiveMs.p99}**`,
      l.commitToReceiveMs.p999,
      l.commitToReceiveMs.max,
      `${l.publishStartToLastSubscriberMs.p50} / ${l.publishStartToLastSubscriberMs.p99}`,
      `${l.received}/${l.expected}`,
      `${l.serverCpuShare} / ${[].concat(l.clientCpuShare).join("+")}`,
      l.foreignCores
    ])
  )
  for (const l of r.latency) console.log(`- ${l.kind} per second (p50/p99 ms): ${l.perSecond.map((x) => `${x.p50}/${x.p99}`).join(", ")}`)
  console.log()
}

if (r.resume) {
  console.log(`### Reconnect storm: 1,000 topics × 1 subscriber, every connection drops, ${r.resume[0]?.eventsPerTopicMissed} events per topic missed, all resume at once\n`)
  table(
    ["server", "missed events received", "exactly once per connection", "all reconnected ms", "caught up ms", "server CPU ms (µs per missed event)", "Socket.IO recovered", "client CPU", "others' cores"],
    r.resume.map((x) => [
      x.kind,
      `${x.received}/${x.expected}`,
      x.exact ? "yes" : `**no** (${x.minPerConnection}–${x.maxPerConnection})`,
      x.reconnectAllMs,
      `**${x.caughtUpMs}**`,
      `${x.serverCpuMs} (${x.serverCpuPerMissedEventUs})`,
      x.recovered === undefined ? "–" : `${x.recovered}/${x.recovered + x.notRecovered}`,
      x.clientCpuShare.join("+"),
      x.foreignCores
    ])
  )
}

const mainRuntime = String(r.options?.runtime ?? "").startsWith("esbuild") ? "bundle" : "tsx"
const memRows = [...(r.memory ?? []).map((e) => [mainRuntime, e]), ...(r["memory-bundle"] ?? []).map((e) => ["bundle", e])]
if (memRows.length > 0) {
  console.log("### Memory per idle connection (server process)\n")
  table(
    ["server", "runtime", "connections", "RSS 0 → 1k → 10k MiB", "(RSS(10k) − RSS(0)) / 10k", "RSS slope 1k→10k", "heap slope 1k→10k", "heapUsed (10k − 0) / 10k"],
    memRows.map(([runtime, e]) => [
      e.kind,
      runtime,
      e.connections,
      e.points.map((p) => (p.rss / 2 ** 20).toFixed(1)).join(" → "),
      `**${e.rssPerConnectionKiB} KiB**`,
      `${e.rssSlopeKiB} KiB`,
      `${e.heapUsedSlopeKiB} KiB`,
      `${e.heapUsedPerConnectionKiB} KiB`
    ])
  )
}

if (r.profile) {
  for (const p of r.profile.profiles) {
    console.log(`#### Profile ${p.topology} ${p.payloadBytes} B (busy ${p.busyMs} ms, GC ${p.gcMs} ms)\n`)
    table(["self ms", "share", "function"], p.self.slice(0, 12).map((x) => [x.ms, `${(x.shareOfBusy * 100).toFixed(1)}%`, `\`${x.fn}\``]))
    table(["inclusive ms", "share", "function"], p.inclusive.slice(0, 20).map((x) => [x.ms, `${(x.shareOfBusy * 100).toFixed(1)}%`, `\`${x.fn}\``]))
  }
}
