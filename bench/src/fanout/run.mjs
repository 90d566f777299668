#!/usr/bin/env node
// Khala fanout benchmark orchestrator. `node bench/src/fanout/run.mjs` runs everything and writes
// bench/results/fanout.json; bench/FANOUT.md explains the method and records a run.
//
// Every server and every client set runs in a child process of its own (server.ts, client.ts),
// by default from an esbuild bundle of them and of the workspace sources they import — what a
// build ships (tsup is esbuild too): no tsx, no keepNames. --tsx runs the TypeScript through tsx
// instead (workspace packages through the "@openagents/source" condition), which is slower:
// tsx turns on esbuild's keepNames, and the hot path pays for it (bench/FANOUT.md).
//
//   throughput     topologies 1x1000 (one topic, 1,000 subscribers), 1000x1 (1,000 topics, one
//                  subscriber each; khala commits every event on its own) and 1000x1-tx (the same,
//                  but khala commits one event to each of the 1,000 topics in one transaction),
//                  payloads of 100 B and 2 KiB, servers khala / uws-raw /
//                  ws-loop / socketio (Socket.IO with connection-state recovery, the peer), all
//                  up at once with their rounds interleaved: a warm-up round
//                  per server (discarded; it sizes the next round to about ROUND_SECONDS), then
//                  ROUNDS measured rounds, each timed from the server's first publish until the
//                  client process has received every update. Server CPU per delivery too.
//   latency        1 topic × 1,000 subscribers, 100 events/s for 10 s, for khala (commit =
//                  journal insertedAt) and, on the same machine, uws-raw, ws-loop and socketio.
//   resume         1,000 topics × 1 subscriber, khala and socketio: every connection drops (as in a
//                  network failure), RESUME_EVENTS events are published to every topic meanwhile,
//                  then all reconnect at once and resume (khala: subscribe after the last
//                  watermark; Socket.IO: connection-state recovery). Timed from the first
//                  reconnect until every missed event has arrived; exactness checked per
//                  connection (every one gets exactly RESUME_EVENTS).
//   memory         server RSS with 0 and with 10,000 idle connections (khala: hello + subscribed
//                  to one topic each), for khala, raw uWS, a ws WebSocketServer and Socket.IO.
//   memory-bundle  with --tsx only: the khala memory test again from the bundle.
//   profile        khala rounds again with the V8 CPU profiler on in the server (not timed); the
//                  top self and inclusive times go into the results.
//
// Before measuring it waits (up to 10 minutes, polling every 30 s) for a quiet machine, then
// proceeds anyway; the load is recorded. Children are killed on exit, on signals and on a global
// timeout.
//
// Options: --phases=throughput,latency,resume,memory,memory-bundle,profile (default: all), --quick
// (short rounds), --no-wait, --tsx (run every child through tsx; --bundle, the default, is
// accepted), --topologies=,
// --kinds=, --latency-kinds=, --client-processes=N (default 1), --latency-client-processes=N
// (default 2), --idle=N (default 10000), --resume-events=N (default 100), --keep-profiles=DIR,
// --out=FILE (default
// bench/results/fanout.json).
import { fork, execSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import os from "node:os"
import { clearTimeout, setTimeout } from "node:timers"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { summarizeProfile } from "./profile.mjs"

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, "..", "..", "..")
const args = process.argv.slice(2)
const flag = (name) => args.includes(`--${name}`)
const option = (name, fallback) => {
  const a = args.find((x) => x.startsWith(`--${name}=`))
  return a === undefined ? fallback : a.slice(name.length + 3)
}
const resultsFile = option("out", join(here, "..", "..", "results", "fanout.json"))
const QUICK = flag("quick")
const PHASES = option("phases", "throughput,latency,resume,memory,memory-bundle,profile").split(",")
const SUBSCRIBERS = 1000
const TOPOLOGIES = option("topologies", "1x1000,1000x1,1000x1-tx").split(",")
const KINDS = option("kinds", "uws-raw,ws-loop,socketio,khala").split(",")
const PAYLOADS = [100, 2048]
const ROUNDS = QUICK ? 1 : 3
const ROUND_SECONDS = QUICK ? 0.6 : 1.5
const SLICE_DELIVERIES = 10_000
const CLIENT_PROCESSES = Number(option("client-processes", 1))
const IDLE_CONNECTIONS = Number(option("idle", 10_000))
const RESUME_EVENTS = Number(option("resume-events", QUICK ? 20 : 100))
const RESUME_KINDS = option("resume-kinds", "khala,socketio").split(",")
const MEMORY_STEP = 1000
const LATENCY_KINDS = option("latency-kinds", "khala,uws-raw,ws-loop,socketio").split(",")
// One client process saturates at 100 events/s × 1,000 sockets (every message is a read of its
// own), which would add queueing to every server's latency; two share the 1,000 connections.
const LATENCY_CLIENTS = Number(option("latency-client-processes", 2))
const LATENCY = { rate: 100, durationMs: QUICK ? 3000 : 10_000, payloadBytes: 100 }
const GLOBAL_TIMEOUT_MS = 20 * 60_000
const EXEC_ARGV = ["--conditions=@openagents/source", "--import", "tsx"]

const started = Date.now()
const log = (...a) => console.log(`[fanout ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s]`, ...a)

// ---------------------------------------------------------------------------------------------
// Children

const children = new Set()
const killAll = () => {
  for (const child of children) {
    try {
      process.kill(child.pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
  children.clear()
}
process.on("exit", () => {
  killAll()
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true })
})
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

// --bundle: run the children from an esbuild bundle (what a build ships: no tsx, no esbuild
// keepNames, which tsx turns on and which wraps every named closure in a defineProperty call).
let bundleDir
const buildBundle = async () => {
  bundleDir = mkdtempSync(join(os.tmpdir(), "khala-fanout-bundle-"))
  const esbuild = createRequire(join(root, "node_modules", "tsx", "package.json"))("esbuild")
  await esbuild.build({
    entryPoints: { server: join(here, "server.ts"), client: join(here, "client.ts") },
    outdir: bundleDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: `node${process.versions.node}`,
    conditions: ["@openagents/source"],
    // Loaded at run time through createRequire (found through NODE_PATH).
    external: ["@trufflesuite/uws-js-unofficial", "uWebSockets.js", "bufferutil", "utf-8-validate", "socket.io", "socket.io-client"],
    banner: { js: "import { createRequire as __fanoutRequire } from 'node:module'; const require = __fanoutRequire(import.meta.url);" },
    sourcemap: "linked",
    logLevel: "warning"
  })
  log(`bundled the children into ${bundleDir}`)
}

const spawn = (file, name, extraArgv = []) => {
  const child = bundleDir
    ? fork(join(bundleDir, file.replace(/\.ts$/, ".mjs")), [], {
      cwd: root,
      execArgv: ["--enable-source-maps", ...extraArgv],
      env: { ...process.env, NODE_PATH: join(root, "node_modules") },
      serialization: "advanced",
      stdio: ["ignore", "pipe", "pipe", "ipc"]
    })
    : fork(join(here, file), [], {
      cwd: root,
      execArgv: [...EXEC_ARGV, ...extraArgv],
      serialization: "advanced",
      stdio: ["ignore", "pipe", "pipe", "ipc"]
    })
  children.add(child)
  const inbox = []
  const waiters = []
  let exited
  const prefix = (stream) => (chunk) => {
    for (const line of String(chunk).split("\n")) if (line.trim() !== "") stream.write(`  [${name}] ${line}\n`)
  }
  child.stdout.on("data", prefix(process.stdout))
  child.stderr.on("data", prefix(process.stderr))
  const deliver = () => {
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]
      const j = inbox.findIndex((m) => m.type === w.type || m.type === "error")
      if (j >= 0) {
        const [m] = inbox.splice(j, 1)
        waiters.splice(i--, 1)
        clearTimeout(w.timer)
        if (m.type === "error") w.reject(new Error(`${name}: ${m.message}`))
        else w.resolve(m)
      } else if (exited !== undefined) {
        waiters.splice(i--, 1)
        clearTimeout(w.timer)
        w.reject(new Error(`${name} exited (${exited}) while waiting for ${w.type}`))
      }
    }
  }
  child.on("message", (m) => {
    inbox.push(m)
    deliver()
  })
  child.on("exit", (code, signal) => {
    exited = signal ?? code
    children.delete(child)
    deliver()
  })
  const next = (type, timeoutMs = 60_000) =>
    new Promise((resolve, reject) => {
      const w = { type, resolve, reject, timer: setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1)
        reject(new Error(`${name}: no ${type} within ${timeoutMs} ms`))
      }, timeoutMs) }
      waiters.push(w)
      deliver()
    })
  const request = (msg, type, timeoutMs) => {
    const p = next(type, timeoutMs)
    child.send(msg)
    return p
  }
  const stop = async () => {
    if (exited !== undefined) return
    const gone = new Promise((r) => child.once("exit", r))
    exitedCpuSeconds += cpuSecondsOf(child.pid)
    child.accounted = true
    try {
      child.send({ type: "exit" })
    } catch {
      // channel closed
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000)
    await gone
    clearTimeout(timer)
  }
  return { child, name, next, request, stop, pid: child.pid }
}

// ---------------------------------------------------------------------------------------------
// Machine state

const cpuTimes = () => os.cpus().reduce((acc, c) => {
  acc.idle += c.times.idle
  acc.total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq
  return acc
}, { idle: 0, total: 0 })
const busyFraction = async (ms = 1000) => {
  const a = cpuTimes()
  await new Promise((r) => setTimeout(r, ms))
  const b = cpuTimes()
  return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total)
}
/** CPU seconds (utime + stime) of one process from /proc (Linux); 0 if unknown. */
const cpuSecondsOf = (pid) => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}
/** CPU seconds of children that have exited (sampled just before they were told to exit). */
let exitedCpuSeconds = 0
/** CPU seconds used by our own children so far, the exited ones included. */
const ownCpuSeconds = () => {
  let s = exitedCpuSeconds
  for (const child of children) if (!child.accounted) s += cpuSecondsOf(child.pid)
  return s
}
/**
 * Start measuring the machine; the returned function gives, since then, the CPU cores busy in all
 * and the cores used by other people's processes (all busy minus our children; Linux only).
 */
const machineMeter = () => {
  const a = cpuTimes()
  const own = ownCpuSeconds()
  const t = Date.now()
  return () => {
    const b = cpuTimes()
    const seconds = (Date.now() - t) / 1000
    const busyCores = ((b.total - b.idle - (a.total - a.idle)) / 1000) / Math.max(0.001, seconds)
    const ownCores = (ownCpuSeconds() - own) / Math.max(0.001, seconds)
    return { busyCores: r2(busyCores), foreignCores: r2(Math.max(0, busyCores - ownCores)) }
  }
}

const machine = () => ({
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
  node: process.version,
  platform: `${os.type()} ${os.release()} ${os.arch()}`,
  ulimitNofile: (() => {
    try {
      return execSync("ulimit -n; ulimit -Hn", { shell: "/bin/sh" }).toString().trim().split("\n").map(Number)
    } catch {
      return undefined
    }
  })()
})

const waitForQuiet = async () => {
  const deadline = Date.now() + 10 * 60_000
  const samples = []
  for (;;) {
    const load = os.loadavg()
    const busy = await busyFraction(2000)
    samples.push({ at: new Date().toISOString(), loadavg1: +load[0].toFixed(2), busy: +busy.toFixed(2) })
    // The 1-minute load average lags by minutes; the CPU actually busy over the sample decides.
    const quiet = busy < 0.2
    log(`machine: loadavg ${load.map((x) => x.toFixed(2)).join(" ")}, CPU busy ${(busy * 100).toFixed(0)}% over 2 s${quiet ? " (quiet)" : ""}`)
    if (quiet || flag("no-wait")) return { waitedMs: Date.now() - deadline + 10 * 60_000, quiet, samples }
    if (Date.now() >= deadline) {
      log("machine still busy after 10 minutes: proceeding anyway")
      return { waitedMs: 10 * 60_000, quiet: false, samples }
    }
    await new Promise((r) => setTimeout(r, 30_000))
  }
}

// ---------------------------------------------------------------------------------------------
// Phases

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const pct = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))])
const r2 = (x) => Math.round(x * 100) / 100

/** A server child and its client children (`clients` processes sharing `connections`). */
const startGroup = async (kind, topology, connections, { serverArgv = [], concurrency = 100, clients = CLIENT_PROCESSES } = {}) => {
  const server = spawn("server.ts", `${kind} server`, serverArgv)
  const group = { kind, topology, server, clients: [] }
  try {
    await server.next("spawned", 60_000)
    group.ready = await server.request({ type: "init", kind, topology, topics: SUBSCRIBERS }, "ready", 60_000)
    const t0 = Date.now()
    const per = Math.ceil(connections / clients)
    const starts = []
    for (let i = 0; i < clients; i++) {
      const n = Math.min(per, connections - i * per)
      const client = spawn("client.ts", `${kind} client${clients > 1 ? ` ${i}` : ""}`)
      client.connections = n
      group.clients.push(client)
      starts.push(client.next("spawned", 60_000).then(() =>
        client.request({ type: "init", kind, url: group.ready.url, connections: n, offset: i * per, topology, concurrency }, "ready", 240_000)))
    }
    await Promise.all(starts)
    group.connectMs = Date.now() - t0
    group.serverConnections = (await server.request({ type: "connections" }, "connections")).count
    return group
  } catch (error) {
    await stopGroup(group)
    throw error
  }
}
const stopGroup = async (group) => {
  await Promise.all(group.clients.map((c) => c.stop()))
  await group.server.stop()
}

const round = async (group, events, payloadBytes, timeoutMs) => {
  const { server, clients } = group
  const expected = events * SUBSCRIBERS
  await Promise.all(clients.map((c) => c.request({ type: "arm", updates: events * c.connections, timeoutMs }, "armed")))
  const loadavg1 = os.loadavg()[0]
  const meter = machineMeter()
  const published = await server.request({ type: "run", events, payloadBytes, sliceDeliveries: SLICE_DELIVERIES }, "published", timeoutMs + 5000)
  const dones = await Promise.all(clients.map((c) => c.next("done", timeoutMs + 5000)))
  const busy = meter()
  const cpu = await server.request({ type: "cpu" }, "cpu")
  const sum = (f) => dones.reduce((a, d) => a + f(d), 0)
  const tEnd = Math.max(...dones.map((d) => d.tEnd))
  const received = sum((d) => d.updates)
  const frames = sum((d) => d.frames)
  const elapsedMs = tEnd - published.t0
  const serverCpuMs = cpu.cpuMs - published.cpu0
  const gc = {}
  for (const k of ["minor", "major", "incremental"]) gc[k] = Math.round(cpu.gcMs[k] - published.gc0[k])
  return {
    events,
    expected,
    received,
    complete: dones.every((d) => !d.timedOut) && received === expected,
    frames,
    updatesPerFrame: r2(received / Math.max(1, frames)),
    bytesPerFrame: Math.round(sum((d) => d.bytes) / Math.max(1, frames)),
    elapsedMs: r2(elapsedMs),
    publishLoopMs: r2(published.t1 - published.t0),
    deliveriesPerSec: Math.round((received / elapsedMs) * 1000),
    serverCpuMs: Math.round(serverCpuMs),
    serverCpuPerDeliveryUs: r2((serverCpuMs * 1000) / Math.max(1, received)),
    // khala, 1000x1: the server CPU split into the commits (the wall time of each, a synchronous
    // step with the memory journal), the fanout path (the hub's own read and publish time, from its
    // metrics: wake → read → encode → hand to uWS) and the rest: uWS's sends (it drains its topic
    // queues after the JS callback, outside the hub's time), GC outside both, promise settling,
    // the bench's own IPC.
    ...(published.fanoutMs === undefined || published.fanoutMs === null ? {} : {
      serverFanoutCpuPerDeliveryUs: r2((published.fanoutMs * 1000) / Math.max(1, received))
    }),
    ...(published.commitMs === undefined || published.commitMs === null ? {} : {
      serverCommitUsPerEvent: r2((published.commitMs * 1000) / Math.max(1, published.total)),
      serverOtherCpuPerDeliveryUs: r2(((serverCpuMs - published.commitMs - (published.fanoutMs ?? 0)) * 1000) / Math.max(1, received))
    }),
    serverCpuShare: r2(serverCpuMs / elapsedMs),
    serverGcPauseMs: gc,
    serverSystemCpuShare: r2((cpu.sys.systemMs - published.sys0.systemMs) / serverCpuMs),
    serverHeapUsedMiB: Math.round(cpu.heapUsed / 2 ** 20),
    clientCpuShare: dones.map((d) => r2(d.cpuMs / (d.tEnd - d.armedAt))),
    errorFrames: sum((d) => d.errorFrames),
    errorSamples: dones.flatMap((d) => d.errorSamples).slice(0, 5),
    minUpdatesPerConnection: Math.min(...dones.map((d) => d.minUpdates)),
    maxUpdatesPerConnection: Math.max(...dones.map((d) => d.maxUpdates)),
    openConnections: sum((d) => d.open),
    loadavg1: r2(loadavg1),
    machineBusyCores: busy.busyCores,
    foreignCores: busy.foreignCores
  }
}

const describeRound = (r) =>
  `${(r.deliveriesPerSec / 1000).toFixed(1)}k/s (${r.events} ev, ${r.elapsedMs} ms, server ${r.serverCpuPerDeliveryUs} µs/del` +
  `${r.serverCommitUsPerEvent === undefined ? "" : ` = commit ${r.serverCommitUsPerEvent} µs/ev + other ${r.serverOtherCpuPerDeliveryUs}`}` +
  `${r.serverFanoutCpuPerDeliveryUs === undefined ? "" : ` + fanout path ${r.serverFanoutCpuPerDeliveryUs} µs/del`}, ` +
  `server/client CPU ${r.serverCpuShare}/${r.clientCpuShare.join("+")}, server CPU in kernel ${Math.round(r.serverSystemCpuShare * 100)}%, ` +
  `${r.updatesPerFrame} upd/frame${r.complete ? "" : ", INCOMPLETE"}` +
  `${r.errorFrames ? `, ${r.errorFrames} error frames` : ""}, others used ${r.foreignCores} cores)`

/**
 * Throughput of one topology: all kinds' groups are up at once and their rounds are interleaved
 * (rotating order), so a change in background load hits every kind alike.
 */
const throughputTopology = async (topology, kinds, { profileDir } = {}) => {
  log(`throughput ${topology}: starting ${kinds.join(", ")} with ${SUBSCRIBERS} connections each (${CLIENT_PROCESSES} client process${CLIENT_PROCESSES > 1 ? "es" : ""} per server)`)
  const groups = []
  try {
    for (const kind of kinds) {
      const g = await startGroup(kind, topology, SUBSCRIBERS)
      groups.push(g)
      log(`  ${kind}: ${g.serverConnections} connections in ${g.connectMs} ms (uWS native: ${g.ready.native})`)
    }
    const entries = groups.map((g) => ({ topology, kind: g.kind, native: g.ready.native, connectMs: g.connectMs, serverConnections: g.serverConnections, clientProcesses: g.clients.length, payloads: [] }))
    for (const payloadBytes of PAYLOADS) {
      const sized = []
      for (const g of groups) {
        const warmEvents = topology === "1x1000" ? (QUICK ? 20 : 50) : (QUICK ? 5 : 15)
        const warm = await round(g, warmEvents, payloadBytes, 120_000)
        const rate = warm.complete ? warm.deliveriesPerSec : 20_000
        const minEvents = topology === "1x1000" ? 100 : 10
        const events = Math.max(minEvents, Math.min(5000, Math.round((rate * ROUND_SECONDS) / SUBSCRIBERS)))
        sized.push({ g, warm, events, rounds: [] })
        log(`  ${payloadBytes} B ${g.kind} warm-up: ${describeRound(warm)}`)
      }
      if (profileDir) {
        for (const x of sized) {
          const file = join(profileDir, `${topology}-${payloadBytes}-${x.g.kind}.cpuprofile`)
          await x.g.server.request({ type: "profile-start" }, "profile-started")
          x.rounds.push(await round(x.g, x.events, payloadBytes, 120_000))
          await x.g.server.request({ type: "profile-stop", file }, "profile-stopped", 60_000)
          x.profile = file
          log(`  ${payloadBytes} B ${x.g.kind} profiled round: ${describeRound(x.rounds[0])}`)
        }
      } else {
        for (let i = 0; i < ROUNDS; i++) {
          const order = sized.map((_, j) => sized[(i + j) % sized.length])
          for (const x of order) {
            const r = await round(x.g, x.events, payloadBytes, 120_000)
            x.rounds.push(r)
            // Re-size the next round from this one (a short warm-up under load misjudges the rate).
            if (r.complete) x.events = Math.max(x.events >> 1, Math.min(x.events * 2, Math.round((r.deliveriesPerSec * ROUND_SECONDS) / SUBSCRIBERS)))
            log(`  ${payloadBytes} B ${x.g.kind} round ${i + 1}: ${describeRound(r)}`)
          }
        }
      }
      sized.forEach((x, i) => {
        const rates = x.rounds.map((r) => r.deliveriesPerSec)
        const cpu = x.rounds.map((r) => r.serverCpuPerDeliveryUs)
        entries[i].payloads.push({
          payloadBytes,
          bytesPerFrame: x.rounds[0].bytesPerFrame,
          warmup: x.warm,
          rounds: x.rounds,
          deliveriesPerSec: Math.round(median(rates)),
          deliveriesPerSecMin: Math.min(...rates),
          deliveriesPerSecMax: Math.max(...rates),
          serverCpuPerDeliveryUs: r2(median(cpu)),
          ...(x.rounds.every((r) => r.serverFanoutCpuPerDeliveryUs !== undefined) ? {
            serverFanoutCpuPerDeliveryUs: r2(median(x.rounds.map((r) => r.serverFanoutCpuPerDeliveryUs)))
          } : {}),
          ...(x.rounds.every((r) => r.serverCommitUsPerEvent !== undefined) ? {
            serverCommitUsPerEvent: r2(median(x.rounds.map((r) => r.serverCommitUsPerEvent))),
            serverOtherCpuPerDeliveryUs: r2(median(x.rounds.map((r) => r.serverOtherCpuPerDeliveryUs)))
          } : {}),
          deliveriesPerServerCpuSec: Math.round(1e6 / median(cpu)),
          complete: x.rounds.every((r) => r.complete),
          profile: x.profile
        })
      })
    }
    return entries
  } finally {
    for (const g of groups) await stopGroup(g)
  }
}

const throughput = async () => {
  const out = []
  for (const topology of TOPOLOGIES) out.push(...(await throughputTopology(topology, KINDS)))
  return out
}

/** Commit→receive latency at LATENCY.rate events/s to 1,000 subscribers of one topic, for one server kind. */
const latencyRun = async (kind) => {
  log(`latency: ${kind} 1x1000, ${LATENCY.rate} events/s for ${LATENCY.durationMs} ms, ${LATENCY.payloadBytes} B`)
  const group = await startGroup(kind, "1x1000", SUBSCRIBERS, { clients: LATENCY_CLIENTS })
  try {
    const n = Math.round((LATENCY.rate * LATENCY.durationMs) / 1000)
    await Promise.all(group.clients.map((c) => c.request({ type: "arm", updates: n * c.connections, latency: true, timeoutMs: LATENCY.durationMs + 30_000 }, "armed")))
    const loadavg1 = os.loadavg()[0]
    const meter = machineMeter()
    const pub = await group.server.request({ type: "latency", ...LATENCY }, "latency", LATENCY.durationMs + 60_000)
    const dones = await Promise.all(group.clients.map((c) => c.next("done", 60_000)))
    const busy = meter()
    const parts = await Promise.all(group.clients.map((c) => c.request({ type: "latency-data" }, "latency-data", 60_000)))
    const done = {
      updates: dones.reduce((a, d) => a + d.updates, 0),
      frames: dones.reduce((a, d) => a + d.frames, 0),
      timedOut: dones.some((d) => d.timedOut),
      clientCpuShare: dones.map((d) => r2(d.cpuMs / (d.tEnd - d.armedAt)))
    }
    const cat = (key) => {
      const out = new Float64Array(parts.reduce((a, p) => a + p[key].length, 0))
      let o = 0
      for (const p of parts) {
        out.set(p[key], o)
        o += p[key].length
      }
      return out
    }
    const data = { seq: cat("seq"), count: cat("count"), at: cat("at") }
    const rec = pub.records
    const index = new Map()
    for (let i = 0; i < pub.n; i++) index.set(rec.watermark[i], i)
    const vsCommit = new Float64Array(done.updates)
    const vsStart = new Float64Array(done.updates)
    const vsResolved = new Float64Array(done.updates)
    const eventOf = new Int32Array(done.updates)
    const lastArrival = new Float64Array(pub.n).fill(-Infinity)
    let k = 0
    let unmatched = 0
    for (let f = 0; f < data.seq.length; f++) {
      for (let w = data.seq[f] - data.count[f] + 1; w <= data.seq[f]; w++) {
        const i = index.get(w)
        if (i === undefined) {
          unmatched++
          continue
        }
        const at = data.at[f]
        vsCommit[k] = at - rec.committedAt[i]
        vsStart[k] = at - rec.start[i]
        vsResolved[k] = at - rec.resolved[i]
        eventOf[k] = i
        k++
        if (at > lastArrival[i]) lastArrival[i] = at
      }
    }
    const stats = (arr) => {
      const s = Float64Array.from(arr).sort()
      return { n: s.length, p50: r2(pct(s, 50)), p95: r2(pct(s, 95)), p99: r2(pct(s, 99)), p999: r2(pct(s, 99.9)), max: r2(s[s.length - 1]), min: r2(s[0]) }
    }
    // Per second of the run: commit→receive p50/p99 of the events published in that second.
    const perSecond = []
    const buckets = new Map()
    for (let j = 0; j < k; j++) {
      const sec = Math.floor(eventOf[j] / LATENCY.rate)
      let b = buckets.get(sec)
      if (b === undefined) buckets.set(sec, b = [])
      b.push(vsCommit[j])
    }
    for (const [sec, b] of [...buckets].sort((a, b) => a[0] - b[0])) {
      const s = Float64Array.from(b).sort()
      perSecond.push({ second: sec, p50: r2(pct(s, 50)), p99: r2(pct(s, 99)), max: r2(s[s.length - 1]) })
    }
    const result = {
      kind,
      topology: "1x1000",
      rate: LATENCY.rate,
      durationMs: LATENCY.durationMs,
      payloadBytes: LATENCY.payloadBytes,
      events: pub.n,
      subscribers: SUBSCRIBERS,
      received: done.updates,
      expected: pub.n * SUBSCRIBERS,
      complete: !done.timedOut && done.updates === pub.n * SUBSCRIBERS,
      unmatched,
      frames: done.frames,
      publishElapsedMs: r2(pub.elapsedMs),
      serverCpuShare: r2(pub.cpuMs / pub.elapsedMs),
      clientProcesses: group.clients.length,
      clientCpuShare: done.clientCpuShare,
      loadavg1: r2(loadavg1),
      machineBusyCores: busy.busyCores,
      foreignCores: busy.foreignCores,
      commitReference: kind === "khala" ? "journal insertedAt (ms resolution, set inside the commit)" : "just before app.publish / the send loop / io.emit",
      commitToReceiveMs: stats(vsCommit.subarray(0, k)),
      publishStartToReceiveMs: stats(vsStart.subarray(0, k)),
      publishResolvedToReceiveMs: stats(vsResolved.subarray(0, k)),
      publishCallMs: stats(Array.from(rec.resolved, (r, i) => r - rec.start[i])),
      publishStartToLastSubscriberMs: stats(Array.from(lastArrival, (a, i) => a - rec.start[i]).filter(Number.isFinite)),
      perSecond
    }
    log(`  commit→receive p50 ${result.commitToReceiveMs.p50} ms, p95 ${result.commitToReceiveMs.p95}, p99 ${result.commitToReceiveMs.p99}, max ${result.commitToReceiveMs.max} ` +
      `(${result.received}/${result.expected} updates, ${result.frames} frames; server/client CPU ${result.serverCpuShare}/${result.clientCpuShare.join("+")}, others used ${result.foreignCores} cores)`)
    log(`  per second p50/p99: ${perSecond.map((x) => `${x.p50}/${x.p99}`).join("  ")}`)
    return result
  } finally {
    await stopGroup(group)
  }
}

const latencyPhase = async () => {
  const out = []
  for (const kind of LATENCY_KINDS) out.push(await latencyRun(kind))
  return out
}

/** Reconnect storm after a network failure: every subscriber of 1000x1 drops, misses, resumes. */
const resumeRun = async (kind) => {
  log(`resume: ${kind} 1000x1, every connection drops, ${RESUME_EVENTS} events per topic meanwhile, all reconnect at once`)
  const group = await startGroup(kind, "1000x1", SUBSCRIBERS)
  const { server, clients } = group
  try {
    // A few live events first, so every connection has a position to resume from.
    const warm = await round(group, 5, 100, 60_000)
    if (!warm.complete) throw new Error(`${kind}: the live warm-up round was incomplete`)
    await Promise.all(clients.map((c) => c.request({ type: "drop" }, "dropped")))
    for (let i = 0; i < 200; i++) {
      if ((await server.request({ type: "connections" }, "connections")).count === 0) break
      await new Promise((r) => setTimeout(r, 50))
    }
    const open = (await server.request({ type: "connections" }, "connections")).count
    const missed = await server.request({ type: "run", events: RESUME_EVENTS, payloadBytes: 100, sliceDeliveries: SLICE_DELIVERIES }, "published", 120_000)
    await Promise.all(clients.map((c) => c.request({ type: "arm", updates: RESUME_EVENTS * c.connections, timeoutMs: 120_000 }, "armed")))
    const meter = machineMeter()
    const cpu0 = await server.request({ type: "cpu" }, "cpu")
    const resumed = await Promise.all(clients.map((c) => c.request({ type: "resume", concurrency: 100 }, "resumed", 130_000)))
    const dones = await Promise.all(clients.map((c) => c.next("done", 130_000)))
    const cpu1 = await server.request({ type: "cpu" }, "cpu")
    const busy = meter()
    const startedAt = Math.min(...resumed.map((r) => r.startedAt))
    const received = dones.reduce((a, d) => a + d.updates, 0)
    const expected = RESUME_EVENTS * SUBSCRIBERS
    const result = {
      kind,
      topology: "1000x1",
      eventsPerTopicMissed: RESUME_EVENTS,
      connectionsOpenWhenPublishing: open,
      missedPublishMs: r2(missed.t1 - missed.t0),
      expected,
      received,
      exact: received === expected && Math.min(...dones.map((d) => d.minUpdates)) === RESUME_EVENTS && Math.max(...dones.map((d) => d.maxUpdates)) === RESUME_EVENTS,
      minPerConnection: Math.min(...dones.map((d) => d.minUpdates)),
      maxPerConnection: Math.max(...dones.map((d) => d.maxUpdates)),
      timedOut: dones.some((d) => d.timedOut),
      reconnectFailures: resumed.reduce((a, r) => a + r.failures, 0),
      failureSamples: resumed.flatMap((r) => r.failureSamples).slice(0, 3),
      recovered: kind === "socketio" ? resumed.reduce((a, r) => a + r.recovered, 0) : undefined,
      notRecovered: kind === "socketio" ? resumed.reduce((a, r) => a + r.notRecovered, 0) : undefined,
      reconnectAllMs: r2(Math.max(...resumed.map((r) => r.reconnectedAt)) - startedAt),
      caughtUpMs: r2(Math.max(...dones.map((d) => d.tEnd)) - startedAt),
      serverCpuMs: Math.round(cpu1.cpuMs - cpu0.cpuMs),
      serverCpuPerMissedEventUs: r2(((cpu1.cpuMs - cpu0.cpuMs) * 1000) / Math.max(1, received)),
      clientCpuShare: dones.map((d) => r2(d.cpuMs / (d.tEnd - d.armedAt))),
      foreignCores: busy.foreignCores
    }
    log(`  ${received}/${expected} missed events${result.exact ? ", exactly once each" : ", NOT EXACT"} (per connection ${result.minPerConnection}–${result.maxPerConnection})` +
      `; all reconnected in ${result.reconnectAllMs} ms, caught up in ${result.caughtUpMs} ms; server CPU ${result.serverCpuMs} ms = ${result.serverCpuPerMissedEventUs} µs per missed event` +
      `${result.recovered === undefined ? "" : `; Socket.IO recovered ${result.recovered}, not ${result.notRecovered}`}${result.reconnectFailures ? `; ${result.reconnectFailures} reconnects FAILED: ${result.failureSamples.join(" | ")}` : ""}; others used ${result.foreignCores} cores`)
    return result
  } finally {
    await stopGroup(group)
  }
}

const resumePhase = async () => {
  const out = []
  for (const kind of RESUME_KINDS) out.push(await resumeRun(kind))
  return out
}

/**
 * Server RSS at 0, at MEMORY_STEP and at IDLE_CONNECTIONS idle connections (two client processes:
 * the first MEMORY_STEP connections, then the rest). (RSS(N) − RSS(0)) / N is the figure asked
 * for; the slope between MEMORY_STEP and N leaves out one-time costs (code compiled, modules
 * loaded on the first connection).
 */
const memoryPhase = async (kinds = ["khala", "uws-raw", "ws-loop", "socketio"]) => {
  const out = []
  const step = Math.min(MEMORY_STEP, IDLE_CONNECTIONS)
  for (const kind of kinds) {
    log(`memory: ${kind} with ${step} then ${IDLE_CONNECTIONS} idle connections`)
    const server = spawn("server.ts", `${kind} server`, ["--expose-gc"])
    const clients = []
    try {
      await server.next("spawned", 60_000)
      const ready = await server.request({ type: "init", kind, topology: "idle", topics: IDLE_CONNECTIONS }, "ready", 60_000)
      await new Promise((r) => setTimeout(r, 500))
      const points = [{ connections: 0, ...(await server.request({ type: "memory" }, "memory", 30_000)) }]
      let failure
      let connectMs = 0
      for (const [offset, n] of [[0, step], [step, IDLE_CONNECTIONS - step]]) {
        if (n <= 0) continue
        const client = spawn("client.ts", `${kind} idle client`)
        clients.push(client)
        await client.next("spawned", 60_000)
        try {
          const cready = await client.request({ type: "init", kind, url: ready.url, connections: n, offset, topology: "idle", concurrency: 200 }, "ready", 240_000)
          connectMs += cready.connectMs
        } catch (error) {
          failure = String(error.message ?? error).slice(0, 500)
        }
        await new Promise((r) => setTimeout(r, 1000))
        const m = await server.request({ type: "memory" }, "memory", 30_000)
        points.push(m)
        if (failure) break
      }
      const [p0, p1, p2] = points
      const last = points[points.length - 1]
      const kib = (bytes, conns) => r2(bytes / 1024 / Math.max(1, conns))
      const e = {
        kind,
        native: ready.native,
        requested: IDLE_CONNECTIONS,
        connections: last.connections,
        connectMs: Math.round(connectMs),
        failure,
        points: points.map((p) => ({ connections: p.connections, rss: p.rss, heapUsed: p.heapUsed, heapTotal: p.heapTotal, external: p.external, arrayBuffers: p.arrayBuffers })),
        rssPerConnectionKiB: kib(last.rss - p0.rss, last.connections),
        heapUsedPerConnectionKiB: kib(last.heapUsed - p0.heapUsed, last.connections),
        rssSlopeKiB: p2 ? kib(p2.rss - p1.rss, p2.connections - p1.connections) : undefined,
        heapUsedSlopeKiB: p2 ? kib(p2.heapUsed - p1.heapUsed, p2.connections - p1.connections) : undefined,
        gc: last.gc
      }
      log(`  ${e.connections} connections (${e.connectMs} ms): RSS ${(p0.rss / 2 ** 20).toFixed(1)} → ${(last.rss / 2 ** 20).toFixed(1)} MiB = ${e.rssPerConnectionKiB} KiB/connection ` +
        `(heap ${e.heapUsedPerConnectionKiB} KiB); slope ${p1?.connections}→${p2?.connections}: RSS ${e.rssSlopeKiB} KiB, heap ${e.heapUsedSlopeKiB} KiB${failure ? `; FAILED: ${failure}` : ""}`)
      out.push(e)
    } finally {
      for (const c of clients) await c.stop()
      await server.stop()
    }
  }
  return out
}

const profilePhase = async () => {
  const keep = option("keep-profiles", undefined)
  const dir = keep ?? mkdtempSync(join(os.tmpdir(), "khala-fanout-prof-"))
  try {
    log(`profile: khala rounds again with the V8 CPU profiler on in the server (not used for the tables; profiles in ${dir})`)
    const runs = []
    for (const topology of TOPOLOGIES) runs.push(...(await throughputTopology(topology, ["khala"], { profileDir: dir })))
    const profiles = []
    for (const e of runs) {
      for (const p of e.payloads) {
        const s = summarizeProfile(p.profile, { top: 25, filter: /packages\/khala-core|proto\/src|bench\/src|@noble|@bufbuild|effect\/dist\/esm\/(Runtime|ManagedRuntime)|garbage/ })
        profiles.push({ topology: e.topology, payloadBytes: p.payloadBytes, deliveriesPerSec: p.deliveriesPerSec, serverCpuPerDeliveryUs: p.serverCpuPerDeliveryUs, ...s })
        log(`  ${e.topology} ${p.payloadBytes} B: busy ${s.busyMs} ms (GC ${s.gcMs} ms); top self time:`)
        for (const t of s.self.slice(0, 10)) log(`    ${String(t.ms).padStart(6)} ms ${(t.shareOfBusy * 100).toFixed(1).padStart(5)}%  ${t.fn}`)
        log(`  inclusive:`)
        for (const t of s.inclusive.slice(0, 14)) log(`    ${String(t.ms).padStart(6)} ms ${(t.shareOfBusy * 100).toFixed(1).padStart(5)}%  ${t.fn}`)
      }
    }
    return { runs, profiles }
  } finally {
    if (keep === undefined) rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------

const main = async () => {
  const results = { suite: "fanout", startedAt: new Date().toISOString(), machine: machine(), options: { quick: QUICK, phases: PHASES, subscribers: SUBSCRIBERS, rounds: ROUNDS, roundSeconds: ROUND_SECONDS, sliceDeliveries: SLICE_DELIVERIES, clientProcesses: CLIENT_PROCESSES, latencyClientProcesses: LATENCY_CLIENTS, idleConnections: IDLE_CONNECTIONS, latency: LATENCY } }
  log(`machine: ${results.machine.cpus} × ${results.machine.cpuModel}, ${results.machine.memoryGiB} GiB, Node ${results.machine.node}, ulimit -n ${results.machine.ulimitNofile?.join("/")}`)
  if (results.machine.ulimitNofile && results.machine.ulimitNofile[0] < IDLE_CONNECTIONS + 1000) {
    log(`warning: ulimit -n ${results.machine.ulimitNofile[0]} is below ${IDLE_CONNECTIONS + 1000}: the memory phase may not reach ${IDLE_CONNECTIONS} connections`)
  }
  if (!flag("tsx")) {
    await buildBundle()
    results.options.runtime = "esbuild bundle (no keepNames), plain node"
  } else results.options.runtime = "tsx (esbuild transform with keepNames) on the TypeScript sources"
  results.waitForQuiet = await waitForQuiet()
  const measureStart = Date.now()
  const watchdog = setTimeout(() => {
    log(`global timeout (${GLOBAL_TIMEOUT_MS / 60000} min): killing the children and writing partial results`)
    results.incomplete = "global timeout"
    writeFileSync(resultsFile, JSON.stringify(results, null, 2) + "\n")
    killAll()
    process.exit(1)
  }, GLOBAL_TIMEOUT_MS)
  const phase = async (name, fn) => {
    if (!PHASES.includes(name)) return
    const t = Date.now()
    const loadBefore = os.loadavg()[0]
    const meter = machineMeter()
    results[name] = await fn()
    results.phaseLoad ??= {}
    results.phaseLoad[name] = { loadavg1Before: r2(loadBefore), loadavg1After: r2(os.loadavg()[0]), seconds: Math.round((Date.now() - t) / 1000), ...meter() }
    writeFileSync(resultsFile, JSON.stringify(results, null, 2) + "\n")
  }
  await phase("throughput", throughput)
  if (results.throughput) {
    results.summary = []
    for (const topology of TOPOLOGIES) {
      for (const payloadBytes of PAYLOADS) {
        const get = (kind) => results.throughput.find((e) => e.topology === topology && e.kind === kind)?.payloads.find((p) => p.payloadBytes === payloadBytes)
        const k = get("khala")
        const u = get("uws-raw")
        const w = get("ws-loop")
        const s = get("socketio")
        results.summary.push({
          topology,
          payloadBytes,
          khala: k?.deliveriesPerSec,
          uwsRaw: u?.deliveriesPerSec,
          wsLoop: w?.deliveriesPerSec,
          socketio: s?.deliveriesPerSec,
          khalaOverUwsRaw: k && u ? r2(k.deliveriesPerSec / u.deliveriesPerSec) : undefined,
          khalaOverWsLoop: k && w ? r2(k.deliveriesPerSec / w.deliveriesPerSec) : undefined,
          khalaOverSocketio: k && s ? r2(k.deliveriesPerSec / s.deliveriesPerSec) : undefined,
          serverCpuUsPerDelivery: { khala: k?.serverCpuPerDeliveryUs, uwsRaw: u?.serverCpuPerDeliveryUs, wsLoop: w?.serverCpuPerDeliveryUs, socketio: s?.serverCpuPerDeliveryUs },
          cpuKhalaOverUwsRaw: k && u ? r2(u.serverCpuPerDeliveryUs / k.serverCpuPerDeliveryUs) : undefined,
          cpuKhalaOverWsLoop: k && w ? r2(w.serverCpuPerDeliveryUs / k.serverCpuPerDeliveryUs) : undefined,
          cpuKhalaOverSocketio: k && s ? r2(s.serverCpuPerDeliveryUs / k.serverCpuPerDeliveryUs) : undefined,
          // 1000x1: the server CPU without the commits against the baselines' CPU, bounded from above
          // by the hub's own time (without uWS's sends) and from below by all but the commits.
          fanoutCpuKhalaOverUwsRaw: k?.serverFanoutCpuPerDeliveryUs && u ? r2(u.serverCpuPerDeliveryUs / k.serverFanoutCpuPerDeliveryUs) : undefined,
          noCommitCpuKhalaOverUwsRaw: k?.serverOtherCpuPerDeliveryUs !== undefined && u
            ? r2(u.serverCpuPerDeliveryUs / (k.serverFanoutCpuPerDeliveryUs + k.serverOtherCpuPerDeliveryUs))
            : undefined
        })
      }
    }
    console.table(results.summary.map(({ serverCpuUsPerDelivery: _cpu, ...s }) => s))
  }
  await phase("latency", latencyPhase)
  await phase("resume", resumePhase)
  await phase("memory", () => memoryPhase())
  // The same khala memory test from an esbuild bundle: tsx compiles with keepNames, which gives
  // every named closure its own property backing store (see FANOUT.md); a build does not.
  // (Without --tsx the memory phase already ran from the bundle.)
  if (bundleDir === undefined) await phase("memory-bundle", async () => {
    await buildBundle()
    try {
      return await memoryPhase(["khala"])
    } finally {
      rmSync(bundleDir, { recursive: true, force: true })
      bundleDir = undefined
    }
  })
  await phase("profile", profilePhase)
  clearTimeout(watchdog)
  results.measuredSeconds = Math.round((Date.now() - measureStart) / 1000)
  results.finishedAt = new Date().toISOString()
  writeFileSync(resultsFile, JSON.stringify(results, null, 2) + "\n")
  log(`done in ${results.measuredSeconds} s of measuring; wrote ${resultsFile}`)
}

main().catch((error) => {
  console.error(error)
  killAll()
  process.exit(1)
})
