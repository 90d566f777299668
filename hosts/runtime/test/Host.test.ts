// The runtime host process, on embedded PGlite and (with TEST_DATABASE_URL) Postgres:
// - crash consistency: kill -9 during a burst of writes to runs and workers, restart, and check
//   that every acknowledged write survived, every committed authority event has exactly one
//   journal entry, and the read models equal a full reprojection;
// - graceful shutdown: SIGTERM closes Khala sockets with 1001 (going away) and exits 0;
// - configuration errors stop the host with a message naming the variable.
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { TestClient, TestServer } from "@openagents/khala-core/testing"
import { PgliteClient } from "@openagents/sql-pglite"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import { Checkpoints, Journal, Notifier, Publisher, ReadModels, SqlStorage } from "@openagents/khala-core"
import { Projection, Runs, Workers } from "@openagents/runtime-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { fill, sh, shellBlock, withoutNpmBanner } from "../../../test/support/docs.js"
import { env, freePort, type HostProcess, signedFetch, startProcess } from "./support.js"

const ADMIN = fileURLToPath(new URL("../src/admin.ts", import.meta.url))
const admin = (database: { dataDir: string } | { url: string }, ...args: Array<string>) => {
  const r = spawnSync(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", ADMIN, ...args], {
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", ...("dataDir" in database ? { DATA_DIR: database.dataDir } : { DATABASE_URL: database.url }) },
    encoding: "utf8",
    timeout: 120_000
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

interface Engine {
  readonly name: string
  readonly database: { dataDir: string } | { url: string }
  /** A client on the same database, opened after the host has stopped (PGlite allows one process). */
  readonly layer: () => Layer.Layer<SqlClient.SqlClient, unknown>
  readonly cleanup: () => Promise<void>
}

const engines = (): Array<Engine> => {
  const dir = mkdtempSync(join(tmpdir(), "oa-runtime-host-"))
  const list: Array<Engine> = [{
    name: "pglite",
    database: { dataDir: join(dir, "runtime") },
    layer: () => PgliteClient.layer({ dataDir: join(dir, "runtime") }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true })
  }]
  const admin = SqlTesting.postgresUrl()
  if (admin !== undefined) {
    const fresh = SqlTesting.freshPostgres(admin)
    // Holds the fresh database open (created on build, dropped on dispose).
    const holder = ManagedRuntime.make(fresh.layer)
    list.push({
      name: "postgres",
      database: { url: fresh.url },
      layer: () => PgClient.layer({ url: Redacted.make(fresh.url), maxConnections: 4 }),
      cleanup: () => holder.dispose()
    })
    void holder.runtime()
  }
  return list
}

/** Runs and workers over a database the host has already migrated. */
const runtimeLayer = (sql: Layer.Layer<SqlClient.SqlClient, unknown>) =>
  Layer.mergeAll(Runs.layer, Workers.layer).pipe(
    Layer.provideMerge(Layer.mergeAll(Checkpoints.layer, ReadModels.layer, Publisher.layer)),
    Layer.provideMerge(Layer.mergeAll(Journal.layer, Notifier.layerMemory)),
    Layer.provideMerge(SqlStorage.layerStorage),
    Layer.provideMerge(sql)
  )

const RUNS = ["crash-run-0", "crash-run-1", "crash-run-2"]
const WORKERS = ["crash-w-0", "crash-w-1"]
const USER = "crash-user"

for (const engine of engines()) {
  describe(`runtime host process (${engine.name})`, () => {
    afterAll(() => engine.cleanup())

    it("survives kill -9 during a write burst: acknowledged writes kept, one journal entry per event, read models equal a reprojection", async () => {
      const ports = { http: await freePort(), khala: await freePort() }
      const environment = env(ports, engine.database)
      const t0 = Date.now()
      let host: HostProcess = await startProcess(environment)
      for (const w of WORKERS) expect((await signedFetch(host.baseUrl, "POST", "/internal/v1/codex/workers", USER, { worker_id: w })).status).toBe(202)

      // A burst from 8 concurrent writers; remember what the host acknowledged.
      const ackedFrames = new Map<string, Set<string>>(RUNS.map((r) => [r, new Set()]))
      const ackedWorkerSeqs = new Map<string, number>(WORKERS.map((w) => [w, 0]))
      let stop = false
      let n = 0
      const writer = async (i: number) => {
        while (!stop) {
          const k = n++
          try {
            if (i % 2 === 0) {
              const run = RUNS[k % RUNS.length]!
              const frameId = `f${k}`
              const r = await signedFetch(host.baseUrl, "POST", `/internal/v1/runs/${run}/frames`, USER, { thread_id: "t", frame_id: frameId, type: "run.delta", payload: { k } })
              if (r.status === 202) ackedFrames.get(run)!.add(frameId)
            } else {
              const w = WORKERS[k % WORKERS.length]!
              const r = await signedFetch(host.baseUrl, "POST", `/internal/v1/codex/workers/${w}/events`, USER, { event: { event_type: "worker.output", payload: { k } } })
              if (r.status === 202) {
                const seq = ((await r.json()) as { data: { seq: number } }).data.seq
                ackedWorkerSeqs.set(w, Math.max(ackedWorkerSeqs.get(w)!, seq))
              }
            }
          } catch {
            // the process died under this request: its outcome is unknown, and that is allowed
          }
        }
      }
      const writers = Array.from({ length: 8 }, (_, i) => writer(i))
      const acked = () => [...ackedFrames.values()].reduce((a, s) => a + s.size, 0)
      const deadline = Date.now() + 30_000
      while (acked() < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      const step = (what: string) => console.log(`[${engine.name}] ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
      step(`killing with ${acked()} acknowledged frames`)
      host.child.kill("SIGKILL")
      await host.exited
      stop = true
      await Promise.all(writers)
      expect(acked()).toBeGreaterThan(0)

      // Restart on the same database: recovery, then every acknowledged write is there.
      step("restarting")
      host = await startProcess(environment)
      step("restarted")
      for (const [run, frames] of ackedFrames) {
        for (const frameId of frames) {
          const replay = await signedFetch(host.baseUrl, "POST", `/internal/v1/runs/${run}/frames`, USER, { thread_id: "t", frame_id: frameId, type: "run.delta", payload: { k: Number(frameId.slice(1)) } })
          expect([run, frameId, replay.status]).toEqual([run, frameId, 200])
        }
      }
      for (const [w, seq] of ackedWorkerSeqs) {
        const snap = (await (await signedFetch(host.baseUrl, "GET", `/internal/v1/codex/workers/${w}/snapshot`, USER)).json()) as { data: { latest_seq: number } }
        expect(snap.data.latest_seq).toBeGreaterThanOrEqual(seq)
      }

      step("acknowledged writes checked")
      // Graceful shutdown: a live Khala socket is told the server is going away, the process exits 0.
      const client = await TestClient.connect(host.khalaUrl)
      await client.hello(await TestServer.token(USER))
      host.child.kill("SIGTERM")
      const [closed, exit] = await Promise.all([client.closed, host.exited])
      expect(closed.code).toBe(1001)
      expect(exit.code).toBe(0)

      step("stopped gracefully")
      // Now look at the database directly.
      const check = ManagedRuntime.make(runtimeLayer(engine.layer()))
      try {
        await check.runPromise(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const runs = yield* Runs.Runs
          const workers = yield* Workers.Workers
          for (const run of RUNS) {
            const [row] = yield* sql<{ latest_seq: string }>`SELECT latest_seq FROM runtime.runs WHERE run_id = ${run}`
            const latest = Number(row!.latest_seq)
            const events = yield* sql<{ seq: string }>`SELECT seq FROM runtime.run_events WHERE run_id = ${run} ORDER BY seq`
            expect(events.map((e) => Number(e.seq))).toEqual(Array.from({ length: latest }, (_, i) => i + 1))
            const journal = yield* sql<{ doc_version: string }>`
              SELECT doc_version FROM runtime.sync_stream_events WHERE topic = ${Projection.runTopic(USER)} AND doc_key = ${Projection.runDocKey(run)} ORDER BY doc_version`
            expect([run, journal.map((j) => Number(j.doc_version))]).toEqual([run, Array.from({ length: latest }, (_, i) => i + 1)])
            expect((yield* runs.verify(run)).drift).toBe(false)
          }
          for (const w of WORKERS) {
            const [row] = yield* sql<{ latest_seq: string }>`SELECT latest_seq FROM runtime.codex_workers WHERE worker_id = ${w}`
            const latest = Number(row!.latest_seq)
            const expected = Array.from({ length: latest }, (_, i) => i + 1)
            const stream = yield* sql<{ doc_version: string }>`
              SELECT doc_version FROM runtime.sync_stream_events WHERE topic = ${Projection.workerEventsTopic(w)} ORDER BY doc_version`
            expect([w, stream.map((j) => Number(j.doc_version))]).toEqual([w, expected])
            const summaries = yield* sql<{ doc_version: string }>`
              SELECT doc_version FROM runtime.sync_stream_events WHERE topic = ${Projection.workerTopic(USER)} AND doc_key = ${Projection.workerDocKey(w)} ORDER BY doc_version`
            expect([w, summaries.map((j) => Number(j.doc_version))]).toEqual([w, expected])
            expect((yield* workers.verify(w)).drift).toBe(false)
          }
          expect(yield* runs.reprojectAll).toEqual({ runs: RUNS.length, changed: 0 })
          expect(yield* workers.reprojectAll).toEqual({ workers: WORKERS.length, changed: 0 })
        }))
      } finally {
        await check.dispose()
      }
    }, 240_000)

    it.skipIf(engine.name !== "pglite")("the admin CLI reports parity, finds a tampered read model, and repairs it by reprojection", async () => {
      // docs/OPERATIONS.md's operator commands, as written, on this database.
      const documented = shellBlock("runtime-admin")
      const runDocumented = async (index: number, values: Record<string, string> = {}) => {
        const ran = await sh(fill(documented.take(index).text, values), { env: "dataDir" in engine.database ? { DATA_DIR: engine.database.dataDir } : { DATABASE_URL: engine.database.url } })
        return { code: ran.code, out: withoutNpmBanner(ran.stdout) }
      }
      const clean = await runDocumented(0)
      expect(clean.code).toBe(0)
      expect(JSON.parse(clean.out).map((r: { checked: number }) => r.checked > 0)).toEqual([true, true])
      const verified = await runDocumented(1, { "<id>": RUNS[0]! })
      expect([verified.code, JSON.parse(verified.out).drift]).toEqual([0, false])
      const check = ManagedRuntime.make(engine.layer())
      await check.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`UPDATE runtime.sync_codex_worker_summaries SET payload = jsonb_set(payload, '{status}', '"failed"')
            WHERE doc_key = ${Projection.workerDocKey(WORKERS[0]!)}`))
      await check.dispose()
      const drift = admin(engine.database, "parity")
      expect(drift.code).toBe(1)
      expect(JSON.parse(drift.out)[1].issues).toEqual([{ kind: "hash_mismatch", entityId: WORKERS[0] }])
      expect(admin(engine.database, "verify", "--worker-id", WORKERS[0]!).code).toBe(1)
      const repaired = await runDocumented(2)
      expect([repaired.code, JSON.parse(repaired.out).workers.changed]).toEqual([0, 1])
      documented.ran()
      expect(admin(engine.database, "parity").code).toBe(0)
      expect(admin(engine.database, "reproject").code).toBe(2)
    }, 240_000)
  })
}

describe("runtime host configuration", () => {
  it("refuses a bad setting with a message naming the variable, before starting anything", async () => {
    const ports = { http: await freePort(), khala: await freePort() }
    const dir = mkdtempSync(join(tmpdir(), "oa-runtime-config-"))
    try {
      const cases: Array<[Record<string, string>, RegExp]> = [
        [{ OA_RUNTIME_SIGNING_KEY: "short" }, /OA_RUNTIME_SIGNING_KEY must be at least 32 characters/],
        [{ OA_SYNC_TOKEN_SIGNING_KEY: "short" }, /OA_SYNC_TOKEN_SIGNING_KEY must be at least 32 characters/],
        [{ OA_KHALA_PORT: String(ports.http) }, /OA_KHALA_PORT must differ from PORT/],
        [{ OA_KHALA_TRANSPORT: "carrier-pigeon" }, /OA_KHALA_TRANSPORT/],
        [{ OA_CONTROL_PUBLIC_URL: "control.test" }, /OA_CONTROL_PUBLIC_URL must be an http\(s\) URL/],
        [{ DATABASE_URL: "mysql://x" }, /DATABASE_URL must be a postgres/]
      ]
      for (const [extra, message] of cases) {
        const environment = env(ports, { dataDir: join(dir, "db") }, extra)
        const start = startProcess(environment, 60_000)
        await expect(start).rejects.toThrow(message)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 180_000)
})
