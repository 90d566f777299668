// Client apply throughput: update batches of 200 (≈100-byte JSON payloads), pre-encoded, fed to a
// real KhalaClient through an in-process socket, into each store, until the last watermark is
// applied (decode → apply rules → persist → in-memory documents). Baseline in the same run: the
// least any client must do with the same bytes — decode the frames and JSON.parse each payload
// into a Map — with no persistence. Reported as updates/s and as a ratio to the baseline.
import { createClient, memoryStore, type SyncStore, type WebSocketLike } from "@openagents/khala-client"
import { fileStore, removeStore } from "@openagents/khala-client/node"
import * as Lite from "@openagents/proto/sync/lite"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const TOPIC = "runtime.codex_worker_events:worker:bench"
const BATCH = 200
const enc = new TextEncoder()

const frames = (total: number) => {
  const out: Array<Uint8Array> = []
  const frame = (kind: number, desc: any, message: any, seq = 0n) => Lite.encode(Lite.KhalaFrame, { schemaVersion: 1, topic: TOPIC, seq, kind, payload: Lite.encode(desc, message) })
  out.push(frame(Lite.Kind.WELCOME, Lite.Welcome, { journalEpoch: "ep_bench", heartbeatIntervalMs: 15000, tokenExpiresAtMs: BigInt(Date.now() + 3_600_000) }))
  out.push(frame(Lite.Kind.SUBSCRIBED, Lite.Subscribed, { requestId: "r1", topics: [TOPIC] }))
  for (let w = 1; w <= total; w += BATCH) {
    const updates = Array.from({ length: Math.min(BATCH, total - w + 1) }, (_, i) => ({
      topic: TOPIC, docKey: `e:${w + i}`, docVersion: BigInt(w + i), watermark: BigInt(w + i),
      payload: enc.encode(JSON.stringify({ seq: w + i, type: "codex.delta", text: "the quick brown fox jumps over the lazy dog" })), payloadHash: new Uint8Array(32)
    }))
    out.push(frame(Lite.Kind.UPDATE_BATCH, Lite.UpdateBatch, { updates, replayComplete: true }, BigInt(w + updates.length - 1)))
  }
  return out
}

/** A socket that plays back pre-encoded frames once the client subscribes. */
const playback = (data: Array<Uint8Array>) =>
  class Playback implements WebSocketLike {
    binaryType = "arraybuffer"
    readyState = 1
    onopen: WebSocketLike["onopen"] = null
    onmessage: WebSocketLike["onmessage"] = null
    onclose: WebSocketLike["onclose"] = null
    onerror: WebSocketLike["onerror"] = null
    private sent = 0
    constructor() {
      setImmediate(() => this.onopen?.({}))
    }
    send() {
      // hello → welcome; subscribe → subscribed and every batch
      if (this.sent++ === 0) this.onmessage?.({ data: data[0]!.slice().buffer })
      else if (this.sent === 2) for (const f of data.slice(1)) this.onmessage?.({ data: f.slice().buffer })
    }
    close() {}
  }

const runClient = async (total: number, store: SyncStore) => {
  const data = frames(total)
  const client = createClient({ url: "ws://bench/sync/v1/ws", tokenProvider: () => "t", WebSocket: playback(data) as never, store })
  const start = performance.now()
  client.subscribe(TOPIC)
  await new Promise<void>((resolve) => {
    const check = () => (client.watermark(TOPIC) === BigInt(total) ? resolve() : setImmediate(check))
    check()
  })
  const ms = performance.now() - start
  await client.close()
  return total / (ms / 1000)
}

const runBaseline = (total: number) => {
  const data = frames(total).slice(2)
  const start = performance.now()
  const docs = new Map<string, unknown>()
  const dec = new TextDecoder()
  for (const f of data) {
    const env = Lite.decode<any>(Lite.KhalaFrame, f)
    for (const u of Lite.decode<any>(Lite.UpdateBatch, env.payload).updates) docs.set(u.docKey, JSON.parse(dec.decode(u.payload)))
  }
  return total / ((performance.now() - start) / 1000)
}

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const rounds = async (n: number, f: () => Promise<number> | number) => {
  await f() // warm-up
  const out: Array<number> = []
  for (let i = 0; i < n; i++) out.push(await f())
  return median(out)
}

const main = async () => {
  const dirs: Array<string> = []
  const freshFile = (fsync: boolean) => {
    const d = mkdtempSync(join(tmpdir(), "khala-apply-"))
    dirs.push(d)
    return fileStore({ directory: d, fsync, compactAfter: 1_000_000 })
  }
  const baseline = await rounds(5, () => runBaseline(100_000))
  const rows = [
    { name: "baseline: decode + JSON.parse into a Map (no client, no store)", perSecond: baseline, updates: 100_000 },
    { name: "client → memoryStore", perSecond: await rounds(5, () => runClient(100_000, memoryStore())), updates: 100_000 },
    { name: "client → fileStore (no fsync)", perSecond: await rounds(3, () => runClient(50_000, freshFile(false))), updates: 50_000 },
    { name: "client → fileStore (fsync per apply)", perSecond: await rounds(3, () => runClient(20_000, freshFile(true))), updates: 20_000 }
  ]
  console.log("case".padEnd(66), "updates/s".padStart(12), "× baseline".padStart(11))
  for (const r of rows) console.log(r.name.padEnd(66), Math.round(r.perSecond).toLocaleString("en").padStart(12), (r.perSecond / baseline).toFixed(2).padStart(11))
  mkdirSync(new URL("../results/", import.meta.url), { recursive: true })
  writeFileSync(new URL("../results/client-apply.json", import.meta.url), JSON.stringify({ batch: BATCH, rows, measuredAt: new Date().toISOString(), node: process.version }, null, 2))
  dirs.forEach(removeStore)
}
main()
