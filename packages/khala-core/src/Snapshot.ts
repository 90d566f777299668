// Snapshots: every current document of a topic together with the watermark they are consistent
// with, read from one consistent view while writers continue. A client recovering from
// stale_cursor stores the documents, stores the watermark, and resubscribes after it: because
// read-model rows and journal rows commit together, nothing between the snapshot and the resume
// point can be missed.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { InvalidTopicError, JournalStorageError } from "./Errors.js"
import { SnapshotUnsupportedError } from "./Errors.js"
import { tableOf } from "./ReadModels.js"
import { SNAPSHOT_FORMAT } from "./Staleness.js"
import type { StoredDocument } from "./Storage.js"
import { KhalaStorage } from "./Storage.js"
import * as Topic from "./Topic.js"

export interface TopicSnapshot {
  readonly format: typeof SNAPSHOT_FORMAT
  readonly topic: string
  readonly epoch: string
  /** Resume after this watermark once the documents are stored. */
  readonly watermark: bigint
  readonly documents: ReadonlyArray<StoredDocument>
}

export interface SnapshotService {
  readonly get: (topic: string) => Effect.Effect<TopicSnapshot, InvalidTopicError | SnapshotUnsupportedError | JournalStorageError>
}

export class Snapshot extends Context.Tag("@openagents/khala-core/Snapshot")<Snapshot, SnapshotService>() {}

export const make: Effect.Effect<SnapshotService, never, KhalaStorage> = Effect.gen(function*() {
  const storage = yield* KhalaStorage
  const registry = yield* Topic.TopicClasses
  return {
    get: (topic) =>
      Effect.gen(function*() {
        const { table, topic: parsed } = yield* tableOf(registry, topic)
        if (parsed.topicClass.snapshot === undefined) {
          return yield* Effect.fail(new SnapshotUnsupportedError({ topic, topicClass: parsed.topicClass.name }))
        }
        const { documents, watermark } = yield* storage.snapshot(table, topic)
        return { format: SNAPSHOT_FORMAT, topic, epoch: storage.epoch, watermark, documents }
      })
  }
})

export const layer: Layer.Layer<Snapshot, never, KhalaStorage> = Layer.effect(Snapshot, make)
