// Group commit across two runtime instances on one Postgres (needs TEST_DATABASE_URL): each
// instance groups one owner's concurrent writes into one transaction; two such groups that touch
// the same workers in opposite orders must not deadlock (every group locks its workers in sorted
// order before writing, then the owner's summary topic).
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Runs from "../src/Runs.js"
import * as Workers from "../src/Workers.js"
import { runtimeLayer } from "./support.js"

const admin = SqlTesting.postgresUrl()

describe.skipIf(admin === undefined)("group commit on two instances over one Postgres", () => {
  let database: ManagedRuntime.ManagedRuntime<unknown, unknown>
  let a: ManagedRuntime.ManagedRuntime<Workers.Workers | Runs.Runs, unknown>
  let b: ManagedRuntime.ManagedRuntime<Workers.Workers | Runs.Runs, unknown>
  beforeAll(async () => {
    const fresh = SqlTesting.freshPostgres(admin!)
    database = ManagedRuntime.make(fresh.layer) as never
    await database.runtime()
    const client = () => PgClient.layer({ url: Redacted.make(fresh.url), maxConnections: 10 })
    a = ManagedRuntime.make(runtimeLayer(client())) as never
    await a.runtime()
    b = ManagedRuntime.make(runtimeLayer(client())) as never
    await b.runtime()
  }, 60_000)
  afterAll(async () => {
    await a?.dispose()
    await b?.dispose()
    await database?.dispose()
  })

  it("groups touching the same workers in opposite orders all commit (no deadlock)", async () => {
    const owner = { userId: "grouped-owner" }
    const ids = ["w_group_a", "w_group_b", "w_group_c"]
    for (const id of ids) await a.runPromise(Effect.flatMap(Workers.Workers, (w) => w.create(owner, { workerId: id })))
    const burst = (rt: typeof a, order: ReadonlyArray<string>, round: number) =>
      rt.runPromise(Effect.flatMap(Workers.Workers, (w) =>
        Effect.all(
          Array.from({ length: 12 }, (_, i) => w.appendEvent(owner, order[i % order.length]!, { eventType: "worker.output", payload: { round, i } })),
          { concurrency: "unbounded" }
        )))
    for (let round = 0; round < 15; round++) {
      // Postgres reports a deadlock after deadlock_timeout (1 s) by failing one transaction.
      await Promise.all([burst(a, ids, round), burst(b, [...ids].reverse(), round)])
    }
    const verified = await a.runPromise(Effect.flatMap(Workers.Workers, (w) => Effect.forEach(ids, (id) => w.verify(id))))
    expect(verified.map((v) => [v.dense, v.drift])).toEqual(ids.map(() => [true, false]))
    expect(verified.reduce((n, v) => n + v.eventCount, 0)).toBe(3 + 15 * 24)
  }, 60_000)

  it("groups creating and appending to the same new runs in opposite orders all commit", async () => {
    const owner = { userId: "grouped-run-owner" }
    const verified = []
    for (let round = 0; round < 10; round++) {
      const ids = [`run_g${round}_a`, `run_g${round}_b`, `run_g${round}_c`]
      const burst = (rt: typeof a, order: ReadonlyArray<string>, tag: string) =>
        rt.runPromise(Effect.flatMap(Runs.Runs, (r) =>
          Effect.all(
            Array.from({ length: 12 }, (_, i) => r.ingestFrame(owner, order[i % order.length]!, { threadId: "t", frameId: `${tag}${i}`, type: "run.delta", payload: { i } })),
            { concurrency: "unbounded" }
          )))
      await Promise.all([burst(a, ids, "a"), burst(b, [...ids].reverse(), "b")])
      verified.push(...await a.runPromise(Effect.flatMap(Runs.Runs, (r) => Effect.forEach(ids, (id) => r.verify(id)))))
    }
    expect(verified.every((v) => v.chain.problems.length === 0 && !v.drift)).toBe(true)
    expect(verified.reduce((n, v) => n + v.chain.count, 0)).toBe(10 * 24)
  }, 60_000)
})
