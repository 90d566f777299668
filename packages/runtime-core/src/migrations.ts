// The runtime's authority tables (schema `runtime`, beside Khala's sync tables, which must be
// migrated first), as @effect/sql migrations that run unchanged on Postgres and PGlite.
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export const MIGRATIONS_TABLE = "runtime_core_migrations"

export const migrations = {
  "0001_runtime_authority": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      CREATE SCHEMA IF NOT EXISTS runtime;

      -- A run, and the running state its events fold into (the summary is derived from this row,
      -- so projecting an event never re-reads the run's history).
      CREATE TABLE runtime.runs (
        run_id varchar(128) PRIMARY KEY,
        thread_id varchar(128) NOT NULL,
        owner_user_id varchar(128) NOT NULL,
        status varchar(32) NOT NULL DEFAULT 'created',
        latest_seq bigint NOT NULL DEFAULT 0,
        latest_event_hash varchar(64),
        latest_event_type varchar(120),
        latest_event_at timestamptz,
        terminal_reason_class varchar(120),
        terminal_reason text,
        terminal_at timestamptz,
        inserted_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX runs_thread_idx ON runtime.runs (thread_id);
      CREATE INDEX runs_owner_idx ON runtime.runs (owner_user_id, updated_at);

      -- The run's events: dense seq per run, hash-chained.
      CREATE TABLE runtime.run_events (
        id bigserial PRIMARY KEY,
        run_id varchar(128) NOT NULL REFERENCES runtime.runs (run_id) ON DELETE CASCADE,
        seq bigint NOT NULL CHECK (seq > 0),
        event_type varchar(120) NOT NULL,
        payload jsonb NOT NULL,
        payload_hash varchar(64) NOT NULL,
        prev_hash varchar(64),
        event_hash varchar(64) NOT NULL,
        inserted_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT run_events_run_seq_key UNIQUE (run_id, seq)
      );

      -- Idempotent ingest: a frame id is accepted once per run.
      CREATE TABLE runtime.run_frames (
        run_id varchar(128) NOT NULL REFERENCES runtime.runs (run_id) ON DELETE CASCADE,
        frame_id varchar(128) NOT NULL,
        frame_type varchar(120) NOT NULL,
        payload_hash varchar(64) NOT NULL,
        seq bigint NOT NULL,
        inserted_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, frame_id)
      );

      CREATE TABLE runtime.codex_workers (
        worker_id varchar(128) PRIMARY KEY,
        owner_user_id varchar(128) NOT NULL,
        workspace_ref varchar(255),
        codex_home_ref varchar(255),
        adapter varchar(64) NOT NULL DEFAULT 'in_memory',
        status varchar(32) NOT NULL DEFAULT 'running',
        metadata jsonb NOT NULL DEFAULT '{}',
        latest_seq bigint NOT NULL DEFAULT 0,
        latest_event_type varchar(120),
        latest_event_at timestamptz,
        started_at timestamptz NOT NULL DEFAULT now(),
        stopped_at timestamptz,
        last_heartbeat_at timestamptz,
        inserted_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX codex_workers_owner_idx ON runtime.codex_workers (owner_user_id, updated_at);

      CREATE TABLE runtime.codex_worker_events (
        id bigserial PRIMARY KEY,
        worker_id varchar(128) NOT NULL REFERENCES runtime.codex_workers (worker_id) ON DELETE CASCADE,
        seq bigint NOT NULL CHECK (seq > 0),
        event_type varchar(120) NOT NULL,
        payload jsonb NOT NULL,
        inserted_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT codex_worker_events_worker_seq_key UNIQUE (worker_id, seq)
      );
    `)),
  "0002_runtime_auth": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      -- Sessions control revoked: bearer tokens (sid) and sync tokens (oa_session_id) of these
      -- sessions are refused until expires_at (longer than any token the session holds), on every
      -- node and across restarts.
      CREATE TABLE runtime.revoked_sessions (
        session_id varchar(256) PRIMARY KEY,
        reason varchar(32) NOT NULL,
        revoked_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX revoked_sessions_expires_at_idx ON runtime.revoked_sessions (expires_at);

      -- Nonces of signed internal requests, shared by every node so a captured request cannot be
      -- replayed against another node within its lifetime.
      CREATE TABLE runtime.internal_nonces (
        nonce varchar(128) PRIMARY KEY,
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX internal_nonces_expires_at_idx ON runtime.internal_nonces (expires_at);
    `)),
  // Devices revoked, remembered like sessions: a node that did not hear the announcement (it
  // started later, or its LISTEN connection was down) still refuses their sync tokens.
  "0003_runtime_revoked_devices": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      CREATE TABLE runtime.revoked_devices (
        device_id varchar(256) PRIMARY KEY,
        reason varchar(32) NOT NULL,
        revoked_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX revoked_devices_expires_at_idx ON runtime.revoked_devices (expires_at);
    `)),
  // A device id is not unique across users (a client that sends none is named after its client):
  // a device is revoked for one user, or for every user ('') when control did not say whose.
  "0004_runtime_revoked_devices_user": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      ALTER TABLE runtime.revoked_devices ADD COLUMN user_id varchar(256) NOT NULL DEFAULT '';
      ALTER TABLE runtime.revoked_devices DROP CONSTRAINT revoked_devices_pkey;
      ALTER TABLE runtime.revoked_devices ADD PRIMARY KEY (device_id, user_id);
    `))
}

/** Run the runtime's migrations (after Khala's, which create the sync tables). */
export const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE })
