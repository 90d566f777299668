import { describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { createHash } from "node:crypto"
import { Checkpoints, Journal, ReadModels } from "@openagents/khala-core"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as HashChain from "../src/HashChain.js"
import * as Projection from "../src/Projection.js"
import * as Runs from "../src/Runs.js"
import { runtimeLayer } from "./support.js"

const alice = { userId: "alice" }
const bob = { userId: "bob" }
let n = 0
const freshRun = () => `run_${Date.now().toString(36)}_${n++}`
const frame = (frameId: string, type = "run.delta", payload: unknown = { text: frameId }) => ({ threadId: "thread_1", frameId, type, payload })
const code = <A, E extends { code: string }, R>(effect: Effect.Effect<A, E, R>) => Effect.map(Effect.flip(effect), (e) => e.code)

for (const engine of SqlTesting.engines()) {
  describe(`runs on ${engine.name}`, () => {
    layer(runtimeLayer(engine.layer), { excludeTestServices: true })((it) => {
      it.effect("ingests frames with dense seqs, replays a duplicate frame idempotently, and refuses a changed one", () =>
        Effect.gen(function*() {
          const runs = yield* Runs.Runs
          const id = freshRun()
          const first = yield* runs.ingestFrame(alice, id, frame("f1", "run.started", { model: "m" }))
          const second = yield* runs.ingestFrame(alice, id, frame("f2"))
          expect([first.seq, second.seq, first.idempotentReplay]).toEqual([1n, 2n, false])
          expect(yield* runs.ingestFrame(alice, id, frame("f2"))).toEqual({ runId: id, frameId: "f2", seq: 2n, idempotentReplay: true })
          expect(yield* code(runs.ingestFrame(alice, id, frame("f2", "run.delta", { text: "changed" })))).toBe("conflict")
          expect(yield* code(runs.ingestFrame(bob, id, frame("f3")))).toBe("forbidden")
          expect(yield* code(runs.ingestFrame(alice, id, { ...frame("f4"), threadId: "other" }))).toBe("conflict")
          expect(yield* code(runs.ingestFrame(alice, id, frame("f5", "Bad Type")))).toBe("invalid_request")
          expect(yield* code(runs.ingestFrame(alice, "bad id!", frame("f6")))).toBe("invalid_request")
          expect(yield* code(runs.ingestFrame(alice, id, frame("f7", "run.delta", { n: Number.NaN })))).toBe("invalid_request")
          expect(yield* code(runs.snapshot(bob, id))).toBe("forbidden")
          expect(yield* code(runs.snapshot(alice, "nope"))).toBe("not_found")
          const snap = yield* runs.snapshot(alice, id)
          expect([snap.status, snap.latestSeq]).toEqual(["running", 2n])
        }))

      it.effect("projects every event into the owner's summary topic in the same transaction, with a checkpoint", () =>
        Effect.gen(function*() {
          const runs = yield* Runs.Runs
          const journal = yield* Journal.Journal
          const readModels = yield* ReadModels.ReadModels
          const checkpoints = yield* Checkpoints.Checkpoints
          const id = freshRun()
          yield* runs.ingestFrame(alice, id, frame("a", "run.started"))
          yield* runs.ingestFrame(alice, id, frame("b", "run.finished", { status: "failed", reason_class: "tool_error", reason: "boom" }))
          const topic = Projection.runTopic("alice")
          const doc = yield* readModels.get(topic, Projection.runDocKey(id))
          const summary = JSON.parse(doc!.payload)
          expect(summary).toMatchObject({ run_id: id, status: "failed", latest_seq: 2, terminal_reason_class: "tool_error", terminal_reason: "boom", owner_user_id: "alice" })
          expect(doc!.docVersion).toBe(2n)
          const events = (yield* journal.read(topic, 0n)).events.filter((e) => e.docKey === Projection.runDocKey(id))
          expect(events.map((e) => e.docVersion)).toEqual([1n, 2n])
          const cp = yield* checkpoints.get(Runs.PROJECTION_NAME, id)
          expect(cp).toMatchObject({ lastRuntimeSeq: 2n, summaryHash: Checkpoints.summaryHash(summary) })
          // After a terminal event the status stays terminal.
          yield* runs.ingestFrame(alice, id, frame("c", "run.delta"))
          expect((yield* runs.snapshot(alice, id)).status).toBe("failed")
          const cancelled = yield* runs.cancel(alice, id, { threadId: "thread_1" })
          expect(cancelled.idempotentReplay).toBe(true)
        }))

      it.effect("cancels a running run once", () =>
        Effect.gen(function*() {
          const runs = yield* Runs.Runs
          const id = freshRun()
          yield* runs.ingestFrame(alice, id, frame("a", "run.started"))
          expect((yield* runs.cancel(alice, id, { threadId: "thread_1", reason: "user" })).idempotentReplay).toBe(false)
          expect((yield* runs.cancel(alice, id, { threadId: "thread_1" })).idempotentReplay).toBe(true)
          expect((yield* runs.snapshot(alice, id)).status).toBe("canceling")
          expect((yield* runs.events(alice, id, 0n, 10)).map((e) => e.eventType)).toEqual(["run.started", "run.cancel_requested"])
        }))

      it.effect("keeps seqs dense and the chain valid under 100 concurrent appends to one run", () =>
        Effect.gen(function*() {
          const runs = yield* Runs.Runs
          const id = freshRun()
          yield* runs.ingestFrame(alice, id, frame("start", "run.started"))
          const results = yield* Effect.all(Array.from({ length: 100 }, (_, i) => runs.ingestFrame(alice, id, frame(`c${i}`))), { concurrency: engine.concurrent ? 20 : 1 })
          expect(results.map((r) => r.seq).sort((a, b) => (a < b ? -1 : 1))).toEqual(Array.from({ length: 100 }, (_, i) => BigInt(i + 2)))
          const verification = yield* runs.verify(id)
          expect(verification.chain.problems).toEqual([])
          expect(verification.chain.count).toBe(101)
          expect(verification.drift).toBe(false)
          const receipt = yield* runs.receipt(alice, id)
          expect(receipt).toMatchObject({ eventCount: 101n, lastSeq: 101n, chainHead: verification.chain.head, projectionVersion: "khala_summary_v1" })
        }))

      it.effect("detects a tampered event and a tampered read model, and repairs the summary by reprojection", () =>
        Effect.gen(function*() {
          const runs = yield* Runs.Runs
          const sql = yield* SqlClient.SqlClient
          const checkpoints = yield* Checkpoints.Checkpoints
          const id = freshRun()
          for (let i = 0; i < 4; i++) yield* runs.ingestFrame(alice, id, frame(`t${i}`, i === 0 ? "run.started" : "run.delta"))
          yield* sql`UPDATE runtime.run_events SET payload = '{"text":"forged"}'::jsonb WHERE run_id = ${id} AND seq = 2`
          expect((yield* runs.verify(id)).chain.problems).toEqual([expect.objectContaining({ kind: "event_hash_mismatch", seq: 2n })])
          yield* sql`UPDATE runtime.run_events SET payload = '{"text":"t1"}'::jsonb WHERE run_id = ${id} AND seq = 2`
          const topic = Projection.runTopic("alice")
          yield* sql`UPDATE runtime.sync_run_summaries SET payload = jsonb_set(payload, '{status}', '"succeeded"') WHERE topic = ${topic} AND doc_key = ${Projection.runDocKey(id)}`
          const drifted = yield* runs.verify(id)
          expect([drifted.summaryMatches, drifted.drift]).toEqual([false, true])
          const parity = yield* checkpoints.parity(Runs.PROJECTION_NAME)
          expect(parity.issues.some((i) => i.kind === "hash_mismatch" && i.checkpoint.entityId === id)).toBe(true)
          expect((yield* runs.reproject(id)).changed).toBe(true)
          expect((yield* runs.verify(id)).drift).toBe(false)
          expect((yield* runs.reproject(id)).changed).toBe(false)
        }))

      it.effect("hash chain is the language-neutral definition (checked against node:crypto)", () =>
        Effect.sync(() => {
          const sha = (s: string) => createHash("sha256").update(s, "utf8").digest("hex")
          const digest = HashChain.payloadHash({ b: 1, a: "x" })
          expect(digest).toBe(sha(`{"a":"x","b":1}`))
          expect(HashChain.eventHash("r", 1n, "run.started", digest, null)).toBe(sha(`r|1|run.started|${digest}|root`))
          expect(HashChain.eventHash("r", 2n, "run.delta", digest, "ab")).toBe(sha(`r|2|run.delta|${digest}|ab`))
        }))
    })
  })
}

const projectionEngine = SqlTesting.engines().at(-1)!
describe(`projection cost on ${projectionEngine.name}`, () => {
  layer(runtimeLayer(projectionEngine.layer), { excludeTestServices: true })((it) => {
    it.effect("projects a run of 10,000 events in time linear in its length (the last thousand cost what the first did)", () =>
      Effect.gen(function*() {
        const runs = yield* Runs.Runs
        const id = freshRun()
        const timeOf = (from: number, to: number) =>
          Effect.gen(function*() {
            const start = performance.now()
            for (let i = from; i < to; i++) yield* runs.ingestFrame(alice, id, frame(`e${i}`, i === 0 ? "run.started" : "run.delta", { i }))
            return performance.now() - start
          })
        const first = yield* timeOf(0, 1000)
        yield* timeOf(1000, 9000)
        const last = yield* timeOf(9000, 10_000)
        expect((yield* runs.snapshot(alice, id)).latestSeq).toBe(10_000n)
        // Quadratic projection (re-reading the history per event) would make the last thousand
        // ~10-19× slower than the first; linear keeps the ratio near 1.
        expect(last / first).toBeLessThan(3)
      }), 300_000)
  })
})
