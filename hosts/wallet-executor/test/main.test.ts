// The wallet executor as a real process against the LND simulator, on PGlite (and on Postgres
// when TEST_DATABASE_URL is set): killed (SIGKILL) between handing a payment to the node and
// recording its outcome, restarted, and retried — exactly one payment; the window persists across
// the restart; bearer auth and bad input are refused.
import { describe, expect, it } from "@effect/vitest"
import { Bolt11, LndSimulator } from "@openagents/lightning"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort, type HostProcess, startHost, waitFor } from "../../../packages/lightning/test/process.js"
import { serve } from "../../../packages/lightning/test/support.js"

const TOKEN = "test-token-0123456789abcdef"

const databases = (): Array<{ name: string; env: Effect.Effect<Record<string, string>, unknown, import("effect/Scope").Scope> }> => {
  const result: Array<{ name: string; env: Effect.Effect<Record<string, string>, unknown, import("effect/Scope").Scope> }> = [
    { name: "pglite", env: Effect.sync(() => ({ DATA_DIR: mkdtempSync(join(tmpdir(), "wallet-exec-")) })) }
  ]
  const admin = SqlTesting.postgresUrl()
  if (admin !== undefined) {
    result.push({
      name: "postgres",
      env: Effect.suspend(() => {
        const db = SqlTesting.freshPostgres(admin)
        return Effect.as(Layer.build(db.layer), { DATABASE_URL: db.url })
      })
    })
  }
  return result
}

const host = (env: Record<string, string>) =>
  Effect.acquireRelease(Effect.sync(() => startHost("wallet-executor", env)), (h: HostProcess) => Effect.promise(() => h.kill()))

const post = (port: number, body: unknown, token = TOKEN) =>
  fetch(`http://127.0.0.1:${port}/pay-bolt11`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body)
  })

for (const db of databases()) {
  describe(`wallet-executor host on ${db.name}`, () => {
    it.scopedLive("killed between send and record, restarted and retried: exactly one payment; the window survives the restart", () =>
      Effect.gen(function*() {
        const network = yield* LndSimulator.makeNetwork()
        const wallet = network.addNode({ alias: "wallet", balanceMsat: 1_000_000n })
        const shop = network.addNode({ alias: "shop" })
        const lndUrl = yield* serve(LndSimulator.router(wallet))
        const port = yield* Effect.promise(freePort)
        const env = {
          ...(yield* db.env),
          LND_REST_URL: lndUrl,
          LND_MACAROON_HEX: wallet.macaroons.admin,
          OA_LIGHTNING_WALLET_EXECUTOR_PORT: String(port),
          OA_LIGHTNING_WALLET_EXECUTOR_AUTH_TOKEN: TOKEN,
          OA_LIGHTNING_WALLET_ALLOWED_HOSTS: "shop.example",
          OA_LIGHTNING_WALLET_REQUEST_CAP_MSATS: "30000",
          OA_LIGHTNING_WALLET_WINDOW_CAP_MSATS: "40000",
          OA_LIGHTNING_WALLET_FEE_LIMIT_FLOOR_MSATS: "0",
          OA_LIGHTNING_WALLET_FEE_LIMIT_PPM: "0",
          OA_LIGHTNING_WALLET_PAYMENT_TIMEOUT_SECS: "20"
        }
        const first = yield* host(env)
        yield* Effect.promise(() => waitFor(`http://127.0.0.1:${port}/healthz`, first))

        // Auth and input are checked.
        expect((yield* Effect.promise(() => post(port, {}, "wrong-token-0123456789"))).status).toBe(401)
        const bad = yield* Effect.promise(() => post(port, { payment: { invoice: 1 } }))
        expect(bad.status).toBe(400)
        expect(((yield* Effect.promise(() => bad.json())) as any).error.code).toBe("invalid_request")

        const invoice = shop.addInvoice({ valueMsat: 25_000n, memo: "L402" })
        wallet.script(invoice.paymentHash, LndSimulator.Outcome.hold())
        const body = { requestId: "agent-7:task-3", payment: { invoice: invoice.paymentRequest, maxAmountMsats: 30_000, host: "shop.example" } }
        const inflight = post(port, body).catch(() => undefined)
        // Wait until the node has the payment, then kill the executor before it records anything.
        for (let i = 0; i < 200 && wallet.payment(invoice.paymentHash) === undefined; i++) yield* Effect.sleep("25 millis")
        expect(wallet.payment(invoice.paymentHash)?.status).toBe("IN_FLIGHT")
        yield* Effect.promise(() => first.kill())
        yield* Effect.promise(() => inflight)
        yield* wallet.resolve(invoice.paymentHash, LndSimulator.Outcome.settle())

        const second = yield* host(env)
        yield* Effect.promise(() => waitFor(`http://127.0.0.1:${port}/healthz`, second))
        const status = (yield* Effect.promise(() =>
          fetch(`http://127.0.0.1:${port}/status`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.json())
        )) as any
        // Reconciled on start: the crashed payment is settled and counted.
        expect(status.status).toMatchObject({ pendingPaymentsCount: 0, windowSpendMsats: 25_000, ready: true, lifecycle: "connected" })

        const retried = yield* Effect.promise(() => post(port, body))
        const answer = (yield* Effect.promise(() => retried.json())) as any
        expect(retried.status).toBe(200)
        expect(answer.result.idempotentReplay).toBe(true)
        expect(Bolt11.paymentHashOf(answer.result.payment.preimageHex)).toBe(invoice.paymentHash)
        expect(wallet.sendAttempts).toBe(1)
        expect(shop.invoice(invoice.paymentHash)?.state).toBe("SETTLED")
        expect(wallet.balanceMsat).toBe(1_000_000n - 25_000n)

        // The window (40 000) persisted: 25 000 spent, another 20 000 is refused.
        const next = shop.addInvoice({ valueMsat: 20_000n })
        const refused = yield* Effect.promise(() => post(port, { requestId: "agent-7:task-4", payment: { invoice: next.paymentRequest, maxAmountMsats: 30_000, host: "shop.example" } }))
        expect(refused.status).toBe(403)
        expect(((yield* Effect.promise(() => refused.json())) as any).error).toMatchObject({ code: "window_cap_exceeded", details: { windowSpendMsats: 25_000, windowCapMsats: 40_000 } })
        expect(Either.isRight(Bolt11.decode(next.paymentRequest))).toBe(true)
        expect(wallet.sendAttempts).toBe(1)
        expect((yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text())))).toMatch(/wallet_executor_payments_total/)
      }), 120_000)
  })
}

it("refuses to start without an allow-list, naming the variable", async () => {
  const h = startHost("wallet-executor", { OA_LIGHTNING_WALLET_EXECUTOR_AUTH_TOKEN: TOKEN, LND_REST_URL: "http://127.0.0.1:1", LND_MACAROON_HEX: "ab".repeat(40), OA_LIGHTNING_WALLET_ALLOWED_HOSTS: " , " })
  await new Promise<void>((resolve) => h.child.once("exit", () => resolve()))
  expect(h.child.exitCode).not.toBe(0)
  expect(h.output()).toMatch(/OA_LIGHTNING_WALLET_ALLOWED_HOSTS must list at least one host/)
})
