// The payment ledger conformance suite. Every adapter — in memory, SQL on PGlite, SQL on
// Postgres, or one you write — must pass it:
//
//   import { LedgerSuite } from "@openagents/lightning/testing"
//   LedgerSuite.run("my-adapter", myLedgerLayer, { concurrent: true })
//
// It registers vitest tests (needs vitest, @effect/vitest and fast-check). Each test uses a
// wallet id of its own, so one ledger instance serves the whole suite.
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import fc from "fast-check"
import type { ReserveInput } from "./PaymentLedger.js"
import { NOT_SENT, PaymentLedger } from "./PaymentLedger.js"

let counter = 0
/** A wallet id no other test uses. */
export const freshWallet = () => `wallet_${Date.now().toString(36)}_${(counter++).toString(36)}`

const hex64 = (n: number) => n.toString(16).padStart(64, "0")

export const input = (walletId: string, n: number, overrides: Partial<ReserveInput> = {}): ReserveInput => ({
  walletId,
  requestId: `req_${n}`,
  paymentHash: hex64(n),
  invoice: `lnbcrt_invoice_${n}`,
  host: "l402.example.com",
  amountMsats: 1000n,
  feeLimitMsats: 100n,
  maxAmountMsats: 5000n,
  fingerprint: hex64(n + 1_000_000),
  nowMs: 1_000_000,
  windowMs: 60_000,
  windowCapMsats: 10_000n,
  leaseOwner: "proc_a",
  leaseMs: 30_000,
  ...overrides
})

export interface SuiteOptions {
  /** The adapter runs reservations truly concurrently (real Postgres): also run the contention property. */
  readonly concurrent?: boolean
}

export const run = <E>(name: string, ledgerLayer: Layer.Layer<PaymentLedger, E>, options: SuiteOptions = {}) =>
  describe(`PaymentLedger conformance: ${name}`, () => {
    layer(ledgerLayer, { excludeTestServices: true })((it) => {
      it.effect("reserves a submitted, leased row and returns it to a retry of the same request id", () =>
        Effect.gen(function*() {
          const ledger = yield* PaymentLedger
          const w = freshWallet()
          const first = yield* ledger.reserve(input(w, 1))
          expect(first._tag).toBe("Reserved")
          if (first._tag !== "Reserved") return
          expect(first.record).toMatchObject({ status: "submitted", amountMsats: 1000n, feeLimitMsats: 100n, leaseOwner: "proc_a", leaseExpiresAtMs: 1_030_000 })
          expect(first.windowSpendMsats).toBe(0n)
          const again = yield* ledger.reserve(input(w, 1, { nowMs: 1_000_500 }))
          expect(again._tag).toBe("Existing")
          expect(Option.getOrThrow(yield* ledger.get(w, "req_1")).paymentHash).toBe(hex64(1))
          expect(Option.isNone(yield* ledger.get(w, "req_missing"))).toBe(true)
        }))

      it.effect("pays a hash once: another request id for an active or paid hash is HashActive; after a failure it may be retried", () =>
        Effect.gen(function*() {
          const ledger = yield* PaymentLedger
          const w = freshWallet()
          yield* ledger.reserve(input(w, 1))
          const clash = yield* ledger.reserve(input(w, 2, { paymentHash: hex64(1) }))
          expect(clash._tag === "HashActive" && clash.record.requestId).toBe("req_1")
          yield* ledger.markSucceeded(w, "req_1", { preimage: hex64(9), feeMsats: 3n, nowMs: 1_000_100 })
          expect((yield* ledger.reserve(input(w, 3, { paymentHash: hex64(1) })))._tag).toBe("HashActive")
          yield* ledger.reserve(input(w, 4, { paymentHash: hex64(4) }))
          yield* ledger.markFailed(w, "req_4", { code: "payment_failed", message: "no route", nowMs: 1_000_100 })
          expect((yield* ledger.reserve(input(w, 5, { paymentHash: hex64(4) })))._tag).toBe("Reserved")
        }))

      it.effect("counts pending reserves and settled spend in the window, releases failures, and refuses past the cap", () =>
        Effect.gen(function*() {
          const ledger = yield* PaymentLedger
          const w = freshWallet()
          const cap = { windowCapMsats: 3300n }
          expect((yield* ledger.reserve(input(w, 1, cap)))._tag).toBe("Reserved") // 1100 pending
          expect((yield* ledger.reserve(input(w, 2, cap)))._tag).toBe("Reserved") // 2200 pending
          expect(yield* ledger.windowSpend(w, 1_000_000, 60_000)).toEqual({ spendMsats: 2200n, pendingCount: 2 })
          yield* ledger.markSucceeded(w, "req_1", { preimage: hex64(7), feeMsats: 10n, nowMs: 1_000_010 }) // 1010 settled
          yield* ledger.markFailed(w, "req_2", { code: "payment_failed", message: "x", nowMs: 1_000_010 }) // released
          expect(yield* ledger.windowSpend(w, 1_000_020, 60_000)).toEqual({ spendMsats: 1010n, pendingCount: 0 })
          expect((yield* ledger.reserve(input(w, 3, cap)))._tag).toBe("Reserved") // 2110
          const over = yield* ledger.reserve(input(w, 4, cap)) // 2110 + 1100 = 3210 <= 3300
          expect(over._tag).toBe("Reserved")
          const refused = yield* ledger.reserve(input(w, 5, cap))
          expect(refused).toEqual({ _tag: "WindowExceeded", windowSpendMsats: 3210n })
          expect(Option.isNone(yield* ledger.get(w, "req_5"))).toBe(true)
          // The settled payment leaves the window; pending ones stay counted whatever their age.
          expect((yield* ledger.windowSpend(w, 1_000_000 + 60_001, 60_000)).spendMsats).toBe(2200n)
        }))

      it.effect("moves only submitted → succeeded | failed; later marks are no-ops", () =>
        Effect.gen(function*() {
          const ledger = yield* PaymentLedger
          const w = freshWallet()
          yield* ledger.reserve(input(w, 1))
          const paid = yield* ledger.markSucceeded(w, "req_1", { preimage: hex64(5), feeMsats: 0n, nowMs: 1_000_001 })
          expect(paid).toMatchObject({ status: "succeeded", preimage: hex64(5), feeMsats: 0n, settledAtMs: 1_000_001, leaseOwner: undefined })
          const after = yield* ledger.markFailed(w, "req_1", { code: "payment_failed", message: "late", nowMs: 1_000_002 })
          expect(after.status).toBe("succeeded")
          expect((yield* ledger.markSucceeded(w, "req_1", { preimage: hex64(6), feeMsats: 1n, nowMs: 1_000_003 })).preimage).toBe(hex64(5))
          expect(yield* ledger.listSubmitted(w)).toEqual([])
          expect((yield* ledger.recent(w, 10)).map((r) => r.requestId)).toEqual(["req_1"])
        }))

      it.effect("re-arms a payment the node never saw (not_sent) under the same request id, and only for the same request", () =>
        Effect.gen(function*() {
          const ledger = yield* PaymentLedger
          const w = freshWallet()
          yield* ledger.reserve(input(w, 1))
          yield* ledger.markFailed(w, "req_1", { code: NOT_SENT, message: "lnd never saw it", nowMs: 1_000_001 })
          expect((yield* ledger.reserve(input(w, 1, { fingerprint: hex64(42) })))._tag).toBe("Existing")
          const again = yield* ledger.reserve(input(w, 1, { nowMs: 1_000_002, leaseOwner: "proc_b" }))
          expect(again._tag === "Reserved" && again.record).toMatchObject({ status: "submitted", leaseOwner: "proc_b", failureCode: undefined })
        }))

      it.effect("leases: a live lease of another owner blocks, an expired one is taken over", () =>
        Effect.gen(function*() {
          const ledger = yield* PaymentLedger
          const w = freshWallet()
          yield* ledger.reserve(input(w, 1))
          expect(yield* ledger.claimLease(w, "req_1", "proc_b", 1_010_000, 30_000)).toBe(false)
          expect(yield* ledger.claimLease(w, "req_1", "proc_a", 1_010_000, 30_000)).toBe(true)
          expect(yield* ledger.claimLease(w, "req_1", "proc_b", 1_040_001, 30_000)).toBe(true)
          expect(Option.getOrThrow(yield* ledger.get(w, "req_1")).leaseOwner).toBe("proc_b")
          expect((yield* ledger.listSubmitted(w)).map((r) => r.requestId)).toEqual(["req_1"])
          yield* ledger.markSucceeded(w, "req_1", { preimage: hex64(5), feeMsats: 0n, nowMs: 1_040_002 })
          expect(yield* ledger.claimLease(w, "req_1", "proc_c", 2_000_000, 30_000)).toBe(false)
        }))

      it.effect("window spend never exceeds the cap under random concurrent reservations (and duplicates pay once)", () =>
        Effect.gen(function*() {
          const ledger = yield* PaymentLedger
          yield* Effect.promise(() =>
            fc.assert(
              fc.asyncProperty(
                fc.array(fc.record({ amount: fc.integer({ min: 1, max: 4000 }), hash: fc.integer({ min: 0, max: 30 }) }), {
                  minLength: 1,
                  maxLength: options.concurrent ? 40 : 20
                }),
                fc.integer({ min: 1000, max: 20_000 }),
                async (requests, cap) => {
                  const w = freshWallet()
                  const results = await Effect.runPromise(Effect.forEach(
                    requests,
                    (r, i) =>
                      ledger.reserve(input(w, i, { paymentHash: hex64(r.hash), amountMsats: BigInt(r.amount), feeLimitMsats: 0n, windowCapMsats: BigInt(cap) })),
                    { concurrency: "unbounded" }
                  ))
                  const spend = await Effect.runPromise(ledger.windowSpend(w, 1_000_000, 60_000))
                  const reserved = results.flatMap((r) => (r._tag === "Reserved" ? [r.record] : []))
                  const total = reserved.reduce((s, r) => s + r.amountMsats, 0n)
                  expect(total).toBeLessThanOrEqual(BigInt(cap))
                  expect(spend.spendMsats).toBe(total)
                  expect(new Set(reserved.map((r) => r.paymentHash)).size).toBe(reserved.length)
                }
              ),
              { numRuns: options.concurrent ? 15 : 10 }
            )
          )
        }))
    })
  })
