// The control plane's tables, in the control Postgres (schema `control`), as @effect/sql
// migrations that run unchanged on Postgres and PGlite, recorded in their own migrations table.
//
// Times are Unix milliseconds (bigint `*_at_ms`), written by the services from Effect's Clock,
// as in the upstream control-plane JSON. Secrets are never stored: codes as keyed hashes,
// refresh tokens and session cookies as SHA-256.
//
// The L402 tables follow UPSTREAM_SPEC §3.3, with its gaps fixed: deployment ids are not cut at
// 64 characters (lightning-ops sends `dep_reconcile_<up to 90 chars>`), and gateway events keep
// their deployment correlation (deployment_id, config_hash, execution_path).
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export const MIGRATIONS_TABLE = "control_core_migrations"

export const migrations = {
  "0001_control_identity": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      CREATE SCHEMA IF NOT EXISTS control;

      CREATE TABLE control.users (
        id varchar(64) PRIMARY KEY,
        email varchar(255) NOT NULL UNIQUE,
        name varchar(255) NOT NULL DEFAULT '',
        provider varchar(32) NOT NULL,
        provider_user_id varchar(255),
        created_at_ms bigint NOT NULL,
        updated_at_ms bigint NOT NULL
      );

      -- One email-code sign-in in progress. attempts counts code checks; a challenge is live while
      -- consumed_at_ms IS NULL AND attempts < max_attempts AND expires_at_ms > now.
      CREATE TABLE control.auth_challenges (
        id varchar(64) PRIMARY KEY,
        email varchar(255) NOT NULL,
        provider varchar(32) NOT NULL,
        provider_ref varchar(255),
        provider_user_id varchar(255),
        verifier varchar(128),
        attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        max_attempts integer NOT NULL CHECK (max_attempts > 0),
        created_at_ms bigint NOT NULL,
        expires_at_ms bigint NOT NULL,
        consumed_at_ms bigint
      );
      CREATE INDEX auth_challenges_expires_at_idx ON control.auth_challenges (expires_at_ms);

      CREATE TABLE control.sessions (
        id varchar(64) PRIMARY KEY,
        user_id varchar(64) NOT NULL REFERENCES control.users (id),
        device_id varchar(160) NOT NULL,
        client varchar(64) NOT NULL,
        token_name varchar(120) NOT NULL,
        kind varchar(16) NOT NULL CHECK (kind IN ('bearer', 'cookie')),
        created_at_ms bigint NOT NULL,
        last_seen_at_ms bigint NOT NULL,
        expires_at_ms bigint NOT NULL,
        revoked_at_ms bigint,
        revoked_reason varchar(32)
      );
      CREATE INDEX sessions_user_device_idx ON control.sessions (user_id, device_id);

      CREATE TABLE control.refresh_tokens (
        id varchar(64) PRIMARY KEY,
        session_id varchar(64) NOT NULL REFERENCES control.sessions (id),
        token_hash char(64) NOT NULL UNIQUE,
        created_at_ms bigint NOT NULL,
        expires_at_ms bigint NOT NULL,
        rotated_at_ms bigint,
        replaced_by varchar(64),
        revoked_at_ms bigint
      );
      CREATE INDEX refresh_tokens_session_idx ON control.refresh_tokens (session_id);

      -- Fixed-window counters of the sign-in rate limits (replaced by rate_limit_logs in 0004).
      CREATE TABLE control.rate_limits (
        key varchar(320) NOT NULL,
        window_start_ms bigint NOT NULL,
        hits integer NOT NULL,
        PRIMARY KEY (key, window_start_ms)
      );

      -- Session revocations to deliver to the runtime (POST /internal/v1/sync/sessions/revoke).
      -- Written in the transaction that revokes, delivered after commit and retried until the
      -- runtime acknowledges, so a revocation survives a runtime outage and a control restart.
      CREATE TABLE control.runtime_revocations (
        id varchar(64) PRIMARY KEY,
        session_ids jsonb NOT NULL,
        device_ids jsonb NOT NULL,
        reason varchar(32) NOT NULL,
        created_at_ms bigint NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at_ms bigint NOT NULL,
        delivered_at_ms bigint,
        last_error text
      );
      CREATE INDEX runtime_revocations_due_idx ON control.runtime_revocations (next_attempt_at_ms) WHERE delivered_at_ms IS NULL;
    `)),

  "0002_control_l402": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      CREATE TABLE control.l402_paywalls (
        id varchar(64) PRIMARY KEY,
        owner_user_id varchar(64) NOT NULL REFERENCES control.users (id),
        name varchar(120) NOT NULL,
        host_regexp varchar(255) NOT NULL,
        path_regexp varchar(255) NOT NULL,
        price_msats bigint NOT NULL CHECK (price_msats > 0),
        upstream varchar(2048) NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        meta jsonb NOT NULL DEFAULT '{}',
        last_reconcile_status varchar(32),
        last_reconcile_error text,
        last_reconciled_at_ms bigint,
        created_at_ms bigint NOT NULL,
        updated_at_ms bigint NOT NULL,
        deleted_at_ms bigint
      );
      CREATE INDEX l402_paywalls_owner_idx ON control.l402_paywalls (owner_user_id);

      CREATE TABLE control.l402_control_plane_deployments (
        deployment_id varchar(180) PRIMARY KEY,
        paywall_id varchar(180),
        owner_id varchar(180),
        config_hash varchar(255) NOT NULL,
        image_digest varchar(255),
        status varchar(32) NOT NULL,
        diagnostics jsonb NOT NULL DEFAULT '[]',
        metadata jsonb,
        request_id varchar(255),
        applied_at_ms bigint,
        rolled_back_from varchar(180),
        failure_code varchar(64),
        created_at_ms bigint NOT NULL,
        updated_at_ms bigint NOT NULL
      );
      CREATE INDEX l402_deployments_config_hash_idx ON control.l402_control_plane_deployments (config_hash);

      CREATE TABLE control.l402_control_plane_gateway_events (
        event_id varchar(180) PRIMARY KEY,
        paywall_id varchar(180) NOT NULL,
        owner_id varchar(180) NOT NULL,
        event_type varchar(120) NOT NULL,
        level varchar(16) NOT NULL,
        request_id varchar(255),
        metadata jsonb,
        deployment_id varchar(180),
        config_hash varchar(255),
        execution_path varchar(120),
        created_at_ms bigint NOT NULL
      );
      CREATE INDEX l402_gateway_events_deployment_idx ON control.l402_control_plane_gateway_events (deployment_id);
      CREATE INDEX l402_gateway_events_paywall_idx ON control.l402_control_plane_gateway_events (paywall_id, created_at_ms);

      CREATE TABLE control.l402_control_plane_invoices (
        invoice_id varchar(180) PRIMARY KEY,
        paywall_id varchar(180) NOT NULL,
        owner_id varchar(180) NOT NULL,
        amount_msats bigint NOT NULL CHECK (amount_msats >= 0),
        status varchar(32) NOT NULL CHECK (status IN ('open', 'canceled', 'expired', 'settled')),
        payment_hash varchar(255),
        payment_request text,
        payment_proof_ref varchar(255),
        request_id varchar(255),
        settled_at_ms bigint,
        created_at_ms bigint NOT NULL,
        updated_at_ms bigint NOT NULL
      );

      CREATE TABLE control.l402_control_plane_settlements (
        settlement_id varchar(180) PRIMARY KEY,
        paywall_id varchar(180) NOT NULL,
        owner_id varchar(180) NOT NULL,
        invoice_id varchar(180),
        amount_msats bigint NOT NULL CHECK (amount_msats >= 0),
        payment_proof_ref varchar(255) NOT NULL,
        request_id varchar(255),
        metadata jsonb,
        created_at_ms bigint NOT NULL
      );
      CREATE INDEX l402_settlements_invoice_idx ON control.l402_control_plane_settlements (invoice_id);

      CREATE TABLE control.l402_control_plane_security_global (
        state_id varchar(16) PRIMARY KEY CHECK (state_id = 'global'),
        global_pause boolean NOT NULL DEFAULT false,
        deny_reason_code varchar(64),
        deny_reason text,
        updated_by varchar(120),
        updated_at_ms bigint NOT NULL DEFAULT 0
      );
      INSERT INTO control.l402_control_plane_security_global (state_id) VALUES ('global');

      CREATE TABLE control.l402_control_plane_owner_controls (
        owner_id varchar(180) PRIMARY KEY,
        kill_switch boolean NOT NULL DEFAULT false,
        deny_reason_code varchar(64),
        deny_reason text,
        updated_by varchar(120),
        updated_at_ms bigint NOT NULL
      );

      CREATE TABLE control.l402_control_plane_credential_roles (
        role varchar(32) PRIMARY KEY CHECK (role IN ('gateway_invoice', 'settlement_read', 'operator_admin')),
        status varchar(16) NOT NULL CHECK (status IN ('active', 'rotating', 'revoked')),
        version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
        fingerprint varchar(255),
        note text,
        updated_at_ms bigint NOT NULL,
        last_rotated_at_ms bigint,
        revoked_at_ms bigint
      );
    `)),

  // Reconcile outcomes per paywall: a deployment intent names every paywall it serves, and the
  // diagnostics that left a paywall out are kept with its last reconcile status.
  "0003_control_l402_reconcile_per_paywall": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      ALTER TABLE control.l402_paywalls ADD COLUMN last_reconcile_diagnostics jsonb NOT NULL DEFAULT '[]';
      ALTER TABLE control.l402_control_plane_deployments ADD COLUMN paywall_ids jsonb NOT NULL DEFAULT '[]';
    `)),

  // Sign-in rate limits as sliding logs (the allowed hits of the last window per key) instead of
  // fixed one-minute counters, which let twice the limit through across a window boundary.
  "0004_control_rate_limit_logs": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      DROP TABLE control.rate_limits;
      CREATE TABLE control.rate_limit_logs (
        key varchar(320) PRIMARY KEY,
        hits jsonb NOT NULL,
        used_at_ms bigint NOT NULL
      );
      CREATE INDEX rate_limit_logs_used_idx ON control.rate_limit_logs (used_at_ms);
    `)),

  // Reconcile outcomes ordered by when their reconcile started, so a late report of an older
  // reconcile does not overwrite a paywall's newer status. Existing statuses have no start time
  // and give way to the next outcome.
  "0005_control_l402_reconcile_started_at": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      ALTER TABLE control.l402_paywalls ADD COLUMN last_reconcile_started_at_ms bigint;
      ALTER TABLE control.l402_control_plane_deployments ADD COLUMN reconcile_started_at_ms bigint;
    `)),

  // The user a revocation notice is about: the runtime scopes device revocations to that user,
  // because device ids are not unique across users. Older notices have none (every user).
  "0006_control_runtime_revocations_user": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      ALTER TABLE control.runtime_revocations ADD COLUMN user_id varchar(256);
    `))
}
