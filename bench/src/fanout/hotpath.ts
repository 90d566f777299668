// In-process microbenchmark of the Khala live path, without sockets, to see what one event costs
// the server: `node --conditions=@openagents/source --import tsx bench/src/fanout/hotpath.ts`.
//
//   encode     SyncWire.updateBatch of one update against the reflective protobuf-es encoding of
//              the same frame (the baseline, measured in the same run): µs per frame.
//   commit     Publisher.publish of one document to a topic nobody watches: the commit alone.
//   live       1,000 topics, each with one live (binary) subscriber on a hub whose transport
//              only counts what it is given: publish one document to every topic, as the fanout
//              bench's `1000x1` does (one commit per topic, in slices of 1,000 started together),
//              until the hub has handed every frame to the transport.
//   live-tx    the same events, but one Publisher.transaction spans all 1,000 topics.
//
// CPU µs per event is process.cpuUsage (user + system) over the timed part, after a warm-up.
// Prints JSON lines; the machine is shared, so it also prints the CPU other processes used.
import { create, toBinary } from "@bufbuild/protobuf"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { readFileSync } from "node:fs"
import { Hub, Journal, MemoryStorage, Notifier, Publisher, type Storage, SyncWire, type Transport } from "@openagents/khala-core"
import { FrameKind, KhalaFrameSchema, UpdateBatchSchema } from "@openagents/proto/sync/v1"
import { canonicalJson } from "@openagents/proto/canonical-json"
import { createHash } from "node:crypto"
import { makePayload, userTopic } from "./common.js"

const TOPICS = Number(process.env["TOPICS"] ?? 1000)
const ROUNDS = Number(process.env["ROUNDS"] ?? 20)

/** Busy CPU of the whole machine (cores) from /proc/stat, to subtract our own. */
const machineBusy = () => {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  const idle = f[3]! + f[4]!
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}
const measure = async (events: number, body: () => Promise<void>) => {
  const m0 = machineBusy()
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await body()
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  const m1 = machineBusy()
  const cores = 2
  const machineCores = ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * cores
  const ownCores = (c.user + c.system) / 1000 / wall
  return { cpuUsPerEvent: (c.user + c.system) / events, wallUsPerEvent: (wall * 1000) / events, foreignCores: Math.max(0, machineCores - ownCores) }
}
const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

// ---------------------------------------------------------------------------------------------
// encode

const reflective = (topic: string, events: ReadonlyArray<Storage.JournalEvent>, head: bigint, epoch: string) =>
  toBinary(KhalaFrameSchema, create(KhalaFrameSchema, {
    schemaVersion: SyncWire.SCHEMA_VERSION,
    topic,
    seq: events[events.length - 1]!.watermark,
    kind: FrameKind.UPDATE_BATCH,
    payload: toBinary(UpdateBatchSchema, create(UpdateBatchSchema, {
      updates: events.map((e) => ({
        topic: e.topic,
        docKey: e.docKey,
        docVersion: e.docVersion,
        payload: new TextEncoder().encode(e.payload!),
        watermark: e.watermark,
        payloadHash: e.payloadHash!
      })),
      replayComplete: true,
      headWatermarks: [{ topic, watermark: head, epoch }]
    }))
  }))

const encodeBench = (bytes: number) => {
  const topic = userTopic("u1")
  const payload = canonicalJson(makePayload(bytes, "1"))
  const event: Storage.JournalEvent = {
    topic,
    watermark: 12345n,
    docKey: "d",
    docVersion: 12345n,
    payload,
    // As a journal event has it: its UTF-8 encoded once at commit.
    payloadUtf8: new TextEncoder().encode(payload),
    payloadHash: createHash("sha256").update(payload).digest(),
    payloadBytes: bytes,
    insertedAt: new Date()
  }
  const epoch = "ep_0123456789abcdef0123456789abcdef"
  const n = 20_000
  const time = (f: () => unknown) => {
    const rounds: Array<number> = []
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now()
      for (let i = 0; i < n; i++) f()
      rounds.push(((performance.now() - t0) * 1000) / n)
    }
    return median(rounds)
  }
  const baseline = time(() => reflective(topic, [event], 12345n, epoch))
  const khala = time(() => SyncWire.updateBatch("binary", topic, [event], true, 12345n, epoch))
  return { case: "encode", bytes, khalaUs: khala, reflectiveUs: baseline, ratio: baseline / khala }
}

// ---------------------------------------------------------------------------------------------
// live path

const liveBench = async (bytes: number) => {
  const runtime = ManagedRuntime.make(Publisher.layer.pipe(Layer.provideMerge(Layer.mergeAll(MemoryStorage.layer, Notifier.layerMemory))))
  const { journal, notifier, publisher } = await runtime.runPromise(
    Effect.all({ journal: Journal.Journal, notifier: Notifier.Notifier, publisher: Publisher.Publisher })
  )
  let frames = 0
  let waiter: { target: number; resolve: () => void } | undefined
  const transport = {
    publish: () => {
      frames++
      if (waiter !== undefined && frames >= waiter.target) waiter.resolve()
    }
  } as unknown as Transport.TransportServer
  const hub = new Hub.Hub({ journal, transport: () => transport, run: (e) => void runtime.runFork(e), onGap: () => {} })
  // Off: the hub reads every commit back, as it did before commits handed their events over (and
  // as every node but the committing one does): the A/B of that change, in one process.
  let handOver = true
  await runtime.runPromise(
    Effect.scoped(Effect.zipRight(notifier.listen({ wake: (t, committed) => hub.wake(t, handOver ? committed : undefined), revoke: () => {} }), Effect.never)).pipe(
      Effect.forkDaemon
    )
  )
  const topics = Array.from({ length: TOPICS }, (_, i) => userTopic(`u${i}`))
  const idle = Array.from({ length: TOPICS }, (_, i) => userTopic(`idle${i}`))
  for (const t of topics) {
    hub.joined(await hub.activate(t), "binary")
  }
  let version = 0
  // One payload object, as the fanout bench's server reuses one: building it (two canonical JSON
  // texts) is the load generator's work, not the commit's.
  const payload = makePayload(bytes, "1")
  const doc = () => [{ docKey: "d", docVersion: ++version, payload }]
  const until = (target: number) => new Promise<void>((resolve) => (frames >= target ? resolve() : (waiter = { target, resolve })))

  const perTopic = (list: Array<string>) => Promise.all(list.map((t) => runtime.runPromise(publisher.publish(t, doc()))))
  const oneTx = (list: Array<string>) => runtime.runPromise(publisher.transaction(Effect.forEach(list, (t) => publisher.publish(t, doc()), { discard: true })))

  const out: Array<Record<string, unknown>> = []
  const run = async (name: string, body: () => Promise<void>, countFrames: boolean) => {
    for (let i = 0; i < 3; i++) await body() // warm-up
    const rounds = []
    for (let r = 0; r < ROUNDS; r++) {
      const target = frames + (countFrames ? TOPICS : 0)
      rounds.push(await measure(TOPICS, async () => {
        await body()
        if (countFrames) await until(target)
      }))
      if (countFrames && frames !== target) throw new Error(`${name}: ${frames - target} frames too many`)
    }
    out.push({
      case: name,
      bytes,
      cpuUsPerEvent: median(rounds.map((r) => r.cpuUsPerEvent)),
      wallUsPerEvent: median(rounds.map((r) => r.wallUsPerEvent)),
      foreignCoresMax: Math.max(...rounds.map((r) => r.foreignCores))
    })
  }
  await run("commit (no subscriber)", () => perTopic(idle).then(() => {}), false)
  for (const mode of ["handed over", "read back", "handed over", "read back"] as const) {
    handOver = mode === "handed over"
    await run(`live, one commit per topic (${mode})`, () => perTopic(topics).then(() => {}), true)
    await run(`live, one commit for all topics (${mode})`, () => oneTx(topics), true)
  }
  await runtime.dispose()
  return out
}

for (const bytes of [100, 2048]) console.log(JSON.stringify(encodeBench(bytes)))
if (process.env["ONLY"] !== "encode") for (const bytes of [100, 2048]) for (const row of await liveBench(bytes)) console.log(JSON.stringify(row))
process.exit(0)
