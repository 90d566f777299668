// Khala storage on Postgres through @effect/sql: the same SQL on real Postgres (@effect/sql-pg)
// and on embedded PGlite (@openagents/sql-pglite). Every hot operation is one statement, so it
// is one round trip and one consistent view:
//
// - append: a CTE allocates n watermarks on the topic's sequence row (INSERT … ON CONFLICT DO
//   UPDATE … RETURNING, which locks that row until the enclosing transaction commits) and inserts
//   the n journal rows. Run inside the caller's transaction it commits or rolls back with it.
// - publish: the same, preceded by the read-model upsert (guarded so a doc_version never
//   regresses); only accepted documents are journaled. Documents are upserted in doc_key order so
//   that concurrent publishers lock rows in one global order (docs, then the sequence row).
// - read: head, floor and at most maxRows rows after the cursor, cut at maxBytes, from one
//   snapshot; the byte cut is computed in SQL so an oversized batch is never fetched.
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Migrator from "@effect/sql/Migrator"
import { canonicalJson, toHex } from "@openagents/proto/canonical-json"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Checkpoints from "../Checkpoints.js"
import { JournalStorageError } from "../Errors.js"
import * as Journal from "../Journal.js"
import * as ReadModels from "../ReadModels.js"
import * as Retention from "../Retention.js"
import * as Snapshot from "../Snapshot.js"
import type { Position } from "../Staleness.js"
import type { Checkpoint, JournalEvent, KhalaStorageService, PreparedEntry, StoredDocument } from "../Storage.js"
import { KhalaStorage, UPDATE_OVERHEAD_BYTES } from "../Storage.js"
import { MIGRATIONS_TABLE, migrations } from "./migrations.js"

export { migrations, MIGRATIONS_TABLE } from "./migrations.js"

/** Run the Khala migrations (idempotent). */
export const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE })

const storageError = (operation: string) => (cause: unknown) => new JournalStorageError({ operation, cause })

interface EventRow {
  readonly watermark: string
  readonly doc_key: string
  readonly doc_version: string
  readonly payload: string | null
  readonly payload_hash: Uint8Array | null
  readonly payload_bytes: number
  readonly inserted_at: Date
}

interface DocumentRow {
  readonly doc_key: string
  readonly doc_version: string
  readonly payload: unknown
  readonly payload_hash: Uint8Array | null
  readonly updated_at: Date
}

const textEncoder = new TextEncoder()

const toEvent = (topic: string, row: EventRow): JournalEvent => ({
  topic,
  watermark: BigInt(row.watermark),
  docKey: row.doc_key,
  docVersion: BigInt(row.doc_version),
  payload: row.payload,
  payloadUtf8: row.payload === null ? undefined : textEncoder.encode(row.payload),
  payloadHash: row.payload_hash,
  payloadBytes: Number(row.payload_bytes),
  insertedAt: row.inserted_at
})

// Stored documents are re-serialised to canonical JSON from jsonb, so a document reads back
// byte-identical to what was published (and a tampered row no longer matches its hash).
const toDocument = (topic: string, row: DocumentRow): StoredDocument => ({
  topic,
  docKey: row.doc_key,
  docVersion: BigInt(row.doc_version),
  payload: canonicalJson(row.payload),
  payloadHash: row.payload_hash ?? new Uint8Array(),
  updatedAt: row.updated_at
})

const MAX_INT8 = 9223372036854775807n
const upperBound = (after: bigint, maxRows: number) => {
  const bound = after + BigInt(maxRows)
  return (bound > MAX_INT8 ? MAX_INT8 : bound).toString()
}

const columns = (entries: ReadonlyArray<PreparedEntry>) => ({
  keys: entries.map((e) => e.docKey),
  versions: entries.map((e) => e.docVersion.toString()),
  payloads: entries.map((e) => e.payload),
  documents: entries.map((e) => e.document),
  hashes: entries.map((e) => toHex(e.payloadHash)),
  bytes: entries.map((e) => e.payloadBytes)
})

export const make: Effect.Effect<KhalaStorageService, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [meta] = yield* sql<{ epoch: string }>`SELECT epoch FROM runtime.sync_journal_meta`
  if (meta === undefined) return yield* Effect.dieMessage("runtime.sync_journal_meta is empty: run the Khala migrations")
  const readModel = (table: string) => sql(`runtime.${table}`)

  const append = (topic: string, entries: ReadonlyArray<PreparedEntry>) => {
    const c = columns(entries)
    return sql<EventRow>`
      WITH seq AS (
        INSERT INTO runtime.sync_topic_sequences AS s (topic, next_watermark) VALUES (${topic}, ${entries.length})
        ON CONFLICT (topic) DO UPDATE SET next_watermark = s.next_watermark + EXCLUDED.next_watermark, updated_at = now()
        RETURNING next_watermark
      )
      INSERT INTO runtime.sync_stream_events (topic, watermark, doc_key, doc_version, payload, payload_hash, payload_bytes)
      SELECT ${topic}, seq.next_watermark - ${entries.length} + e.ord, e.doc_key, e.doc_version, e.payload, decode(e.hash_hex, 'hex'), e.payload_bytes
      FROM seq, unnest(${c.keys}::text[], ${c.versions}::bigint[], ${c.payloads}::text[], ${c.hashes}::text[], ${c.bytes}::int[])
        WITH ORDINALITY AS e(doc_key, doc_version, payload, hash_hex, payload_bytes, ord)
      RETURNING watermark, doc_key, doc_version, payload, payload_hash, payload_bytes, inserted_at`.pipe(
      Effect.map((rows) => rows.map((r) => toEvent(topic, r)).sort((a, b) => (a.watermark < b.watermark ? -1 : 1)))
    )
  }

  const publish = (topic: string, table: string, entries: ReadonlyArray<PreparedEntry>) => {
    const c = columns(entries)
    return sql<EventRow>`
      WITH input AS (
        SELECT * FROM unnest(${c.keys}::text[], ${c.versions}::bigint[], ${c.payloads}::text[], ${c.documents}::text[], ${c.hashes}::text[], ${c.bytes}::int[])
          WITH ORDINALITY AS e(doc_key, doc_version, payload, document, hash_hex, payload_bytes, ord)
      ),
      upserted AS (
        INSERT INTO ${readModel(table)} AS d (topic, doc_key, doc_version, payload, payload_hash)
        SELECT ${topic}, i.doc_key, i.doc_version, i.document::jsonb, decode(i.hash_hex, 'hex') FROM input i ORDER BY i.doc_key
        ON CONFLICT (topic, doc_key) DO UPDATE
          SET doc_version = EXCLUDED.doc_version, payload = EXCLUDED.payload, payload_hash = EXCLUDED.payload_hash, updated_at = now()
          WHERE d.doc_version <= EXCLUDED.doc_version
        RETURNING d.doc_key
      ),
      accepted AS (
        SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n, count(*) OVER () AS total
        FROM input i JOIN upserted u ON u.doc_key = i.doc_key
      ),
      seq AS (
        INSERT INTO runtime.sync_topic_sequences AS s (topic, next_watermark)
        SELECT ${topic}, count(*) FROM accepted HAVING count(*) > 0
        ON CONFLICT (topic) DO UPDATE SET next_watermark = s.next_watermark + EXCLUDED.next_watermark, updated_at = now()
        RETURNING next_watermark
      )
      INSERT INTO runtime.sync_stream_events (topic, watermark, doc_key, doc_version, payload, payload_hash, payload_bytes)
      SELECT ${topic}, seq.next_watermark - a.total + a.n, a.doc_key, a.doc_version, a.payload, decode(a.hash_hex, 'hex'), a.payload_bytes
      FROM seq, accepted a
      RETURNING watermark, doc_key, doc_version, payload, payload_hash, payload_bytes, inserted_at`.pipe(
      Effect.map((rows) => {
        const events = rows.map((r) => toEvent(topic, r)).sort((a, b) => (a.watermark < b.watermark ? -1 : 1))
        const written = new Set(events.map((e) => e.docKey))
        return { events, skipped: entries.filter((e) => !written.has(e.docKey)).map((e) => e.docKey) }
      })
    )
  }

  const service: KhalaStorageService = {
    epoch: meta.epoch,
    append: (topic, entries) => append(topic.topic, entries).pipe(Effect.mapError(storageError("append"))),
    publish: (topic, entries) => {
      const table = topic.topicClass.readModelTable
      return (table === undefined ? Effect.map(append(topic.topic, entries), (events) => ({ events, skipped: [] })) : publish(topic.topic, table, entries))
        .pipe(Effect.mapError(storageError("publish")))
    },
    read: (topic, after, maxRows, maxBytes) =>
      sql<EventRow & { head: string | null; floor: string | null; watermark: string | null }>`
        SELECT s.next_watermark AS head, s.retention_floor AS floor,
               e.watermark, e.doc_key, e.doc_version, e.payload, e.payload_hash, e.payload_bytes, e.inserted_at
        FROM (SELECT ${topic}::varchar AS topic) t
        LEFT JOIN runtime.sync_topic_sequences s ON s.topic = t.topic
        LEFT JOIN LATERAL (
          SELECT x.*,
                 sum(x.payload_bytes + octet_length(x.doc_key) + ${UPDATE_OVERHEAD_BYTES}) OVER (ORDER BY x.watermark) AS running,
                 row_number() OVER (ORDER BY x.watermark) AS rn
          FROM (
            SELECT watermark, doc_key, doc_version, payload, payload_hash, payload_bytes, inserted_at
            FROM runtime.sync_stream_events
            -- Watermarks are dense, so the next maxRows events are exactly (after, after + maxRows]:
            -- the upper bound keeps each batch's scan to maxRows rows whatever plan the planner
            -- picks (without statistics it would bitmap-scan every later event of the topic).
            WHERE topic = t.topic AND watermark > ${after.toString()}::bigint AND watermark <= ${upperBound(after, maxRows)}::bigint
            ORDER BY watermark
            LIMIT ${maxRows}
          ) x
        ) e ON true
        WHERE e.rn IS NULL OR e.rn = 1 OR e.running <= ${maxBytes}
        ORDER BY e.watermark`.pipe(
        Effect.map((rows) => {
          const first = rows[0]
          return {
            head: first?.head == null ? 0n : BigInt(first.head),
            floor: first?.floor == null ? 0n : BigInt(first.floor),
            events: rows.filter((r) => r.watermark !== null).map((r) => toEvent(topic, r))
          }
        }),
        Effect.mapError(storageError("read"))
      ),
    positions: (topics) =>
      sql<{ topic: string; head: string; floor: string }>`
        SELECT topic, next_watermark AS head, retention_floor AS floor
        FROM runtime.sync_topic_sequences WHERE topic = ANY(${[...topics]}::text[])`.pipe(
        Effect.map((rows) => {
          const out = new Map<string, Position>(topics.map((t) => [t, { head: 0n, floor: 0n }]))
          for (const r of rows) out.set(r.topic, { head: BigInt(r.head), floor: BigInt(r.floor) })
          return out
        }),
        Effect.mapError(storageError("positions"))
      ),
    getDocument: (table, topic, docKey) =>
      sql<DocumentRow>`
        SELECT doc_key, doc_version, payload, payload_hash, updated_at
        FROM ${readModel(table)} WHERE topic = ${topic} AND doc_key = ${docKey}`.pipe(
        Effect.map((rows) => (rows[0] === undefined ? undefined : toDocument(topic, rows[0]))),
        Effect.mapError(storageError("get document"))
      ),
    snapshot: (table, topic) =>
      sql<DocumentRow & { head: string; doc_key: string | null }>`
        SELECT COALESCE(s.next_watermark, 0) AS head, d.doc_key, d.doc_version, d.payload, d.payload_hash, d.updated_at
        FROM (SELECT ${topic}::varchar AS topic) t
        LEFT JOIN runtime.sync_topic_sequences s ON s.topic = t.topic
        LEFT JOIN ${readModel(table)} d ON d.topic = t.topic
        ORDER BY d.doc_key`.pipe(
        Effect.map((rows) => ({
          watermark: BigInt(rows[0]?.head ?? "0"),
          documents: rows.filter((r) => r.doc_key !== null).map((r) => toDocument(topic, r))
        })),
        Effect.mapError(storageError("snapshot"))
      ),
    expiredTopics: (className, cutoff, limit) =>
      sql<{ topic: string }>`
        SELECT s.topic FROM runtime.sync_topic_sequences s
        JOIN runtime.sync_stream_events e ON e.topic = s.topic AND e.watermark = s.retention_floor + 1
        WHERE starts_with(s.topic, ${`${className}:`}) AND e.inserted_at < ${cutoff.toISOString()}::timestamptz
        ORDER BY s.topic LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map((r) => r.topic)),
        Effect.mapError(storageError("expired topics"))
      ),
    pruneBatch: (topic, cutoff, batchSize) =>
      sql<{ pruned: string; floor: string }>`
        WITH s AS (
          SELECT retention_floor AS floor, next_watermark AS head FROM runtime.sync_topic_sequences WHERE topic = ${topic} FOR UPDATE
        ),
        keep AS (
          SELECT min(e.watermark) AS first_kept FROM runtime.sync_stream_events e, s
          WHERE e.topic = ${topic} AND e.watermark > s.floor AND e.watermark <= s.floor + ${batchSize} AND e.inserted_at >= ${cutoff.toISOString()}::timestamptz
        ),
        bound AS (
          SELECT s.floor, LEAST(s.floor + ${batchSize}, COALESCE(keep.first_kept - 1, s.head)) AS upto FROM s, keep
        ),
        deleted AS (
          DELETE FROM runtime.sync_stream_events e USING bound
          WHERE e.topic = ${topic} AND e.watermark > bound.floor AND e.watermark <= bound.upto
          RETURNING 1
        ),
        raised AS (
          UPDATE runtime.sync_topic_sequences q SET retention_floor = GREATEST(q.retention_floor, bound.upto), updated_at = now()
          FROM bound WHERE q.topic = ${topic} AND bound.upto > bound.floor
          RETURNING q.retention_floor
        )
        SELECT (SELECT count(*) FROM deleted) AS pruned,
               COALESCE((SELECT retention_floor FROM raised), (SELECT floor FROM s), 0) AS floor`.pipe(
        Effect.map(([row]) => ({ pruned: Number(row?.pruned ?? 0), floor: BigInt(row?.floor ?? "0") })),
        Effect.mapError(storageError("prune"))
      ),
    getCheckpoint: (projectionName, entityId) =>
      sql<CheckpointRow>`
        SELECT * FROM runtime.khala_projection_checkpoints WHERE projection_name = ${projectionName} AND entity_id = ${entityId}`.pipe(
        Effect.map((rows) => (rows[0] === undefined ? undefined : toCheckpoint(rows[0]))),
        Effect.mapError(storageError("get checkpoint"))
      ),
    putCheckpoint: (cp) =>
      sql`
        INSERT INTO runtime.khala_projection_checkpoints
          (projection_name, entity_id, document_id, topic, last_runtime_seq, projection_version, summary_hash, last_projected_at)
        VALUES (${cp.projectionName}, ${cp.entityId}, ${cp.documentId}, ${cp.topic}, ${cp.lastRuntimeSeq.toString()}, ${cp.projectionVersion}, ${cp.summaryHash}, ${cp.lastProjectedAt.toISOString()}::timestamptz)
        ON CONFLICT (projection_name, entity_id) DO UPDATE SET
          document_id = EXCLUDED.document_id, topic = EXCLUDED.topic, last_runtime_seq = EXCLUDED.last_runtime_seq,
          projection_version = EXCLUDED.projection_version, summary_hash = EXCLUDED.summary_hash,
          last_projected_at = EXCLUDED.last_projected_at, updated_at = now()`.pipe(
        Effect.asVoid,
        Effect.mapError(storageError("put checkpoint"))
      ),
    listCheckpoints: (projectionName, afterEntityId, limit) =>
      sql<CheckpointRow>`
        SELECT * FROM runtime.khala_projection_checkpoints
        WHERE projection_name = ${projectionName} AND entity_id > ${afterEntityId}
        ORDER BY entity_id LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map(toCheckpoint)),
        Effect.mapError(storageError("list checkpoints"))
      ),
    inTransaction: Effect.map(Effect.serviceOption(SqlClient.TransactionConnection), (o) => o._tag === "Some"),
    // Nested inside a caller's transaction this is a savepoint, so a failed block is undone
    // without aborting the caller.
    transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(effect).pipe(
        Effect.catchIf(
          (e): e is SqlError => e instanceof SqlError,
          (e) => Effect.fail(new JournalStorageError({ operation: "transaction", cause: e }))
        )
      ) as Effect.Effect<A, E | JournalStorageError, R>
  }
  return service
})

interface CheckpointRow {
  readonly projection_name: string
  readonly entity_id: string
  readonly document_id: string
  readonly topic: string
  readonly last_runtime_seq: string
  readonly projection_version: string
  readonly summary_hash: string
  readonly last_projected_at: Date
}

const toCheckpoint = (r: CheckpointRow): Checkpoint => ({
  projectionName: r.projection_name,
  entityId: r.entity_id,
  documentId: r.document_id,
  topic: r.topic,
  lastRuntimeSeq: BigInt(r.last_runtime_seq),
  projectionVersion: r.projection_version,
  summaryHash: r.summary_hash,
  lastProjectedAt: r.last_projected_at
})

/** The storage alone (migrations run first). */
export const layerStorage: Layer.Layer<KhalaStorage, SqlError | Migrator.MigrationError, SqlClient.SqlClient> = Layer.effect(
  KhalaStorage,
  Effect.zipRight(migrate, make)
)

/** Every Khala port over the SqlClient in context (Postgres or PGlite); runs the migrations. */
export const layer = Layer.mergeAll(Snapshot.layer, Retention.layer, Checkpoints.layer, ReadModels.layer).pipe(
  Layer.provideMerge(Journal.layer),
  Layer.provideMerge(layerStorage)
)
