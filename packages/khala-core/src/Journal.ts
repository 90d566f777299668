// The Khala journal: an ordered, durable, per-topic log of document changes with dense
// watermarks allocated in the appending transaction (DESIGN.md §4).
//
// - `append` / `publish` run inside the caller's transaction when there is one (the runtime
//   writes its authority row, the read model and the journal atomically) and in their own
//   otherwise. `publish` also upserts the topic's read model; a document whose stored version
//   is newer is skipped rather than regressed.
// - `read` returns exactly the retained events after a watermark, in order, in a batch clamped
//   to MAX_BATCH_UPDATES rows and MAX_BATCH_BYTES bytes (at least one event when any is due),
//   or fails with stale_cursor — never a partial log. Head, floor and rows come from one
//   consistent view, so a concurrent prune cannot open a hole between check and read.
// - `checkResume` applies the stale rules of Staleness.ts to a set of resume points at once.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { InvalidLimitError, InvalidTopicError, InvalidWatermarkError, JournalStorageError } from "./Errors.js"
import { StaleCursorError } from "./Errors.js"
import type { AppendEntry, PrepareError } from "./internal/prepare.js"
import { MAX_INT8, MAX_UINT64, prepareBatch, validateInteger, validateLimit } from "./internal/prepare.js"
import * as Staleness from "./Staleness.js"
import type { JournalEvent, PublishResult, StoredRead } from "./Storage.js"
import { KhalaStorage } from "./Storage.js"
import * as Topic from "./Topic.js"

export type { AppendEntry } from "./internal/prepare.js"
export type { JournalEvent, PublishResult } from "./Storage.js"

export interface ReadOptions {
  /** Rows per batch; clamped to MAX_BATCH_UPDATES (the default). */
  readonly maxRows?: number | undefined
  /** Bytes per batch; clamped to MAX_BATCH_BYTES (the default). */
  readonly maxBytes?: number | undefined
}

export interface ReadResult {
  readonly topic: string
  readonly events: ReadonlyArray<JournalEvent>
  readonly head: bigint
  readonly floor: bigint
  /** The watermark to read after next: the last event's, or the cursor when none was due. */
  readonly next: bigint
  /** True when `next` reached the head seen by this read. */
  readonly complete: boolean
}

export interface ResumePoint {
  readonly topic: string
  readonly cursor: Staleness.Cursor
}

export type AppendError = InvalidTopicError | PrepareError | JournalStorageError
export type ReadError = InvalidTopicError | InvalidWatermarkError | InvalidLimitError | StaleCursorError | JournalStorageError

export interface JournalService {
  /**
   * The journal epoch; watermarks are only meaningful together with it. Current at every read: it
   * changes when `refreshEpoch` finds the database restored or failed over.
   */
  readonly epoch: string
  /**
   * Whether the database was restored or failed over since the epoch was read (the storage
   * checks, renews the epoch if so, and adopts the database's): true when `epoch` changed, and
   * then every watermark of the old epoch is void — the Khala server restarts its fanout and
   * makes its clients resume, which refuses their cursors as epoch_mismatch.
   */
  readonly refreshEpoch: Effect.Effect<boolean, JournalStorageError>
  readonly append: (topic: string, entries: ReadonlyArray<AppendEntry>) => Effect.Effect<ReadonlyArray<JournalEvent>, AppendError>
  readonly publish: (topic: string, documents: ReadonlyArray<AppendEntry>) => Effect.Effect<PublishResult, AppendError>
  readonly read: (topic: string, after: bigint, options?: ReadOptions) => Effect.Effect<ReadResult, ReadError>
  /**
   * `read` for several topics at once, in one storage round trip when the adapter can (each topic
   * at most once). A stale topic is reported in its own entry rather than failing the others.
   */
  readonly readMany: (
    reads: ReadonlyArray<{ readonly topic: string; readonly after: bigint }>,
    options?: ReadOptions
  ) => Effect.Effect<ReadonlyMap<string, ReadResult | StaleCursorError>, Exclude<ReadError, StaleCursorError>>
  readonly position: (topic: string) => Effect.Effect<Staleness.Position, InvalidTopicError | JournalStorageError>
  readonly positions: (topics: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Staleness.Position>, InvalidTopicError | JournalStorageError>
  /** Fails with stale_cursor listing every stale topic (with its snapshot plan inputs). */
  readonly checkResume: (
    points: ReadonlyArray<ResumePoint>
  ) => Effect.Effect<ReadonlyMap<string, Staleness.Position>, InvalidTopicError | InvalidWatermarkError | StaleCursorError | JournalStorageError>
}

export class Journal extends Context.Tag("@openagents/khala-core/Journal")<Journal, JournalService>() {}

export const make: Effect.Effect<JournalService, never, KhalaStorage> = Effect.gen(function*() {
  const storage = yield* KhalaStorage
  const registry = yield* Topic.TopicClasses

  const parse = (topic: string): Effect.Effect<Topic.Topic, InvalidTopicError> => {
    const parsed = registry.parse(topic)
    return "topicClass" in parsed ? Effect.succeed(parsed) : Effect.fail(parsed)
  }

  const prepare = (topic: string, entries: ReadonlyArray<AppendEntry>, unique: boolean) =>
    Effect.flatMap(parse(topic), (t) => {
      const prepared = prepareBatch(t, entries, unique)
      return Array.isArray(prepared) ? Effect.succeed({ topic: t, prepared }) : Effect.fail(prepared as PrepareError)
    })

  /** The cursor and clamps of a read, or why it is invalid. */
  const validateRead = (after: bigint, options: ReadOptions | undefined) => {
    const cursor = validateInteger("resume watermark", after, MAX_UINT64)
    if (typeof cursor !== "bigint") return cursor
    const maxRows = validateLimit("maxRows", options?.maxRows, Topic.MAX_BATCH_UPDATES, Topic.MAX_BATCH_UPDATES)
    if (typeof maxRows !== "number") return maxRows
    const maxBytes = validateLimit("maxBytes", options?.maxBytes, Topic.MAX_BATCH_BYTES, Topic.MAX_BATCH_BYTES)
    if (typeof maxBytes !== "number") return maxBytes
    return { cursor, maxRows, maxBytes }
  }
  // A cursor beyond int8 cannot name a stored event: it is ahead of any head.
  const clampCursor = (cursor: bigint) => (cursor > MAX_INT8 ? MAX_INT8 : cursor)

  const toResult = (parsed: Topic.Topic, cursor: bigint, stored: StoredRead): ReadResult | StaleCursorError => {
    const topic = parsed.topic
    if (cursor < stored.floor || cursor > stored.head) {
      const reasons: Array<Staleness.StaleReason> = cursor < stored.floor ? ["retention_floor_breach"] : ["cursor_ahead_of_head"]
      return new StaleCursorError({
        staleTopics: [{
          topic,
          reasons,
          qosTier: parsed.topicClass.qosTier,
          resumeAfter: cursor,
          retentionFloor: stored.floor,
          headWatermark: stored.head,
          replayLag: stored.head > cursor ? stored.head - cursor : 0n,
          replayBudgetEvents: parsed.topicClass.replayBudgetEvents,
          epoch: storage.epoch
        }]
      })
    }
    const last = stored.events[stored.events.length - 1]
    const next = last === undefined ? cursor : last.watermark
    return { topic, events: stored.events, head: stored.head, floor: stored.floor, next, complete: next >= stored.head }
  }

  const positions = (topics: ReadonlyArray<string>) =>
    Effect.flatMap(Effect.forEach(topics, parse), () => storage.positions(topics))

  const service: JournalService = {
    get epoch() {
      return storage.epoch
    },
    refreshEpoch: storage.refreshEpoch ?? Effect.succeed(false),
    append: (topic, entries) =>
      Effect.flatMap(prepare(topic, entries, false), ({ prepared, topic }) =>
        prepared.length === 0 ? Effect.succeed([]) : storage.append(topic, prepared)),
    publish: (topic, documents) =>
      Effect.flatMap(prepare(topic, documents, true), ({ prepared, topic }) =>
        prepared.length === 0 ? Effect.succeed({ events: [], skipped: [] }) : storage.publish(topic, prepared)),
    read: (topic, after, options) =>
      Effect.suspend((): Effect.Effect<ReadResult, ReadError> => {
        // Plain checks, no generator: this runs for every catch-up batch.
        const parsed = registry.parse(topic)
        if (!("topicClass" in parsed)) return Effect.fail(parsed)
        const limits = validateRead(after, options)
        if ("_tag" in limits) return Effect.fail(limits)
        return Effect.flatMap(storage.read(topic, clampCursor(limits.cursor), limits.maxRows, limits.maxBytes), (stored) => {
          const result = toResult(parsed, limits.cursor, stored)
          return result instanceof StaleCursorError ? Effect.fail(result) : Effect.succeed(result)
        })
      }),
    readMany: (reads, options) =>
      Effect.suspend((): Effect.Effect<ReadonlyMap<string, ReadResult | StaleCursorError>, Exclude<ReadError, StaleCursorError>> => {
        const parsed: Array<Topic.Topic> = []
        for (const r of reads) {
          const p = registry.parse(r.topic)
          if (!("topicClass" in p)) return Effect.fail(p)
          const checked = validateRead(r.after, undefined)
          if ("_tag" in checked) return Effect.fail(checked)
          parsed.push(p)
        }
        const limits = validateRead(0n, options)
        if ("_tag" in limits) return Effect.fail(limits)
        const { maxBytes, maxRows } = limits
        const clamped = reads.map((r) => ({ topic: r.topic, after: clampCursor(r.after) }))
        const stored: Effect.Effect<ReadonlyMap<string, StoredRead>, JournalStorageError> = storage.readMany !== undefined
          ? storage.readMany(clamped, maxRows, maxBytes)
          : Effect.map(
            Effect.forEach(clamped, (r) => storage.read(r.topic, r.after, maxRows, maxBytes)),
            (results) => new Map(results.map((result, i) => [clamped[i]!.topic, result]))
          )
        return Effect.map(stored, (found) => {
          const out = new Map<string, ReadResult | StaleCursorError>()
          reads.forEach((r, i) => out.set(r.topic, toResult(parsed[i]!, r.after, found.get(r.topic) ?? { head: 0n, floor: 0n, events: [] })))
          return out
        })
      }),
    position: (topic) => Effect.map(positions([topic]), (map) => map.get(topic) ?? { head: 0n, floor: 0n }),
    positions,
    checkResume: (points) =>
      Effect.gen(function*() {
        const parsed = yield* Effect.forEach(points, (p) => parse(p.topic))
        const cursors = yield* Effect.forEach(points, (p) => {
          const w = validateInteger("resume watermark", p.cursor.watermark, MAX_UINT64)
          return typeof w === "bigint" ? Effect.succeed(w) : Effect.fail(w)
        })
        const found = yield* storage.positions(points.map((p) => p.topic))
        const stale: Array<Staleness.StaleTopic> = []
        points.forEach((p, i) => {
          const position = found.get(p.topic) ?? { head: 0n, floor: 0n }
          const result = Staleness.check(parsed[i]!, { watermark: cursors[i]!, epoch: p.cursor.epoch }, position, storage.epoch)
          if (result !== undefined) stale.push(result)
        })
        if (stale.length > 0) return yield* Effect.fail(new StaleCursorError({ staleTopics: stale }))
        return found
      })
  }
  return service
})

export const layer: Layer.Layer<Journal, never, KhalaStorage> = Layer.effect(Journal, make)
