// The demo Codex worker adapter (development only, off unless the host enables it): every running
// worker created with adapter "demo" is driven by the runtime itself, which appends a
// `worker.output` line each tick and a `worker.heartbeat` every few seconds — live events for the
// dashboard and the examples without a real Codex process.
//
// Why inside the runtime: the adapter is what a real Codex adapter is, the runtime side of a
// worker. It appends through the Workers service as the worker's owner, so every event takes the
// same path as one posted to /internal/v1/codex/workers/:id/events (same transaction, both Khala
// topics) and needs no credential at all: nothing mints a token on a user's behalf and no signing
// key leaves the runtime. Whoever may create a worker (the dashboard through control's proxy, a
// bearer client, the node-tail example) gets a live one by asking for adapter "demo". Its state
// is the worker rows, so a restarted host simply carries on with the workers still running.
//
// One driver per database: two hosts on one Postgres with the flag on would both append (twice
// the events, never a broken log — each append locks the worker row). Enable it on one host.
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { Workers } from "./Workers.js"

export const ADAPTER = "demo"

export interface Options {
  /** Time between two output lines of each demo worker. */
  readonly intervalMs: number
  /** A heartbeat is appended when the last one is older than this. */
  readonly heartbeatEveryMs?: number | undefined
}

/** What the demo worker "does": a short Codex-like session, repeated. */
export const SCRIPT: ReadonlyArray<string> = [
  "reading AGENTS.md",
  "planning: 3 steps",
  "$ rg --files src | head",
  "editing src/index.ts",
  "$ npm test",
  "tests: 42 passed",
  "waiting for the next request"
]

/** The output line of the `n`-th tick (1-based). */
export const line = (n: number) => `[${n}] ${SCRIPT[(n - 1) % SCRIPT.length]}`

interface DemoRow {
  readonly worker_id: string
  readonly owner_user_id: string
  readonly last_heartbeat_at: Date | string | null
}

/** Append the next events of every running demo worker; the number of workers driven. */
export const tick = (options: Options): Effect.Effect<number, never, SqlClient.SqlClient | Workers> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const workers = yield* Workers
    const heartbeatEveryMs = options.heartbeatEveryMs ?? 5_000
    const rows = yield* sql<DemoRow>`
      SELECT worker_id, owner_user_id, last_heartbeat_at FROM runtime.codex_workers
      WHERE adapter = ${ADAPTER} AND status = 'running' ORDER BY worker_id LIMIT 500`.pipe(
      Effect.catchAll((e) => Effect.as(Effect.logWarning(`demo worker: listing workers failed: ${e.message}`), [] as ReadonlyArray<DemoRow>))
    )
    const now = Date.now()
    yield* Effect.forEach(rows, (row) => {
      const owner = { userId: row.owner_user_id }
      const last = row.last_heartbeat_at === null ? 0 : new Date(row.last_heartbeat_at).getTime()
      const heartbeat = now - last >= heartbeatEveryMs
        ? workers.appendEvent(owner, row.worker_id, { eventType: "worker.heartbeat", payload: { adapter: ADAPTER } })
        : Effect.void
      // Numbered by the seq the line is about to get (exact unless someone else appends meanwhile).
      const output = Effect.flatMap(workers.get(owner, row.worker_id), (w) =>
        workers.appendEvent(owner, row.worker_id, { eventType: "worker.output", payload: { stream: "stdout", text: line(Number(w.latestSeq) + 1) } }))
      return Effect.zipRight(heartbeat, output).pipe(
        // Stopped between the listing and the append: nothing to do.
        Effect.catchIf((e) => e.code === "conflict", () => Effect.void),
        Effect.catchAll((e) => Effect.logWarning(`demo worker ${row.worker_id}: ${e.message}`))
      )
    }, { discard: true })
    return rows.length
  })

/** The driver as a background job of the host's scope. */
export const layer = (options: Options) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      yield* Effect.logInfo(`demo worker adapter on: workers created with adapter "${ADAPTER}" get an output line every ${options.intervalMs} ms`)
      yield* tick(options).pipe(Effect.repeat(Schedule.spaced(Duration.millis(options.intervalMs))), Effect.forkScoped)
    })
  )
