// The payment ledger on Postgres or PGlite through @effect/sql. `reserve` runs in one
// transaction that first locks the wallet's row, so the idempotency lookups, the window sum and
// the insert see one serial order across every process sharing the database; the primary key and
// the partial unique index on active payment hashes back the same rules in the schema.
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { PaymentLedgerService, PaymentRecord, PaymentStatus, ReserveResult } from "../PaymentLedger.js"
import { LedgerError, NOT_SENT, PaymentLedger } from "../PaymentLedger.js"
import { migrations, MIGRATIONS_TABLE } from "./migrations.js"

export { migrations, MIGRATIONS_TABLE } from "./migrations.js"

/** Run the ledger migrations (idempotent). */
export const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE })

interface Row {
  readonly wallet_id: string
  readonly request_id: string
  readonly payment_hash: string
  readonly invoice: string
  readonly host: string
  readonly amount_msats: string
  readonly fee_limit_msats: string
  readonly max_amount_msats: string
  readonly fingerprint: string
  readonly status: PaymentStatus
  readonly fee_msats: string | null
  readonly preimage: string | null
  readonly failure_code: string | null
  readonly failure_message: string | null
  readonly created_at_ms: string
  readonly updated_at_ms: string
  readonly settled_at_ms: string | null
  readonly lease_owner: string | null
  readonly lease_expires_at_ms: string | null
}

const toRecord = (r: Row): PaymentRecord => ({
  walletId: r.wallet_id,
  requestId: r.request_id,
  paymentHash: r.payment_hash,
  invoice: r.invoice,
  host: r.host,
  amountMsats: BigInt(r.amount_msats),
  feeLimitMsats: BigInt(r.fee_limit_msats),
  maxAmountMsats: BigInt(r.max_amount_msats),
  fingerprint: r.fingerprint,
  status: r.status,
  feeMsats: r.fee_msats === null ? undefined : BigInt(r.fee_msats),
  preimage: r.preimage ?? undefined,
  failureCode: r.failure_code ?? undefined,
  failureMessage: r.failure_message ?? undefined,
  createdAtMs: Number(r.created_at_ms),
  updatedAtMs: Number(r.updated_at_ms),
  settledAtMs: r.settled_at_ms === null ? undefined : Number(r.settled_at_ms),
  leaseOwner: r.lease_owner ?? undefined,
  leaseExpiresAtMs: r.lease_expires_at_ms === null ? undefined : Number(r.lease_expires_at_ms)
})

export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* migrate
  const fail = (operation: string) => (cause: unknown) => new LedgerError({ operation, cause })

  const spendOf = (walletId: string, nowMs: number, windowMs: number) =>
    sql<{ spend: string; pending: string }>`
      SELECT
        COALESCE(SUM(CASE WHEN status = 'submitted' THEN amount_msats + fee_limit_msats
                          WHEN status = 'succeeded' AND created_at_ms > ${nowMs - windowMs} THEN amount_msats + COALESCE(fee_msats, 0)
                          ELSE 0 END), 0)::text AS spend,
        COUNT(*) FILTER (WHERE status = 'submitted')::text AS pending
      FROM lightning.wallet_payments
      WHERE wallet_id = ${walletId} AND (status = 'submitted' OR created_at_ms > ${nowMs - windowMs})`.pipe(
      Effect.map(([r]) => ({ spendMsats: BigInt(r?.spend ?? "0"), pendingCount: Number(r?.pending ?? "0") }))
    )

  const one = (walletId: string, requestId: string) =>
    sql<Row>`SELECT * FROM lightning.wallet_payments WHERE wallet_id = ${walletId} AND request_id = ${requestId}`.pipe(
      Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toRecord))
    )

  const service: PaymentLedgerService = {
    reserve: (input) =>
      sql.withTransaction(
        Effect.gen(function*() {
          yield* sql`INSERT INTO lightning.wallet_executor_wallets (wallet_id) VALUES (${input.walletId}) ON CONFLICT DO NOTHING`
          yield* sql`SELECT wallet_id FROM lightning.wallet_executor_wallets WHERE wallet_id = ${input.walletId} FOR UPDATE`
          const existing = yield* one(input.walletId, input.requestId)
          const rearm = Option.isSome(existing) && existing.value.status === "failed" && existing.value.failureCode === NOT_SENT &&
            existing.value.fingerprint === input.fingerprint
          if (Option.isSome(existing) && !rearm) return { _tag: "Existing", record: existing.value } satisfies ReserveResult
          const active = yield* sql<Row>`
            SELECT * FROM lightning.wallet_payments
            WHERE wallet_id = ${input.walletId} AND payment_hash = ${input.paymentHash} AND request_id <> ${input.requestId}
              AND status IN ('submitted', 'succeeded')`
          if (active[0] !== undefined) return { _tag: "HashActive", record: toRecord(active[0]) } satisfies ReserveResult
          const { spendMsats } = yield* spendOf(input.walletId, input.nowMs, input.windowMs)
          if (spendMsats + input.amountMsats + input.feeLimitMsats > input.windowCapMsats) {
            return { _tag: "WindowExceeded", windowSpendMsats: spendMsats } satisfies ReserveResult
          }
          const values = {
            payment_hash: input.paymentHash,
            invoice: input.invoice,
            host: input.host,
            amount_msats: input.amountMsats.toString(),
            fee_limit_msats: input.feeLimitMsats.toString(),
            max_amount_msats: input.maxAmountMsats.toString(),
            fingerprint: input.fingerprint,
            status: "submitted",
            fee_msats: null,
            preimage: null,
            failure_code: null,
            failure_message: null,
            created_at_ms: input.nowMs,
            updated_at_ms: input.nowMs,
            settled_at_ms: null,
            lease_owner: input.leaseOwner,
            lease_expires_at_ms: input.nowMs + input.leaseMs
          }
          const rows = rearm
            ? yield* sql<Row>`UPDATE lightning.wallet_payments SET ${sql.update(values)}
                WHERE wallet_id = ${input.walletId} AND request_id = ${input.requestId} RETURNING *`
            : yield* sql<Row>`INSERT INTO lightning.wallet_payments ${sql.insert({ wallet_id: input.walletId, request_id: input.requestId, ...values })} RETURNING *`
          return { _tag: "Reserved", record: toRecord(rows[0]!), windowSpendMsats: spendMsats } satisfies ReserveResult
        })
      ).pipe(Effect.mapError(fail("reserve"))),
    get: (walletId, requestId) => one(walletId, requestId).pipe(Effect.mapError(fail("get"))),
    markSucceeded: (walletId, requestId, result) =>
      sql<Row>`
        UPDATE lightning.wallet_payments
        SET status = 'succeeded', preimage = ${result.preimage}, fee_msats = ${result.feeMsats.toString()},
            settled_at_ms = ${result.nowMs}, updated_at_ms = ${result.nowMs}, lease_owner = NULL, lease_expires_at_ms = NULL
        WHERE wallet_id = ${walletId} AND request_id = ${requestId} AND status = 'submitted'`.pipe(
        Effect.zipRight(one(walletId, requestId)),
        Effect.map(Option.getOrThrowWith(() => new Error(`no payment ${requestId}`))),
        Effect.mapError(fail("markSucceeded"))
      ),
    markFailed: (walletId, requestId, failure) =>
      sql<Row>`
        UPDATE lightning.wallet_payments
        SET status = 'failed', failure_code = ${failure.code}, failure_message = ${failure.message},
            updated_at_ms = ${failure.nowMs}, lease_owner = NULL, lease_expires_at_ms = NULL
        WHERE wallet_id = ${walletId} AND request_id = ${requestId} AND status = 'submitted'`.pipe(
        Effect.zipRight(one(walletId, requestId)),
        Effect.map(Option.getOrThrowWith(() => new Error(`no payment ${requestId}`))),
        Effect.mapError(fail("markFailed"))
      ),
    claimLease: (walletId, requestId, owner, nowMs, leaseMs) =>
      sql<{ request_id: string }>`
        UPDATE lightning.wallet_payments SET lease_owner = ${owner}, lease_expires_at_ms = ${nowMs + leaseMs}
        WHERE wallet_id = ${walletId} AND request_id = ${requestId} AND status = 'submitted'
          AND (lease_owner IS NULL OR lease_owner = ${owner} OR lease_expires_at_ms <= ${nowMs})
        RETURNING request_id`.pipe(Effect.map((rows) => rows.length === 1), Effect.mapError(fail("claimLease"))),
    listSubmitted: (walletId) =>
      sql<Row>`SELECT * FROM lightning.wallet_payments WHERE wallet_id = ${walletId} AND status = 'submitted' ORDER BY created_at_ms, request_id`.pipe(
        Effect.map((rows) => rows.map(toRecord)),
        Effect.mapError(fail("listSubmitted"))
      ),
    windowSpend: (walletId, nowMs, windowMs) => spendOf(walletId, nowMs, windowMs).pipe(Effect.mapError(fail("windowSpend"))),
    recent: (walletId, limit) =>
      sql<Row>`SELECT * FROM lightning.wallet_payments WHERE wallet_id = ${walletId} ORDER BY created_at_ms DESC, request_id DESC LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map(toRecord)),
        Effect.mapError(fail("recent"))
      )
  }
  return service
})

/** The ledger over the SqlClient in context; runs its migrations when built. */
export const layer = Layer.effect(PaymentLedger, make)
