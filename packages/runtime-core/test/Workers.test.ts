import { describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Journal, ReadModels, Topic } from "@openagents/khala-core"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Projection from "../src/Projection.js"
import * as Workers from "../src/Workers.js"
import { runtimeLayer } from "./support.js"

const alice = { userId: "alice" }
const bob = { userId: "bob" }
let n = 0
const freshWorker = () => `w_${Date.now().toString(36)}_${n++}`
const code = <A, E extends { code: string }, R>(effect: Effect.Effect<A, E, R>) => Effect.map(Effect.flip(effect), (e) => e.code)

for (const engine of SqlTesting.engines()) {
  describe(`workers on ${engine.name}`, () => {
    layer(runtimeLayer(engine.layer), { excludeTestServices: true })((it) => {
      it.effect("verifies a worker against its event log and repairs a drifted row and summary by reprojection", () =>
        Effect.gen(function*() {
          const workers = yield* Workers.Workers
          const sql = yield* SqlClient.SqlClient
          const id = freshWorker()
          yield* workers.create(alice, { workerId: id, workspaceRef: "repo-v" })
          yield* workers.appendEvent(alice, id, { eventType: "worker.heartbeat" })
          yield* workers.appendEvent(alice, id, { eventType: "worker.output", payload: { line: 1 } })
          yield* workers.stop(alice, id, "done")
          const clean = yield* workers.verify(id)
          expect([clean.eventCount, clean.dense, clean.rowMatches, clean.summaryMatches, clean.drift]).toEqual([4, true, true, true, false])
          expect((yield* workers.reproject(id)).changed).toBe(false)
          // The row says running and the read model says failed: both disagree with the log.
          yield* sql`UPDATE runtime.codex_workers SET status = 'running', stopped_at = NULL WHERE worker_id = ${id}`
          yield* sql`UPDATE runtime.sync_codex_worker_summaries SET payload = jsonb_set(payload, '{status}', '"failed"')
                     WHERE topic = ${Projection.workerTopic("alice")} AND doc_key = ${Projection.workerDocKey(id)}`
          const drifted = yield* workers.verify(id)
          expect([drifted.rowMatches, drifted.summaryMatches, drifted.drift]).toEqual([false, false, true])
          expect(yield* workers.reprojectAll).toMatchObject({ changed: 1 })
          expect((yield* workers.verify(id)).drift).toBe(false)
          expect((yield* workers.get(alice, id)).status).toBe("stopped")
        }))

      it.effect("creates idempotently for the owner, refuses another principal, and reattaches a stopped worker", () =>
        Effect.gen(function*() {
          const workers = yield* Workers.Workers
          const id = freshWorker()
          const created = yield* workers.create(alice, { workerId: id, workspaceRef: "repo-1", metadata: { branch: "main" } })
          expect([created.created, created.idempotentReplay, created.worker.status, created.worker.latestSeq]).toEqual([true, false, "running", 1n])
          const again = yield* workers.create(alice, { workerId: id })
          expect([again.created, again.idempotentReplay]).toEqual([false, true])
          expect(yield* code(workers.create(bob, { workerId: id }))).toBe("forbidden")
          expect(yield* code(workers.get(bob, id))).toBe("forbidden")
          expect((yield* workers.stop(alice, id)).idempotentReplay).toBe(false)
          expect(yield* workers.stop(alice, id)).toEqual({ workerId: id, status: "stopped", idempotentReplay: true })
          expect(yield* code(workers.request(alice, id, { requestId: "r1", method: "thread/start" }))).toBe("conflict")
          expect(yield* code(workers.appendEvent(alice, id, { eventType: "worker.response" }))).toBe("conflict")
          const reattached = yield* workers.create(alice, { workerId: id })
          expect([reattached.worker.status, reattached.idempotentReplay]).toEqual(["running", false])
          expect((yield* workers.events(alice, id, 0n, 10)).map((e) => [e.eventType, (e.payload as any).reason ?? null])).toEqual([
            ["worker.started", "created"],
            ["worker.stopped", "requested"],
            ["worker.started", "reattach"]
          ])
        }))

      it.effect("reports heartbeat state: missing, fresh, stale, stopped", () =>
        Effect.gen(function*() {
          const workers = yield* Workers.Workers
          const id = freshWorker()
          const { worker } = yield* workers.create(alice, { workerId: id })
          expect(worker.heartbeatState).toBe("missing")
          yield* workers.appendEvent(alice, id, { eventType: "worker.heartbeat", payload: {} })
          const fresh = yield* workers.get(alice, id)
          expect(fresh.heartbeatState).toBe("fresh")
          expect(Projection.heartbeatState(fresh, Date.now() + Projection.HEARTBEAT_STALE_AFTER_MS + 1)).toBe("stale")
          yield* workers.stop(alice, id)
          expect((yield* workers.get(alice, id)).heartbeatState).toBe("stopped")
          expect((yield* workers.list(alice, { status: "stopped" })).some((w) => w.workerId === id)).toBe(true)
          expect((yield* workers.list(bob, {})).some((w) => w.workerId === id)).toBe(false)
        }))

      it.effect("projects the worker summary to the owner's topic and every event to the worker's event stream, atomically", () =>
        Effect.gen(function*() {
          const workers = yield* Workers.Workers
          const journal = yield* Journal.Journal
          const readModels = yield* ReadModels.ReadModels
          const id = freshWorker()
          yield* workers.create(alice, { workerId: id })
          yield* workers.request(alice, id, { requestId: "req-1", method: "thread/start", params: { prompt: "hi" } })
          yield* workers.appendEvent(alice, id, { eventType: "worker.response", payload: { request_id: "req-1", ok: true } })
          const doc = yield* readModels.get(Projection.workerTopic("alice"), Projection.workerDocKey(id))
          expect(JSON.parse(doc!.payload)).toMatchObject({ worker_id: id, status: "running", latest_seq: 3, latest_event_type: "worker.response", owner_user_id: "alice" })
          const stream = (yield* journal.read(Projection.workerEventsTopic(id), 0n)).events
          expect(stream.map((e) => [e.watermark, e.docKey])).toEqual([
            [1n, Projection.workerEventDocKey(id, 1n)],
            [2n, Projection.workerEventDocKey(id, 2n)],
            [3n, Projection.workerEventDocKey(id, 3n)]
          ])
          expect(JSON.parse(stream[1]!.payload!)).toMatchObject({ event_type: "worker.request_received", seq: 2, payload: { method: "thread/start" } })
          // The topic is a valid owner-partitioned topic of its class.
          const registry = Topic.makeRegistry(Topic.defaultClasses)
          expect("topicClass" in registry.parse(Projection.workerEventsTopic(id))).toBe(true)
        }))

      it.effect("refuses bad input with typed errors", () =>
        Effect.gen(function*() {
          const workers = yield* Workers.Workers
          const id = freshWorker()
          yield* workers.create(alice, { workerId: id })
          expect(yield* code(workers.create(alice, { workerId: "bad id" }))).toBe("invalid_request")
          expect(yield* code(workers.create(alice, { adapter: "Not Valid" }))).toBe("invalid_request")
          expect(yield* code(workers.appendEvent(alice, id, { eventType: "run.started" }))).toBe("invalid_request")
          expect(yield* code(workers.request(alice, id, { requestId: "", method: "x" }))).toBe("invalid_request")
          expect(yield* code(workers.list(alice, { limit: 500 }))).toBe("invalid_request")
          expect(yield* code(workers.get(alice, "missing"))).toBe("not_found")
        }))
    })
  })
}
