// The wallet executor's durable ledger of outgoing payments: what makes it idempotent and keeps
// its spend window across restarts and replicas (the upstream executor had neither: [gap]).
//
// A row is written as `submitted` *before* the payment is handed to the node (LIGHTNING.md
// §7.4), so a crash between send and record leaves evidence to reconcile from; it becomes
// `succeeded` or `failed` only on a definitive answer. Invariants every adapter keeps:
// - one row per (wallet, request id): a retried request finds its row (the idempotency key);
// - at most one `submitted` or `succeeded` row per (wallet, payment hash): a hash is paid once;
// - `reserve` is atomic with the window check: the window spend (settled payments created within
//   the window + every submitted payment's amount and fee limit) plus the new payment's amount and
//   fee limit never exceeds the cap, however many callers reserve at once;
// - status moves only submitted → succeeded | failed (a `failed` with code `not_sent`, proven
//   never seen by the node, may be reserved again under the same request id);
// - a lease (owner + expiry) marks the attempt that may send; only a lease holder may send, or
//   conclude "never sent" from the node's 404.
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"

export type PaymentStatus = "submitted" | "succeeded" | "failed"

/** Failure code of a payment the node proved it never saw (safe to send again). */
export const NOT_SENT = "not_sent"

export interface PaymentRecord {
  readonly walletId: string
  readonly requestId: string
  readonly paymentHash: string
  readonly invoice: string
  readonly host: string
  readonly amountMsats: bigint
  readonly feeLimitMsats: bigint
  readonly maxAmountMsats: bigint
  /** Hash of what was asked (invoice, max amount, host): a reused request id must match it. */
  readonly fingerprint: string
  readonly status: PaymentStatus
  readonly feeMsats: bigint | undefined
  readonly preimage: string | undefined
  readonly failureCode: string | undefined
  readonly failureMessage: string | undefined
  readonly createdAtMs: number
  readonly updatedAtMs: number
  readonly settledAtMs: number | undefined
  readonly leaseOwner: string | undefined
  readonly leaseExpiresAtMs: number | undefined
}

export interface ReserveInput {
  readonly walletId: string
  readonly requestId: string
  readonly paymentHash: string
  readonly invoice: string
  readonly host: string
  readonly amountMsats: bigint
  readonly feeLimitMsats: bigint
  readonly maxAmountMsats: bigint
  readonly fingerprint: string
  readonly nowMs: number
  readonly windowMs: number
  readonly windowCapMsats: bigint
  readonly leaseOwner: string
  readonly leaseMs: number
}

export type ReserveResult =
  /** A new (or re-armed not_sent) submitted row, leased to the caller. */
  | { readonly _tag: "Reserved"; readonly record: PaymentRecord; readonly windowSpendMsats: bigint }
  /** The request id is known: the stored row (compare its fingerprint). */
  | { readonly _tag: "Existing"; readonly record: PaymentRecord }
  /** The payment hash is submitted or paid under another request id. */
  | { readonly _tag: "HashActive"; readonly record: PaymentRecord }
  /** Paying would take the window over its cap. */
  | { readonly _tag: "WindowExceeded"; readonly windowSpendMsats: bigint }

export interface WindowSpend {
  readonly spendMsats: bigint
  readonly pendingCount: number
}

export class LedgerError extends Data.TaggedError("LedgerError")<{ readonly operation: string; readonly cause: unknown }> {
  readonly code = "internal_error" as const
  override get message() {
    return `payment ledger failed during ${this.operation}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

export interface PaymentLedgerService {
  readonly reserve: (input: ReserveInput) => Effect.Effect<ReserveResult, LedgerError>
  readonly get: (walletId: string, requestId: string) => Effect.Effect<Option.Option<PaymentRecord>, LedgerError>
  /** submitted → succeeded (no-op on a row that is already terminal); returns the stored row. */
  readonly markSucceeded: (
    walletId: string,
    requestId: string,
    result: { readonly preimage: string; readonly feeMsats: bigint; readonly nowMs: number }
  ) => Effect.Effect<PaymentRecord, LedgerError>
  /** submitted → failed (no-op on a terminal row); returns the stored row. */
  readonly markFailed: (
    walletId: string,
    requestId: string,
    failure: { readonly code: string; readonly message: string; readonly nowMs: number }
  ) => Effect.Effect<PaymentRecord, LedgerError>
  /** Take the lease of a submitted row when it is free, expired, or already ours. */
  readonly claimLease: (walletId: string, requestId: string, owner: string, nowMs: number, leaseMs: number) => Effect.Effect<boolean, LedgerError>
  readonly listSubmitted: (walletId: string) => Effect.Effect<ReadonlyArray<PaymentRecord>, LedgerError>
  readonly windowSpend: (walletId: string, nowMs: number, windowMs: number) => Effect.Effect<WindowSpend, LedgerError>
  /** The most recent rows, newest first. */
  readonly recent: (walletId: string, limit: number) => Effect.Effect<ReadonlyArray<PaymentRecord>, LedgerError>
}

export class PaymentLedger extends Context.Tag("@openagents/lightning/PaymentLedger")<PaymentLedger, PaymentLedgerService>() {}

/** The spend a row counts for in the window at `nowMs` (0 when it does not count). */
export const countedSpend = (record: PaymentRecord, nowMs: number, windowMs: number): bigint => {
  if (record.status === "submitted") return record.amountMsats + record.feeLimitMsats
  if (record.status === "succeeded" && record.createdAtMs > nowMs - windowMs) return record.amountMsats + (record.feeMsats ?? 0n)
  return 0n
}
