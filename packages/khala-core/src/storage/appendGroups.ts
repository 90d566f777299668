// Group commit for appends to one topic that arrive while an append to it is in flight.
//
// Watermarks are allocated on the topic's sequence row, which stays locked until the appending
// transaction commits, so appends to one topic run one at a time however many connections there
// are: each pays a statement and a WAL flush while the others wait on the row lock. Outside a
// caller's transaction nothing ties an append to its own transaction, so the appends that
// arrive while one is in flight wait here instead, and go out together as the next statement:
// one transaction, one flush, consecutive watermarks in arrival order. Each caller still gets
// exactly its own events, after they are committed.
//
// - The first append to an idle topic runs at once in its caller's fiber, as before.
// - Appends arriving meanwhile queue; when the running statement finishes, one fiber sends the
//   queue (as much as fits one group: MAX_GROUP_ENTRIES entries, MAX_GROUP_BYTES) as one
//   statement, and again until the queue is empty.
// - A grouped statement that fails fails every append in it with the same error; nothing of
//   it is written.
// - An append interrupted while queued leaves the queue; once sent, it commits or fails with
//   the others.
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { JournalEvent, PreparedEntry } from "../Storage.js"

/**
 * The most one grouped statement carries: ten appends of the largest size in rows, four in bytes.
 * Large enough that appends of 100–200 events still group several to a statement (a group sent
 * after another pays a round trip that separate statements queued on the row lock would not).
 */
export const MAX_GROUP_ENTRIES = 2_000
export const MAX_GROUP_BYTES = 8 * 1024 * 1024

type Run<E> = (topic: string, entries: ReadonlyArray<PreparedEntry>) => Effect.Effect<ReadonlyArray<JournalEvent>, E>

interface Waiting<E> {
  readonly entries: ReadonlyArray<PreparedEntry>
  readonly bytes: number
  readonly done: Deferred.Deferred<ReadonlyArray<JournalEvent>, E>
}

const bytesOf = (entries: ReadonlyArray<PreparedEntry>) => entries.reduce((n, e) => n + e.payloadBytes + e.docKey.length, 0)

/** `run`, with concurrent calls for one topic merged into one call while one is in flight. */
export const make = <E>(run: Run<E>): Run<E> => {
  /** Topics with a statement in flight, each with the appends waiting for it to finish. */
  const busy = new Map<string, Array<Waiting<E>>>()

  /** The oldest waiters that fit one batch (at least one). */
  const take = (queue: Array<Waiting<E>>) => {
    let n = 0
    let entries = 0
    let bytes = 0
    while (n < queue.length) {
      const w = queue[n]!
      if (n > 0 && (entries + w.entries.length > MAX_GROUP_ENTRIES || bytes + w.bytes > MAX_GROUP_BYTES)) break
      entries += w.entries.length
      bytes += w.bytes
      n++
    }
    return queue.splice(0, n)
  }

  /** Send the queue of `topic`, batch by batch, then mark the topic idle. */
  const drain = (topic: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const queue = busy.get(topic)!
      if (queue.length === 0) {
        busy.delete(topic)
        return Effect.void
      }
      const batch = take(queue)
      return Effect.flatMap(Effect.exit(run(topic, batch.flatMap((w) => w.entries))), (exit) => {
        let offset = 0
        for (const w of batch) {
          const from = offset
          offset += w.entries.length
          // Watermarks follow the order of the entries in the statement: each caller's slice.
          Deferred.unsafeDone(w.done, Exit.map(exit, (events) => events.slice(from, offset)))
        }
        // Let the callers just answered run first: one that appends again straight away (a loop,
        // a pipeline) joins the next statement instead of waiting for the one after it. Without
        // this, callers split into two groups that take turns, at half the batch size.
        return Effect.zipRight(Effect.yieldNow(), drain(topic))
      })
    })

  /** After the direct statement: hand any queued appends to a fiber of their own, or go idle. */
  const release = (topic: string) =>
    Effect.suspend(() => {
      if (busy.get(topic)!.length === 0) {
        busy.delete(topic)
        return Effect.void
      }
      return Effect.asVoid(Effect.forkDaemon(drain(topic)))
    })

  return (topic, entries) =>
    Effect.withFiberRuntime((fiber) => {
      const queue = busy.get(topic)
      if (queue === undefined) {
        busy.set(topic, [])
        return Effect.ensuring(run(topic, entries), release(topic))
      }
      const waiting: Waiting<E> = { entries, bytes: bytesOf(entries), done: Deferred.unsafeMake(fiber.id()) }
      queue.push(waiting)
      return Effect.onInterrupt(Deferred.await(waiting.done), () =>
        Effect.sync(() => {
          const i = queue.indexOf(waiting)
          if (i >= 0) queue.splice(i, 1)
        }))
    })
}
