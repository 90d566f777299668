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
// - A wake-up carries the events the commit wrote, so this node's hub publishes them without
//   reading them back (other nodes read them, once per node and topic) — but only events known to
//   be committed: those of a publish outside any transaction, and those of a `transaction` that
//   was the outermost one and wrote nothing inside a savepoint (which can roll back on its own
//   while the transaction commits). Otherwise the wake-up names the topics and the hub reads.
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

interface Written {
  readonly events: Map<string, Array<JournalEvent>>
  /** False once anything was written where it may not commit with the transaction. */
  certain: boolean
}

export class Publisher extends Context.Tag("@openagents/khala-core/Publisher")<Publisher, PublisherService>() {}

export const make: Effect.Effect<PublisherService, never, Journal | Notifier | KhalaStorage> = Effect.gen(function*() {
  const journal = yield* Journal
  const notifier = yield* Notifier
  const storage = yield* KhalaStorage
  /** The wake-ups of the enclosing Publisher.transaction, if any: the events written per topic, in order. */
  const pending = FiberRef.unsafeMake<Written | undefined>(undefined)
  const depth = storage.transactionDepth ?? Effect.succeed(-1)
  const after = <A, E>(topic: string, effect: Effect.Effect<A, E>, eventsOf: (result: A) => ReadonlyArray<JournalEvent>) =>
    Effect.flatMap(effect, (result) =>
      // The fiber's refs read directly: one step instead of a FiberRef.get effect per publish.
      Effect.withFiberRuntime<A>((fiber) => {
        const written = fiber.getFiberRef(pending)
        if (written !== undefined) {
          const list = written.events.get(topic)
          if (list === undefined) written.events.set(topic, [...eventsOf(result)])
          else list.push(...eventsOf(result))
          if (written.certain) {
            // Written inside a savepoint, the events may yet roll back while the transaction commits.
            return Effect.map(depth, (d) => {
              if (d !== 0) written.certain = false
              return result
            })
          }
          return Effect.succeed(result)
        }
        return Effect.flatMap(storage.inTransaction, (inside) => {
          if (inside) return Effect.succeed(result)
          const events = eventsOf(result)
          return Effect.as(notifier.wake([topic], events.length > 0 ? new Map([[topic, events]]) : undefined), result)
        })
      }))
  return {
    publish: (topic, documents) => after(topic, journal.publish(topic, documents), (r) => r.events),
    append: (topic, entries) => after(topic, journal.append(topic, entries), (events) => events),
    transaction: (effect) =>
      Effect.flatMap(FiberRef.get(pending), (outer) => {
        if (outer !== undefined) return storage.transaction(effect)
        const written: Written = { events: new Map(), certain: true }
        // Inside a caller's transaction, ours is a savepoint: nothing is committed when it ends.
        const outermost = Effect.map(depth, (d) => {
          if (d !== 0) written.certain = false
        })
        // Before the commit: a transaction an earlier error aborted must fail, not hand over events
        // its COMMIT will silently roll back.
        const check = Effect.suspend(() => (written.certain && written.events.size > 0 && storage.transactionCheck !== undefined ? storage.transactionCheck : Effect.void))
        return storage.transaction(Effect.zipRight(outermost, Effect.locally(effect, pending, written)).pipe(Effect.tap(() => check))).pipe(
          Effect.tap(() => (written.events.size > 0 ? notifier.wake(written.events.keys(), written.certain ? written.events : undefined) : Effect.void))
        )
      })
  }
})

export const layer: Layer.Layer<Publisher, never, Journal | Notifier | KhalaStorage> = Layer.effect(Publisher, make)
