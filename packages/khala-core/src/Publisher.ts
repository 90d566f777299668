// Publishing with live wake-ups sent strictly after commit (the upstream broadcast before
// commit, so a fast subscriber could re-read, see nothing, and wait for the next event).
//
// - `publish` / `append` outside a transaction: the statement commits on its own, then the
//   topic's hubs are woken.
// - Inside `transaction(effect)`: wake-ups are collected and sent once, after the outermost
//   transaction commits; nothing is sent if it rolls back. One wake-up per topic per commit.
// - Inside a transaction that is not ours (a caller's raw `sql.withTransaction`), nothing is sent
//   early; the hubs' head poll delivers the events within one poll interval. Prefer
//   `Publisher.transaction` for your authority writes to get live latency.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import type { JournalStorageError } from "./Errors.js"
import { Journal, type AppendEntry, type AppendError, type JournalEvent, type PublishResult } from "./Journal.js"
import { Notifier } from "./Notifier.js"
import { KhalaStorage } from "./Storage.js"

export interface PublisherService {
  readonly publish: (topic: string, documents: ReadonlyArray<AppendEntry>) => Effect.Effect<PublishResult, AppendError>
  readonly append: (topic: string, entries: ReadonlyArray<AppendEntry>) => Effect.Effect<ReadonlyArray<JournalEvent>, AppendError>
  /** Run `effect` in one transaction; wake the topics it published to after it commits. */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | JournalStorageError, R>
}

export class Publisher extends Context.Tag("@openagents/khala-core/Publisher")<Publisher, PublisherService>() {}

export const make: Effect.Effect<PublisherService, never, Journal | Notifier | KhalaStorage> = Effect.gen(function*() {
  const journal = yield* Journal
  const notifier = yield* Notifier
  const storage = yield* KhalaStorage
  /** The wake-ups of the enclosing Publisher.transaction, if any. */
  const pending = FiberRef.unsafeMake<Set<string> | undefined>(undefined)
  /** Set inside any storage transaction, ours or not, by `transaction` below. */
  const after = <A, E>(topic: string, effect: Effect.Effect<A, E>) =>
    Effect.flatMap(effect, (result) =>
      // The fiber's refs read directly: one step instead of a FiberRef.get effect per publish.
      Effect.withFiberRuntime<A>((fiber) => {
        const set = fiber.getFiberRef(pending)
        if (set !== undefined) {
          set.add(topic)
          return Effect.succeed(result)
        }
        return Effect.flatMap(storage.inTransaction, (inside) => (inside ? Effect.succeed(result) : Effect.as(notifier.wake([topic]), result)))
      }))
  return {
    publish: (topic, documents) => after(topic, journal.publish(topic, documents)),
    append: (topic, entries) => after(topic, journal.append(topic, entries)),
    transaction: (effect) =>
      Effect.flatMap(FiberRef.get(pending), (outer) => {
        if (outer !== undefined) return storage.transaction(effect)
        const topics = new Set<string>()
        return storage.transaction(Effect.locally(effect, pending, topics)).pipe(
          Effect.tap(() => (topics.size > 0 ? notifier.wake(topics) : Effect.void))
        )
      })
  }
})

export const layer: Layer.Layer<Publisher, never, Journal | Notifier | KhalaStorage> = Layer.effect(Publisher, make)
