// The wallet executor's tables (schema `lightning`), as @effect/sql migrations that run unchanged
// on Postgres and PGlite, recorded in their own migrations table.
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export const MIGRATIONS_TABLE = "lightning_wallet_migrations"

export const migrations = {
  "0001_wallet_payments": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      CREATE SCHEMA IF NOT EXISTS lightning;

      -- One row per wallet: reserve locks it (SELECT … FOR UPDATE) so that the window check and
      -- the insert of a payment are serialised across processes sharing the database.
      CREATE TABLE lightning.wallet_executor_wallets (
        wallet_id varchar(120) PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE lightning.wallet_payments (
        wallet_id varchar(120) NOT NULL REFERENCES lightning.wallet_executor_wallets (wallet_id),
        request_id varchar(200) NOT NULL,
        payment_hash char(64) NOT NULL,
        invoice text NOT NULL,
        host varchar(255) NOT NULL,
        amount_msats bigint NOT NULL CHECK (amount_msats > 0),
        fee_limit_msats bigint NOT NULL CHECK (fee_limit_msats >= 0),
        max_amount_msats bigint NOT NULL,
        fingerprint char(64) NOT NULL,
        status varchar(16) NOT NULL CHECK (status IN ('submitted', 'succeeded', 'failed')),
        fee_msats bigint,
        preimage char(64),
        failure_code varchar(64),
        failure_message text,
        created_at_ms bigint NOT NULL,
        updated_at_ms bigint NOT NULL,
        settled_at_ms bigint,
        lease_owner varchar(120),
        lease_expires_at_ms bigint,
        PRIMARY KEY (wallet_id, request_id),
        CHECK (status <> 'succeeded' OR fee_msats IS NOT NULL)
      );
      -- A payment hash is pending or paid at most once per wallet (a failed one may be retried).
      CREATE UNIQUE INDEX wallet_payments_active_hash_key ON lightning.wallet_payments (wallet_id, payment_hash)
        WHERE status IN ('submitted', 'succeeded');
      CREATE INDEX wallet_payments_window_idx ON lightning.wallet_payments (wallet_id, created_at_ms);
      CREATE INDEX wallet_payments_submitted_idx ON lightning.wallet_payments (wallet_id) WHERE status = 'submitted';
    `))
}
