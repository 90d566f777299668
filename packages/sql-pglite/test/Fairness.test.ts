// PGlite is one backend shared through a one-permit lock; the lock must serve fibers in arrival
// order, or a fiber issuing statements in a loop keeps the permit and starves the others
// (Effect's own semaphore lets a releasing fiber take the permit straight back).
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { PgliteClient } from "@openagents/sql-pglite"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FairLock from "../src/internal/fairLock.js"

/** The longest run of consecutive equal entries. */
const longestRun = (xs: ReadonlyArray<number>) => {
  let best = 0
  let run = 0
  xs.forEach((x, i) => {
    run = i > 0 && xs[i - 1] === x ? run + 1 : 1
    best = Math.max(best, run)
  })
  return best
}

describe("PgliteClient fairness", () => {
  it.scoped("fibers looping on statements take turns", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const order: Array<number> = []
      const loop = (id: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < 20; i++) {
            yield* sql`SELECT ${id}::int AS id`
            order.push(id)
          }
        })
      yield* Effect.forEach([0, 1, 2, 3], loop, { concurrency: "unbounded", discard: true })
      expect(order).toHaveLength(80)
      // FIFO: after the first round every fiber waits behind the other three, so no fiber runs
      // twice in a row. Unfair, one fiber runs all 20 of its statements before the next starts.
      expect(longestRun(order)).toBe(1)
    }).pipe(Effect.provide(PgliteClient.layer({}))))

  it.scoped("transactions interleave with other fibers' statements in arrival order", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const order: Array<string> = []
      const writer = Effect.gen(function*() {
        for (let i = 0; i < 10; i++) {
          yield* sql.withTransaction(sql`SELECT 1`)
          order.push("tx")
        }
      })
      const reader = Effect.gen(function*() {
        for (let i = 0; i < 10; i++) {
          yield* sql`SELECT 2`
          order.push("read")
        }
      })
      yield* Effect.all([writer, reader], { concurrency: "unbounded", discard: true })
      expect(longestRun(order.map((o) => (o === "tx" ? 0 : 1)))).toBeLessThanOrEqual(2)
    }).pipe(Effect.provide(PgliteClient.layer({}))))
})

describe("FairLock", () => {
  it.effect("hands the permit to waiters in arrival order", () =>
    Effect.gen(function*() {
      const lock = yield* FairLock.make
      const order: Array<number> = []
      yield* lock.take
      const fibers = yield* Effect.forEach([1, 2, 3], (i) => Effect.fork(lock.withPermit(Effect.sync(() => order.push(i)))))
      yield* Effect.yieldNow()
      yield* lock.release
      yield* Fiber.joinAll(fibers)
      expect(order).toEqual([1, 2, 3])
    }))

  it.effect("a waiter interrupted while queued does not keep the permit from the next", () =>
    Effect.gen(function*() {
      const lock = yield* FairLock.make
      yield* lock.take
      const first = yield* Effect.fork(lock.withPermit(Effect.void))
      const second = yield* Effect.fork(lock.withPermit(Effect.succeed("ran")))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      yield* lock.release
      expect(yield* Fiber.join(second)).toBe("ran")
      // Free again afterwards.
      expect(yield* lock.withPermit(Effect.succeed("free"))).toBe("free")
    }))

  it.effect("a failing holder releases the permit", () =>
    Effect.gen(function*() {
      const lock = yield* FairLock.make
      yield* Effect.exit(lock.withPermit(Effect.fail("boom")))
      expect(yield* lock.withPermit(Effect.succeed("ok"))).toBe("ok")
    }))
})
