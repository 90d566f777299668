// Khala storage on Postgres through @effect/sql: the same SQL on real Postgres (@effect/sql-pg)
// and on embedded PGlite (@openagents/sql-pglite). Every hot operation is one statement, so it
// is one round trip and one consistent view:
//
// - append: a CTE allocates n watermarks on the topic's sequence row (INSERT … ON CONFLICT DO
//   UPDATE … RETURNING, which locks that row until the enclosing transaction commits) and inserts
//   the n journal rows. Run inside the caller's transaction it commits or rolls back with it;
//   outside one, appends to a topic that arrive while one is in flight are sent together as the
//   next statement (appendGroups.ts: one commit instead of one each, queued on the row lock).
// - publish: the same, preceded by the read-model upsert (guarded so a doc_version never
//   regresses); only accepted documents are journaled. Documents are upserted in doc_key order so
//   that concurrent publishers lock rows in one global order (docs, then the sequence row).
// - read: at most maxRows rows after the cursor, cut at maxBytes, and one more row with the
//   topic's head and floor (UNION ALL), from one statement and so one snapshot. The byte cut is a
//   running sum in SQL, so an oversized batch is never fetched. Watermarks are dense, so the next
//   maxRows events are exactly (after, after + maxRows]: that upper bound keeps each batch's scan
//   to maxRows rows whatever plan the planner picks (without statistics it would bitmap-scan
//   every later event of the topic). The shape is kept plain — one index range scan feeding one
//   window sum, no joins, no outer sort — because node-pg sends unnamed statements and every
//   call is planned again. readMany does the same for several topics in one statement.
// - Events come back with inserted_at as epoch milliseconds: a Date from a number costs far less
//   than parsing timestamptz text for every row.
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
import type { Checkpoint, JournalEvent, KhalaStorageService, PreparedEntry, PublishResult, StoredDocument, StoredRead } from "../Storage.js"
import { KhalaStorage, UPDATE_OVERHEAD_BYTES } from "../Storage.js"
import { eventOf } from "../internal/prepare.js"
import * as AppendGroups from "./appendGroups.js"
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
  /** inserted_at in whole epoch milliseconds (int8 as text): a Date from a number is far cheaper than parsing timestamptz text. */
  readonly inserted_ms: string
}

/** A read's rows: the events, and one row with watermark NULL carrying the topic's head and floor (absent for an unknown topic). */
interface ReadRow extends Omit<EventRow, "watermark"> {
  readonly watermark: string | null
  readonly head: string | null
  readonly floor: string | null
}

/** The event columns every statement returns, as EventRow names them. */
const EVENT_COLUMNS = "watermark, doc_key, doc_version, payload, payload_hash, payload_bytes, floor(extract(epoch FROM inserted_at) * 1000)::int8 AS inserted_ms"
/** now() — the transaction start, which inserted_at defaults to — in the same form. */
const NOW_MS = "floor(extract(epoch FROM now()) * 1000)::int8"

interface DocumentRow {
  readonly doc_key: string
  readonly doc_version: string
  readonly payload: unknown
  readonly payload_hash: Uint8Array | null
  readonly updated_at: Date
}

const textEncoder = new TextEncoder()

const toEvent = (topic: string, row: ReadRow, payloadUtf8: Uint8Array | undefined): JournalEvent => ({
  topic,
  watermark: BigInt(row.watermark!),
  docKey: row.doc_key,
  docVersion: BigInt(row.doc_version),
  payload: row.payload,
  payloadUtf8,
  payloadHash: row.payload_hash,
  payloadBytes: row.payload_bytes,
  insertedAt: new Date(Number(row.inserted_ms))
})


/** Events in watermark order. The statements return them in that order; checking is one pass, sorting only if not. */
const ascending = (events: Array<JournalEvent>) => {
  for (let i = 1; i < events.length; i++) {
    if (events[i - 1]!.watermark > events[i]!.watermark) return events.sort((a, b) => (a.watermark < b.watermark ? -1 : 1))
  }
  return events
}

const EMPTY_READ: StoredRead = { head: 0n, floor: 0n, events: [] }

/** A read's rows (events and the head/floor row, in any order) as a StoredRead. */
const toRead = (topic: string, rows: ReadonlyArray<ReadRow>): StoredRead => {
  let head = 0n
  let floor = 0n
  // The payloads' UTF-8 goes into one buffer per batch, a view per event, rather than a buffer
  // of its own per event: payload_bytes is each payload's UTF-8 length. A row whose text does
  // not fit its payload_bytes (not written by this adapter) gets its own buffer.
  let total = 0
  for (const row of rows) if (row.payload !== null && row.watermark !== null) total += row.payload_bytes
  const utf8 = new Uint8Array(total)
  let offset = 0
  const events: Array<JournalEvent> = []
  for (const row of rows) {
    if (row.watermark === null) {
      head = BigInt(row.head!)
      floor = BigInt(row.floor!)
      continue
    }
    let bytes: Uint8Array | undefined
    if (row.payload !== null) {
      const end = offset + row.payload_bytes
      bytes = utf8.subarray(offset, end)
      const { read, written } = textEncoder.encodeInto(row.payload, bytes)
      if (read !== row.payload.length || written !== bytes.length) bytes = textEncoder.encode(row.payload)
      offset = end
    }
    events.push(toEvent(topic, row, bytes))
  }
  return { head, floor, events: ascending(events) }
}

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

/** What an event costs against a read's byte cap (Storage.ts: payload + doc key + framing). */
const SIZE = `(payload_bytes + octet_length(doc_key) + ${UPDATE_OVERHEAD_BYTES})`

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

/**
 * A journal restored into another cluster, or onto another timeline (PITR, a promoted replica:
 * commits after the backup or the replication point are gone, and their watermarks will be
 * allocated again to other events), gets a new epoch, so that every cursor a client holds of the old
 * history is refused as epoch_mismatch instead of resuming past events it never saw. The cluster
 * is the Postgres system identifier and timeline, compared with the one recorded; the first start
 * after migration 0002 records it without renewing. Run at every storage start (several nodes:
 * the row lock lets one renew). A restore of a logical dump into the same cluster is not visible
 * here: renew by hand (docs/sync/JOURNAL.md).
 */
export const renewEpochIfRestored: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // The timeline of the WAL being written, not pg_control_checkpoint()'s: that one changes only
  // when the first checkpoint after a promotion completes, minutes after the new primary serves.
  // (A standby cannot name its WAL file; it writes nothing, and its checkpoint's timeline is kept.)
  const [current] = yield* sql<{ cluster: string }>`SELECT (SELECT system_identifier::text FROM pg_control_system()) || ':' ||
    CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id::text FROM pg_control_checkpoint())
    ELSE (('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)::text END AS cluster`
  if (current?.cluster == null) return
  yield* sql.withTransaction(Effect.gen(function*() {
    const [meta] = yield* sql<{ epoch: string; cluster: string | null }>`SELECT epoch, cluster FROM runtime.sync_journal_meta FOR UPDATE`
    if (meta === undefined || meta.cluster === current.cluster) return
    if (meta.cluster === null) {
      yield* sql`UPDATE runtime.sync_journal_meta SET cluster = ${current.cluster}`
      return
    }
    yield* sql`UPDATE runtime.sync_journal_meta SET epoch = 'ep_' || replace(gen_random_uuid()::text, '-', ''), cluster = ${current.cluster}`
    yield* Effect.logWarning(
      `khala journal: the database now runs on cluster ${current.cluster}, not ${meta.cluster} (a restore or a failover): ` +
        `new journal epoch; every client resyncs its topics from snapshots`
    )
  }))
})

export const make: Effect.Effect<KhalaStorageService, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* renewEpochIfRestored
  const [meta] = yield* sql<{ epoch: string }>`SELECT epoch FROM runtime.sync_journal_meta`
  if (meta === undefined) return yield* Effect.dieMessage("runtime.sync_journal_meta is empty: run the Khala migrations")
  let epoch = meta.epoch
  // A node that runs across a failover (or a restore under it) learns it here: the server calls
  // this periodically and whenever its LISTEN connection was reopened.
  const refreshEpoch = Effect.gen(function*() {
    yield* renewEpochIfRestored
    const [now] = yield* sql<{ epoch: string }>`SELECT epoch FROM runtime.sync_journal_meta`
    if (now === undefined || now.epoch === epoch) return false
    yield* Effect.logWarning(`khala journal: the epoch is now ${now.epoch} (was ${epoch}): the database was restored or failed over`)
    epoch = now.epoch
    return true
  })
  const readModel = (table: string) => sql(`runtime.${table}`)

  // Append and publish return only what the database decides — the watermarks and the
  // transaction's time (inserted_at defaults to now(), the transaction start) — and build the
  // events from the entries they already hold, instead of reading every payload and hash back.
  const append = (topic: string, entries: ReadonlyArray<PreparedEntry>) => {
    const c = columns(entries)
    return sql<{ head: string; inserted_ms: string }>`
      WITH seq AS (
        INSERT INTO runtime.sync_topic_sequences AS s (topic, next_watermark) VALUES (${topic}, ${entries.length})
        ON CONFLICT (topic) DO UPDATE SET next_watermark = s.next_watermark + EXCLUDED.next_watermark, updated_at = now()
        RETURNING next_watermark
      ),
      journaled AS (
        INSERT INTO runtime.sync_stream_events (topic, watermark, doc_key, doc_version, payload, payload_hash, payload_bytes)
        SELECT ${topic}, seq.next_watermark - ${entries.length} + e.ord, e.doc_key, e.doc_version, e.payload, decode(e.hash_hex, 'hex'), e.payload_bytes
        FROM seq, unnest(${c.keys}::text[], ${c.versions}::bigint[], ${c.payloads}::text[], ${c.hashes}::text[], ${c.bytes}::int[])
          WITH ORDINALITY AS e(doc_key, doc_version, payload, hash_hex, payload_bytes, ord)
      )
      SELECT next_watermark AS head, ${sql.literal(NOW_MS)} AS inserted_ms FROM seq`.pipe(
      Effect.map(([row]) => {
        const first = BigInt(row!.head) - BigInt(entries.length) + 1n
        const insertedAt = new Date(Number(row!.inserted_ms))
        return entries.map((e, i) => eventOf(topic, first + BigInt(i), e, insertedAt))
      })
    )
  }

  const publish = (topic: string, table: string, entries: ReadonlyArray<PreparedEntry>) => {
    const c = columns(entries)
    return sql<{ watermark: string; doc_key: string; inserted_ms: string }>`
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
      RETURNING watermark, doc_key, ${sql.literal(NOW_MS)} AS inserted_ms`.pipe(
      Effect.map((rows) => {
        // Doc keys are unique within a publish batch.
        const byKey = new Map(entries.map((e) => [e.docKey, e]))
        const events = ascending(rows.map((r) => eventOf(topic, BigInt(r.watermark), byKey.get(r.doc_key)!, new Date(Number(r.inserted_ms)))))
        const written = new Set(events.map((e) => e.docKey))
        return { events, skipped: entries.filter((e) => !written.has(e.docKey)).map((e) => e.docKey) }
      })
    )
  }

  // Outside a caller's transaction, concurrent appends to one topic share a statement and a
  // commit (appendGroups.ts); inside one, they must run in that transaction, as they come.
  const grouped = AppendGroups.make(append)
  const inTransaction = Effect.map(Effect.serviceOption(SqlClient.TransactionConnection), (o) => o._tag === "Some")
  const appendAny = (topic: string, entries: ReadonlyArray<PreparedEntry>) =>
    Effect.flatMap(inTransaction, (inside) => (inside ? append(topic, entries) : grouped(topic, entries)))

  const service: KhalaStorageService = {
    get epoch() {
      return epoch
    },
    refreshEpoch: refreshEpoch.pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.mapError(storageError("refresh epoch"))),
    append: (topic, entries) => appendAny(topic.topic, entries).pipe(Effect.mapError(storageError("append"))),
    publish: (topic, entries) => {
      const table = topic.topicClass.readModelTable
      const written: Effect.Effect<PublishResult, SqlError> = table === undefined
        ? Effect.map(appendAny(topic.topic, entries), (events) => ({ events, skipped: [] }))
        : publish(topic.topic, table, entries)
      return written
        .pipe(Effect.mapError(storageError("publish")))
    },
    read: (topic, after, maxRows, maxBytes) =>
      sql<ReadRow>`
        SELECT x.watermark, x.doc_key, x.doc_version, x.payload, x.payload_hash, x.payload_bytes, x.inserted_ms, NULL::int8 AS head, NULL::int8 AS floor
        FROM (
          SELECT ${sql.literal(EVENT_COLUMNS)}, ${sql.literal(SIZE)} AS size, sum(${sql.literal(SIZE)}) OVER (ORDER BY watermark ROWS UNBOUNDED PRECEDING) AS running
          FROM runtime.sync_stream_events
          WHERE topic = ${topic} AND watermark > ${after.toString()}::bigint AND watermark <= ${upperBound(after, maxRows)}::bigint
          ORDER BY watermark
          LIMIT ${maxRows}
        ) x
        WHERE x.running <= ${maxBytes} OR x.running = x.size
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, next_watermark, retention_floor FROM runtime.sync_topic_sequences WHERE topic = ${topic}`.pipe(
        Effect.map((rows) => toRead(topic, rows)),
        Effect.mapError(storageError("read"))
      ),
    readMany: (reads, maxRows, maxBytes) => {
      if (reads.length === 0) return Effect.succeed(new Map())
      const topics = reads.map((r) => r.topic)
      return sql<ReadRow & { topic: string }>`
        SELECT r.topic, x.watermark, x.doc_key, x.doc_version, x.payload, x.payload_hash, x.payload_bytes, x.inserted_ms, NULL::int8 AS head, NULL::int8 AS floor
        FROM unnest(${topics}::text[], ${reads.map((r) => r.after.toString())}::bigint[], ${reads.map((r) => upperBound(r.after, maxRows))}::bigint[]) AS r(topic, after, upto)
        CROSS JOIN LATERAL (
          SELECT ${sql.literal(EVENT_COLUMNS)}, ${sql.literal(SIZE)} AS size, sum(${sql.literal(SIZE)}) OVER (ORDER BY watermark ROWS UNBOUNDED PRECEDING) AS running
          FROM runtime.sync_stream_events e
          WHERE e.topic = r.topic AND e.watermark > r.after AND e.watermark <= r.upto
          ORDER BY e.watermark
          LIMIT ${maxRows}
        ) x
        WHERE x.running <= ${maxBytes} OR x.running = x.size
        UNION ALL
        SELECT topic, NULL, NULL, NULL, NULL, NULL, NULL, NULL, next_watermark, retention_floor FROM runtime.sync_topic_sequences WHERE topic = ANY(${topics}::text[])`.pipe(
        Effect.map((rows) => {
          const byTopic = new Map<string, Array<ReadRow>>()
          for (const row of rows) {
            const list = byTopic.get(row.topic)
            if (list === undefined) byTopic.set(row.topic, [row])
            else list.push(row)
          }
          const out = new Map<string, StoredRead>()
          for (const topic of topics) {
            const list = byTopic.get(topic)
            out.set(topic, list === undefined ? EMPTY_READ : toRead(topic, list))
          }
          return out
        }),
        Effect.mapError(storageError("read many"))
      )
    },
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
    // Two statements in one transaction. The first locks the topic's sequence row, waiting for
    // any appender of the topic to commit; the second then runs on a snapshot taken after the lock
    // (READ COMMITTED: one per statement), so the head it reads and the rows it scans agree, and no
    // append can slip in before the commit. One statement with FOR UPDATE in a CTE did not: after
    // waiting for an appender, the locked row came back at its new head while the event scan kept
    // the statement's older snapshot, so the floor was raised over rows it never saw (or broke the
    // floor ≤ head check).
    pruneBatch: (topic, cutoff, batchSize) =>
      sql.withTransaction(Effect.gen(function*() {
        const locked = yield* sql<{ floor: string }>`
          SELECT retention_floor AS floor FROM runtime.sync_topic_sequences WHERE topic = ${topic} FOR UPDATE`
        if (locked.length === 0) return { pruned: 0, floor: 0n }
        const [row] = yield* sql<{ pruned: string; floor: string }>`
          WITH s AS (
            SELECT retention_floor AS floor, next_watermark AS head FROM runtime.sync_topic_sequences WHERE topic = ${topic}
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
                 COALESCE((SELECT retention_floor FROM raised), (SELECT floor FROM s), 0) AS floor`
        return { pruned: Number(row?.pruned ?? 0), floor: BigInt(row?.floor ?? "0") }
      })).pipe(Effect.mapError(storageError("prune"))),
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
    inTransaction,
    transactionDepth: Effect.map(Effect.serviceOption(SqlClient.TransactionConnection), (o) => (o._tag === "Some" ? o.value[1] : undefined)),
    // In an aborted transaction every statement fails ("current transaction is aborted").
    transactionCheck: sql`SELECT 1`.pipe(Effect.asVoid, Effect.mapError(storageError("transaction check"))),
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
