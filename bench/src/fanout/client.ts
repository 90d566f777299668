// The client child of the fanout benchmark: N plain `ws` connections in one process, the same
// code for every server kind. For khala each connection also does the protocol handshake (hello
// with a sync token, subscribe, wait for the replay-complete batch that marks it live), decoded
// with SyncWire; after that, and for the baselines from the start, every message goes through
// the same scanner (common.ts), which counts the updates in an update batch. Socket.IO's clients
// are socket.io-client sockets (websocket transport, a connection each), counting "u" events:
// that client decodes every packet (Engine.IO, then JSON), so it does more work per message than
// the scanner, and the server CPU per delivery is the figure to compare.
import { createRequire } from "node:module"
import WebSocket from "ws"
import { FrameKind } from "@openagents/proto/sync/v1"
import { SyncWire } from "@openagents/khala-core"
import { FRAME_KIND_UPDATE_BATCH, now, scan, scanned, userTopic } from "./common.js"

type Kind = "khala" | "uws-raw" | "ws-loop" | "socketio"
type Topology = "1x1000" | "1000x1" | "1000x1-tx" | "idle"

interface Conn {
  /** A ws WebSocket, or for socketio a socket.io-client Socket (readyState mapped by isOpen). */
  ws: { readonly readyState: number; terminate: () => void; send: (data: Uint8Array | string) => void }
  live: boolean
  updates: number
  frames: number
  bytes: number
  lastSeq: number
  /** The resume phase: drop the connection as a network failure would, then reconnect and resume. */
  drop?: () => void
  resume?: () => Promise<void>
  /** socketio: whether the last reconnect recovered the session (Socket.IO's `socket.recovered`). */
  recovered?: boolean
}

const send = (msg: Record<string, unknown>) => process.send!(msg)
if (FrameKind.UPDATE_BATCH !== FRAME_KIND_UPDATE_BATCH) throw new Error("FrameKind.UPDATE_BATCH changed")

const conns: Array<Conn> = []
let kind: Kind = "uws-raw"

// Round state
let expected = Number.POSITIVE_INFINITY
let total = 0
let totalFrames = 0
let totalBytes = 0
let errorFrames = 0
let errorSamples: Array<string> = []
let armedAt = 0
let cpuArmed = 0
let done = false
let latency: { seq: Array<number>; count: Array<number>; at: Array<number> } | undefined

const cpuNow = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

const finish = (timedOut: boolean) => {
  if (done) return
  done = true
  const tEnd = now()
  if (timeout) clearTimeout(timeout)
  let minUpdates = Number.POSITIVE_INFINITY
  let maxUpdates = 0
  let minLastSeq = Number.POSITIVE_INFINITY
  let maxLastSeq = 0
  for (const c of conns) {
    minUpdates = Math.min(minUpdates, c.updates)
    maxUpdates = Math.max(maxUpdates, c.updates)
    minLastSeq = Math.min(minLastSeq, c.lastSeq)
    maxLastSeq = Math.max(maxLastSeq, c.lastSeq)
  }
  send({
    type: "done",
    timedOut,
    tEnd,
    armedAt,
    updates: total,
    frames: totalFrames,
    bytes: totalBytes,
    errorFrames,
    errorSamples,
    minUpdates,
    maxUpdates,
    minLastSeq,
    maxLastSeq,
    cpuMs: cpuNow() - cpuArmed,
    open: conns.filter((c) => c.ws.readyState === WebSocket.OPEN).length
  })
}

const onLive = (c: Conn, data: Buffer) => {
  scan(data)
  if (scanned.kind === FRAME_KIND_UPDATE_BATCH) {
    if (scanned.updates === 0) return
    c.updates += scanned.updates
    c.frames++
    c.bytes += data.length
    if (scanned.seq > c.lastSeq) c.lastSeq = scanned.seq
    total += scanned.updates
    totalFrames++
    totalBytes += data.length
    if (latency !== undefined) {
      latency.seq.push(scanned.seq)
      latency.count.push(scanned.updates)
      latency.at.push(now())
    }
    if (total >= expected && !done) finish(false)
  } else if (scanned.kind === FrameKind.ERROR) {
    errorFrames++
    if (errorSamples.length < 5) {
      try {
        errorSamples.push(JSON.stringify(SyncWire.decodeServerFrame(new Uint8Array(data)).message, (_k, v) => (typeof v === "bigint" ? v.toString() : v)).slice(0, 300))
      } catch {
        errorSamples.push("undecodable error frame")
      }
    }
  }
}

/** One Socket.IO "u" event: the same bookkeeping as an update batch of one update. */
const onSocketIoUpdate = (c: Conn, msg: { s: number }) => {
  c.updates++
  c.frames++
  if (msg.s > c.lastSeq) c.lastSeq = msg.s
  total++
  totalFrames++
  if (latency !== undefined) {
    latency.seq.push(msg.s)
    latency.count.push(1)
    latency.at.push(now())
  }
  if (total >= expected && !done) finish(false)
}

const connectSocketIo = async (url: string, index: number): Promise<Conn> => {
  // Loaded through require: external to the bundle (found through NODE_PATH).
  const { io } = createRequire(import.meta.url)("socket.io-client") as typeof import("socket.io-client")
  const socket = io(url, { transports: ["websocket"], query: { t: String(index) }, reconnection: false, forceNew: true })
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve())
    socket.once("connect_error", reject)
  })
  const c: Conn = {
    ws: {
      get readyState() {
        return socket.connected ? WebSocket.OPEN : WebSocket.CLOSED
      },
      terminate: () => socket.disconnect(),
      send: () => {}
    },
    live: true,
    updates: 0,
    frames: 0,
    bytes: 0,
    lastSeq: 0
  }
  socket.on("u", (msg: { s: number }) => onSocketIoUpdate(c, msg))
  // A network failure, not socket.disconnect() (after which Socket.IO does not recover): close the
  // transport. connect() then reconnects, sending the session id and the last offset it received.
  c.drop = () => socket.io.engine?.close()
  c.resume = () =>
    new Promise<void>((resolve, reject) => {
      socket.once("connect", () => {
        c.recovered = socket.recovered
        resolve()
      })
      socket.once("connect_error", reject)
      socket.connect()
    })
  return c
}

// TestServer for `token`.
const TestServerP = import("@openagents/khala-core/testing").then((m) => m.TestServer)

/** Open one connection; for khala, also hello + subscribe + wait until live. */
const connect = async (url: string, index: number, topology: Topology): Promise<Conn> => {
  if (kind === "socketio") return connectSocketIo(url, index)
  const khala = kind === "khala"
  const target = khala ? url : `${url}/${index}`
  const ws = new WebSocket(target, khala ? [SyncWire.SUBPROTOCOL_BINARY] : [], { perMessageDeflate: false })
  ws.binaryType = "nodebuffer"
  const c: Conn = { ws, live: !khala, updates: 0, frames: 0, bytes: 0, lastSeq: 0 }
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve())
    ws.once("error", reject)
  })
  ws.on("error", () => {})
  if (!khala) {
    ws.on("message", (data: Buffer) => onLive(c, data))
    return c
  }
  const user = topology === "1x1000" ? "u0" : `u${index}`
  const topic = userTopic(user)
  const TestServer = await TestServerP
  const token = await TestServer.token(user, {}, 3600)
  let epoch = ""
  c.drop = () => c.ws.terminate()
  // Reconnect and resume after the last watermark received: the server replays what was missed
  // (in batches), then the connection is live. Every update batch after `subscribed` is counted.
  c.resume = () =>
    new Promise<void>((resolve, reject) => {
      const next = new WebSocket(url, [SyncWire.SUBPROTOCOL_BINARY], { perMessageDeflate: false })
      next.binaryType = "nodebuffer"
      c.ws = next
      c.live = false
      next.on("error", reject)
      next.on("open", () => next.send(helloFrame(token)))
      next.on("message", (data: Buffer) => {
        if (c.live) return onLive(c, data)
        const frame = SyncWire.decodeServerFrame(new Uint8Array(data))
        if (frame.kind === FrameKind.WELCOME) {
          next.send(SyncWire.encodeClientFrame("binary", "subscribe", {
            topics: [topic],
            resumeAfter: [{ topic, watermark: BigInt(c.lastSeq), epoch }],
            requestId: "resume"
          }))
        } else if (frame.kind === FrameKind.SUBSCRIBED) {
          c.live = true
          resolve()
        } else if (frame.kind === FrameKind.ERROR) {
          reject(new Error(`connection ${index}: error on resume: ${JSON.stringify(frame.message, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}`))
        }
      })
    })
  await new Promise<void>((resolve, reject) => {
    let step: "welcome" | "subscribed" | "live" = "welcome"
    const timer = setTimeout(() => reject(new Error(`connection ${index}: handshake stuck at ${step}`)), 30_000)
    ws.on("message", (data: Buffer) => {
      if (c.live) return onLive(c, data)
      const frame = SyncWire.decodeServerFrame(new Uint8Array(data))
      if (frame.kind === FrameKind.ERROR) {
        clearTimeout(timer)
        reject(new Error(`connection ${index}: error during handshake: ${JSON.stringify(frame.message, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}`))
        return
      }
      if (step === "welcome" && frame.kind === FrameKind.WELCOME) {
        step = "subscribed"
        ws.send(SyncWire.encodeClientFrame("binary", "subscribe", { topics: [topic], requestId: "r1" }))
      } else if (step === "subscribed" && frame.kind === FrameKind.SUBSCRIBED) {
        epoch = (frame.message as any).currentWatermarks?.[0]?.epoch ?? ""
        step = "live"
      } else if (step === "live" && frame.kind === FrameKind.UPDATE_BATCH && (frame.message as any).replayComplete) {
        c.live = true
        c.lastSeq = Number(frame.seq)
        clearTimeout(timer)
        resolve()
      }
    })
    ws.send(helloFrame(token))
  })
  return c
}

const helloFrame = (token: string) =>
  SyncWire.encodeClientFrame("binary", "hello", {
    token,
    protocolVersion: SyncWire.PROTOCOL_VERSION,
    clientBuildId: "20261124T000000Z",
    minSchemaVersion: 1,
    maxSchemaVersion: 1
  })

const connectAll = async (url: string, n: number, offset: number, topology: Topology, concurrency: number) => {
  const t0 = now()
  let next = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      conns[i] = await connect(url, offset + i, topology)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
  return now() - t0
}

// Khala closes a connection that sends nothing for idleTimeoutMs (60 s): heartbeat like a real client.
const heartbeat = SyncWire.encodeClientFrame("binary", "heartbeat", {})
setInterval(() => {
  if (kind !== "khala") return
  for (const c of conns) if (c !== undefined && c.live && c.ws.readyState === WebSocket.OPEN) c.ws.send(heartbeat)
}, 20_000).unref()

let timeout: ReturnType<typeof setTimeout> | undefined
process.on("message", async (msg: any) => {
  try {
    switch (msg.type) {
      case "init": {
        kind = msg.kind
        const ms = await connectAll(msg.url, msg.connections, msg.offset ?? 0, msg.topology, msg.concurrency ?? 100)
        send({ type: "ready", connectMs: ms, connections: conns.length })
        return
      }
      case "arm": {
        // Expect `updates` updates in all (events × subscribers); reset the counters.
        expected = msg.updates
        total = 0
        totalFrames = 0
        totalBytes = 0
        errorFrames = 0
        errorSamples = []
        done = false
        for (const c of conns) {
          c.updates = 0
          c.frames = 0
          c.bytes = 0
        }
        latency = msg.latency ? { seq: [], count: [], at: [] } : undefined
        armedAt = now()
        cpuArmed = cpuNow()
        if (timeout) clearTimeout(timeout)
        timeout = setTimeout(() => finish(true), msg.timeoutMs ?? 60_000)
        send({ type: "armed" })
        return
      }
      case "drop": {
        for (const c of conns) c.drop?.()
        send({ type: "dropped" })
        return
      }
      case "resume": {
        // Reconnect every connection (at most msg.concurrency at a time) and resume; "done" comes
        // when every missed update has arrived (armed before). Reports when the reconnects began.
        const startedAt = now()
        let next = 0
        const failures: Array<string> = []
        const worker = async () => {
          while (next < conns.length) {
            const c = conns[next++]!
            await c.resume!().catch((e: unknown) => void failures.push(String(e).slice(0, 200)))
          }
        }
        await Promise.all(Array.from({ length: Math.min(msg.concurrency ?? 100, conns.length) }, worker))
        send({
          type: "resumed",
          startedAt,
          reconnectedAt: now(),
          failures: failures.length,
          failureSamples: failures.slice(0, 3),
          recovered: conns.filter((c) => c.recovered === true).length,
          notRecovered: conns.filter((c) => c.recovered === false).length
        })
        return
      }
      case "latency-data": {
        const l = latency ?? { seq: [], count: [], at: [] }
        send({ type: "latency-data", seq: Float64Array.from(l.seq), count: Float64Array.from(l.count), at: Float64Array.from(l.at) })
        latency = undefined
        return
      }
      case "memory":
        send({ type: "memory", ...process.memoryUsage() })
        return
      case "exit":
        for (const c of conns) c.ws.terminate()
        setTimeout(() => process.exit(0), 100)
        return
    }
  } catch (error) {
    send({ type: "error", message: error instanceof Error ? error.stack ?? error.message : String(error) })
  }
})
process.on("disconnect", () => process.exit(0))
send({ type: "spawned", pid: process.pid })
