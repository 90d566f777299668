// The payment ledger conformance suite on every adapter: memory, PGlite, and Postgres (when
// TEST_DATABASE_URL is set), plus SQL-only behaviour.
import { describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { MemoryLedger, PaymentLedger, SqlLedger } from "@openagents/lightning"
import { LedgerSuite } from "@openagents/lightning/testing"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"

LedgerSuite.run("memory", MemoryLedger.layer)

for (const engine of SqlTesting.engines()) {
  const ledger = SqlLedger.layer.pipe(Layer.provideMerge(engine.layer))
  LedgerSuite.run(engine.name, ledger, { concurrent: engine.concurrent })

  describe(`SQL ledger on ${engine.name}`, () => {
    layer(ledger, { excludeTestServices: true })((it) => {
      it.effect("survives a rebuild on the same database (a restart): rows, window and migrations persist", () =>
        Effect.gen(function*() {
          const w = LedgerSuite.freshWallet()
          const first = yield* PaymentLedger.PaymentLedger
          yield* first.reserve(LedgerSuite.input(w, 1))
          const restarted = yield* SqlLedger.make
          expect((yield* restarted.windowSpend(w, 1_000_000, 60_000)).spendMsats).toBe(1100n)
          expect((yield* restarted.reserve(LedgerSuite.input(w, 1)))._tag).toBe("Existing")
          expect(yield* SqlLedger.migrate).toEqual([])
        }))

      it.effect("the schema itself refuses a second active row for a payment hash", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const w = LedgerSuite.freshWallet()
          const ledgerService = yield* PaymentLedger.PaymentLedger
          yield* ledgerService.reserve(LedgerSuite.input(w, 1))
          const insert = sql`INSERT INTO lightning.wallet_payments
            (wallet_id, request_id, payment_hash, invoice, host, amount_msats, fee_limit_msats, max_amount_msats, fingerprint, status, created_at_ms, updated_at_ms)
            SELECT wallet_id, 'req_bypass', payment_hash, invoice, host, amount_msats, fee_limit_msats, max_amount_msats, fingerprint, 'submitted', 0, 0
            FROM lightning.wallet_payments WHERE wallet_id = ${w} AND request_id = 'req_1'`
          expect(Exit.isFailure(yield* Effect.exit(insert))).toBe(true)
        }))
    })
  })
}
