// The Khala journal benchmark: appends, replay and the growth of resume cost, on real Postgres
// and on embedded PGlite, each figure reported beside `pgbench -N` measured in the same run on
// the same server (the physical reference: what this machine's Postgres commits per second).
//
//   npm run bench --workspace bench          (all suites)
//   node --conditions=@openagents/source --import tsx bench/src/journal.ts
//
// Environment: BENCH_DATABASE_URL (else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
// names a Postgres server and a database to connect to for CREATE/DROP DATABASE; every case runs
// in a throwaway database created here and dropped at the end. BENCH_QUICK=1 shortens every case
// (for checking the script, not for numbers). Without a reachable Postgres or pgbench, only the
// PGlite cases run.
//
// Method (README.md has the discussion):
// - append: WRITERS (8) fibers append for a fixed time through Journal.append (validation,
//   canonical JSON, hashing and the one-statement CTE of SqlStorage), each append its own
//   transaction, with 1 or 100 events per append, on one topic or on 1,000 (a random one per
//   append), over a pool of WRITERS connections. Every topic's sequence row exists before
//   timing; a CHECKPOINT, a warm-up, then a timed run, while pg_stat_activity is sampled.
//   PGlite (one backend) runs the same cases with one writer, and one case with WRITERS fibers.
// - pgbench: `pgbench -i -s 10` once in a fresh database, then a CHECKPOINT and
//   `pgbench -N -c WRITERS -j 2 -T 5` before the first Postgres append case and after each, so
//   every case is bracketed by two pgbench runs; its ratio is against their mean (the machine's
//   speed drifts, and other work on it comes and goes). Other ratios use the mean of all runs.
// - replay: a topic of 100,000 events (PGlite: 20,000) written by Journal.append (200 per
//   append), read from watermark 0 to the head through Journal.read in server-clamped batches
//   (200 rows / 2 MiB): once before the table has planner statistics (autovacuum is off in the
//   throwaway database, and PGlite never runs it), then after ANALYZE (a warm-up pass, then
//   timed passes, median reported), then diagnostic queries that split where the time goes.
// - resume cost: topics of 10,000 and 1,000,000 retained events loaded with one
//   INSERT … SELECT generate_series each; the time to read the last 100 / 1,000 / 10,000 events
//   after a cursor, with the table holding 10k rows and then 1.01M rows, and EXPLAIN (ANALYZE,
//   BUFFERS) of the first read statement of a resume (captured from SqlStorage at run time).
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Statement from "@effect/sql/Statement"
import { Journal, SqlStorage } from "@openagents/khala-core"
import { PgliteClient } from "@openagents/sql-pglite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

// ---------------------------------------------------------------------------------------------
// Configuration (fixed and documented: change it here, not per run)

const QUICK = process.env["BENCH_QUICK"] === "1"
/** Concurrent appenders on Postgres = pgbench clients (-c) = the journal's connection pool size. */
const WRITERS = 8
const PGBENCH = { scale: 10, threads: 2, seconds: QUICK ? 2 : 5 }
const APPEND_PG = { warmupMs: QUICK ? 300 : 1_000, measureMs: QUICK ? 1_000 : 5_000 }
/**
 * PGlite is one backend running one statement at a time: its cases use one writer (a measure of
 * the engine, not of contention), plus one case with WRITERS fibers to show how the client's
 * one-permit semaphore shares the backend among them.
 */
const APPEND_PGLITE = { warmupMs: QUICK ? 300 : 500, measureMs: QUICK ? 1_000 : 3_000 }
const PGLITE_WRITERS = 1
const MANY_TOPICS = 1_000
const MAX_ROWS = 200
const MAX_BYTES = 2 * 1024 * 1024
const REPLAY_PG = { events: QUICK ? 10_000 : 100_000, passes: QUICK ? 1 : 3 }
const REPLAY_PGLITE = { events: QUICK ? 5_000 : 20_000, passes: QUICK ? 1 : 3 }
const GROWTH = { small: 10_000, large: QUICK ? 100_000 : 1_000_000, missed: [100, 1_000, 10_000], reps: QUICK ? 5 : 25 }
/** Goals of the issue. */
const GOAL_APPEND_RATIO = 0.5
const GOAL_REPLAY_EVENTS_PER_S = 150_000
/** Resume after the same number of missed events may cost at most this much more at 1M history than at 10k. */
const GOAL_GROWTH_MAX_RATIO = 1.5

const ADMIN_URL = process.env["BENCH_DATABASE_URL"] ?? process.env["TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const RESULTS = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "results", "journal.json")
const EVENT_CLASS = "runtime.codex_worker_events"
const TEXT = "the quick brown fox jumps over the lazy dog"

// ---------------------------------------------------------------------------------------------
// Helpers

const run = promisify(execFile)
let counter = 0
const uid = () => `${Date.now().toString(36)}${(counter++).toString(36)}`
const topicName = (name: string) => `${EVENT_CLASS}:worker:${name}`

let docSeq = 0
/** `n` events as a caller would append them: a small JSON payload (about 90 bytes canonical). */
const entries = (n: number): Array<Journal.AppendEntry> =>
  Array.from({ length: n }, () => {
    const i = ++docSeq
    return { docKey: `evt:${i}`, docVersion: i, payload: { kind: "codex.delta", seq: i, text: TEXT } }
  })

const median = (xs: ReadonlyArray<number>) => quantile(xs, 0.5)
const quantile = (xs: ReadonlyArray<number>, q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}
const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits
const fmt = (x: number | null | undefined, digits = 0) =>
  x === null || x === undefined || Number.isNaN(x) ? "—" : x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
/** A Markdown table; the first `left` columns are left-aligned, the rest (numbers) right-aligned. */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, left = 1) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  return [line(header), `|${widths.map((w, i) => (i < left ? ` ${"-".repeat(w)} ` : ` ${"-".repeat(w - 1)}: `)).join("|")}|`, ...rows.map(line)].join("\n")
}
const log = (message: string) => Effect.sync(() => console.log(message))

const withDatabase = (url: string, name: string) => {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

const admin = (statement: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(ADMIN_URL), maxConnections: 1 }))
  )

/**
 * CHECKPOINT before each timed write case (pgbench included), so that no case pays for the
 * previous one's dirty buffers: a checkpoint landing in one case and not in another skews the
 * comparison. Needs superuser; skipped silently otherwise.
 */
const checkpoint = Effect.ignore(admin("CHECKPOINT"))

/** A database of its own on the benchmark server, dropped when the scope closes. */
const throwawayDatabase = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => `oa_bench_${prefix}_${process.pid}_${uid()}`).pipe(Effect.tap((name) => admin(`CREATE DATABASE "${name}"`))),
    (name) => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).pipe(Effect.orDie)
  )

/** Which engine and (Postgres) database a case runs on. */
class BenchDatabase extends Context.Tag("bench/BenchDatabase")<BenchDatabase, {
  readonly engine: Engine
  /** The throwaway database's name (Postgres), for pg_stat_activity sampling. */
  readonly name: string | undefined
}>() {}
type Engine = "postgres" | "pglite"

/** Journal + storage (migrated) over a SqlClient layer. */
const journalLayer = <E>(sql: Layer.Layer<SqlClient.SqlClient, E>) =>
  Journal.layer.pipe(Layer.provideMerge(SqlStorage.layerStorage), Layer.provideMerge(sql))

const postgresJournal = (prefix: string) =>
  Layer.unwrapScoped(
    Effect.map(throwawayDatabase(prefix), (name) =>
      journalLayer(PgClient.layer({ url: Redacted.make(withDatabase(ADMIN_URL, name)), maxConnections: WRITERS })).pipe(
        Layer.merge(Layer.succeed(BenchDatabase, { engine: "postgres", name }))
      ))
  )

const pgliteJournal = Layer.unwrapScoped(
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(path.join(os.tmpdir(), "khala-bench-pglite-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    ),
    (dir) => journalLayer(PgliteClient.layer({ dataDir: dir })).pipe(Layer.merge(Layer.succeed(BenchDatabase, { engine: "pglite", name: undefined })))
  )
)

/**
 * Sample what the benchmark database's client backends are doing (pg_stat_activity, every
 * 25 ms, from a connection of its own) while `effect` runs: the share of backend-samples per
 * state — running on CPU, a wait event (Lock:transactionid, IO:WALSync, …), or idle, i.e.
 * waiting for the client to send the next statement.
 */
const withWaitSampling = <A, E, R>(database: string | undefined, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    if (database === undefined) return { result: yield* effect, waits: undefined }
    const counts = new Map<string, number>()
    const sample = Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ w: string; n: string }>`
        SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU (running)')
                    ELSE 'idle (waiting for the client)' END AS w, count(*) AS n
        FROM pg_stat_activity
        WHERE datname = ${database} AND backend_type = 'client backend' AND pid <> pg_backend_pid()
        GROUP BY 1`).pipe(
        Effect.tap((rows) => Effect.sync(() => rows.forEach((r) => counts.set(r.w, (counts.get(r.w) ?? 0) + Number(r.n))))),
        Effect.zipRight(Effect.sleep("25 millis")),
        Effect.forever,
        Effect.provide(PgClient.layer({ url: Redacted.make(ADMIN_URL), maxConnections: 1 }))
      )
    const fiber = yield* Effect.fork(Effect.ignore(sample))
    const result = yield* effect
    yield* Fiber.interrupt(fiber)
    const total = [...counts.values()].reduce((a, b) => a + b, 0)
    const waits = Object.fromEntries([...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round((100 * v) / total, 1)]))
    return { result, waits: waits as Record<string, number> }
  })

const formatWaits = (waits: Record<string, number> | undefined) =>
  waits === undefined ? "" : Object.entries(waits).filter(([, v]) => v >= 3).map(([k, v]) => `${k} ${v}%`).join(", ")

// ---------------------------------------------------------------------------------------------
// pgbench -N

interface PgbenchRun {
  readonly tps: number
  readonly latencyMs: number
  readonly transactions: number
  readonly waits: Record<string, number> | undefined
}

/** A pgbench database for the whole run, initialised once (`pgbench -i -s 10`), dropped at the end. */
const pgbenchDatabase = Effect.gen(function*() {
  const name = yield* throwawayDatabase("pgbench")
  const url = withDatabase(ADMIN_URL, name)
  yield* Effect.promise(() => run("pgbench", ["-i", "-q", "-s", String(PGBENCH.scale), url]))
  return { name, url }
})

/** One `pgbench -N` run (after a CHECKPOINT), with pg_stat_activity sampled meanwhile. */
const pgbench = (db: { readonly name: string; readonly url: string }) =>
  Effect.gen(function*() {
    yield* checkpoint
    const { result: { stdout }, waits } = yield* withWaitSampling(
      db.name,
      Effect.promise(() => run("pgbench", ["-N", "-c", String(WRITERS), "-j", String(PGBENCH.threads), "-T", String(PGBENCH.seconds), db.url]))
    )
    const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1])
    const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1])
    const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1])
    if (!Number.isFinite(tps)) return yield* Effect.dieMessage(`could not read tps from pgbench:\n${stdout}`)
    const result: PgbenchRun = { tps: round(tps), latencyMs, transactions, waits }
    yield* log(`  pgbench -N: ${fmt(result.tps)} tps (latency ${latencyMs} ms)\n    backends: ${formatWaits(waits)}`)
    return result
  })

// ---------------------------------------------------------------------------------------------
// Append

interface AppendResult {
  readonly engine: Engine
  readonly eventsPerTx: number
  readonly topics: number
  readonly writers: number
  readonly seconds: number
  readonly transactions: number
  readonly events: number
  readonly eventsPerSec: number
  readonly txPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Fairness: the fewest and the most appends one writer completed in the timed run. */
  readonly minTxPerWriter: number
  readonly maxTxPerWriter: number
  /** Postgres: share of backend-samples per state during the timed run (pg_stat_activity). */
  readonly waits: Record<string, number> | undefined
  /** Postgres: the mean tps of the pgbench runs just before and just after this case. */
  readonly pgbenchTps?: number | undefined
}

const appendCase = (eventsPerTx: number, topicCount: number, timing: { warmupMs: number; measureMs: number }, writers: number) =>
  Effect.gen(function*() {
    const journal = yield* Journal.Journal
    const db = yield* BenchDatabase
    const id = uid()
    const topics = Array.from({ length: topicCount }, (_, i) => topicName(`a${id}-${i}`))
    // Every sequence row exists before timing: measured appends all take the UPDATE path.
    yield* Effect.forEach(topics, (t) => journal.append(t, entries(1)), { concurrency: WRITERS, discard: true })
    if (db.engine === "postgres") yield* checkpoint
    const timed = (ms: number) =>
      Effect.gen(function*() {
        const latencies: Array<number> = []
        const perWriter = Array.from({ length: writers }, () => 0)
        const start = performance.now()
        const deadline = start + ms
        yield* Effect.forEach(
          perWriter,
          (_, w) =>
            Effect.gen(function*() {
              while (performance.now() < deadline) {
                const topic = topics[topicCount === 1 ? 0 : Math.floor(Math.random() * topicCount)]!
                const batch = entries(eventsPerTx)
                const t0 = performance.now()
                yield* journal.append(topic, batch)
                latencies.push(performance.now() - t0)
                perWriter[w]!++
              }
            }),
          { concurrency: "unbounded", discard: true }
        )
        return { seconds: (performance.now() - start) / 1000, latencies, perWriter }
      })
    yield* timed(timing.warmupMs)
    const { result: { latencies, perWriter, seconds }, waits } = yield* withWaitSampling(db.name, timed(timing.measureMs))
    const transactions = latencies.length
    const events = transactions * eventsPerTx
    const result: AppendResult = {
      engine: db.engine,
      eventsPerTx,
      topics: topicCount,
      writers,
      seconds: round(seconds, 3),
      transactions,
      events,
      eventsPerSec: round(events / seconds),
      txPerSec: round(transactions / seconds),
      p50Ms: round(median(latencies), 2),
      p99Ms: round(quantile(latencies, 0.99), 2),
      maxMs: round(Math.max(...latencies), 1),
      minTxPerWriter: Math.min(...perWriter),
      maxTxPerWriter: Math.max(...perWriter),
      waits
    }
    yield* log(
      `  append ${db.engine}: ${writers} writer(s), ${eventsPerTx}/tx, ${fmt(topicCount)} topic(s): ${fmt(result.eventsPerSec)} events/s (${fmt(result.txPerSec)} tx/s, p50 ${result.p50Ms} ms)` +
        (waits === undefined ? "" : `\n    backends: ${formatWaits(waits)}`)
    )
    return result
  })

/** [events per append, topics] */
const APPEND_CASES: ReadonlyArray<readonly [number, number]> = [[1, 1], [1, MANY_TOPICS], [100, 1], [100, MANY_TOPICS]]

const appendCases = (timing: { warmupMs: number; measureMs: number }, writers: number) =>
  Effect.forEach(APPEND_CASES, ([eventsPerTx, topics]) => appendCase(eventsPerTx, topics, timing, writers))

// ---------------------------------------------------------------------------------------------
// Replay

interface ReplayResult {
  readonly engine: Engine
  /** "analyzed": after ANALYZE; "never analyzed": no planner statistics on the table yet. */
  readonly statistics: "analyzed" | "never analyzed"
  /** What is timed: Journal.read, or a diagnostic query through the SqlClient alone. */
  readonly path: string
  readonly events: number
  readonly batches: number
  readonly passesMs: ReadonlyArray<number>
  readonly medianMs: number
  readonly eventsPerSec: number
  /** How the first batch's statement reaches the journal rows (EXPLAIN ANALYZE), for Journal.read. */
  readonly scan: string | undefined
}

/** Read everything after `after` to the head seen at each read, batch by batch. */
const readToHead = (topic: string, after: bigint) =>
  Effect.gen(function*() {
    const journal = yield* Journal.Journal
    let cursor = after
    let events = 0
    let batches = 0
    for (;;) {
      const batch = yield* journal.read(topic, cursor, { maxRows: MAX_ROWS, maxBytes: MAX_BYTES })
      events += batch.events.length
      batches++
      cursor = batch.next
      if (batch.complete) return { events, batches }
    }
  })

/** The SQL and parameters of the statement Journal.read runs (captured at run time, not copied). */
const captureRead = (topic: string, cursor: bigint) =>
  Effect.gen(function*() {
    const journal = yield* Journal.Journal
    let captured: readonly [string, ReadonlyArray<unknown>] | undefined
    yield* journal.read(topic, cursor, { maxRows: MAX_ROWS, maxBytes: MAX_BYTES }).pipe(
      Statement.withTransformer((statement) => {
        captured = statement.compile()
        return Effect.succeed(statement)
      })
    )
    if (captured === undefined) return yield* Effect.dieMessage("the read statement was not captured")
    return captured
  })

/** Nodes of a JSON plan that read the journal table. */
const journalScans = (plan: any): Array<any> => [
  ...(plan["Relation Name"] === "sync_stream_events" || plan["Index Name"]?.startsWith("sync_stream_events") ? [plan] : []),
  ...((plan.Plans ?? []) as Array<any>).flatMap(journalScans)
]

interface Explained {
  readonly executionMs: number
  readonly planningMs: number
  readonly sharedHitBlocks: number
  readonly sharedReadBlocks: number
  /** e.g. "Index Scan (sync_stream_events_topic_watermark_key): 200 rows". */
  readonly scan: string
  readonly plan: string
}

/** EXPLAIN (ANALYZE, BUFFERS) of exactly the statement Journal.read runs at `cursor`. */
const explainRead = (topic: string, cursor: bigint) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [text, params] = yield* captureRead(topic, cursor)
    const json = yield* sql.unsafe<{ "QUERY PLAN": any }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, params)
    const textPlan = yield* sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${text}`, params)
    const parsed = json[0]?.["QUERY PLAN"]
    const top = (typeof parsed === "string" ? JSON.parse(parsed) : parsed)[0]
    const scan = journalScans(top.Plan).map((n) => `${n["Node Type"]}${n["Index Name"] ? ` (${n["Index Name"]})` : ""}: ${fmt(n["Actual Rows"])} rows`).join(" / ")
    return {
      executionMs: top["Execution Time"],
      planningMs: top["Planning Time"],
      sharedHitBlocks: top.Plan["Shared Hit Blocks"] ?? 0,
      sharedReadBlocks: top.Plan["Shared Read Blocks"] ?? 0,
      scan,
      plan: textPlan.map((r) => r["QUERY PLAN"]).join("\n")
    } satisfies Explained
  })

const timePasses = <E, R>(passes: number, pass: Effect.Effect<{ events: number; batches: number }, E, R>, expected: number) =>
  Effect.gen(function*() {
    const passesMs: Array<number> = []
    let batches = 0
    for (let i = 0; i < passes; i++) {
      const t0 = performance.now()
      const r = yield* pass
      passesMs.push(round(performance.now() - t0, 1))
      if (r.events !== expected) return yield* Effect.dieMessage(`replay read ${r.events} events, expected ${expected}`)
      batches = r.batches
    }
    const medianMs = median(passesMs)
    return { passesMs, medianMs, batches, eventsPerSec: round(expected / (medianMs / 1000)) }
  })

/**
 * Diagnostics for where replay time goes, each reading the same events in batches of MAX_ROWS:
 * the captured read statement through the SqlClient alone (no Journal validation, no row
 * mapping); a plain ordered SELECT of the same columns; the same with inserted_at and payload_hash
 * sent as text (so the client does not parse them into Date and Uint8Array); and the same
 * without those two columns.
 */
const replayDiagnostics = (topic: string, events: number, passes: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const marker = 7n
    const [text, params] = yield* captureRead(topic, marker)
    const at = params.findIndex((p) => String(p) === marker.toString())
    // The statement bounds each batch at after + maxRows (watermarks are dense): move that bound too.
    const upto = params.findIndex((p) => String(p) === (marker + BigInt(MAX_ROWS)).toString())
    const loop = (query: (cursor: string) => Effect.Effect<ReadonlyArray<{ watermark: string }>, any>) =>
      Effect.gen(function*() {
        let cursor = "0"
        let n = 0
        let batches = 0
        for (;;) {
          const rows = (yield* query(cursor)).filter((r) => r.watermark !== null)
          batches++
          n += rows.length
          if (rows.length === 0) return { events: n, batches }
          cursor = rows[rows.length - 1]!.watermark
          if (BigInt(cursor) >= BigInt(events)) return { events: n, batches }
        }
      })
    const cases: Array<[string, (cursor: string) => Effect.Effect<ReadonlyArray<{ watermark: string }>, any>]> = []
    if (at >= 0) {
      cases.push(["read statement via SqlClient (no Journal layer)", (cursor) =>
        sql.unsafe<{ watermark: string }>(text, params.map((p, i) => (i === at ? cursor : i === upto ? (BigInt(cursor) + BigInt(MAX_ROWS)).toString() : p)))])
    }
    cases.push([
      "plain ordered SELECT, same columns",
      (cursor) => sql<{ watermark: string }>`
        SELECT watermark, doc_key, doc_version, payload, payload_hash, payload_bytes, inserted_at FROM runtime.sync_stream_events
        WHERE topic = ${topic} AND watermark > ${cursor}::bigint ORDER BY watermark LIMIT ${MAX_ROWS}`
    ])
    cases.push([
      "plain ordered SELECT, inserted_at and payload_hash as text",
      (cursor) => sql<{ watermark: string }>`
        SELECT watermark, doc_key, doc_version, payload, payload_hash::text, payload_bytes, inserted_at::text FROM runtime.sync_stream_events
        WHERE topic = ${topic} AND watermark > ${cursor}::bigint ORDER BY watermark LIMIT ${MAX_ROWS}`
    ])
    cases.push([
      "plain ordered SELECT, without inserted_at, payload_hash",
      (cursor) => sql<{ watermark: string }>`
        SELECT watermark, doc_key, doc_version, payload, payload_bytes FROM runtime.sync_stream_events
        WHERE topic = ${topic} AND watermark > ${cursor}::bigint ORDER BY watermark LIMIT ${MAX_ROWS}`
    ])
    const out: Array<{ path: string; passesMs: ReadonlyArray<number>; medianMs: number; batches: number; eventsPerSec: number }> = []
    for (const [path, query] of cases) {
      yield* loop(query) // warm-up
      out.push({ path, ...(yield* timePasses(passes, loop(query), events)) })
    }
    return out
  })

const replayCase = (config: { events: number; passes: number }) =>
  Effect.gen(function*() {
    const journal = yield* Journal.Journal
    const sql = yield* SqlClient.SqlClient
    const db = yield* BenchDatabase
    const results: Array<ReplayResult> = []
    const explains: Array<Explained & { statistics: string }> = []
    // Keep the table's statistics where this case puts them (PGlite never runs autovacuum).
    if (db.engine === "postgres") yield* sql`ALTER TABLE runtime.sync_stream_events SET (autovacuum_enabled = false)`
    const topic = topicName(`r${uid()}`)
    for (let written = 0; written < config.events; written += MAX_ROWS) {
      yield* journal.append(topic, entries(Math.min(MAX_ROWS, config.events - written)))
    }
    const add = (statistics: ReplayResult["statistics"], path: string, r: { passesMs: ReadonlyArray<number>; medianMs: number; batches: number; eventsPerSec: number }, scan?: string) => {
      const result: ReplayResult = { engine: db.engine, statistics, path, events: config.events, ...r, scan }
      results.push(result)
      return log(`  replay ${db.engine} (${statistics}), ${path}: ${fmt(config.events)} events in ${r.batches} batches, median ${fmt(r.medianMs, 1)} ms: ${fmt(r.eventsPerSec)} events/s`)
    }
    // 1. As written: no statistics on the table yet (one pass: this can be slow).
    const cold = yield* explainRead(topic, 0n)
    explains.push({ statistics: "never analyzed", ...cold })
    yield* add("never analyzed", "Journal.read", yield* timePasses(1, readToHead(topic, 0n), config.events), cold.scan)
    // 2. After ANALYZE: the steady state of a table autovacuum looks after.
    yield* sql`ANALYZE runtime.sync_stream_events`
    const warm = yield* explainRead(topic, 0n)
    explains.push({ statistics: "analyzed", ...warm })
    yield* readToHead(topic, 0n) // warm-up pass
    yield* add("analyzed", "Journal.read", yield* timePasses(config.passes, readToHead(topic, 0n), config.events), warm.scan)
    for (const d of yield* replayDiagnostics(topic, config.events, config.passes)) yield* add("analyzed", d.path, d)
    return { results, explains }
  })

// ---------------------------------------------------------------------------------------------
// Resume cost against history length

interface GrowthRow {
  readonly history: number
  readonly tableRows: number
  readonly missed: number
  readonly medianMs: number
  readonly p90Ms: number
  readonly usPerEvent: number
}

interface ExplainRow extends Explained {
  readonly history: number
  readonly tableRows: number
  readonly cursor: string
}

/** One INSERT … SELECT: `n` events of a canonical JSON payload, and the topic's head set to n. */
const bulkLoad = (topic: string, n: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      INSERT INTO runtime.sync_stream_events (topic, watermark, doc_key, doc_version, payload, payload_hash, payload_bytes)
      SELECT ${topic}, g, 'evt:' || g, g, p.payload, sha256(convert_to(p.payload, 'UTF8')), octet_length(p.payload)
      FROM generate_series(1, ${n}::bigint) g,
           LATERAL (SELECT '{"kind":"codex.delta","seq":' || g || ',"text":"' || ${TEXT}::text || '"}' AS payload) p`
    yield* sql`
      INSERT INTO runtime.sync_topic_sequences (topic, next_watermark) VALUES (${topic}, ${n})
      ON CONFLICT (topic) DO UPDATE SET next_watermark = EXCLUDED.next_watermark`
    yield* sql.unsafe("VACUUM (ANALYZE) runtime.sync_stream_events")
  })

const tableRows = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: string }>`SELECT count(*) AS n FROM runtime.sync_stream_events`).pipe(
  Effect.map(([r]) => Number(r?.n ?? 0))
)

const timeResume = (topic: string, history: number, rows: number, missed: number) =>
  Effect.gen(function*() {
    const cursor = BigInt(history - missed)
    for (let i = 0; i < 2; i++) yield* readToHead(topic, cursor) // warm-up
    const times: Array<number> = []
    for (let i = 0; i < GROWTH.reps; i++) {
      const t0 = performance.now()
      const r = yield* readToHead(topic, cursor)
      times.push(performance.now() - t0)
      if (r.events !== missed) return yield* Effect.dieMessage(`resume read ${r.events} events, expected ${missed}`)
    }
    const medianMs = median(times)
    return { history, tableRows: rows, missed, medianMs: round(medianMs, 2), p90Ms: round(quantile(times, 0.9), 2), usPerEvent: round((medianMs * 1000) / missed, 2) } satisfies GrowthRow
  })

const explainResume = (topic: string, history: number, rows: number) =>
  Effect.map(explainRead(topic, BigInt(history - 1_000)), (e): ExplainRow => ({ ...e, history, tableRows: rows, cursor: String(history - 1_000) }))

const growthCase = Effect.gen(function*() {
  const small = topicName(`g10k${uid()}`)
  const large = topicName(`g1m${uid()}`)
  const rows: Array<GrowthRow> = []
  const explains: Array<ExplainRow> = []
  let t0 = performance.now()
  yield* bulkLoad(small, GROWTH.small)
  let n = yield* tableRows
  yield* log(`  loaded ${fmt(GROWTH.small)} events in ${fmt(performance.now() - t0)} ms`)
  for (const missed of GROWTH.missed) rows.push(yield* timeResume(small, GROWTH.small, n, missed))
  explains.push(yield* explainResume(small, GROWTH.small, n))
  t0 = performance.now()
  yield* bulkLoad(large, GROWTH.large)
  n = yield* tableRows
  yield* log(`  loaded ${fmt(GROWTH.large)} events in ${fmt(performance.now() - t0)} ms`)
  for (const missed of GROWTH.missed) rows.push(yield* timeResume(small, GROWTH.small, n, missed))
  for (const missed of GROWTH.missed) rows.push(yield* timeResume(large, GROWTH.large, n, missed))
  explains.push(yield* explainResume(small, GROWTH.small, n))
  explains.push(yield* explainResume(large, GROWTH.large, n))
  for (const r of rows) {
    yield* log(`  resume: history ${fmt(r.history)} (table ${fmt(r.tableRows)}), ${fmt(r.missed)} missed: ${fmt(r.medianMs, 2)} ms`)
  }
  return { rows, explains }
})

// ---------------------------------------------------------------------------------------------
// Machine

const postgresInfo = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const settings = yield* sql<{ name: string; setting: string; unit: string | null }>`
    SELECT name, setting, unit FROM pg_settings
    WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'wal_level', 'max_connections')`
  return Object.fromEntries(settings.map((s) => [s.name, s.unit === "8kB" ? `${(Number(s.setting) * 8) / 1024} MiB` : s.setting]))
}).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(ADMIN_URL), maxConnections: 1 })))

const pgliteVersion = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ v: string }>`SELECT current_setting('server_version') AS v`.pipe(Effect.map(([r]) => r?.v ?? "?"))).pipe(
  Effect.provide(PgliteClient.layer({}))
)

const reachable = Effect.gen(function*() {
  const pg = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(ADMIN_URL), maxConnections: 1 })),
    Effect.timeout("5 seconds"),
    Effect.as(true),
    Effect.catchAllCause(() => Effect.succeed(false))
  )
  const bench = yield* Effect.tryPromise(() => run("pgbench", ["--version"])).pipe(
    Effect.map((r) => r.stdout.trim()),
    Effect.orElseSucceed(() => undefined)
  )
  return { pg, pgbenchVersion: bench }
})

// ---------------------------------------------------------------------------------------------
// Main

const main = Effect.gen(function*() {
  const started = performance.now()
  const { pg, pgbenchVersion } = yield* reachable
  const withPostgres = pg && pgbenchVersion !== undefined
  const cpus = os.cpus()
  const machine = {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? "?",
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((x) => round(x, 2)),
    node: process.version,
    postgres: withPostgres ? yield* postgresInfo : undefined,
    pgbench: pgbenchVersion,
    pglitePostgres: yield* pgliteVersion
  }
  yield* log(`khala journal benchmark${QUICK ? " (BENCH_QUICK: shortened, not for numbers)" : ""}`)
  yield* log(`machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}`)
  if (machine.loadAverageAtStart[0]! > 0.5) yield* log("note: the machine is not idle (load average above 0.5): expect noisy figures")
  if (machine.postgres) yield* log(`postgres: ${JSON.stringify(machine.postgres)}`)
  if (!withPostgres) yield* log(`Postgres at ${new URL(ADMIN_URL).host} or pgbench not available: running the PGlite cases only`)

  const pgbenchRuns: Array<PgbenchRun> = []
  const append: Array<AppendResult> = []
  const replay: Array<ReplayResult> = []
  const replayExplains: Array<Explained & { engine: Engine; statistics: string }> = []
  let growth: { rows: Array<GrowthRow>; explains: Array<ExplainRow> } | undefined

  if (withPostgres) {
    yield* Effect.scoped(Effect.gen(function*() {
      yield* log(`pgbench -i -s ${PGBENCH.scale}; each run: pgbench -N -c ${WRITERS} -j ${PGBENCH.threads} -T ${PGBENCH.seconds}, before the first append case and after each`)
      const bench = yield* pgbenchDatabase
      pgbenchRuns.push(yield* pgbench(bench))
      yield* log(`postgres append (${WRITERS} writers, ${APPEND_PG.measureMs / 1000} s each) …`)
      yield* Effect.provide(
        Effect.forEach(APPEND_CASES, ([eventsPerTx, topics]) =>
          Effect.gen(function*() {
            const r = yield* appendCase(eventsPerTx, topics, APPEND_PG, WRITERS)
            const before = pgbenchRuns[pgbenchRuns.length - 1]!
            const after = yield* pgbench(bench)
            pgbenchRuns.push(after)
            append.push({ ...r, pgbenchTps: round((before.tps + after.tps) / 2) })
          }), { discard: true }),
        postgresJournal("append")
      )
    }))
    yield* log("postgres replay …")
    const r = yield* Effect.provide(replayCase(REPLAY_PG), postgresJournal("replay"))
    replay.push(...r.results)
    replayExplains.push(...r.explains.map((e) => ({ engine: "postgres" as const, ...e })))
    yield* log("postgres resume cost against history …")
    growth = yield* Effect.provide(growthCase, postgresJournal("growth"))
  }
  yield* log(`pglite append (${PGLITE_WRITERS} writer, then ${WRITERS} fibers sharing the one backend; ${APPEND_PGLITE.measureMs / 1000} s each) …`)
  append.push(...(yield* Effect.provide(
    Effect.zipWith(appendCases(APPEND_PGLITE, PGLITE_WRITERS), appendCase(1, MANY_TOPICS, APPEND_PGLITE, WRITERS), (a, b) => [...a, b]),
    pgliteJournal
  )))
  yield* log("pglite replay …")
  const r = yield* Effect.provide(replayCase(REPLAY_PGLITE), pgliteJournal)
  replay.push(...r.results)
  replayExplains.push(...r.explains.map((e) => ({ engine: "pglite" as const, ...e })))

  // ---- report
  const baseline = pgbenchRuns.length === 0 ? undefined : pgbenchRuns.reduce((s, r) => s + r.tps, 0) / pgbenchRuns.length
  const ratio = (x: number, against = baseline) => (against === undefined ? null : round(x / against, 3))
  const appendRatio = (r: AppendResult) => ratio(r.eventsPerSec, r.pgbenchTps ?? baseline)
  const out: Array<string> = []
  out.push("", `pgbench -N -c ${WRITERS} -j ${PGBENCH.threads} -T ${PGBENCH.seconds}, scale ${PGBENCH.scale}: ${pgbenchRuns.map((r) => `${fmt(r.tps)}`).join(", ")} tps → mean ${fmt(baseline)} tps`)
  out.push("", [
    `Append (Postgres ${APPEND_PG.measureMs / 1000} s per case, PGlite ${APPEND_PGLITE.measureMs / 1000} s). pgbench tps: Postgres, the mean of the pgbench runs`,
    `just before and just after the case; PGlite, the mean of all runs. × pgbench = events/s ÷ that. tx/writer: fewest … most appends one writer completed.`
  ].join("\n"), "")
  out.push(table(
    ["engine", "writers", "events/tx", "topics", "events/s", "tx/s", "p50 ms", "p99 ms", "max ms", "tx/writer", "pgbench tps", "× pgbench"],
    append.map((r) => [
      r.engine, String(r.writers), String(r.eventsPerTx), fmt(r.topics), fmt(r.eventsPerSec), fmt(r.txPerSec), fmt(r.p50Ms, 2), fmt(r.p99Ms, 2), fmt(r.maxMs, 1),
      `${fmt(r.minTxPerWriter)} … ${fmt(r.maxTxPerWriter)}`, fmt(r.pgbenchTps ?? baseline), fmt(appendRatio(r), 3)
    ])
  ))
  out.push("", "Where Postgres backends were (pg_stat_activity samples during the timed run)", "")
  out.push(table(
    ["run", "backend states"],
    [
      ...pgbenchRuns.map((r, i) => [`pgbench -N (run ${i + 1})`, formatWaits(r.waits)]),
      ...append.filter((r) => r.waits !== undefined).map((r) => [`append ${r.eventsPerTx}/tx, ${fmt(r.topics)} topic(s)`, formatWaits(r.waits)])
    ],
    2
  ))
  out.push("", `Replay (watermark 0 to the head, ${MAX_ROWS} rows / 2 MiB per read; Postgres ${fmt(REPLAY_PG.events)} events, PGlite ${fmt(REPLAY_PGLITE.events)}; median of ${REPLAY_PG.passes} passes, 1 when never analyzed; × pgbench against the mean of all runs)`, "")
  out.push(table(
    ["engine", "statistics", "path", "events", "batches", "median ms", "events/s", "× pgbench"],
    replay.map((r) => [r.engine, r.statistics, r.path, fmt(r.events), fmt(r.batches), fmt(r.medianMs, 1), fmt(r.eventsPerSec), fmt(ratio(r.eventsPerSec), 2)]),
    3
  ))
  out.push("", "EXPLAIN (ANALYZE, BUFFERS) of Journal.read's first batch of the replay (cursor 0)", "")
  out.push(table(
    ["engine", "statistics", "journal scan", "execution ms", "shared hit"],
    replayExplains.map((e) => [e.engine, e.statistics, e.scan, fmt(e.executionMs, 3), fmt(e.sharedHitBlocks)]),
    3
  ))
  if (growth !== undefined) {
    out.push("", `Resume cost (Postgres): read the last N events after a cursor, median of ${GROWTH.reps}`, "")
    out.push(table(
      ["topic history", "table rows", "missed", "median ms", "p90 ms", "µs/event"],
      growth.rows.map((r) => [fmt(r.history), fmt(r.tableRows), fmt(r.missed), fmt(r.medianMs, 2), fmt(r.p90Ms, 2), fmt(r.usPerEvent, 2)])
    ))
    out.push("", "EXPLAIN (ANALYZE, BUFFERS) of the first read of a resume 1,000 events behind the head", "")
    out.push(table(
      ["topic history", "table rows", "journal scan", "execution ms", "planning ms", "shared hit", "shared read"],
      growth.explains.map((e) => [fmt(e.history), fmt(e.tableRows), e.scan, fmt(e.executionMs, 3), fmt(e.planningMs, 3), fmt(e.sharedHitBlocks), fmt(e.sharedReadBlocks)]),
      1
    ))
  }

  // ---- goals
  const goals: Array<{ goal: string; target: string; measured: string; met: boolean | null }> = []
  const find = (engine: string, perTx: number, topics: number) => append.find((r) => r.engine === engine && r.eventsPerTx === perTx && r.topics === topics && r.writers === WRITERS)
  for (const topics of [1, MANY_TOPICS]) {
    const r = find("postgres", 1, topics)
    const x = r === undefined ? null : appendRatio(r)
    goals.push({
      goal: `single-event appends, ${topics} topic(s), Postgres`,
      target: `≥ ${GOAL_APPEND_RATIO} × pgbench tps`,
      measured: x === null ? "not run" : `${fmt(r!.eventsPerSec)} events/s = ${fmt(x, 3)} × pgbench`,
      met: x === null ? null : x >= GOAL_APPEND_RATIO
    })
  }
  const rp = replay.find((r) => r.engine === "postgres" && r.statistics === "analyzed" && r.path === "Journal.read")
  goals.push({
    goal: `replay ${fmt(REPLAY_PG.events)} events, Postgres (analyzed)`,
    target: `≥ ${fmt(GOAL_REPLAY_EVENTS_PER_S)} events/s`,
    measured: rp === undefined ? "not run" : `${fmt(rp.eventsPerSec)} events/s`,
    met: rp === undefined ? null : rp.eventsPerSec >= GOAL_REPLAY_EVENTS_PER_S
  })
  if (growth !== undefined) {
    const largeTable = growth.rows.filter((r) => r.tableRows > GROWTH.large)
    const at = (history: number, missed: number) => largeTable.find((r) => r.history === history && r.missed === missed)?.medianMs ?? NaN
    const growthRatio = at(GROWTH.large, 1_000) / at(GROWTH.small, 1_000)
    const missedRatio = at(GROWTH.large, 10_000) / at(GROWTH.large, 1_000)
    goals.push({
      goal: `resume cost grows with missed events, not history (${fmt(GROWTH.large)} vs ${fmt(GROWTH.small)} retained)`,
      target: `1,000 missed: ≤ ${GOAL_GROWTH_MAX_RATIO} × as long at ${fmt(GROWTH.large)} as at ${fmt(GROWTH.small)}`,
      measured: `${fmt(growthRatio, 2)} × (history ×${fmt(GROWTH.large / GROWTH.small)}); 10× the missed events: ${fmt(missedRatio, 2)} × the time`,
      met: growthRatio <= GOAL_GROWTH_MAX_RATIO
    })
  }
  out.push("", "Goals", "")
  out.push(table(["goal", "target", "measured", "met"], goals.map((g) => [g.goal, g.target, g.measured, g.met === null ? "not run" : g.met ? "yes" : "NO"]), 4))
  const seconds = round((performance.now() - started) / 1000, 1)
  out.push("", `total ${seconds} s`)
  yield* log(out.join("\n"))

  const report = {
    generatedAt: new Date().toISOString(),
    quick: QUICK,
    machine,
    config: {
      writers: WRITERS,
      pgbench: PGBENCH,
      appendPostgres: APPEND_PG,
      appendPglite: APPEND_PGLITE,
      manyTopics: MANY_TOPICS,
      readClamp: { maxRows: MAX_ROWS, maxBytes: MAX_BYTES },
      replayPostgres: REPLAY_PG,
      replayPglite: REPLAY_PGLITE,
      growth: GROWTH,
      payloadExample: JSON.stringify({ kind: "codex.delta", seq: 12345, text: TEXT })
    },
    pgbench: { runs: pgbenchRuns, baselineTps: baseline === undefined ? null : round(baseline) },
    append: append.map((r) => ({ ...r, ratioToPgbench: appendRatio(r) })),
    replay: replay.map((r) => ({ ...r, ratioToPgbench: ratio(r.eventsPerSec) })),
    replayExplains,
    growth: growth ?? null,
    goals,
    loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
    totalSeconds: seconds
  }
  yield* Effect.sync(() => {
    mkdirSync(path.dirname(RESULTS), { recursive: true })
    writeFileSync(RESULTS, `${JSON.stringify(report, null, 2)}\n`)
  })
  yield* log(`wrote ${path.relative(process.cwd(), RESULTS) || RESULTS}`)
})

NodeRuntime.runMain(main)
