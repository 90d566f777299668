// The Khala tables, in the runtime's Postgres (schema `runtime`), as @effect/sql migrations that
// run unchanged on Postgres and PGlite. Recorded in their own migrations table so that the
// runtime's migrations can share the database.
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export const MIGRATIONS_TABLE = "khala_core_migrations"

const documentTable = (name: string) => `
  CREATE TABLE runtime.${name} (
    topic varchar(160) NOT NULL,
    doc_key varchar(255) NOT NULL,
    doc_version bigint NOT NULL DEFAULT 0 CHECK (doc_version >= 0),
    payload jsonb NOT NULL DEFAULT '{}',
    payload_hash bytea,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, doc_key)
  );
  CREATE INDEX ${name}_updated_at_idx ON runtime.${name} (updated_at);`

export const migrations = {
  "0001_khala_journal": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      CREATE SCHEMA IF NOT EXISTS runtime;

      -- One row: the journal epoch, fixed when the journal is created. Watermarks are only
      -- meaningful together with it (a recreated database gets a new epoch; a restored one too,
      -- through the cluster column of 0002).
      CREATE TABLE runtime.sync_journal_meta (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        epoch text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      INSERT INTO runtime.sync_journal_meta (epoch) VALUES ('ep_' || replace(gen_random_uuid()::text, '-', ''));

      -- Per-topic watermark allocation. next_watermark is the head (last allocated); the row is
      -- updated in the appending transaction and stays locked until it commits, so watermarks
      -- are dense and become visible in commit order. retention_floor: everything at or below
      -- it was pruned.
      CREATE TABLE runtime.sync_topic_sequences (
        topic varchar(160) PRIMARY KEY,
        next_watermark bigint NOT NULL DEFAULT 0 CHECK (next_watermark >= 0),
        retention_floor bigint NOT NULL DEFAULT 0 CHECK (retention_floor >= 0 AND retention_floor <= next_watermark),
        inserted_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      -- The replay journal. payload is canonical JSON text (NULL in pointer mode), so replay
      -- sends stored bytes without re-serialising; payload_bytes is its UTF-8 length.
      CREATE TABLE runtime.sync_stream_events (
        id bigserial PRIMARY KEY,
        topic varchar(160) NOT NULL,
        watermark bigint NOT NULL CHECK (watermark > 0),
        doc_key varchar(255) NOT NULL,
        doc_version bigint NOT NULL CHECK (doc_version >= 0),
        payload text,
        payload_hash bytea,
        payload_bytes integer NOT NULL DEFAULT 0,
        inserted_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT sync_stream_events_topic_watermark_key UNIQUE (topic, watermark)
      );
      CREATE INDEX sync_stream_events_topic_doc_key_idx ON runtime.sync_stream_events (topic, doc_key, watermark);
      CREATE INDEX sync_stream_events_inserted_at_idx ON runtime.sync_stream_events (inserted_at);

      ${documentTable("sync_run_summaries")}
      ${documentTable("sync_codex_worker_summaries")}
      ${documentTable("sync_documents")}

      CREATE TABLE runtime.khala_projection_checkpoints (
        projection_name varchar(120) NOT NULL,
        entity_id varchar(255) NOT NULL,
        document_id varchar(255) NOT NULL,
        topic varchar(160) NOT NULL,
        last_runtime_seq bigint NOT NULL DEFAULT 0,
        projection_version varchar(120) NOT NULL,
        summary_hash varchar(128) NOT NULL,
        last_projected_at timestamptz NOT NULL DEFAULT now(),
        inserted_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (projection_name, entity_id)
      );
      CREATE INDEX khala_projection_checkpoints_seq_idx ON runtime.khala_projection_checkpoints (projection_name, last_runtime_seq);
      CREATE INDEX khala_projection_checkpoints_document_idx ON runtime.khala_projection_checkpoints (document_id);
    `)),

  // The database cluster the epoch belongs to: "<system identifier>:<timeline>". A restore into
  // another cluster (pg_dump into a new one, a PITR or a promoted replica: a new timeline) changes
  // it, and the storage then gives the journal a new epoch (storage/sql.ts).
  "0002_khala_journal_cluster": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`ALTER TABLE runtime.sync_journal_meta ADD COLUMN cluster text;`))
}
