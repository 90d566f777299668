// Group commit for one owner's authority writes.
//
// Every write to a worker ends by publishing the worker's summary to its owner's summary topic,
// whose watermark row stays locked until the transaction commits. An owner's concurrent writes
// (several workers streaming at once) therefore commit one at a time, each paying its own WAL
// flush while the others wait on that row: the flush, not the statements, sets the owner's rate.
//
// Here the writes of one owner that arrive while one of them is in flight wait, and then go out
// together: one transaction, one flush. Each write keeps its own outcome:
//
// - The first write of an idle owner runs at once, in its caller's fiber, in its own transaction,
//   exactly as it would without grouping.
// - Writes arriving meanwhile queue; when the running one finishes, one fiber runs the queue (up
//   to MAX_GROUP writes) in one transaction, each write in a savepoint of its own (its effect is
//   the same transactional effect a lone write runs; nested, it becomes a savepoint). A write that
//   fails rolls back to its savepoint and fails alone; the others commit.
// - Every caller is answered only after the group committed. If the commit itself fails, every
//   write of the group fails with that error and none of them was written.
// - The group first locks every row its writes will lock, in sorted order, so that two groups (on
//   two hosts) never take the same rows in opposite orders: a transaction then takes the shared
//   summary topic's row only after all of its own rows, as a lone write does.
// - A write interrupted while queued leaves the queue; once its group runs, it commits or fails
//   with the group.
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/** The most writes one group carries. */
export const MAX_GROUP = 64

interface Waiting<E, L> {
  readonly effect: Effect.Effect<unknown, E>
  readonly lock: L
  readonly done: Deferred.Deferred<unknown, E>
}

export interface GroupCommitOptions<E, L> {
  /** Run `effect` in one transaction (nested calls become savepoints). */
  readonly transaction: <A>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
  /** The row a write locks (its id): the group locks its writes' rows in the order of these ids. */
  readonly lockId: (lock: L) => string
  /** Lock these rows, in this order (sorted by id; per id, the first write's). */
  readonly lock: (rows: ReadonlyArray<L>) => Effect.Effect<void, E>
}

export type GroupCommit<E, L> = <A>(key: string, lock: L, write: Effect.Effect<A, E>) => Effect.Effect<A, E>

/**
 * `write` is a transactional effect (it opens its own transaction); `key` names the writes that
 * contend (the owner), `lock` the row `write` locks.
 */
export const make = <E, L>(options: GroupCommitOptions<E, L>): GroupCommit<E, L> => {
  /** Owners with a write in flight, each with the writes waiting for it. */
  const busy = new Map<string, Array<Waiting<E, L>>>()

  const runGroup = (batch: ReadonlyArray<Waiting<E, L>>) => {
    const byId = new Map<string, L>()
    for (const w of batch) {
      const id = options.lockId(w.lock)
      if (!byId.has(id)) byId.set(id, w.lock)
    }
    const locks = [...byId.keys()].sort().map((id) => byId.get(id)!)
    return options.transaction(
      Effect.zipRight(options.lock(locks), Effect.forEach(batch, (w) => Effect.exit(w.effect)))
    ).pipe(
      Effect.exit,
      Effect.map((outcome) => {
        for (let i = 0; i < batch.length; i++) {
          const done = batch[i]!.done
          if (Exit.isFailure(outcome)) Deferred.unsafeDone(done, outcome)
          else Deferred.unsafeDone(done, outcome.value[i]!)
        }
      })
    )
  }

  const drain = (key: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const queue = busy.get(key)!
      if (queue.length === 0) {
        busy.delete(key)
        return Effect.void
      }
      // Let the callers just answered run first: one that writes again at once joins the next group.
      return Effect.zipRight(Effect.zipRight(runGroup(queue.splice(0, MAX_GROUP)), Effect.yieldNow()), drain(key))
    })

  const release = (key: string) =>
    Effect.suspend(() => {
      if (busy.get(key)!.length === 0) {
        busy.delete(key)
        return Effect.void
      }
      return Effect.asVoid(Effect.forkDaemon(drain(key)))
    })

  return <A>(key: string, lock: L, write: Effect.Effect<A, E>) =>
    Effect.withFiberRuntime<A, E>((fiber) => {
      const queue = busy.get(key)
      if (queue === undefined) {
        busy.set(key, [])
        return Effect.ensuring(write, release(key))
      }
      const waiting: Waiting<E, L> = { effect: write, lock, done: Deferred.unsafeMake(fiber.id()) }
      queue.push(waiting)
      return Effect.onInterrupt(Deferred.await(waiting.done) as Effect.Effect<A, E>, () =>
        Effect.sync(() => {
          const i = queue.indexOf(waiting)
          if (i >= 0) queue.splice(i, 1)
        }))
    })
}
