// The storage contract every Khala adapter implements (in memory, SQL on Postgres/PGlite, or a
// user's own). It receives only validated, prepared input: topic parsing, key and size limits,
// canonical JSON and hashing, batch clamps and the stale rules live once, in the ports built on
// top of it (Journal, ReadModels, Snapshot, Retention, Checkpoints), so every adapter behaves
// identically. `JournalSuite` in `@openagents/khala-core/testing/vitest` checks an adapter against the
// ports.
//
// What an adapter must guarantee:
// - watermarks of a topic are dense from 1 and allocated in the appending transaction, so a
//   rolled-back append leaves no gap and watermark order is commit order;
// - `read` returns head, floor and rows from one consistent view;
// - `publish` writes read-model rows and journal rows atomically (in the caller's transaction
//   when there is one);
// - pruning removes a prefix of a topic (floor + 1 .. upTo) and raises the floor with it.
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { JournalStorageError } from "./Errors.js"
import type { Position } from "./Staleness.js"
import type { Topic } from "./Topic.js"

/** A journal entry ready to store: payload already canonical JSON, hash computed. */
export interface PreparedEntry {
  readonly docKey: string
  readonly docVersion: bigint
  /** Canonical JSON text; null in pointer mode (the journal row carries no payload). */
  readonly payload: string | null
  /** Canonical JSON text for the read model (always present). */
  readonly document: string
  /** The UTF-8 of `document` (its own buffer: events keep it as long as they are retained). */
  readonly documentUtf8: Uint8Array
  readonly payloadHash: Uint8Array
  /** UTF-8 length of the canonical JSON. */
  readonly payloadBytes: number
}

export interface JournalEvent {
  readonly topic: string
  readonly watermark: bigint
  readonly docKey: string
  readonly docVersion: bigint
  /** Canonical JSON; null when the row is a pointer (hydration_required). */
  readonly payload: string | null
  /**
   * The UTF-8 of `payload`, when the adapter keeps it (the built-in ones do): the wire sends these
   * bytes as they are instead of encoding the text again for every batch it builds.
   */
  readonly payloadUtf8?: Uint8Array | undefined
  readonly payloadHash: Uint8Array | null
  readonly payloadBytes: number
  readonly insertedAt: Date
}

export interface StoredDocument {
  readonly topic: string
  readonly docKey: string
  readonly docVersion: bigint
  /** Canonical JSON. */
  readonly payload: string
  readonly payloadHash: Uint8Array
  readonly updatedAt: Date
}

export interface StoredRead {
  readonly head: bigint
  readonly floor: bigint
  /** Events after the cursor, ascending, at most maxRows, cut at maxBytes (at least one row). */
  readonly events: ReadonlyArray<JournalEvent>
}

export interface PublishResult {
  /** Journal events written, ascending by watermark. */
  readonly events: ReadonlyArray<JournalEvent>
  /** Doc keys not written because the read model holds a newer doc_version. */
  readonly skipped: ReadonlyArray<string>
}

export interface Checkpoint {
  readonly projectionName: string
  readonly entityId: string
  readonly documentId: string
  readonly topic: string
  readonly lastRuntimeSeq: bigint
  readonly projectionVersion: string
  readonly summaryHash: string
  readonly lastProjectedAt: Date
}

/** Bytes an update costs in a batch: payload + doc key + fixed framing overhead. */
export const UPDATE_OVERHEAD_BYTES = 32

export interface KhalaStorageService {
  /**
   * The journal epoch: set when the journal is created, never reused; renewed only when the
   * database turns out to be restored or failed over (`refreshEpoch`). Read it where it is used.
   */
  readonly epoch: string
  /**
   * Check again whether the database was restored or failed over (a storage that can tell), renew
   * the epoch if so, and adopt the epoch the database holds. True when `epoch` changed. Optional:
   * a storage without it keeps its epoch for its lifetime.
   */
  readonly refreshEpoch?: Effect.Effect<boolean, JournalStorageError> | undefined
  readonly append: (topic: Topic, entries: ReadonlyArray<PreparedEntry>) => Effect.Effect<ReadonlyArray<JournalEvent>, JournalStorageError>
  readonly publish: (topic: Topic, entries: ReadonlyArray<PreparedEntry>) => Effect.Effect<PublishResult, JournalStorageError>
  readonly read: (topic: string, after: bigint, maxRows: number, maxBytes: number) => Effect.Effect<StoredRead, JournalStorageError>
  /**
   * `read` for several topics at once (each topic at most once in `reads`), keyed by topic; each
   * result as `read` would return it. Optional: without it the journal reads topic by topic.
   * The fanout hub uses it to read every topic one commit touched in one round trip.
   */
  readonly readMany?: (
    reads: ReadonlyArray<{ readonly topic: string; readonly after: bigint }>,
    maxRows: number,
    maxBytes: number
  ) => Effect.Effect<ReadonlyMap<string, StoredRead>, JournalStorageError>
  readonly positions: (topics: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Position>, JournalStorageError>
  readonly getDocument: (table: string, topic: string, docKey: string) => Effect.Effect<StoredDocument | undefined, JournalStorageError>
  /** Every document of a topic with the head watermark, read from one consistent view. */
  readonly snapshot: (table: string, topic: string) => Effect.Effect<{ readonly watermark: bigint; readonly documents: ReadonlyArray<StoredDocument> }, JournalStorageError>
  /** Topics of a class whose oldest retained event was inserted before `cutoff`. */
  readonly expiredTopics: (className: string, cutoff: Date, limit: number) => Effect.Effect<ReadonlyArray<string>, JournalStorageError>
  /**
   * Prune at most `batchSize` events from the front of `topic`, never past the first event
   * inserted at or after `cutoff`. Returns how many were removed and the new floor.
   */
  readonly pruneBatch: (topic: string, cutoff: Date, batchSize: number) => Effect.Effect<{ readonly pruned: number; readonly floor: bigint }, JournalStorageError>
  readonly getCheckpoint: (projectionName: string, entityId: string) => Effect.Effect<Checkpoint | undefined, JournalStorageError>
  readonly putCheckpoint: (checkpoint: Checkpoint) => Effect.Effect<void, JournalStorageError>
  readonly listCheckpoints: (projectionName: string, afterEntityId: string, limit: number) => Effect.Effect<ReadonlyArray<Checkpoint>, JournalStorageError>
  /** Whether the current fiber runs inside a transaction of this storage (ours or a caller's). */
  readonly inTransaction: Effect.Effect<boolean>
  /**
   * How deep the current fiber is in this storage's transactions: 0 in the outermost, more inside
   * a nested one that can roll back on its own (a savepoint), undefined outside any. Optional: the
   * Publisher hands a transaction's events to the local hub only when it can tell that they were
   * written at depth 0 of a transaction it committed.
   */
  readonly transactionDepth?: Effect.Effect<number | undefined> | undefined
  /**
   * Fails when the current transaction can no longer commit (Postgres: an earlier statement failed
   * and the caller went on; its COMMIT would silently roll back). The Publisher runs it before the
   * commit of a transaction whose events it hands over, so it never hands over rolled-back events,
   * and the caller learns that its writes were lost.
   */
  readonly transactionCheck?: Effect.Effect<void, JournalStorageError> | undefined
  /** Run `effect` atomically (SQL: a transaction, joining the caller's if there is one). */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | JournalStorageError, R>
}

export class KhalaStorage extends Context.Tag("@openagents/khala-core/KhalaStorage")<KhalaStorage, KhalaStorageService>() {}
