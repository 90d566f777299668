// The Khala storage conformance suite. Every adapter — in memory, SQL on PGlite, SQL on Postgres,
// or one you write — must pass it:
//
//   import { JournalSuite } from "@openagents/khala-core/testing/vitest"
//   JournalSuite.run("my-adapter", myStorageLayer, { concurrent: true })
//
// It registers vitest tests (needs vitest, @effect/vitest and fast-check). Each test uses topics
// of its own, so one storage instance serves the whole suite.
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { toHex } from "@openagents/proto/canonical-json"
import fc from "fast-check"
import * as Checkpoints from "./Checkpoints.js"
import * as Errors from "./Errors.js"
import * as Journal from "./Journal.js"
import * as Notifier from "./Notifier.js"
import * as Publisher from "./Publisher.js"
import * as ReadModels from "./ReadModels.js"
import * as Retention from "./Retention.js"
import * as Snapshot from "./Snapshot.js"
import { KhalaStorage } from "./Storage.js"
import * as Topic from "./Topic.js"


/** Topic classes the suite uses, beside the defaults. */
export const suiteClasses: ReadonlyArray<Topic.TopicClass> = [
  ...Topic.defaultClasses,
  {
    name: "suite.docs",
    partition: "user",
    kind: "durable_summary",
    qosTier: "warm",
    replayBudgetEvents: 50,
    retentionSeconds: 3600,
    maxPayloadBytes: 1024,
    payloadMode: "inline",
    readModelTable: "sync_documents",
    snapshot: { cadenceSeconds: 60 }
  },
  {
    name: "suite.events",
    partition: "worker",
    kind: "high_churn_events",
    qosTier: "hot",
    replayBudgetEvents: 5,
    retentionSeconds: 3600,
    maxPayloadBytes: 256 * 1024,
    payloadMode: "inline",
    readModelTable: undefined,
    snapshot: undefined
  },
  {
    name: "suite.pointers",
    partition: "user",
    kind: "durable_summary",
    qosTier: "cold",
    replayBudgetEvents: 1000,
    retentionSeconds: 3600,
    maxPayloadBytes: 1024,
    payloadMode: "pointer",
    readModelTable: "sync_documents",
    snapshot: { cadenceSeconds: 60 }
  }
]

export type PortServices = Journal.Journal | ReadModels.ReadModels | Snapshot.Snapshot | Retention.Retention | Checkpoints.Checkpoints
export type Ports = PortServices | KhalaStorage

/** Every port over a storage layer, with the given topic classes. */
export const portsLayer = <ROut, E, R>(
  storage: Layer.Layer<KhalaStorage | ROut, E, R>,
  classes: ReadonlyArray<Topic.TopicClass> = suiteClasses
): Layer.Layer<Ports | ROut, E, R> =>
  Layer.mergeAll(Snapshot.layer, Retention.layer, Checkpoints.layer, ReadModels.layer).pipe(
    Layer.provideMerge(Journal.layer),
    Layer.provideMerge(storage),
    Layer.provide(Layer.succeed(Topic.TopicClasses, Topic.makeRegistry(classes)))
  ) as Layer.Layer<Ports | ROut, E, R>

export interface SuiteOptions {
  /** Transactions really run concurrently (Postgres); enables the contention tests' strict reading. */
  readonly concurrent?: boolean
  /** Overwrite a stored document's payload behind the ports' back (for the parity test). */
  readonly tamper?: (table: string, topic: string, docKey: string, payload: unknown) => Effect.Effect<void, unknown, any>
  /** Property-test runs (default 40). */
  readonly propertyRuns?: number
}

let unique = 0
/** A topic of `className` no other test uses. */
export const freshTopic = (className: string, prefix = "t") =>
  `${className}:${className === "suite.events" || className === "runtime.codex_worker_events" ? "worker" : "user"}:${prefix}${Date.now().toString(36)}${(unique++).toString(36)}`

const docs = (n: number, from = 1) =>
  Array.from({ length: n }, (_, i) => ({ docKey: `doc:${from + i}`, docVersion: BigInt(from + i), payload: { n: from + i, text: `event ${from + i}` } }))

/** Read everything after `after`, batch by batch. */
/**
 * A Publisher over the Journal and storage in context whose Notifier records each wake-up: the
 * watermarks it handed over, or undefined when it named the topics only.
 */
export const recordingPublisher = Effect.gen(function*() {
  const wakes: Array<ReadonlyArray<bigint> | undefined> = []
  const notifier: Notifier.NotifierService = {
    wake: (_topics, committed) => Effect.sync(() => void wakes.push(committed === undefined ? undefined : [...committed.values()].flat().map((e) => e.watermark))),
    revoke: () => Effect.void,
    listen: () => Effect.void
  }
  const publisher = yield* Publisher.make.pipe(Effect.provideService(Notifier.Notifier, notifier))
  return { publisher, wakes }
})

export const readAll = (topic: string, after: bigint, options?: Journal.ReadOptions) =>
  Effect.gen(function*() {
    const journal = yield* Journal.Journal
    const events: Array<Journal.JournalEvent> = []
    let cursor = after
    for (;;) {
      const batch = yield* journal.read(topic, cursor, options)
      events.push(...batch.events)
      cursor = batch.next
      if (batch.complete) return events
    }
  })

class Rollback extends Error {}

export const run = <E>(name: string, storage: Layer.Layer<KhalaStorage, E>, options: SuiteOptions = {}) =>
  describe(`Khala storage conformance: ${name}`, () => {
    layer(portsLayer(storage), { excludeTestServices: true })((it) => {
      it.effect("allocates dense watermarks from 1, in order, across appends", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const topic = freshTopic("suite.events")
          const first = yield* journal.append(topic, docs(3))
          const second = yield* journal.append(topic, docs(2, 4))
          expect([...first, ...second].map((e) => e.watermark)).toEqual([1n, 2n, 3n, 4n, 5n])
          expect(yield* journal.position(topic)).toEqual({ head: 5n, floor: 0n })
          const all = yield* readAll(topic, 0n)
          expect(all.map((e) => e.docKey)).toEqual(["doc:1", "doc:2", "doc:3", "doc:4", "doc:5"])
          expect(all[0]!.payload).toBe(`{"n":1,"text":"event 1"}`)
          expect(all[0]!.payloadHash?.length).toBe(32)
        }))

      it.effect("returns from append and publish the events exactly as a read returns them", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          // Compared field by field; a hash may be any Uint8Array (node-pg gives a Buffer).
          const plain = (list: ReadonlyArray<Journal.JournalEvent>) => list.map((e) => ({ ...e, payloadHash: e.payloadHash === null ? null : Array.from(e.payloadHash) }))
          const events = freshTopic("suite.events")
          const appended = [...yield* journal.append(events, docs(3)), ...yield* journal.append(events, docs(1, 4))]
          expect(plain(yield* readAll(events, 0n))).toEqual(plain(appended))
          const documents = freshTopic("suite.docs")
          yield* journal.publish(documents, docs(2))
          // doc:1 is skipped (stored version 1 is newer than 0); doc:3 is new.
          const published = yield* journal.publish(documents, [{ docKey: "doc:1", docVersion: 0n, payload: {} }, ...docs(1, 3)])
          expect(published.skipped).toEqual(["doc:1"])
          expect(plain(yield* readAll(documents, 2n))).toEqual(plain(published.events))
          const pointers = freshTopic("suite.pointers")
          const pointed = yield* journal.publish(pointers, docs(2))
          expect(pointed.events.map((e) => e.payload)).toEqual([null, null])
          expect(plain(yield* readAll(pointers, 0n))).toEqual(plain(pointed.events))
        }))

      it.effect("stores the payload hash of the cross-language vectors (proto/testdata/payload_hash_vectors.v1.json)", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const topic = freshTopic("suite.events")
          const vectors = [
            { payload: { b: 1, a: { d: [3, 2, 1], c: null } }, sha256: "99292fc65b1416433c73754bd2133c24f100c4da791e825377abb6756eeb69ae" },
            { payload: { "\u{1F600}": 3, "\u{10000}": 1, "\uFFFF": 2, "\uF8FF": 4 }, sha256: "079a134f20d66014de4691efe131dc5fd56d776d32b04fec9c5abd1dca275f89" }
          ]
          const events = yield* journal.append(topic, vectors.map((v, i) => ({ docKey: `doc:${i}`, docVersion: 1n, payload: v.payload })))
          expect(events.map((e) => toHex(e.payloadHash ?? new Uint8Array()))).toEqual(vectors.map((v) => v.sha256))
          expect((yield* readAll(topic, 0n)).map((e) => toHex(e.payloadHash ?? new Uint8Array()))).toEqual(vectors.map((v) => v.sha256))
        }))

      it.effect("leaves no gap after a rolled-back append", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const storage = yield* KhalaStorage
          const topic = freshTopic("suite.events")
          yield* journal.append(topic, docs(1))
          const exit = yield* storage.transaction(Effect.zipRight(journal.append(topic, docs(3, 2)), Effect.fail(new Rollback()))).pipe(Effect.exit)
          expect(Exit.isFailure(exit)).toBe(true)
          expect((yield* journal.position(topic)).head).toBe(1n)
          const next = yield* journal.append(topic, docs(1, 5))
          expect(next.map((e) => e.watermark)).toEqual([2n])
          expect((yield* readAll(topic, 0n)).map((e) => e.watermark)).toEqual([1n, 2n])
        }))

      it.effect("the Publisher hands over only committed events: its own outermost transactions and lone publishes, not one nested in a caller's transaction that rolls back", () =>
        Effect.gen(function*() {
          const storage = yield* KhalaStorage
          const { publisher, wakes } = yield* recordingPublisher
          const topic = freshTopic("suite.events")
          yield* publisher.append(topic, docs(1))
          yield* publisher.transaction(publisher.append(topic, docs(2, 2)))
          const exit = yield* storage.transaction(Effect.zipRight(publisher.transaction(publisher.append(topic, docs(1, 9))), Effect.fail(new Rollback()))).pipe(Effect.exit)
          expect(Exit.isFailure(exit)).toBe(true)
          // The rolled-back event was announced (a harmless hint) but not handed over.
          expect(wakes).toEqual([[1n], [2n, 3n], undefined])
          expect((yield* readAll(topic, 0n)).map((e) => e.watermark)).toEqual([1n, 2n, 3n])
        }))

      it.effect("keeps watermarks unique and dense under 32 concurrent writers on one topic", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const topic = freshTopic("suite.events")
          const perWriter = 5
          const results = yield* Effect.all(
            Array.from({ length: 32 }, (_, w) => Effect.forEach(Array.from({ length: perWriter }, (_, i) => i), (i) => journal.append(topic, docs(1, w * 100 + i)))),
            { concurrency: "unbounded" }
          )
          const watermarks = results.flat(2).map((e) => e.watermark).sort((a, b) => (a < b ? -1 : 1))
          expect(watermarks).toEqual(Array.from({ length: 32 * perWriter }, (_, i) => BigInt(i + 1)))
          const stored = yield* readAll(topic, 0n)
          expect(stored.map((e) => e.watermark)).toEqual(watermarks)
        }))

      it.effect("reads several topics at once as read does each, a stale one in its own entry", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const a = freshTopic("suite.events")
          const b = freshTopic("suite.events")
          const empty = freshTopic("suite.events")
          const ahead = freshTopic("suite.events")
          yield* journal.append(a, docs(5))
          yield* journal.append(b, docs(3))
          yield* journal.append(ahead, docs(1))
          const reads = [{ topic: a, after: 2n }, { topic: b, after: 0n }, { topic: empty, after: 0n }, { topic: ahead, after: 4n }]
          const many = yield* journal.readMany(reads, { maxRows: 2 })
          expect([...many.keys()].sort()).toEqual(reads.map((r) => r.topic).sort())
          for (const r of reads.slice(0, 3)) expect(many.get(r.topic)).toEqual(yield* journal.read(r.topic, r.after, { maxRows: 2 }))
          expect(many.get(a)).toMatchObject({ next: 4n, complete: false })
          expect(many.get(empty)).toMatchObject({ events: [], head: 0n, next: 0n, complete: true })
          const stale = many.get(ahead)
          expect(stale).toBeInstanceOf(Errors.StaleCursorError)
          expect((stale as Errors.StaleCursorError).staleTopics[0]).toMatchObject({ topic: ahead, reasons: ["cursor_ahead_of_head"] })
          // An adapter that keeps the payload's UTF-8 keeps exactly that.
          for (const e of (many.get(b) as Journal.ReadResult).events) {
            if (e.payloadUtf8 !== undefined) expect(new TextDecoder().decode(e.payloadUtf8)).toBe(e.payload)
          }
          expect(yield* Effect.flip(journal.readMany([{ topic: "no-such-class:x:y", after: 0n }]))).toMatchObject({ _tag: "InvalidTopicError" })
        }))

      it.effect("caps a read at maxRows and maxBytes, clamps to the server limits, and returns at least one event", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const topic = freshTopic("suite.events")
          const big = "x".repeat(100_000)
          // Appends are capped at 2 MiB per batch too: write the 30 events in three batches.
          for (let b = 0; b < 3; b++) {
            yield* journal.append(topic, Array.from({ length: 10 }, (_, i) => ({ docKey: `big:${b * 10 + i}`, docVersion: i, payload: { big } })))
          }
          const rows = yield* journal.read(topic, 0n, { maxRows: 3 })
          expect(rows.events.map((e) => e.watermark)).toEqual([1n, 2n, 3n])
          expect(rows.complete).toBe(false)
          expect(rows.next).toBe(3n)
          // Each event costs ~100 KB: 250 KB fits two of them.
          const bytes = yield* journal.read(topic, 0n, { maxBytes: 250_000 })
          expect(bytes.events.length).toBe(2)
          const one = yield* journal.read(topic, 5n, { maxBytes: 10 })
          expect(one.events.map((e) => e.watermark)).toEqual([6n])
          // Asking for more than the clamps gets at most 2 MiB: 20 events of ~100 KB.
          const clamped = yield* journal.read(topic, 0n, { maxRows: 10_000, maxBytes: 100_000_000 })
          expect(clamped.events.length).toBe(20)
          const empty = yield* journal.read(topic, 30n)
          expect(empty).toMatchObject({ events: [], head: 30n, next: 30n, complete: true })
          // readMany cuts each topic as read does.
          const other = freshTopic("suite.events")
          yield* journal.append(other, docs(3))
          const many = yield* journal.readMany([{ topic, after: 0n }, { topic: other, after: 0n }, { topic: freshTopic("suite.events"), after: 0n }], { maxBytes: 250_000 })
          expect(many.get(topic)).toEqual(bytes)
          expect(many.get(other)).toEqual(yield* journal.read(other, 0n, { maxBytes: 250_000 }))
          const manyOne = yield* journal.readMany([{ topic, after: 5n }, { topic: other, after: 1n }], { maxBytes: 10 })
          expect((manyOne.get(topic) as Journal.ReadResult).events.map((e) => e.watermark)).toEqual([6n])
          expect((manyOne.get(other) as Journal.ReadResult).events.map((e) => e.watermark)).toEqual([2n])
        }))

      it.effect("applies the upstream stale vector: rows 1 (2 h old) and 2 (60 s old), horizon 3600 s; resume 0 is stale with floor 1", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const retention = yield* Retention.Retention
          const topic = freshTopic("suite.docs")
          const [row1] = yield* journal.publish(topic, docs(1)).pipe(Effect.map((r) => r.events))
          yield* Effect.sleep("30 millis")
          yield* journal.publish(topic, docs(1, 2))
          // "Now" is 2 h after row 1, so row 1 is 2 h old; row 2 was inserted later, still within the horizon
          // relative to a clock placed at row 1 + 3600 s + 10 ms.
          const now = new Date(row1!.insertedAt.getTime() + 3_600_000 + 10)
          const report = yield* retention.pruneClass("suite.docs", { now })
          expect(report.floors.get(topic)).toBe(1n)
          expect(yield* journal.position(topic)).toEqual({ head: 2n, floor: 1n })
          const stale = yield* Effect.flip(journal.read(topic, 0n))
          expect(stale).toBeInstanceOf(Errors.StaleCursorError)
          const staleTopic = (stale as Errors.StaleCursorError).staleTopics[0]!
          expect(staleTopic).toMatchObject({ topic, reasons: ["retention_floor_breach"], resumeAfter: 0n, retentionFloor: 1n, headWatermark: 2n })
          expect(stale.message).toBe("cursor is older than retention floor")
          const checked = yield* Effect.flip(journal.checkResume([{ topic, cursor: { watermark: 0n } }]))
          expect((checked as Errors.StaleCursorError).staleTopics[0]!.reasons).toEqual(["retention_floor_breach"])
          // Resuming at the floor is fine: exactly row 2 follows.
          expect((yield* readAll(topic, 1n)).map((e) => e.watermark)).toEqual([2n])
        }))

      it.effect("reports replay_budget_exceeded, cursor_ahead_of_head and epoch_mismatch", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const topic = freshTopic("suite.events") // budget 5
          yield* journal.append(topic, docs(10))
          yield* journal.checkResume([{ topic, cursor: { watermark: 5n, epoch: journal.epoch } }])
          const budget = yield* Effect.flip(journal.checkResume([{ topic, cursor: { watermark: 4n, epoch: journal.epoch } }]))
          expect(budget).toBeInstanceOf(Errors.StaleCursorError)
          expect((budget as Errors.StaleCursorError).staleTopics[0]).toMatchObject({ reasons: ["replay_budget_exceeded"], replayLag: 6n, replayBudgetEvents: 5, qosTier: "hot" })
          expect(budget.message).toBe("replay budget exceeded for topic qos tier; full resync required")
          const ahead = yield* Effect.flip(journal.read(topic, 11n))
          expect((ahead as Errors.StaleCursorError).staleTopics[0]!.reasons).toEqual(["cursor_ahead_of_head"])
          const epoch = yield* Effect.flip(journal.checkResume([{ topic, cursor: { watermark: 10n, epoch: "ep_other" } }]))
          expect((epoch as Errors.StaleCursorError).staleTopics[0]!.reasons).toEqual(["epoch_mismatch"])
        }))

      it.effect("prunes in bounded batches, only a contiguous prefix of expired events", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const storage = yield* KhalaStorage
          const retention = yield* Retention.Retention
          const topic = freshTopic("suite.events")
          for (let i = 0; i < 12; i++) yield* journal.append(topic, docs(1, i + 1))
          yield* Effect.sleep("30 millis")
          const fresh = yield* journal.append(topic, docs(3, 13))
          const cutoff = new Date(fresh[0]!.insertedAt.getTime() - 10)
          const batch = yield* storage.pruneBatch(topic, cutoff, 5)
          expect(batch).toEqual({ pruned: 5, floor: 5n })
          const report = yield* retention.pruneClass("suite.events", { now: new Date(cutoff.getTime() + 3_600_000), batchSize: 5 })
          // The report covers every topic of the class; this topic went from floor 5 to 12.
          expect(report.floors.get(topic)).toBe(12n)
          expect(report.events).toBeGreaterThanOrEqual(7)
          expect(yield* journal.position(topic)).toEqual({ head: 15n, floor: 12n })
          expect((yield* readAll(topic, 12n)).map((e) => e.watermark)).toEqual([13n, 14n, 15n])
          // Nothing more is due.
          expect((yield* storage.pruneBatch(topic, cutoff, 5)).pruned).toBe(0)
        }))

      it.effect("publishes read model and journal together, never regressing a doc_version", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const readModels = yield* ReadModels.ReadModels
          const topic = freshTopic("suite.docs")
          const first = yield* journal.publish(topic, [{ docKey: "a", docVersion: 2, payload: { v: 2 } }, { docKey: "b", docVersion: 1, payload: { v: 1 } }])
          expect(first.events.map((e) => [e.docKey, e.watermark])).toEqual([["a", 1n], ["b", 2n]])
          const stale = yield* journal.publish(topic, [{ docKey: "a", docVersion: 1, payload: { v: 1 } }, { docKey: "b", docVersion: 1, payload: { v: "again" } }])
          expect(stale.skipped).toEqual(["a"])
          expect(stale.events.map((e) => [e.docKey, e.watermark])).toEqual([["b", 3n]])
          const a = yield* readModels.get(topic, "a")
          expect(a).toMatchObject({ docKey: "a", docVersion: 2n, payload: `{"v":2}` })
          expect((yield* readModels.get(topic, "b"))!.payload).toBe(`{"v":"again"}`)
          expect((yield* readModels.list(topic)).map((d) => d.docKey)).toEqual(["a", "b"])
          expect(yield* readModels.get(topic, "missing")).toBeUndefined()
        }))

      it.effect("writes pointer rows without payload in pointer mode, keeping the document in the read model", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const readModels = yield* ReadModels.ReadModels
          const topic = freshTopic("suite.pointers")
          yield* journal.publish(topic, [{ docKey: "p", docVersion: 1, payload: { big: true } }])
          const [event] = yield* readAll(topic, 0n)
          expect(event).toMatchObject({ payload: null, docKey: "p", docVersion: 1n })
          expect(event!.payloadHash?.length).toBe(32)
          expect((yield* readModels.get(topic, "p"))!.payload).toBe(`{"big":true}`)
        }))

      it.effect("takes snapshots consistent with their watermark while writes continue", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const snapshot = yield* Snapshot.Snapshot
          const topic = freshTopic("suite.docs")
          const writer = yield* Effect.forEach(Array.from({ length: 60 }, (_, i) => i), (i) =>
            journal.publish(topic, [{ docKey: `d${i % 7}`, docVersion: i, payload: { i } }]), { discard: true }).pipe(Effect.fork)
          const snapshots = []
          for (let i = 0; i < 6; i++) {
            snapshots.push(yield* snapshot.get(topic))
            yield* Effect.sleep("2 millis")
          }
          yield* Fiber.join(writer)
          const journalLog = yield* readAll(topic, 0n)
          for (const snap of snapshots) {
            // Folding the journal up to the snapshot's watermark must give exactly its documents.
            const folded = new Map<string, string>()
            for (const e of journalLog) if (e.watermark <= snap.watermark) folded.set(e.docKey, e.payload!)
            expect(new Map(snap.documents.map((d) => [d.docKey, d.payload]))).toEqual(folded)
            expect(snap.epoch).toBe(journal.epoch)
          }
          expect((yield* snapshot.get(topic)).watermark).toBe(60n)
        }))

      it.effect("refuses a snapshot of a class without one", () =>
        Effect.gen(function*() {
          const snapshot = yield* Snapshot.Snapshot
          const error = yield* Effect.flip(snapshot.get(freshTopic("suite.events")))
          expect(error).toBeInstanceOf(Errors.SnapshotUnsupportedError)
        }))

      it.effect("records checkpoints and its parity check reports missing documents, lag and hash mismatches", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const checkpoints = yield* Checkpoints.Checkpoints
          const topic = freshTopic("suite.docs")
          const projection = `suite_projection_${unique++}`
          const summary = { status: "running", seq: 3 }
          yield* journal.publish(topic, [{ docKey: "run:1", docVersion: 3, payload: summary }])
          const base = { projectionName: projection, topic, projectionVersion: "v1", lastProjectedAt: new Date() }
          yield* checkpoints.put({ ...base, entityId: "run:1", documentId: "run:1", lastRuntimeSeq: 3n, summaryHash: Checkpoints.summaryHash(summary) })
          expect((yield* checkpoints.get(projection, "run:1"))?.lastRuntimeSeq).toBe(3n)
          const clean = yield* checkpoints.parity(projection)
          expect(clean).toMatchObject({ checked: 1, issues: [], mismatchRate: 0 })
          yield* checkpoints.put({ ...base, entityId: "run:2", documentId: "run:2", lastRuntimeSeq: 1n, summaryHash: "00" })
          const lagging = yield* checkpoints.parity(projection, { latestSeq: (id) => Effect.succeed(id === "run:1" ? 5n : undefined) })
          expect(lagging.issues.map((i) => [i.kind, i.checkpoint.entityId])).toEqual([["lag", "run:1"], ["missing", "run:2"]])
          if (options.tamper) {
            yield* options.tamper("sync_documents", topic, "run:1", { status: "hacked", seq: 3 })
            const tampered = yield* checkpoints.parity(projection)
            expect(tampered.issues.map((i) => [i.kind, i.checkpoint.entityId])).toEqual([["hash_mismatch", "run:1"], ["missing", "run:2"]])
          }
        }))

      it.effect("rejects bad input with typed errors and writes nothing", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const topic = freshTopic("suite.docs")
          const fail = (effect: Effect.Effect<unknown, unknown>) => Effect.flip(effect).pipe(Effect.map((e) => (e as { code: string }).code))
          expect(yield* fail(journal.append("nope", docs(1)))).toBe("invalid_topic")
          expect(yield* fail(journal.append(`suite.docs:user:${"x".repeat(200)}`, docs(1)))).toBe("invalid_topic")
          expect(yield* fail(journal.append("suite.docs:worker:1", docs(1)))).toBe("invalid_topic")
          expect(yield* fail(journal.append("unknown.class:user:1", docs(1)))).toBe("invalid_topic")
          expect(yield* fail(journal.append(topic, [{ docKey: "", docVersion: 1, payload: {} }]))).toBe("invalid_doc_key")
          expect(yield* fail(journal.append(topic, [{ docKey: "k".repeat(256), docVersion: 1, payload: {} }]))).toBe("invalid_doc_key")
          expect(yield* fail(journal.publish(topic, [{ docKey: "k", docVersion: 1, payload: {} }, { docKey: "k", docVersion: 2, payload: {} }]))).toBe("invalid_doc_key")
          expect(yield* fail(journal.append(topic, [{ docKey: "k", docVersion: -1, payload: {} }]))).toBe("invalid_watermark")
          expect(yield* fail(journal.append(topic, [{ docKey: "k", docVersion: 2n ** 63n, payload: {} }]))).toBe("invalid_watermark")
          expect(yield* fail(journal.append(topic, [{ docKey: "k", docVersion: 1.5, payload: {} }]))).toBe("invalid_watermark")
          expect(yield* fail(journal.append(topic, [{ docKey: "k", docVersion: 1, payload: { x: Number.NaN } }]))).toBe("invalid_payload")
          expect(yield* fail(journal.append(topic, [{ docKey: "k", docVersion: 1, payload: { x: "y".repeat(2000) } }]))).toBe("payload_too_large")
          expect(yield* fail(journal.append(topic, docs(201)))).toBe("batch_too_large")
          const events = freshTopic("suite.events")
          const wide = Array.from({ length: 20 }, (_, i) => ({ docKey: `w${i}`, docVersion: i, payload: { s: "z".repeat(200_000) } }))
          expect(yield* fail(journal.append(events, wide))).toBe("batch_too_large")
          expect(yield* fail(journal.read(topic, -1n))).toBe("invalid_watermark")
          expect(yield* fail(journal.read(topic, 2n ** 64n))).toBe("invalid_watermark")
          expect(yield* fail(journal.read(topic, 0n, { maxRows: 0 }))).toBe("invalid_limit")
          expect(yield* fail(journal.read(topic, 0n, { maxBytes: -5 }))).toBe("invalid_limit")
          expect(yield* journal.position(topic)).toEqual({ head: 0n, floor: 0n })
          expect(yield* journal.position(events)).toEqual({ head: 0n, floor: 0n })
          // The largest legal values are accepted.
          const max = yield* journal.append(topic, [{ docKey: "k".repeat(255), docVersion: 2n ** 63n - 1n, payload: { x: "y".repeat(900) } }])
          expect(max[0]!.docVersion).toBe(2n ** 63n - 1n)
          const ahead = yield* Effect.flip(journal.read(topic, 2n ** 64n - 1n))
          expect((ahead as Errors.StaleCursorError).staleTopics[0]!.reasons).toEqual(["cursor_ahead_of_head"])
        }))

      it.effect("property: after any appends and prunes, a read returns exactly the retained suffix after the cursor, in order, or reports stale", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const storage = yield* KhalaStorage
          const command = fc.oneof(
            fc.record({ op: fc.constant("append" as const), n: fc.integer({ min: 1, max: 12 }) }),
            fc.record({ op: fc.constant("prune" as const), n: fc.integer({ min: 1, max: 8 }) }),
            fc.record({ op: fc.constant("read" as const), at: fc.nat({ max: 60 }), rows: fc.integer({ min: 1, max: 7 }) })
          )
          const runs = options.propertyRuns ?? 40
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 14 }), async (commands) => {
                const topic = freshTopic("suite.events", "p")
                let head = 0n
                let floor = 0n
                const far = new Date(Date.now() + 10 * 365 * 86_400_000)
                for (const c of commands) {
                  if (c.op === "append") {
                    await Effect.runPromise(journal.append(topic, docs(c.n, Number(head) + 1)))
                    head += BigInt(c.n)
                  } else if (c.op === "prune") {
                    const r = await Effect.runPromise(storage.pruneBatch(topic, far, c.n))
                    const expected = floor + BigInt(c.n) > head ? head : floor + BigInt(c.n)
                    expect(r.floor).toBe(expected)
                    floor = expected
                  } else {
                    const at = BigInt(c.at)
                    const exit = await Effect.runPromiseExit(readAll(topic, at, { maxRows: c.rows }).pipe(Effect.provideService(Journal.Journal, journal)))
                    if (at < floor || at > head) {
                      expect(Exit.isFailure(exit)).toBe(true)
                      if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("StaleCursorError")
                    } else {
                      expect(Exit.isSuccess(exit)).toBe(true)
                      if (Exit.isSuccess(exit)) {
                        const want = Array.from({ length: Number(head - at) }, (_, i) => at + 1n + BigInt(i))
                        expect(exit.value.map((e) => e.watermark)).toEqual(want)
                        expect(exit.value.map((e) => e.docKey)).toEqual(want.map((w) => `doc:${w}`))
                      }
                    }
                  }
                }
              }),
              { numRuns: runs }
            )
          )
        }), 120_000)
    })
  })
