// A protocol-level Khala client for tests, benchmarks and tools (Node, `ws`). It records every
// server frame, can wait for one, and applies update batches the way a real client must: per
// topic, updates at or below the last applied watermark are discarded, so the applied stream
// stays gap-free and duplicate-free across reconnects. The product client is
// @openagents/khala-client; this one deliberately has no reconnect logic of its own.
import { FrameKind } from "@openagents/proto/sync/v1"
import WebSocket from "ws"
import * as SyncWire from "./SyncWire.js"

export interface AppliedUpdate {
  readonly topic: string
  readonly watermark: bigint
  readonly docKey: string
  readonly docVersion: bigint
  readonly payload: string
}

export class TestClient {
  readonly frames: Array<SyncWire.ServerFrame> = []
  readonly closed: Promise<{ code: number; reason: string }>
  /** Per topic: the applied stream (after dedupe) and the last applied watermark. */
  readonly applied = new Map<string, Array<AppliedUpdate>>()
  readonly lastApplied = new Map<string, bigint>()
  duplicates = 0
  gaps = 0
  private waiters: Array<{ match: (f: SyncWire.ServerFrame) => boolean; resolve: (f: SyncWire.ServerFrame) => void }> = []

  private constructor(readonly socket: WebSocket, readonly format: SyncWire.Format) {
    this.closed = new Promise((resolve) => socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() })))
    socket.on("message", (data: Buffer, isBinary: boolean) => {
      const frame = SyncWire.decodeServerFrame(isBinary ? new Uint8Array(data) : data.toString())
      this.frames.push(frame)
      if (frame.kind === FrameKind.UPDATE_BATCH) this.apply(frame)
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(frame)) return true
        w.resolve(frame)
        return false
      })
    })
    socket.on("error", () => {})
  }

  static connect(url: string, options: { format?: SyncWire.Format; protocols?: Array<string> } = {}): Promise<TestClient> {
    const format = options.format ?? "binary"
    const protocols = options.protocols ?? [format === "binary" ? SyncWire.SUBPROTOCOL_BINARY : SyncWire.SUBPROTOCOL_JSON]
    const socket = new WebSocket(url, protocols)
    return new Promise((resolve, reject) => {
      const client = new TestClient(socket, format)
      socket.once("open", () => resolve(client))
      socket.once("error", reject)
      socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    })
  }

  /** Restore what was applied before a reconnect (the persisted state of a real client). */
  resumeFrom(other: TestClient) {
    for (const [topic, list] of other.applied) this.applied.set(topic, [...list])
    for (const [topic, w] of other.lastApplied) this.lastApplied.set(topic, w)
  }

  private apply(frame: SyncWire.ServerFrame) {
    for (const u of frame.message.updates as Array<any>) {
      const last = this.lastApplied.get(u.topic) ?? 0n
      if (u.watermark <= last) {
        this.duplicates++
        continue
      }
      if (u.watermark !== last + 1n && this.lastApplied.has(u.topic)) this.gaps++
      this.lastApplied.set(u.topic, u.watermark)
      let list = this.applied.get(u.topic)
      if (list === undefined) this.applied.set(u.topic, list = [])
      list.push({ topic: u.topic, watermark: u.watermark, docKey: u.docKey, docVersion: u.docVersion, payload: new TextDecoder().decode(u.payload) })
    }
  }

  send(kind: Parameters<typeof SyncWire.encodeClientFrame>[1], init: Record<string, unknown>) {
    this.socket.send(SyncWire.encodeClientFrame(this.format, kind, init))
  }

  sendRaw(data: Uint8Array | string) {
    this.socket.send(data)
  }

  hello(token: string, extra: Record<string, unknown> = {}) {
    this.send("hello", { token, protocolVersion: SyncWire.PROTOCOL_VERSION, clientBuildId: "20261124T000000Z", minSchemaVersion: 1, maxSchemaVersion: 1, ...extra })
    return this.next((f) => f.kind === FrameKind.WELCOME || f.kind === FrameKind.ERROR)
  }

  subscribe(topics: Array<string>, requestId = "r1", extra: Record<string, unknown> = {}) {
    const resumeAfter = topics.filter((t) => this.lastApplied.has(t)).map((t) => ({ topic: t, watermark: this.lastApplied.get(t)! }))
    this.send("subscribe", { topics, resumeAfter, requestId, ...extra })
    return this.next((f) => (f.kind === FrameKind.SUBSCRIBED || f.kind === FrameKind.ERROR) && f.message.requestId === requestId)
  }

  next(match: (f: SyncWire.ServerFrame) => boolean, timeoutMs = 5000): Promise<SyncWire.ServerFrame> {
    const found = this.frames.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got kinds ${this.frames.map((f) => FrameKind[f.kind]).join(",")}`)), timeoutMs)
      this.waiters.push({ match, resolve: (f) => { clearTimeout(timer); resolve(f) } })
    })
  }

  /** Wait until `topic` has applied through `watermark`. */
  async until(topic: string, watermark: bigint, timeoutMs = 10_000) {
    const start = Date.now()
    while ((this.lastApplied.get(topic) ?? 0n) < watermark) {
      if (Date.now() - start > timeoutMs) throw new Error(`${topic} applied ${this.lastApplied.get(topic) ?? 0n}, wanted ${watermark}`)
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  errors() {
    return this.frames.filter((f) => f.kind === FrameKind.ERROR).map((f) => f.message)
  }

  close(code = 1000) {
    this.socket.close(code)
    return this.closed
  }

  terminate() {
    this.socket.terminate()
    return this.closed
  }
}
