// Read models: the current document per (topic, doc_key), with its doc_version and payload hash.
// A read model only ever changes together with the journal (`upsert` is `Journal.publish`):
// a document change that is not journaled would never reach a subscriber, so there is no way to
// write one without the other.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { InvalidDocKeyError, JournalStorageError } from "./Errors.js"
import { InvalidTopicError, SnapshotUnsupportedError } from "./Errors.js"
import { validateDocKey } from "./internal/prepare.js"
import type { AppendEntry, AppendError } from "./Journal.js"
import { Journal } from "./Journal.js"
import type { PublishResult, StoredDocument } from "./Storage.js"
import { KhalaStorage } from "./Storage.js"
import * as Topic from "./Topic.js"

export type { StoredDocument } from "./Storage.js"

export interface ReadModelsService {
  /** Upsert documents and journal them, atomically (see Journal.publish). */
  readonly upsert: (topic: string, documents: ReadonlyArray<AppendEntry>) => Effect.Effect<PublishResult, AppendError>
  readonly get: (topic: string, docKey: string) => Effect.Effect<StoredDocument | undefined, InvalidTopicError | InvalidDocKeyError | SnapshotUnsupportedError | JournalStorageError>
  readonly list: (topic: string) => Effect.Effect<ReadonlyArray<StoredDocument>, InvalidTopicError | SnapshotUnsupportedError | JournalStorageError>
}

export class ReadModels extends Context.Tag("@openagents/khala-core/ReadModels")<ReadModels, ReadModelsService>() {}

/** The read-model table of a topic, or a typed error when its class keeps none. */
export const tableOf = (registry: Topic.Registry, topic: string): Effect.Effect<{ topic: Topic.Topic; table: string }, InvalidTopicError | SnapshotUnsupportedError> => {
  const parsed = registry.parse(topic)
  if (parsed instanceof InvalidTopicError) return Effect.fail(parsed)
  const table = parsed.topicClass.readModelTable
  return table === undefined
    ? Effect.fail(new SnapshotUnsupportedError({ topic, topicClass: parsed.topicClass.name }))
    : Effect.succeed({ topic: parsed, table })
}

export const make: Effect.Effect<ReadModelsService, never, KhalaStorage | Journal> = Effect.gen(function*() {
  const storage = yield* KhalaStorage
  const journal = yield* Journal
  const registry = yield* Topic.TopicClasses
  return {
    upsert: journal.publish,
    get: (topic, docKey) =>
      Effect.gen(function*() {
        const { table } = yield* tableOf(registry, topic)
        const key = validateDocKey(docKey)
        if (typeof key !== "string") return yield* Effect.fail(key)
        return yield* storage.getDocument(table, topic, key)
      }),
    list: (topic) => Effect.flatMap(tableOf(registry, topic), ({ table }) => Effect.map(storage.snapshot(table, topic), (s) => s.documents))
  }
})

export const layer: Layer.Layer<ReadModels, never, KhalaStorage | Journal> = Layer.effect(ReadModels, make)
