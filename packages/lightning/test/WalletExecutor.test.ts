// The wallet executor in process, paying through the LND simulator over real HTTP, on the memory
// ledger and on the SQL ledger (PGlite, and Postgres when TEST_DATABASE_URL is set).
import { describe, expect, it } from "@effect/vitest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Bolt11, Lnd, LndRest, LndSimulator, MemoryLedger, PaymentLedger, SqlLedger, WalletExecutor } from "@openagents/lightning"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterAll } from "vitest"
import fc from "fast-check"
import vectors from "./fixtures/bolt11-vectors.json" with { type: "json" }
import { serve } from "./support.js"

const baseConfig: WalletExecutor.WalletExecutorConfig = {
  ...WalletExecutor.defaults,
  walletId: "w1",
  allowedHosts: ["shop.example", "*.l402.test"],
  requestCapMsats: 100_000n,
  windowCapMsats: 300_000n,
  paymentTimeoutMs: 3_000,
  feeLimitPpm: 0,
  feeLimitFloorMsats: 0n,
  reconcileIntervalMs: 3_600_000
}

let worlds = 0

/** A simulator with a paying node and a shop node; the executor is built on demand (restartable). */
const world = Effect.gen(function*() {
  const network = yield* LndSimulator.makeNetwork()
  const wallet = network.addNode({ alias: "wallet", balanceMsat: 10_000_000n })
  const shop = network.addNode({ alias: "shop", balanceMsat: 0n })
  const url = yield* serve(LndSimulator.router(wallet))
  const lnd = LndRest.layer({ baseUrl: url, macaroon: Redacted.make(wallet.macaroons.admin) }).pipe(Layer.provide(NodeHttpClient.layer))
  const invoice = (msat: bigint, expiry?: number) => shop.addInvoice({ valueMsat: msat, memo: "L402", expiry }).paymentRequest
  const walletId = `w_${++worlds}_${Date.now().toString(36)}`
  /** Start an executor; `wrap` stands between it and the node (a proxy, a node that misbehaves). */
  const start = (
    ledger: Layer.Layer<PaymentLedger.PaymentLedger>,
    cfg: Partial<WalletExecutor.WalletExecutorConfig> = {},
    wrap: (real: Lnd.LndService) => Lnd.LndService = identity
  ) =>
    Layer.build(WalletExecutor.layer({ ...baseConfig, walletId, ...cfg }).pipe(
      Layer.provide(Layer.merge(Layer.effect(Lnd.Lnd, Effect.map(Lnd.Lnd, wrap)).pipe(Layer.provide(lnd)), ledger))
    )).pipe(
      Effect.map((ctx) => ctx.unsafeMap.get(WalletExecutor.WalletExecutor.key) as WalletExecutor.WalletExecutorService)
    )
  return { network, wallet, shop, invoice, start, walletId, url }
})

const pay = (executor: WalletExecutor.WalletExecutorService, requestId: string, invoice: string, extra: Partial<WalletExecutor.PayRequest> = {}) =>
  executor.pay({ requestId, invoice, maxAmountMsats: 100_000n, host: "shop.example", ...extra })

const hashOf = (invoice: string) => Either.getOrThrow(Bolt11.decode(invoice)).paymentHash

const serviceOf = (ledger: Layer.Layer<PaymentLedger.PaymentLedger>) =>
  Layer.build(ledger).pipe(Effect.map((c) => c.unsafeMap.get(PaymentLedger.PaymentLedger.key) as PaymentLedger.PaymentLedgerService))

/** Wait until the node has a payment for `hash` (it started paying). */
const startedAt = (node: LndSimulator.SimNode, hash: string) =>
  Effect.sync(() => node.payment(hash)).pipe(
    Effect.repeat({ until: (p) => p !== undefined, schedule: Schedule.spaced(Duration.millis(10)) }),
    Effect.timeout(Duration.seconds(5)),
    Effect.orDie
  )

const flipCode = <A>(e: Effect.Effect<A, WalletExecutor.WalletError>) => Effect.map(Effect.flip(e), (err) => err.code)

type LedgerLayer = Layer.Layer<PaymentLedger.PaymentLedger>

const suite = (name: string, makeLedger: Effect.Effect<LedgerLayer, never, Scope.Scope>, concurrent: boolean) =>
  describe(`wallet executor on the ${name} ledger`, () => {
    it.scopedLive("pays a valid invoice once: preimage proves payment, the node paid exactly once", () =>
      Effect.gen(function*() {
        const { invoice, shop, start, wallet } = yield* world
        const executor = yield* start(yield* makeLedger)
        const pr = invoice(21_000n)
        const result = yield* pay(executor, "req-1", pr)
        expect(Bolt11.paymentHashOf(result.payment.preimageHex)).toBe(result.payment.paymentHash)
        expect(result).toMatchObject({ idempotentReplay: false, quotedAmountMsats: 21_000n, windowSpendMsatsAfterPayment: 21_000n })
        expect(shop.invoice(result.payment.paymentHash)?.state).toBe("SETTLED")
        // Retried: the stored result, nothing paid.
        const again = yield* pay(executor, "req-1", pr)
        expect(again.idempotentReplay).toBe(true)
        expect(again.payment.preimageHex).toBe(result.payment.preimageHex)
        expect(yield* flipCode(pay(executor, "req-1", invoice(1_000n)))).toBe("idempotency_conflict")
        expect(yield* flipCode(pay(executor, "req-2", pr))).toBe("duplicate_payment")
        expect(wallet.sendAttempts).toBe(1)
        expect(wallet.balanceMsat).toBe(10_000_000n - 21_000n)
      }))

    it.scopedLive("refuses bad invoices and over-cap requests with their codes, before anything reaches the node", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet } = yield* world
        const executor = yield* start(yield* makeLedger)
        const key = Bolt11.randomPrivateKey()
        const { paymentHash } = LndSimulator.newPreimage()
        const own = { amountMsats: 1_000n, paymentHash, paymentSecret: "22".repeat(32), description: "x", privateKey: key }
        const vector = (n: number) => vectors.vectors.find((v) => v.n === n)!.invoice
        const tampered = (() => {
          const pr = Bolt11.encode({ ...own, network: "regtest", includePayee: true })
          const i = pr.length - 20
          return pr.slice(0, i) + (pr[i] === "q" ? "p" : "q") + pr.slice(i + 1)
        })()
        const cases: Array<[string, string, Partial<WalletExecutor.PayRequest>]> = [
          ["invoice_malformed", "lnbcrt1notaninvoice", {}],
          ["invoice_malformed", vector(17), {}],
          ["invoice_network_mismatch", Bolt11.encode({ ...own, network: "mainnet" }), {}],
          ["invoice_expired", Bolt11.encode({ ...own, network: "regtest", timestamp: 1_600_000_000 }), {}],
          ["invoice_expired", invoice(1_000n, 10), {}], // inside the 30 s margin
          ["invoice_signature_invalid", vector(25), {}],
          ["invoice_missing_payment_secret", vector(24), {}],
          ["invoice_unknown_required_feature", vector(16), {}],
          ["invoice_amount_missing", Bolt11.encode({ ...own, network: "regtest", amountMsats: undefined }), {}],
          ["host_not_allowed", invoice(1_000n), { host: "evil.example" }],
          ["host_not_allowed", invoice(1_000n), { host: "l402.test" }],
          ["request_cap_exceeded", invoice(1_000n), { maxAmountMsats: 100_001n }],
          ["quoted_amount_exceeds_cap", invoice(50_000n), { maxAmountMsats: 49_999n }],
          ["invalid_request", invoice(1_000n), { requestId: "" }],
          ["invalid_request", invoice(1_000n), { maxFeeMsats: -1_000_000n }]
        ]
        for (const [i, [code, pr, extra]] of cases.entries()) {
          const error = yield* Effect.flip(pay(executor, `bad-${i}`, pr, extra))
          expect(`${i}:${error.code}`).toBe(`${i}:${code}`)
        }
        const bad = yield* Effect.flip(pay(executor, "bad-sig", tampered))
        expect(["invoice_signature_invalid", "invoice_malformed"]).toContain(bad.code)
        expect(yield* pay(executor, "ok", invoice(1_000n), { host: "api.l402.test:8443" })).toBeTruthy()
        expect(wallet.sendAttempts).toBe(1)
      }))

    it.scopedLive("holds the window: pending reservations count, failures release, and the cap is enforced", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet } = yield* world
        const executor = yield* start(yield* makeLedger, { feeLimitFloorMsats: 1_000n, windowCapMsats: 250_000n })
        yield* pay(executor, "a", invoice(99_000n)) // 99 000 + actual fee 0
        yield* pay(executor, "b", invoice(99_000n))
        const error = yield* Effect.flip(pay(executor, "c", invoice(99_000n)))
        expect(error.code).toBe("window_cap_exceeded")
        expect(error.httpStatus).toBe(403)
        expect(error.details).toMatchObject({ quotedAmountMsats: 99_000n, windowSpendMsats: 198_000n, windowCapMsats: 250_000n })
        wallet.scriptNext(LndSimulator.Outcome.fail("FAILURE_REASON_NO_ROUTE"))
        const failed = yield* Effect.flip(pay(executor, "d", invoice(50_000n)))
        expect([failed.code, failed.httpStatus]).toEqual(["payment_failed", 502])
        expect((yield* executor.status).windowSpendMsats).toBe(198_000n)
        expect(yield* flipCode(pay(executor, "d", invoice(1n)))).toBe("idempotency_conflict")
        const status = yield* executor.status
        expect(status).toMatchObject({ ready: true, lifecycle: "connected", pendingPaymentsCount: 0, lastErrorCode: "idempotency_conflict" })
      }))

    it.scopedLive("a payment that outlasts the timeout answers payment_pending; a retry of the request id returns its outcome without paying again", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet } = yield* world
        const executor = yield* start(yield* makeLedger, { paymentTimeoutMs: 400 })
        const pr = invoice(5_000n)
        const hash = Either.getOrThrow(Bolt11.decode(pr)).paymentHash
        wallet.script(hash, LndSimulator.Outcome.hold())
        const pending = yield* Effect.flip(pay(executor, "slow", pr))
        expect([pending.code, pending.httpStatus]).toEqual(["payment_pending", 504])
        expect((yield* executor.status)).toMatchObject({ pendingPaymentsCount: 1, windowSpendMsats: 5_000n })
        expect(yield* flipCode(pay(executor, "slow", pr))).toBe("payment_pending")
        yield* wallet.resolve(hash, LndSimulator.Outcome.settle())
        const done = yield* pay(executor, "slow", pr)
        expect(done.idempotentReplay).toBe(true)
        expect(Bolt11.paymentHashOf(done.payment.preimageHex)).toBe(hash)
        expect(wallet.sendAttempts).toBe(1)
      }))

    it.scopedLive("a dropped stream is not a failure: the executor tracks the hash and reports the real outcome", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet } = yield* world
        const executor = yield* start(yield* makeLedger)
        wallet.scriptNext(LndSimulator.Outcome.drop(LndSimulator.Outcome.settle({ delayMs: 150 })))
        const result = yield* pay(executor, "dropped", invoice(7_000n))
        expect(result.idempotentReplay).toBe(false)
        expect(Bolt11.paymentHashOf(result.payment.preimageHex)).toBe(result.payment.paymentHash)
        expect(wallet.sendAttempts).toBe(1)
      }))

    it.scopedLive("a 500 from /v2/router/send after lnd started the payment is not a failure: the window stays charged and reconcile settles the row as paid", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet, walletId } = yield* world
        const ledgerLayer = yield* makeLedger
        const ledger = yield* serviceOf(ledgerLayer)
        const scope = yield* Effect.scope
        // lnd (or a proxy in front of it) starts the payment, then answers 500.
        const executor = yield* start(ledgerLayer, { paymentTimeoutMs: 500 }, (real) => ({
          ...real,
          sendPayment: (request) =>
            Stream.unwrap(Effect.gen(function*() {
              yield* real.sendPayment(request).pipe(Stream.runDrain, Effect.ignore, Effect.forkIn(scope))
              yield* startedAt(wallet, hashOf(request.payment_request))
              return Stream.fail(LndRest.errorOf(500, 2, "routerrpc server shutting down"))
            }))
        }))
        const prs = [invoice(100_000n), invoice(100_000n), invoice(100_000n), invoice(100_000n)]
        for (const pr of prs) wallet.script(hashOf(pr), LndSimulator.Outcome.hold())
        for (const [i, pr] of prs.slice(0, 3).entries()) {
          const pending = yield* Effect.flip(pay(executor, `r${i}`, pr))
          expect([pending.code, pending.details?.paymentHash]).toEqual(["payment_pending", hashOf(pr)])
        }
        // Three payments in flight reserve the whole window: the fourth is refused, nothing more leaves.
        expect(yield* flipCode(pay(executor, "r3", prs[3]!))).toBe("window_cap_exceeded")
        expect(yield* ledger.windowSpend(walletId, Date.now(), baseConfig.windowMs)).toEqual({ spendMsats: 300_000n, pendingCount: 3 })
        expect(wallet.sendAttempts).toBe(3)
        // The node settles them; the reconcile finds the rows and records the payments.
        for (const pr of prs.slice(0, 3)) yield* wallet.resolve(hashOf(pr), LndSimulator.Outcome.settle())
        expect(yield* executor.reconcile).toMatchObject({ checked: 3, succeeded: 3, stillPending: 0 })
        const row = Option.getOrThrow(yield* ledger.get(walletId, "r0"))
        expect([row.status, Bolt11.paymentHashOf(row.preimage!)]).toEqual(["succeeded", hashOf(prs[0]!)])
        expect(yield* ledger.windowSpend(walletId, Date.now(), baseConfig.windowMs)).toEqual({ spendMsats: 300_000n, pendingCount: 0 })
        expect(wallet.balanceMsat).toBe(10_000_000n - 300_000n)
        expect((yield* pay(executor, "r0", prs[0]!)).idempotentReplay).toBe(true)
      }))

    it.scopedLive("only a refusal before any payment exists releases the budget: lnd's 400 or its own error with a 404 from tracking, not a proxy's 502", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet, walletId } = yield* world
        const ledgerLayer = yield* makeLedger
        const ledger = yield* serviceOf(ledgerLayer)
        let proxyDown = false
        const executor = yield* start(ledgerLayer, { paymentTimeoutMs: 500 }, (real) => ({
          ...real,
          sendPayment: (request) => proxyDown ? Stream.fail(LndRest.errorOf(502, undefined, "HTTP 502: <html>bad gateway</html>")) : real.sendPayment(request)
        }))
        const statusOf = (requestId: string) => Effect.map(ledger.get(walletId, requestId), (r) => Option.map(r, (row) => [row.status, row.failureCode]))
        // lnd refuses the request (400): not sent, released; the same request id pays later.
        wallet.scriptNext(LndSimulator.Outcome.reject(3, "invalid payment request"))
        const pr = invoice(50_000n)
        expect(yield* flipCode(pay(executor, "refused", pr))).toBe("send_failed")
        expect(yield* statusOf("refused")).toEqual(Option.some(["failed", "not_sent"]))
        // lnd's own 500 without a payment: tracking answers 404, so nothing was sent.
        wallet.scriptNext(LndSimulator.Outcome.reject(13, "internal error"))
        expect(yield* flipCode(pay(executor, "lnd-500", invoice(50_000n)))).toBe("send_failed")
        expect(yield* statusOf("lnd-500")).toEqual(Option.some(["failed", "not_sent"]))
        expect((yield* executor.status).windowSpendMsats).toBe(0n)
        // A proxy's 502: lnd may still receive the request, so the row stays submitted and counted.
        proxyDown = true
        expect(yield* flipCode(pay(executor, "proxy-502", invoice(50_000n)))).toBe("payment_pending")
        expect(yield* statusOf("proxy-502")).toEqual(Option.some(["submitted", undefined]))
        expect((yield* executor.status)).toMatchObject({ windowSpendMsats: 50_000n, pendingPaymentsCount: 1 })
        proxyDown = false
        expect((yield* pay(executor, "refused", pr)).idempotentReplay).toBe(false)
        expect(wallet.sendAttempts).toBe(1)
      }))

    it.scopedLive("the node's decode is bounded by the pay deadline, and the reservation is stamped when it is made, not when the request arrived", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet, walletId } = yield* world
        const ledgerLayer = yield* makeLedger
        const ledger = yield* serviceOf(ledgerLayer)
        let decode: "hang" | "slow" = "hang"
        let decodedAtMs = 0
        const executor = yield* start(ledgerLayer, { paymentTimeoutMs: 1_000 }, (real) => ({
          ...real,
          decodePayReq: (pr) =>
            decode === "hang"
              ? Effect.never
              : real.decodePayReq(pr).pipe(Effect.delay(Duration.millis(200)), Effect.tap(() => Effect.sync(() => void (decodedAtMs = Date.now()))))
        }))
        const startedMs = Date.now()
        const hung = yield* Effect.flip(pay(executor, "hung", invoice(1_000n))).pipe(Effect.timeout(Duration.seconds(5)))
        expect(hung.code).toBe("connect_failed")
        expect(Date.now() - startedMs).toBeLessThan(3_000)
        expect(yield* ledger.get(walletId, "hung")).toEqual(Option.none())
        decode = "slow"
        yield* pay(executor, "slow-decode", invoice(1_000n))
        const row = Option.getOrThrow(yield* ledger.get(walletId, "slow-decode"))
        expect(row.createdAtMs).toBeGreaterThanOrEqual(decodedAtMs)
        expect(wallet.sendAttempts).toBe(1)
      }))

    it.scopedLive("restart: the reconcile on start settles a payment sent before the crash, and releases one never sent", () =>
      Effect.gen(function*() {
        const { invoice, start, url, wallet, walletId } = yield* world
        const ledgerLayer = yield* makeLedger
        const ledger = yield* Layer.build(ledgerLayer).pipe(Effect.map((c) => c.unsafeMap.get(PaymentLedger.PaymentLedger.key) as PaymentLedger.PaymentLedgerService))
        // Crash after send: the node has the payment, the ledger still says submitted.
        const sentPr = invoice(4_000n)
        const sent = Either.getOrThrow(Bolt11.decode(sentPr))
        const reserveFor = (requestId: string, pr: string, hash: string) =>
          ledger.reserve({
            walletId, requestId, paymentHash: hash, invoice: pr, host: "shop.example", amountMsats: 4_000n, feeLimitMsats: 0n,
            maxAmountMsats: 100_000n,
            fingerprint: WalletExecutor.fingerprintOf({ requestId, invoice: pr, maxAmountMsats: 100_000n, host: "shop.example" }),
            nowMs: Date.now() - 120_000, windowMs: 300_000, windowCapMsats: 300_000n, leaseOwner: "dead", leaseMs: 1_000
          })
        yield* reserveFor("crashed-after-send", sentPr, sent.paymentHash)
        const lndPay = yield* LndRest.make({ baseUrl: url, macaroon: Redacted.make(wallet.macaroons.admin) }).pipe(Effect.provide(NodeHttpClient.layer))
        yield* Stream.runDrain(lndPay.sendPayment({ payment_request: sentPr, fee_limit_msat: "0", timeout_seconds: 5 }))
        // Crash before send: the node never saw it.
        const unsentPr = invoice(6_000n)
        yield* reserveFor("crashed-before-send", unsentPr, Either.getOrThrow(Bolt11.decode(unsentPr)).paymentHash)
        expect((yield* ledger.windowSpend(walletId, Date.now(), 300_000)).pendingCount).toBe(2)

        const executor = yield* start(ledgerLayer)
        const after = yield* executor.status
        expect(after.pendingPaymentsCount).toBe(0)
        expect(after.windowSpendMsats).toBe(4_000n)
        const replay = yield* pay(executor, "crashed-after-send", sentPr)
        expect(replay.idempotentReplay).toBe(true)
        // The unsent one is paid when its request is retried, under the same request id.
        const paidNow = yield* pay(executor, "crashed-before-send", unsentPr)
        expect(paidNow.idempotentReplay).toBe(false)
        expect(wallet.sendAttempts).toBe(2)
      }))

    it.scopedLive("the same request sent concurrently pays once", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet } = yield* world
        const executor = yield* start(yield* makeLedger)
        const pr = invoice(3_000n)
        const results = yield* Effect.all(Array.from({ length: 6 }, () => Effect.either(pay(executor, "twin", pr))), { concurrency: "unbounded" })
        const ok = results.filter(Either.isRight).map((r) => r.right)
        expect(ok.length).toBeGreaterThanOrEqual(1)
        expect(new Set(ok.map((r) => r.payment.preimageHex)).size).toBe(1)
        for (const r of results.filter(Either.isLeft)) expect(r.left.code).toBe("payment_pending")
        expect(wallet.sendAttempts).toBe(1)
      }))

    it.scopedLive("the window is never exceeded under random concurrent requests", () =>
      Effect.gen(function*() {
        const { invoice, start, wallet } = yield* world
        const executor = yield* start(yield* makeLedger, { windowCapMsats: 150_000n })
        let run = 0
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(fc.integer({ min: 1_000, max: 60_000 }), { minLength: 1, maxLength: concurrent ? 12 : 8 }), async (amounts) => {
              run++
              const before = wallet.balanceMsat
              const spentBefore = (await Effect.runPromise(executor.status)).windowSpendMsats
              const results = await Effect.runPromise(Effect.all(
                amounts.map((a, i) => Effect.either(pay(executor, `p${run}-${i}`, invoice(BigInt(a))))),
                { concurrency: "unbounded" }
              ))
              const paid = results.filter(Either.isRight).reduce((s, r) => s + r.right.quotedAmountMsats, 0n)
              for (const r of results) if (Either.isLeft(r)) expect(r.left.code).toBe("window_cap_exceeded")
              expect(before - wallet.balanceMsat).toBe(paid)
              expect(spentBefore + paid).toBeLessThanOrEqual(150_000n)
            }),
            { numRuns: 6 }
          )
        )
      }))
  })

suite("memory", Effect.map(MemoryLedger.make, (service) => Layer.succeed(PaymentLedger.PaymentLedger, service)), false)
for (const engine of SqlTesting.engines()) {
  // One database per engine for the file; each test uses a wallet id of its own.
  const runtime = ManagedRuntime.make(SqlLedger.layer.pipe(Layer.provide(engine.layer as Layer.Layer<SqlClient.SqlClient>), Layer.orDie))
  afterAll(() => runtime.dispose())
  const makeLedger = Effect.promise(() => runtime.runPromise(PaymentLedger.PaymentLedger)).pipe(
    Effect.map((service) => Layer.succeed(PaymentLedger.PaymentLedger, service))
  )
  suite(engine.name, makeLedger, engine.concurrent)
}

describe("wallet executor errors", () => {
  it("every code is a WalletErrorCode of the proto contract, with an HTTP status", async () => {
    const { WalletErrorCode } = await import("@openagents/proto/lightning/v1")
    for (const code of WalletExecutor.errorCodes) {
      expect(WalletErrorCode[code.toUpperCase() as keyof typeof WalletErrorCode], code).toBeGreaterThan(0)
      expect(WalletExecutor.httpStatusOf(code)).toBeGreaterThanOrEqual(400)
    }
  })

  it("fee limit: proportional with a floor, never above what the caller allows", () => {
    const cfg = { feeLimitPpm: 10_000, feeLimitFloorMsats: 1_000n }
    expect(WalletExecutor.feeLimitFor(cfg, 21_000n)).toBe(1_000n)
    expect(WalletExecutor.feeLimitFor(cfg, 1_000_001n)).toBe(10_001n)
    expect(WalletExecutor.feeLimitFor(cfg, 1_000_000n, 50n)).toBe(50n)
  })

  it("host allow-list: exact names, host:port, and *.suffix (not the bare suffix)", () => {
    const allowed = ["shop.example", "api.test:8443", "*.l402.test"]
    expect(WalletExecutor.hostAllowed(allowed, "SHOP.example:443")).toBe(true)
    expect(WalletExecutor.hostAllowed(allowed, "api.test:8443")).toBe(true)
    expect(WalletExecutor.hostAllowed(allowed, "api.test:9000")).toBe(false)
    expect(WalletExecutor.hostAllowed(allowed, "a.l402.test")).toBe(true)
    expect(WalletExecutor.hostAllowed(allowed, "l402.test")).toBe(false)
    expect(WalletExecutor.hostAllowed(allowed, "evill402.test")).toBe(false)
    expect(WalletExecutor.hostAllowed([], "shop.example")).toBe(false)
  })
})
