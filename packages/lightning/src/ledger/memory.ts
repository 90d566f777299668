// The payment ledger in memory, for tests and embedding. Each operation is one synchronous
// step, so reserve's check-and-insert is atomic without a lock. Nothing survives the process:
// production executors use the SQL ledger.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { PaymentLedgerService, PaymentRecord, ReserveResult } from "../PaymentLedger.js"
import { countedSpend, NOT_SENT, PaymentLedger } from "../PaymentLedger.js"

export const make = Effect.sync((): PaymentLedgerService => {
  const rows = new Map<string, PaymentRecord>()
  const key = (walletId: string, requestId: string) => `${walletId}\u0000${requestId}`
  const ofWallet = (walletId: string) => [...rows.values()].filter((r) => r.walletId === walletId)
  const spend = (walletId: string, nowMs: number, windowMs: number) =>
    ofWallet(walletId).reduce((sum, r) => sum + countedSpend(r, nowMs, windowMs), 0n)
  const update = (walletId: string, requestId: string, change: (r: PaymentRecord) => PaymentRecord | undefined) =>
    Effect.sync(() => {
      const row = rows.get(key(walletId, requestId))
      if (row === undefined) throw new Error(`no payment ${requestId} in wallet ${walletId}`)
      const next = change(row)
      if (next !== undefined) rows.set(key(walletId, requestId), next)
      return next ?? row
    }).pipe(Effect.orDie)

  return {
    reserve: (input) =>
      Effect.sync((): ReserveResult => {
        const existing = rows.get(key(input.walletId, input.requestId))
        const rearm = existing?.status === "failed" && existing.failureCode === NOT_SENT && existing.fingerprint === input.fingerprint
        if (existing !== undefined && !rearm) return { _tag: "Existing", record: existing }
        const active = ofWallet(input.walletId).find(
          (r) => r.paymentHash === input.paymentHash && r.requestId !== input.requestId && (r.status === "submitted" || r.status === "succeeded")
        )
        if (active !== undefined) return { _tag: "HashActive", record: active }
        const windowSpendMsats = spend(input.walletId, input.nowMs, input.windowMs)
        if (windowSpendMsats + input.amountMsats + input.feeLimitMsats > input.windowCapMsats) return { _tag: "WindowExceeded", windowSpendMsats }
        const record: PaymentRecord = {
          walletId: input.walletId,
          requestId: input.requestId,
          paymentHash: input.paymentHash,
          invoice: input.invoice,
          host: input.host,
          amountMsats: input.amountMsats,
          feeLimitMsats: input.feeLimitMsats,
          maxAmountMsats: input.maxAmountMsats,
          fingerprint: input.fingerprint,
          status: "submitted",
          feeMsats: undefined,
          preimage: undefined,
          failureCode: undefined,
          failureMessage: undefined,
          createdAtMs: input.nowMs,
          updatedAtMs: input.nowMs,
          settledAtMs: undefined,
          leaseOwner: input.leaseOwner,
          leaseExpiresAtMs: input.nowMs + input.leaseMs
        }
        rows.set(key(input.walletId, input.requestId), record)
        return { _tag: "Reserved", record, windowSpendMsats }
      }),
    get: (walletId, requestId) => Effect.sync(() => Option.fromNullable(rows.get(key(walletId, requestId)))),
    markSucceeded: (walletId, requestId, result) =>
      update(walletId, requestId, (r) =>
        r.status !== "submitted" ? undefined : {
          ...r,
          status: "succeeded",
          preimage: result.preimage,
          feeMsats: result.feeMsats,
          settledAtMs: result.nowMs,
          updatedAtMs: result.nowMs,
          leaseOwner: undefined,
          leaseExpiresAtMs: undefined
        }),
    markFailed: (walletId, requestId, failure) =>
      update(walletId, requestId, (r) =>
        r.status !== "submitted" ? undefined : {
          ...r,
          status: "failed",
          failureCode: failure.code,
          failureMessage: failure.message,
          updatedAtMs: failure.nowMs,
          leaseOwner: undefined,
          leaseExpiresAtMs: undefined
        }),
    claimLease: (walletId, requestId, owner, nowMs, leaseMs) =>
      Effect.sync(() => {
        const r = rows.get(key(walletId, requestId))
        if (r === undefined || r.status !== "submitted") return false
        if (r.leaseOwner !== undefined && r.leaseOwner !== owner && (r.leaseExpiresAtMs ?? 0) > nowMs) return false
        rows.set(key(walletId, requestId), { ...r, leaseOwner: owner, leaseExpiresAtMs: nowMs + leaseMs })
        return true
      }),
    listSubmitted: (walletId) => Effect.sync(() => ofWallet(walletId).filter((r) => r.status === "submitted").sort((a, b) => a.createdAtMs - b.createdAtMs)),
    windowSpend: (walletId, nowMs, windowMs) =>
      Effect.sync(() => ({
        spendMsats: spend(walletId, nowMs, windowMs),
        pendingCount: ofWallet(walletId).filter((r) => r.status === "submitted").length
      })),
    recent: (walletId, limit) =>
      Effect.sync(() => ofWallet(walletId).sort((a, b) => b.createdAtMs - a.createdAtMs || (a.requestId < b.requestId ? 1 : -1)).slice(0, limit))
  }
})

export const layer = Layer.effect(PaymentLedger, make)
