// The server child of the fanout benchmark. One process runs one server kind, driven by the
// orchestrator (run.mjs) over IPC:
//
//   khala    TestServer (memory storage, Publisher with after-commit wake-ups, uWS transport);
//            an event is one `publish` (one journal commit of one document) to a topic.
//   uws-raw  a bare uWebSockets.js app; an event is one `app.publish(topic, bytes)` of a
//            pre-encoded Khala frame of the same size (the ceiling).
//   ws-loop  a `ws` WebSocketServer; an event is `socket.send(bytes)` for every socket on the
//            topic, in a loop.
//   socketio Socket.IO 4 (the peer a user would pick for resumable fanout) with connection-state
//            recovery on, websocket transport only, one room per topic; an event is
//            `io.to(room).emit("u", {topic, s, d, v, p})` with the same document as khala's, as
//            an application would send it (Socket.IO JSON-encodes it once per emit and, with
//            recovery on, keeps every packet in memory for two minutes).
//
// Topologies: "1x1000" (every connection on one topic), "1000x1" (connection i alone on topic i),
// "1000x1-tx" (the same connections; khala commits one event to every topic in one
// Publisher.transaction, so the fanout, not the commit, is what is measured; the baselines have no
// commit and do exactly what they do in "1000x1"), "idle" (connection i on topic i, nothing
// published; for the memory test).
// The publish loop is the same for every kind: slices of about `sliceDeliveries` deliveries, with
// `setImmediate` between slices so the sockets can drain.
import { createRequire } from "node:module"
import { randomBytes } from "node:crypto"
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector"
import { PerformanceObserver } from "node:perf_hooks"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { Publisher, type Storage, SyncWire } from "@openagents/khala-core"
import { FrameKind } from "@openagents/proto/sync/v1"
import { canonicalJson } from "@openagents/proto/canonical-json"
import { FRAME_KIND_UPDATE_BATCH, makePayload, now, userTopic } from "./common.js"

type Kind = "khala" | "uws-raw" | "ws-loop" | "socketio"
type Topology = "1x1000" | "1000x1" | "1000x1-tx" | "idle"

interface Init {
  readonly kind: Kind
  readonly topology: Topology
  readonly topics: number
}

const send = (msg: Record<string, unknown>) => process.send!(msg)
if (FrameKind.UPDATE_BATCH !== FRAME_KIND_UPDATE_BATCH) throw new Error("FrameKind.UPDATE_BATCH changed")

/** The topic names, the same strings for every kind: user i's notifications. */
const topicName = (topology: Topology, i: number) => userTopic(topology === "1x1000" ? "u0" : `u${i}`)
const topicIndexOfPath = (topology: Topology, url: string) => {
  if (topology === "1x1000") return 0
  const m = /\/(\d+)(?:\?|$)/.exec(url)
  return m ? Number(m[1]) : 0
}

/** A pre-encoded Khala live frame (one update) like the one Khala sends for `payload` on `topic`. */
const baselineFrame = (topic: string, payloadBytes: number, epoch: string, watermark = 1000n, stamp = ""): Uint8Array => {
  const payload = canonicalJson(makePayload(payloadBytes, stamp))
  const event: Storage.JournalEvent = {
    topic,
    watermark,
    docKey: "d",
    docVersion: 100_000n,
    payload,
    payloadHash: new Uint8Array(randomBytes(32)),
    payloadBytes: Buffer.byteLength(payload),
    insertedAt: new Date()
  }
  return SyncWire.updateBatch("binary", topic, [event], true, watermark, epoch) as Uint8Array
}

interface Driver {
  readonly url: string
  readonly native: boolean
  /** Publish one event to topic index `t` (returns a promise for khala). */
  readonly publishOne: (t: number, payloadBytes: number) => void | Promise<unknown>
  /**
   * khala: wall ms spent committing so far (the synchronous part of each `publishOne`, in which
   * the memory journal's whole commit runs; the fanout runs later, from the wake-up's microtask).
   */
  readonly commitMs?: () => number
  /** khala: ms the fanout hub has spent reading and publishing so far (its metrics). */
  readonly fanoutMs?: () => number
  /** "1000x1-tx": one event to every topic in one commit (khala only). */
  readonly publishRound?: (payloadBytes: number) => Promise<unknown>
  /** Latency runs: publish event `i` (1-based) to topic 0 carrying `stamp`; its watermark and commit time. */
  readonly publishStamped: (i: number, payloadBytes: number, stamp: string) => Promise<{ watermark: number; committedAt: number }>
  readonly connections: () => number
  readonly dispose: () => Promise<void>
}

const epoch = `ep_${randomBytes(16).toString("hex")}`

const startUwsRaw = async (init: Init): Promise<Driver> => {
  const require = createRequire(import.meta.url)
  const uws = require("@trufflesuite/uws-js-unofficial")
  let open = 0
  const sockets = new Set<any>()
  const app = uws.App().ws("/*", {
    compression: uws.DISABLED,
    maxPayloadLength: 64 * 1024,
    // publish() silently skips a socket whose buffer is over this (default 64 KiB): make it large
    maxBackpressure: 1024 * 1024 * 1024,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    upgrade: (res: any, req: any, ctx: any) => {
      const t = topicIndexOfPath(init.topology, req.getUrl())
      res.upgrade({ t }, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), ctx)
    },
    open: (ws: any) => {
      open++
      sockets.add(ws)
      ws.subscribe(`t${ws.getUserData().t}`)
    },
    close: (ws: any) => {
      open--
      sockets.delete(ws)
    }
  })
  const listen = await new Promise<any>((resolve, reject) => app.listen("127.0.0.1", 0, (s: any) => (s ? resolve(s) : reject(new Error("listen failed")))))
  const port = uws.us_socket_local_port(listen)
  const frames = new Map<number, Uint8Array>()
  let framesFor = -1
  return {
    url: `ws://127.0.0.1:${port}`,
    native: String(uws.App).includes("[native code]"),
    publishOne: (t, payloadBytes) => {
      if (framesFor !== payloadBytes) {
        frames.clear()
        framesFor = payloadBytes
      }
      let frame = frames.get(t)
      if (frame === undefined) frames.set(t, frame = baselineFrame(topicName(init.topology, t), payloadBytes, epoch))
      app.publish(`t${t}`, frame, true)
    },
    publishStamped: async (i, payloadBytes, stamp) => {
      const frame = baselineFrame(topicName(init.topology, 0), payloadBytes, epoch, BigInt(i), stamp)
      const committedAt = now()
      app.publish("t0", frame, true)
      return { watermark: i, committedAt }
    },
    connections: () => open,
    dispose: async () => {
      uws.us_listen_socket_close(listen)
      for (const ws of [...sockets]) ws.end(1001)
    }
  }
}

const startWsLoop = async (init: Init): Promise<Driver> => {
  const { WebSocketServer } = await import("ws")
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: 64 * 1024 })
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()))
  const byTopic = new Map<number, Set<import("ws").WebSocket>>()
  let open = 0
  wss.on("connection", (socket, req) => {
    const t = topicIndexOfPath(init.topology, req.url ?? "/")
    let set = byTopic.get(t)
    if (set === undefined) byTopic.set(t, set = new Set())
    set.add(socket)
    open++
    socket.on("close", () => {
      set!.delete(socket)
      open--
    })
    socket.on("error", () => {})
  })
  const frames = new Map<number, Buffer>()
  let framesFor = -1
  return {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    native: false,
    publishOne: (t, payloadBytes) => {
      if (framesFor !== payloadBytes) {
        frames.clear()
        framesFor = payloadBytes
      }
      let frame = frames.get(t)
      if (frame === undefined) frames.set(t, frame = Buffer.from(baselineFrame(topicName(init.topology, t), payloadBytes, epoch)))
      const set = byTopic.get(t)
      if (set === undefined) return
      for (const socket of set) socket.send(frame, { binary: true })
    },
    publishStamped: async (i, payloadBytes, stamp) => {
      const frame = Buffer.from(baselineFrame(topicName(init.topology, 0), payloadBytes, epoch, BigInt(i), stamp))
      const committedAt = now()
      for (const socket of byTopic.get(0) ?? []) socket.send(frame, { binary: true })
      return { watermark: i, committedAt }
    },
    connections: () => open,
    dispose: async () => {
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    }
  }
}

const startSocketIo = async (init: Init): Promise<Driver> => {
  // Loaded through require: it is external to the bundle (found through NODE_PATH), like uWS.
  const require = createRequire(import.meta.url)
  const { Server } = require("socket.io") as typeof import("socket.io")
  const { createServer } = await import("node:http")
  const http = createServer()
  const io = new Server(http, {
    serveClient: false,
    transports: ["websocket"],
    perMessageDeflate: false,
    maxHttpBufferSize: 64 * 1024,
    // What Socket.IO offers for resume: missed packets replayed from memory on reconnect.
    connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true }
  })
  let open = 0
  io.on("connection", (socket) => {
    open++
    const t = init.topology === "1x1000" ? 0 : Number(socket.handshake.query.t ?? 0)
    void socket.join(`t${t}`)
    socket.on("disconnect", () => {
      open--
    })
  })
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", () => resolve()))
  const port = (http.address() as { port: number }).port
  const payloads = new Map<number, unknown>()
  const seqs = new Float64Array(init.topics)
  const topicNames = Array.from({ length: init.topics }, (_, t) => topicName(init.topology, t))
  let version = 0
  return {
    url: `http://127.0.0.1:${port}`,
    native: false,
    publishOne: (t, payloadBytes) => {
      let payload = payloads.get(payloadBytes)
      if (payload === undefined) payloads.set(payloadBytes, payload = makePayload(payloadBytes))
      io.to(`t${t}`).emit("u", { topic: topicNames[t], s: ++seqs[t]!, d: "d", v: ++version, p: payload })
    },
    publishStamped: async (i, payloadBytes, stamp) => {
      const committedAt = now()
      io.to("t0").emit("u", { topic: topicNames[0], s: i, d: "lat", v: ++version, p: makePayload(payloadBytes, stamp) })
      return { watermark: i, committedAt }
    },
    connections: () => open,
    dispose: async () => {
      io.disconnectSockets(true)
      await new Promise<void>((resolve) => io.close(() => resolve()))
    }
  }
}

const startKhala = async (init: Init): Promise<Driver> => {
  const { TestServer } = await import("@openagents/khala-core/testing")
  const { Metrics, UwsTransport } = await import("@openagents/khala-core")
  const counted = (metric: typeof Metrics.fanoutReadSeconds) => Effect.runSync(Metric.value(metric)).count
  const loaded = UwsTransport.load()
  if (!loaded.native) throw new Error(`uWS is not native on ${process.version} (${loaded.module}): refusing to benchmark the pure-JS fallback`)
  const ts = await TestServer.start({ transport: UwsTransport.transport })
  let version = 0
  let commitMs = 0
  const payloads = new Map<number, unknown>()
  const topicNames = Array.from({ length: init.topics }, (_, t) => topicName(init.topology, t))
  return {
    url: ts.url,
    native: ts.server.native && ts.server.adapter === "uws",
    publishOne: (t, payloadBytes) => {
      let payload = payloads.get(payloadBytes)
      if (payload === undefined) payloads.set(payloadBytes, payload = makePayload(payloadBytes))
      const documents = [{ docKey: "d", docVersion: ++version, payload }]
      const start = performance.now()
      const committed = ts.publish(topicNames[t]!, documents)
      commitMs += performance.now() - start
      return committed
    },
    commitMs: () => commitMs,
    // With the memory journal a hub pass is synchronous: its read and publish times are event-loop time.
    fanoutMs: () => (counted(Metrics.fanoutReadSeconds) + counted(Metrics.fanoutPublishSeconds)) * 1000,
    publishRound: (payloadBytes) => {
      let payload = payloads.get(payloadBytes)
      if (payload === undefined) payloads.set(payloadBytes, payload = makePayload(payloadBytes))
      const docs = [{ docKey: "d", docVersion: ++version, payload }]
      return ts.run(Effect.flatMap(Publisher.Publisher, (p) => p.transaction(Effect.forEach(topicNames, (topic) => p.publish(topic, docs), { discard: true }))))
    },
    publishStamped: async (_i, payloadBytes, stamp) => {
      // The commit time is the journal's insertedAt (ms resolution, taken inside the commit).
      const result: any = await ts.publish(topicName(init.topology, 0), [{ docKey: "lat", docVersion: ++version, payload: makePayload(payloadBytes, stamp) }])
      const e = result.events[0]
      return { watermark: Number(e.watermark), committedAt: e.insertedAt.getTime() }
    },
    connections: () => ts.server.connections(),
    dispose: () => ts.dispose()
  }
}

let driver: Driver | undefined
let init: Init | undefined

const cpuNow = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000 // ms
}
/** CPU ms spent in the kernel (for the server: mostly socket sends). */
const sysNow = () => ({ systemMs: process.cpuUsage().system / 1000 })

// Cumulative GC pause time by kind (minor = scavenges, major = mark-compact, incremental marking).
const gcMs = { minor: 0, major: 0, incremental: 0, other: 0, count: 0 }
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as any).detail?.kind ?? (e as any).kind
    const key = kind === 1 ? "minor" : kind === 2 ? "major" : kind === 4 ? "incremental" : "other"
    gcMs[key] += e.duration
    gcMs.count++
  }
}).observe({ entryTypes: ["gc"] })

// On-demand CPU profile of this (main) thread, around the rounds only.
let inspector: Session | undefined
const post = (method: string, params?: Record<string, unknown>) =>
  new Promise<any>((resolve, reject) => inspector!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))))

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const tick = () => new Promise((r) => setImmediate(r))

/** Publish `events` events to each topic, in slices; resolves when the last publish returned. */
const runThroughput = async (events: number, payloadBytes: number, sliceDeliveries: number) => {
  const d = driver!
  const topics = init!.topics
  const subsPerTopic = init!.topology === "1x1000" ? d.connections() : 1
  const slice = Math.max(1, Math.floor(sliceDeliveries / Math.max(1, subsPerTopic)))
  const total = events * topics
  // The split is recorded for 1000x1 only: a 1000x1-tx round is one Effect that yields to the
  // event loop midway (its synchronous part is not the whole commit), and in 1x1000 the commits are
  // a few hundred per round, so a GC pause or two landing inside one swamps their wall time.
  const split = init!.topology === "1000x1"
  const commit0 = split ? d.commitMs?.() : undefined
  const fanout0 = split ? d.fanoutMs?.() : undefined
  const gc0 = { ...gcMs }
  const sys0 = sysNow()
  const cpu0 = cpuNow()
  const t0 = now()
  let k = 0
  while (k < total) {
    const end = Math.min(total, k + slice)
    let pending: Array<Promise<unknown>> | undefined
    if (init!.topology === "1000x1-tx" && d.publishRound !== undefined) {
      // Whole rounds: one commit per round, every topic in it.
      for (; k < end; k += topics) (pending ??= []).push(d.publishRound(payloadBytes))
      k = Math.min(k, total)
    }
    for (; k < end; k++) {
      const r = d.publishOne(k % topics, payloadBytes)
      if (r !== undefined) (pending ??= []).push(r)
    }
    if (pending !== undefined) await Promise.all(pending)
    await tick()
  }
  const t1 = now()
  const commitMs = commit0 === undefined ? undefined : d.commitMs!() - commit0
  // The fanout of the last slice may still be running: wait for the hub to go quiet (the clients'
  // "done" comes later anyway) before reading its counters.
  let fanoutMs: number | undefined
  if (fanout0 !== undefined) {
    let last = -1
    for (let i = 0; i < 200 && d.fanoutMs!() !== last; i++) {
      last = d.fanoutMs!()
      await sleep(5)
    }
    fanoutMs = d.fanoutMs!() - fanout0
  }
  return { t0, t1, publishCpuMs: cpuNow() - cpu0, cpu0, gc0, sys0, total, slice, commitMs, fanoutMs }
}

/** `rate` events/s to topic 0 for `durationMs`; one record per published event. */
const runLatency = async (rate: number, durationMs: number, payloadBytes: number) => {
  const n = Math.round((rate * durationMs) / 1000)
  const interval = 1000 / rate
  const records = { watermark: new Float64Array(n), start: new Float64Array(n), resolved: new Float64Array(n), committedAt: new Float64Array(n) }
  const cpu0 = cpuNow()
  const begin = now() + 20
  for (let i = 0; i < n; i++) {
    const wait = begin + i * interval - now()
    if (wait > 0) await sleep(wait)
    const start = now()
    const r = await driver!.publishStamped(i + 1, payloadBytes, start.toFixed(3))
    records.watermark[i] = r.watermark
    records.start[i] = start
    records.resolved[i] = now()
    records.committedAt[i] = r.committedAt
  }
  return { n, records, cpuMs: cpuNow() - cpu0, elapsedMs: now() - begin }
}

/**
 * Memory after full GCs, once RSS has settled: V8 and malloc return freed pages to the OS lazily
 * (and under tsx the loader's worker thread has a heap of its own), so RSS is sampled after a GC
 * every 300 ms until four samples in a row are within 256 KiB (at most ~9 s); their median.
 */
const memory = async () => {
  const gc = (globalThis as any).gc as (() => void) | undefined
  const rss: Array<number> = []
  for (let i = 0; i < 30; i++) {
    gc?.()
    await sleep(300)
    rss.push(process.memoryUsage.rss())
    const last = rss.slice(-4)
    if (last.length === 4 && Math.max(...last) - Math.min(...last) < 256 * 1024) break
  }
  const last = rss.slice(-4).sort((a, b) => a - b)
  return { ...process.memoryUsage(), rss: (last[1]! + last[last.length - 2]!) / 2, rssSamples: rss, gc: gc !== undefined }
}

process.on("message", async (msg: any) => {
  try {
    switch (msg.type) {
      case "init": {
        init = { kind: msg.kind, topology: msg.topology, topics: msg.topology === "1x1000" ? 1 : msg.topics }
        driver = init.kind === "khala"
          ? await startKhala(init)
          : init.kind === "uws-raw"
          ? await startUwsRaw(init)
          : init.kind === "socketio"
          ? await startSocketIo(init)
          : await startWsLoop(init)
        send({ type: "ready", url: driver.url, native: driver.native, pid: process.pid, node: process.version })
        return
      }
      case "connections":
        send({ type: "connections", count: driver!.connections() })
        return
      case "run": {
        const r = await runThroughput(msg.events, msg.payloadBytes, msg.sliceDeliveries)
        send({ type: "published", ...r })
        return
      }
      case "cpu":
        send({ type: "cpu", cpuMs: cpuNow(), at: now(), gcMs: { ...gcMs }, sys: sysNow(), heapUsed: process.memoryUsage().heapUsed })
        return
      case "profile-start":
        inspector = new Session()
        inspector.connect()
        await post("Profiler.enable")
        await post("Profiler.setSamplingInterval", { interval: 200 })
        await post("Profiler.start")
        send({ type: "profile-started" })
        return
      case "profile-stop": {
        const { profile } = await post("Profiler.stop")
        writeFileSync(msg.file, JSON.stringify(profile))
        inspector!.disconnect()
        inspector = undefined
        send({ type: "profile-stopped", file: msg.file })
        return
      }
      case "latency": {
        const r = await runLatency(msg.rate, msg.durationMs, msg.payloadBytes)
        send({ type: "latency", ...r })
        return
      }
      case "memory":
        send({ type: "memory", ...(await memory()), connections: driver?.connections() ?? 0 })
        return
      case "heap-snapshot": {
        // Diagnostics only (not used by run.mjs): write a V8 heap snapshot to msg.file.
        await memory()
        const v8 = await import("node:v8")
        send({ type: "heap-snapshot", file: v8.writeHeapSnapshot(msg.file) })
        return
      }
      case "exit":
        await Promise.race([driver?.dispose(), sleep(2000)])
        process.exit(0)
    }
  } catch (error) {
    send({ type: "error", message: error instanceof Error ? error.stack ?? error.message : String(error) })
  }
})
process.on("disconnect", () => process.exit(0))
send({ type: "spawned", pid: process.pid })
