// The wallet executor: pays BOLT11 invoices for agents through an LND node, under a spend policy,
// exactly once per request.
//
// A payment goes: request checks (allow-listed host, per-request cap) → strict BOLT #11 decode and
// payer checks (signature, payment secret, features, network, expiry, amount; LIGHTNING.md §4) →
// the node's own decode must agree → quoted amount within the caps → fee limit → `reserve` in the
// durable ledger (idempotency by request id and by payment hash, and the persisted window that
// counts pending payments, in one atomic step) → `POST /v2/router/send` → record the outcome.
//
// Never paying twice rests on three facts: the ledger row exists (`submitted`) before the node is
// asked to pay; a hash is active under one request id only; and an unknown outcome (timeout,
// dropped stream, crash) is never taken for a failure — it is resolved by tracking the hash at the
// node, where only a 404 ("payment isn't initiated") proves nothing was sent, and only the holder
// of the row's lease may act on that proof (send, or release the budget). Retrying a request id
// resumes its payment; a reconcile pass on start and on an interval resolves the rest.
import type * as HttpClientError from "@effect/platform/HttpClientError"
import { sha256 } from "@noble/hashes/sha2"
import { canonicalJson } from "@openagents/proto/canonical-json"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Bolt11 from "./Bolt11.js"
import { toHex, utf8 } from "./internal/bytes.js"
import type { LndError, Payment } from "./Lnd.js"
import { GrpcCode, Lnd } from "./Lnd.js"
import type { PaymentRecord } from "./PaymentLedger.js"
import { NOT_SENT, PaymentLedger } from "./PaymentLedger.js"

// --- errors ------------------------------------------------------------------------------------

/** The closed vocabulary of executor errors: proto WalletErrorCode values, in snake_case. */
export const errorCodes = [
  "invalid_request",
  "unauthorized",
  "host_not_allowed",
  "request_cap_exceeded",
  "quoted_amount_exceeds_cap",
  "window_cap_exceeded",
  "payment_pending",
  "connect_failed",
  "prepare_failed",
  "send_failed",
  "payment_failed",
  "payment_missing_preimage",
  "config_error",
  "internal_error",
  "idempotency_conflict",
  "duplicate_payment",
  "invoice_malformed",
  "invoice_signature_invalid",
  "invoice_missing_payment_secret",
  "invoice_unknown_required_feature",
  "invoice_network_mismatch",
  "invoice_expired",
  "invoice_amount_missing"
] as const satisfies ReadonlyArray<string>

export type WalletErrorCode = (typeof errorCodes)[number]

export const httpStatusOf = (code: WalletErrorCode): number => {
  switch (code) {
    case "invalid_request":
      return 400
    case "unauthorized":
      return 401
    case "host_not_allowed":
    case "request_cap_exceeded":
    case "quoted_amount_exceeds_cap":
    case "window_cap_exceeded":
      return 403
    case "idempotency_conflict":
    case "duplicate_payment":
      return 409
    case "payment_pending":
      return 504
    case "connect_failed":
    case "prepare_failed":
    case "send_failed":
    case "payment_failed":
    case "payment_missing_preimage":
      return 502
    case "config_error":
    case "internal_error":
      return 500
    default:
      return 400 // invoice_*: the invoice is refused before anything is paid
  }
}

export interface WalletErrorDetails {
  readonly host?: string
  readonly maxAllowedMsats?: bigint
  readonly quotedAmountMsats?: bigint
  readonly windowSpendMsats?: bigint
  readonly windowCapMsats?: bigint
  readonly paymentHash?: string
  readonly failureReason?: string
}

export class WalletError extends Data.TaggedError("WalletError")<{
  readonly code: WalletErrorCode
  readonly message: string
  readonly details?: WalletErrorDetails | undefined
}> {
  get httpStatus(): number {
    return httpStatusOf(this.code)
  }
}

// --- config ------------------------------------------------------------------------------------

export interface WalletExecutorConfig {
  readonly walletId: string
  /** The chain the node must be on; invoices for another network are refused. */
  readonly network: Bolt11.Network
  readonly requestCapMsats: bigint
  readonly windowCapMsats: bigint
  readonly windowMs: number
  /** How long a pay call waits for a terminal status before answering payment_pending. */
  readonly paymentTimeoutMs: number
  /** Hosts a payment may unlock (exact, host:port, or "*.suffix"); empty refuses every payment. */
  readonly allowedHosts: ReadonlyArray<string>
  /** Fee limit: max(amount × ppm / 1e6, floor), unless the request asks for less. */
  readonly feeLimitPpm: number
  readonly feeLimitFloorMsats: bigint
  /** Refuse invoices expiring within this many seconds. */
  readonly minInvoiceExpirySeconds: number
  /** Ask the node to decode the invoice too, and refuse when it disagrees. */
  readonly crossCheckWithNode: boolean
  readonly reconcileIntervalMs: number
}

export const defaults = {
  walletId: "default",
  network: "regtest",
  requestCapMsats: 200_000n,
  windowCapMsats: 1_000_000n,
  windowMs: 300_000,
  paymentTimeoutMs: 45_000,
  allowedHosts: [],
  feeLimitPpm: 10_000,
  feeLimitFloorMsats: 1_000n,
  minInvoiceExpirySeconds: 30,
  crossCheckWithNode: true,
  reconcileIntervalMs: 5_000
} satisfies WalletExecutorConfig

const bounded = (name: string, def: number, min: number, max: number) =>
  Config.integer(name).pipe(
    Config.withDefault(def),
    Config.validate({ message: `${name} must be an integer between ${min} and ${max}`, validation: (n) => n >= min && n <= max })
  )

/** The executor's settings from the environment (names and bounds of the upstream executor). */
export const config: Config.Config<WalletExecutorConfig> = Config.all({
  walletId: Config.string("OA_LIGHTNING_WALLET_ID").pipe(
    Config.withDefault("default"),
    Config.validate({ message: "OA_LIGHTNING_WALLET_ID must be 1-120 characters of [A-Za-z0-9._-]", validation: (s) => /^[A-Za-z0-9._-]{1,120}$/.test(s) })
  ),
  network: Config.literal("mainnet", "testnet", "signet", "regtest", "simnet")("OA_LIGHTNING_WALLET_NETWORK").pipe(Config.withDefault("regtest" as const)),
  requestCapMsats: bounded("OA_LIGHTNING_WALLET_REQUEST_CAP_MSATS", 200_000, 1_000, 100_000_000).pipe(Config.map(BigInt)),
  windowCapMsats: bounded("OA_LIGHTNING_WALLET_WINDOW_CAP_MSATS", 1_000_000, 10_000, 5_000_000_000).pipe(Config.map(BigInt)),
  windowMs: bounded("OA_LIGHTNING_WALLET_WINDOW_MS", 300_000, 1_000, 86_400_000),
  paymentTimeoutMs: bounded("OA_LIGHTNING_WALLET_PAYMENT_TIMEOUT_SECS", 45, 1, 300).pipe(Config.map((s) => s * 1000)),
  allowedHosts: Config.string("OA_LIGHTNING_WALLET_ALLOWED_HOSTS").pipe(
    Config.map((s) => s.split(",").map((h) => h.trim().toLowerCase()).filter((h) => h !== "")),
    Config.validate({
      message: "OA_LIGHTNING_WALLET_ALLOWED_HOSTS must list at least one host (comma-separated); the executor pays no host by default",
      validation: (hosts) => hosts.length > 0
    })
  ),
  feeLimitPpm: bounded("OA_LIGHTNING_WALLET_FEE_LIMIT_PPM", 10_000, 0, 1_000_000),
  feeLimitFloorMsats: bounded("OA_LIGHTNING_WALLET_FEE_LIMIT_FLOOR_MSATS", 1_000, 0, 10_000_000).pipe(Config.map(BigInt)),
  minInvoiceExpirySeconds: bounded("OA_LIGHTNING_WALLET_MIN_INVOICE_EXPIRY_SECS", 30, 0, 86_400),
  crossCheckWithNode: Config.boolean("OA_LIGHTNING_WALLET_CROSS_CHECK_WITH_NODE").pipe(Config.withDefault(true)),
  reconcileIntervalMs: bounded("OA_LIGHTNING_WALLET_RECONCILE_INTERVAL_MS", 5_000, 100, 3_600_000)
}).pipe(
  Config.validate({
    message: "OA_LIGHTNING_WALLET_WINDOW_CAP_MSATS must be at least OA_LIGHTNING_WALLET_REQUEST_CAP_MSATS",
    validation: (c) => c.windowCapMsats >= c.requestCapMsats
  })
)

// --- policy (pure) -----------------------------------------------------------------------------

const hostname = (host: string) => host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "")

/** Is `host` (as the buyer names it, possibly with a port) on the allow-list? */
export const hostAllowed = (allowedHosts: ReadonlyArray<string>, host: string): boolean => {
  const h = host.trim().toLowerCase()
  const name = hostname(h)
  return allowedHosts.some((entry) =>
    entry === h || entry === name || (entry.startsWith("*.") && (name.endsWith(entry.slice(1)) && name.length > entry.length - 1))
  )
}

/** The routing fee ceiling for a payment: max(amount × ppm, floor), never above what the caller allows. */
export const feeLimitFor = (cfg: Pick<WalletExecutorConfig, "feeLimitPpm" | "feeLimitFloorMsats">, amountMsats: bigint, requested?: bigint): bigint => {
  const proportional = (amountMsats * BigInt(cfg.feeLimitPpm) + 999_999n) / 1_000_000n
  const policy = proportional > cfg.feeLimitFloorMsats ? proportional : cfg.feeLimitFloorMsats
  return requested !== undefined && requested < policy ? requested : policy
}

// --- service -----------------------------------------------------------------------------------

export interface PayRequest {
  /** The idempotency key. */
  readonly requestId: string
  readonly invoice: string
  readonly maxAmountMsats: bigint
  readonly host: string
  readonly maxFeeMsats?: bigint | undefined
}

export interface PayResult {
  readonly requestId: string
  readonly walletId: string
  readonly payment: {
    readonly paymentId: string
    readonly paymentHash: string
    readonly amountMsats: bigint
    readonly feeMsats: bigint
    readonly preimageHex: string
    readonly paidAtMs: number
  }
  readonly quotedAmountMsats: bigint
  readonly windowSpendMsatsAfterPayment: bigint
  /** Nothing was paid by this call: it returns the outcome of an earlier one. */
  readonly idempotentReplay: boolean
}

export interface WalletStatus {
  readonly walletId: string
  readonly lifecycle: "disconnected" | "connecting" | "connected" | "error"
  readonly network: Bolt11.Network
  readonly identityPubkey: string | undefined
  readonly balanceSats: bigint | undefined
  readonly ready: boolean
  readonly allowedHostCount: number
  readonly requestCapMsats: bigint
  readonly windowCapMsats: bigint
  readonly windowMs: number
  readonly windowSpendMsats: bigint
  readonly pendingPaymentsCount: number
  readonly recentPaymentsCount: number
  readonly lastPaymentId: string | undefined
  readonly lastPaymentAtMs: number | undefined
  readonly lastErrorCode: WalletErrorCode | undefined
  readonly lastErrorMessage: string | undefined
  readonly updatedAtMs: number
}

export interface ReconcileReport {
  readonly checked: number
  readonly succeeded: number
  readonly failed: number
  readonly notSent: number
  readonly stillPending: number
}

export interface WalletExecutorService {
  readonly config: WalletExecutorConfig
  readonly pay: (request: PayRequest) => Effect.Effect<PayResult, WalletError>
  readonly status: Effect.Effect<WalletStatus>
  /** One pass over submitted payments not being paid by this process. */
  readonly reconcile: Effect.Effect<ReconcileReport>
}

export class WalletExecutor extends Context.Tag("@openagents/lightning/WalletExecutor")<WalletExecutor, WalletExecutorService>() {}

const paymentsTotal = Metric.counter("wallet_executor_payments_total", { description: "Pay calls by outcome" })
const windowSpendGauge = Metric.gauge("wallet_executor_window_spend_msats", { description: "Spend counted in the current window" })
const pendingGauge = Metric.gauge("wallet_executor_pending_payments", { description: "Submitted payments with an unknown outcome" })

const countOutcome = (outcome: string) => Metric.increment(Metric.tagged(paymentsTotal, "outcome", outcome))

/** What a payment concluded to (internal). */
type Resolution =
  | { readonly _tag: "Succeeded"; readonly record: PaymentRecord }
  | { readonly _tag: "Failed"; readonly record: PaymentRecord }
  | { readonly _tag: "Pending" }
  | { readonly _tag: "NotSent" }

/** The longest wait for the node's answers before a payment is reserved (getinfo, decode). */
const NODE_CALL_TIMEOUT_MS = 10_000

const REQUEST_ID = /^[A-Za-z0-9._:@/-]{1,200}$/

export const fingerprintOf = (request: PayRequest): string =>
  toHex(sha256(utf8(canonicalJson({
    invoice: request.invoice.trim().toLowerCase(),
    maxAmountMsats: request.maxAmountMsats.toString(),
    host: request.host.trim().toLowerCase(),
    maxFeeMsats: request.maxFeeMsats?.toString() ?? null
  }))))

const lndMessage = (e: LndError | HttpClientError.HttpClientError) => e.message

/**
 * A send refused before lnd could start a payment: a 400 (lnd's invalid argument: malformed,
 * expired or wrong-network invoice), or a refused macaroon (checked before any handler runs).
 * Nothing else proves that nothing was sent.
 */
export const refusedBeforeSending = (e: LndError): boolean =>
  e.code === "lnd_unauthorized" || (e.code === "invalid_argument" && e.httpStatus === 400)

/**
 * The error is lnd's own gRPC answer, given once its handler returned (a status body with a gRPC
 * code), and not a cancellation, a deadline or an unavailable transport, which the client side can
 * report while the handler still runs.
 */
const answeredByLnd = (e: LndError): boolean =>
  e.grpcCode !== undefined && e.grpcCode !== GrpcCode.cancelled && e.grpcCode !== GrpcCode.deadlineExceeded && e.grpcCode !== GrpcCode.unavailable

export const make = (cfg: WalletExecutorConfig) =>
  Effect.gen(function*() {
    const lnd = yield* Lnd
    const ledger = yield* PaymentLedger
    // Leases are per attempt (process id + counter): a concurrent retry of the same request in
    // this process must not borrow the lease of the attempt that is sending.
    const processId = `exec_${toHex(crypto.getRandomValues(new Uint8Array(6)))}`
    let attempts = 0
    const newOwner = () => `${processId}:${++attempts}`
    // A lease outlives the longest wait of a pay call, so no one else concludes "never sent"
    // while this process may still be sending.
    const leaseMs = cfg.paymentTimeoutMs + 30_000
    const inFlight = new Map<string, number>()
    const enter = (requestId: string) => Effect.sync(() => void inFlight.set(requestId, (inFlight.get(requestId) ?? 0) + 1))
    const leave = (requestId: string) =>
      Effect.sync(() => {
        const n = (inFlight.get(requestId) ?? 1) - 1
        if (n <= 0) inFlight.delete(requestId)
        else inFlight.set(requestId, n)
      })
    const lastError = yield* Ref.make<Option.Option<{ code: WalletErrorCode; message: string }>>(Option.none())
    const node = yield* Ref.make<Option.Option<{ pubkey: string; network: string }>>(Option.none())

    const internal = (e: { readonly message: string }) => new WalletError({ code: "internal_error", message: e.message })
    const now = Clock.currentTimeMillis.pipe(Effect.map(Number))
    const spendNow = Effect.flatMap(now, (t) => ledger.windowSpend(cfg.walletId, t, cfg.windowMs)).pipe(Effect.mapError(internal))

    /** The node must be reachable and on the configured chain before anything is paid. */
    const ensureNode = Effect.gen(function*() {
      const known = yield* Ref.get(node)
      if (Option.isSome(known)) return known.value
      const info = yield* lnd.getInfo.pipe(
        Effect.timeoutFail({ duration: Duration.millis(NODE_CALL_TIMEOUT_MS), onTimeout: () => new WalletError({ code: "connect_failed", message: "lnd getinfo timed out" }) }),
        Effect.mapError((e) => e instanceof WalletError ? e : new WalletError({ code: e.code === "lnd_unauthorized" ? "config_error" : "connect_failed", message: lndMessage(e) }))
      )
      const network = info.chains[0]?.network ?? ""
      const expected = cfg.network === "mainnet" ? ["mainnet", "bitcoin"] : [cfg.network]
      if (!expected.includes(network)) {
        return yield* Effect.fail(new WalletError({ code: "config_error", message: `the node is on ${network || "an unknown network"}, the executor is configured for ${cfg.network}` }))
      }
      const value = { pubkey: info.identity_pubkey, network }
      yield* Ref.set(node, Option.some(value))
      return value
    })

    const resultOf = (record: PaymentRecord, replay: boolean) =>
      Effect.map(spendNow, (spend): PayResult => ({
        requestId: record.requestId,
        walletId: cfg.walletId,
        payment: {
          paymentId: record.paymentHash,
          paymentHash: record.paymentHash,
          amountMsats: record.amountMsats,
          feeMsats: record.feeMsats ?? 0n,
          preimageHex: record.preimage ?? "",
          paidAtMs: record.settledAtMs ?? record.updatedAtMs
        },
        quotedAmountMsats: record.amountMsats,
        windowSpendMsatsAfterPayment: spend.spendMsats,
        idempotentReplay: replay
      }))

    const failureOf = (record: PaymentRecord) =>
      new WalletError({
        code: record.failureCode === "payment_failed" || record.failureCode === undefined ? "payment_failed" : (record.failureCode as WalletErrorCode),
        message: record.failureMessage ?? "payment failed",
        details: { paymentHash: record.paymentHash }
      })

    /** Record a terminal status reported by the node. */
    const conclude = (record: PaymentRecord, payment: Payment): Effect.Effect<Resolution, WalletError> =>
      Effect.gen(function*() {
        const t = yield* now
        if (payment.status === "SUCCEEDED") {
          const preimage = payment.payment_preimage.toLowerCase()
          if (!/^[0-9a-f]{64}$/.test(preimage) || Bolt11.paymentHashOf(preimage) !== record.paymentHash) {
            // Money may have left: keep the row submitted (counted) and tell the caller.
            return yield* Effect.fail(new WalletError({
              code: "payment_missing_preimage",
              message: "the node reported success without a preimage that matches the payment hash",
              details: { paymentHash: record.paymentHash }
            }))
          }
          const stored = yield* ledger.markSucceeded(cfg.walletId, record.requestId, { preimage, feeMsats: BigInt(payment.fee_msat), nowMs: t }).pipe(
            Effect.mapError(internal)
          )
          return { _tag: "Succeeded", record: stored } as const
        }
        const stored = yield* ledger.markFailed(cfg.walletId, record.requestId, { code: "payment_failed", message: payment.failure_reason, nowMs: t }).pipe(
          Effect.mapError(internal)
        )
        return stored.status === "succeeded" ? { _tag: "Succeeded", record: stored } as const : { _tag: "Failed", record: stored } as const
      })

    /**
     * Learn the outcome of a payment the node may have seen, by tracking its hash (read-only).
     * A 404 is "never sent" only for the lease holder; it is then reported as NotSent.
     */
    const follow = (record: PaymentRecord, waitMs: number, owner: string): Effect.Effect<Resolution, WalletError> =>
      lnd.trackPayment(record.paymentHash, { noInflightUpdates: true }).pipe(
        Stream.runLast,
        Effect.timeout(Duration.millis(Math.max(waitMs, 1))),
        Effect.flatMap((last) =>
          Option.match(last, {
            onNone: () => Effect.succeed<Resolution>({ _tag: "Pending" }),
            onSome: (payment) => conclude(record, payment)
          })
        ),
        Effect.catchTags({
          TimeoutException: () => Effect.succeed<Resolution>({ _tag: "Pending" }),
          LndError: (e) =>
            e.code !== "not_found"
              ? Effect.succeed<Resolution>({ _tag: "Pending" })
              : Effect.gen(function*() {
                const t = yield* now
                const leased = yield* ledger.claimLease(cfg.walletId, record.requestId, owner, t, leaseMs).pipe(Effect.mapError(internal))
                return leased ? { _tag: "NotSent" } as const : { _tag: "Pending" } as const
              })
        })
      )

    /** Hand a leased, submitted payment to the node and wait for its outcome. */
    const send = (record: PaymentRecord, deadlineMs: number, owner: string): Effect.Effect<Resolution, WalletError> =>
      Effect.gen(function*() {
        const started = yield* now
        const attempt = yield* lnd.sendPayment({
          payment_request: record.invoice,
          fee_limit_msat: record.feeLimitMsats.toString(),
          timeout_seconds: Math.max(1, Math.ceil((deadlineMs - started) / 1000)),
          no_inflight_updates: true
        }).pipe(
          Stream.runLast,
          Effect.timeout(Duration.millis(Math.max(deadlineMs - started, 1))),
          Effect.either
        )
        if (Either.isRight(attempt)) {
          return Option.isNone(attempt.right) ? { _tag: "Pending" } as const : yield* conclude(record, attempt.right.value)
        }
        const error = attempt.left
        const remaining = () => Effect.map(now, (t) => deadlineMs - t)
        if (error._tag === "TimeoutException") return { _tag: "Pending" } as const
        if (error.code === "payment_already_exists") return yield* follow(record, yield* remaining(), owner)
        const notSent = (message: string) =>
          Effect.gen(function*() {
            const t = yield* now
            yield* ledger.markFailed(cfg.walletId, record.requestId, { code: NOT_SENT, message, nowMs: t }).pipe(Effect.mapError(internal))
            return yield* Effect.fail(new WalletError({ code: error.code === "lnd_unauthorized" ? "config_error" : "send_failed", message }))
          })
        // A refusal before any payment exists (a bad request, a refused macaroon): nothing was sent.
        if (refusedBeforeSending(error)) return yield* notSent(error.message)
        // Anything else — a 5xx from lnd or from a proxy in front of it, a broken connection, a
        // stream cut short — may come after lnd started the payment. The row stays submitted (its
        // budget reserved) and the hash is tracked.
        const outcome = yield* follow(record, yield* remaining(), owner)
        if (outcome._tag !== "NotSent") return outcome
        // lnd's 404 proves the payment was never started only once lnd's own handler has answered;
        // after a proxy's 502/504, a client-side deadline or a broken connection the request may
        // still be on its way, so the row waits for the reconcile (which acts once the lease lapses).
        if (answeredByLnd(error)) return yield* notSent(error.message)
        return { _tag: "Pending" } as const
      })

    /** Drive a submitted payment to an answer for the caller (send it if it never left). */
    const drive = (record: PaymentRecord, replay: boolean, deadlineMs: number, owner: string): Effect.Effect<PayResult, WalletError> =>
      Effect.gen(function*() {
        yield* enter(record.requestId)
        const t = yield* now
        let resolution = replay ? yield* follow(record, deadlineMs - t, owner) : yield* send(record, deadlineMs, owner)
        // A leased payment the node never saw: send it now (this caller holds the lease).
        if (resolution._tag === "NotSent") {
          replay = false
          resolution = yield* send(record, deadlineMs, owner)
        }
        switch (resolution._tag) {
          case "Succeeded":
            yield* countOutcome(replay ? "replayed" : "succeeded")
            return yield* resultOf(resolution.record, replay)
          case "Failed":
            yield* countOutcome("failed")
            return yield* Effect.fail(failureOf(resolution.record))
          default:
            yield* countOutcome("pending")
            return yield* Effect.fail(new WalletError({
              code: "payment_pending",
              message: "the payment has not completed; retry with the same requestId to learn its outcome",
              details: { paymentHash: record.paymentHash }
            }))
        }
      }).pipe(Effect.ensuring(leave(record.requestId)))

    const fresh = (request: PayRequest, fingerprint: string, deadlineMs: number, owner: string): Effect.Effect<PayResult, WalletError> =>
      Effect.gen(function*() {
        const host = request.host.trim().toLowerCase()
        if (!hostAllowed(cfg.allowedHosts, host)) {
          return yield* Effect.fail(new WalletError({ code: "host_not_allowed", message: `host ${host} is not on the allow-list`, details: { host } }))
        }
        if (request.maxAmountMsats > cfg.requestCapMsats) {
          return yield* Effect.fail(new WalletError({
            code: "request_cap_exceeded",
            message: `maxAmountMsats ${request.maxAmountMsats} is above the per-request cap ${cfg.requestCapMsats}`,
            details: { maxAllowedMsats: cfg.requestCapMsats, quotedAmountMsats: request.maxAmountMsats }
          }))
        }
        const t = yield* now
        const invoice = yield* Bolt11.decodePayable(request.invoice, { network: cfg.network, nowMs: t, minRemainingSeconds: cfg.minInvoiceExpirySeconds }).pipe(
          Either.mapLeft((e) => new WalletError({ code: e.code, message: e.reason }))
        )
        const quoted = invoice.amountMsats!
        const limit = request.maxAmountMsats < cfg.requestCapMsats ? request.maxAmountMsats : cfg.requestCapMsats
        if (quoted > limit) {
          return yield* Effect.fail(new WalletError({
            code: "quoted_amount_exceeds_cap",
            message: `the invoice asks ${quoted} msat, above ${limit}`,
            details: { maxAllowedMsats: limit, quotedAmountMsats: quoted }
          }))
        }
        yield* ensureNode
        if (cfg.crossCheckWithNode) {
          // Bounded like every node call before the reservation: a node that never answers must
          // not hold the pay call past its deadline.
          const decodeWaitMs = Math.max(1, Math.min(NODE_CALL_TIMEOUT_MS, deadlineMs - (yield* now)))
          const decoded = yield* lnd.decodePayReq(invoice.paymentRequest).pipe(
            Effect.mapError((e) => new WalletError({ code: e.code === "lnd_unreachable" ? "connect_failed" : "prepare_failed", message: e.message })),
            Effect.timeoutFail({
              duration: Duration.millis(decodeWaitMs),
              onTimeout: () => new WalletError({ code: "connect_failed", message: `lnd did not decode the invoice within ${decodeWaitMs} ms` })
            })
          )
          if (decoded.payment_hash !== invoice.paymentHash || BigInt(decoded.num_msat) !== quoted || decoded.destination !== invoice.payee) {
            return yield* Effect.fail(new WalletError({ code: "prepare_failed", message: "the node decodes the invoice differently (hash, amount or payee)" }))
          }
        }
        const feeLimit = feeLimitFor(cfg, quoted, request.maxFeeMsats)
        const reserved = yield* ledger.reserve({
          walletId: cfg.walletId,
          requestId: request.requestId,
          paymentHash: invoice.paymentHash,
          invoice: invoice.paymentRequest,
          host,
          amountMsats: quoted,
          feeLimitMsats: feeLimit,
          maxAmountMsats: request.maxAmountMsats,
          fingerprint,
          // Read again: the node calls above take time, and the row's creation time and lease
          // start now, not when the request arrived.
          nowMs: yield* now,
          windowMs: cfg.windowMs,
          windowCapMsats: cfg.windowCapMsats,
          leaseOwner: owner,
          leaseMs
        }).pipe(Effect.mapError(internal))
        switch (reserved._tag) {
          case "Existing":
            return yield* replay(request, fingerprint, reserved.record, deadlineMs, owner)
          case "HashActive":
            return yield* Effect.fail(new WalletError({
              code: "duplicate_payment",
              message: `this invoice is already ${reserved.record.status === "succeeded" ? "paid" : "being paid"} under another requestId`,
              details: { paymentHash: invoice.paymentHash }
            }))
          case "WindowExceeded":
            return yield* Effect.fail(new WalletError({
              code: "window_cap_exceeded",
              message: `paying ${quoted} msat (+ fee limit ${feeLimit}) would take the window spend ${reserved.windowSpendMsats} over ${cfg.windowCapMsats}`,
              details: { quotedAmountMsats: quoted, windowSpendMsats: reserved.windowSpendMsats, windowCapMsats: cfg.windowCapMsats }
            }))
          case "Reserved":
            return yield* drive(reserved.record, false, deadlineMs, owner)
        }
      })

    const replay = (request: PayRequest, fingerprint: string, record: PaymentRecord, deadlineMs: number, owner: string): Effect.Effect<PayResult, WalletError> => {
      if (record.fingerprint !== fingerprint) {
        return Effect.fail(new WalletError({ code: "idempotency_conflict", message: `requestId ${request.requestId} was used for a different payment` }))
      }
      switch (record.status) {
        case "succeeded":
          return Effect.zipLeft(resultOf(record, true), countOutcome("replayed"))
        case "failed":
          // Proven never sent: pay it now, under the same request id.
          return record.failureCode === NOT_SENT ? fresh(request, fingerprint, deadlineMs, owner) : Effect.fail(failureOf(record))
        case "submitted":
          return drive(record, true, deadlineMs, owner)
      }
    }

    const pay = (request: PayRequest): Effect.Effect<PayResult, WalletError> =>
      Effect.gen(function*() {
        if (!REQUEST_ID.test(request.requestId)) {
          return yield* Effect.fail(new WalletError({ code: "invalid_request", message: "requestId must be 1-200 characters of [A-Za-z0-9._:@/-]" }))
        }
        if (typeof request.maxAmountMsats !== "bigint" || request.maxAmountMsats <= 0n || request.host.trim() === "" || request.invoice.trim() === "") {
          return yield* Effect.fail(new WalletError({ code: "invalid_request", message: "invoice, host and a positive maxAmountMsats are required" }))
        }
        // The HTTP schema refuses these too; library callers reach this line directly (a negative
        // fee limit would lower the reserved window and be sent to lnd as is).
        if (request.maxFeeMsats !== undefined && (typeof request.maxFeeMsats !== "bigint" || request.maxFeeMsats < 0n)) {
          return yield* Effect.fail(new WalletError({ code: "invalid_request", message: "maxFeeMsats must be a non-negative integer (msat)" }))
        }
        const fingerprint = fingerprintOf(request)
        const deadlineMs = (yield* now) + cfg.paymentTimeoutMs
        const existing = yield* ledger.get(cfg.walletId, request.requestId).pipe(Effect.mapError(internal))
        const owner = newOwner()
        return yield* Option.isSome(existing)
          ? replay(request, fingerprint, existing.value, deadlineMs, owner)
          : fresh(request, fingerprint, deadlineMs, owner)
      }).pipe(
        Effect.tapError((e) => e.code === "payment_pending" ? Effect.void : Ref.set(lastError, Option.some({ code: e.code, message: e.message }))),
        Effect.tap(() => updateGauges),
        Effect.tapError(() => updateGauges)
      )

    const updateGauges = Effect.gen(function*() {
      const spend = yield* spendNow
      yield* Metric.set(windowSpendGauge, Number(spend.spendMsats))
      yield* Metric.set(pendingGauge, spend.pendingCount)
    }).pipe(Effect.ignore)

    const reconcile: Effect.Effect<ReconcileReport> = Effect.gen(function*() {
      const submitted = yield* ledger.listSubmitted(cfg.walletId).pipe(Effect.mapError(internal))
      const report = { checked: 0, succeeded: 0, failed: 0, notSent: 0, stillPending: 0 }
      for (const record of submitted) {
        if (inFlight.has(record.requestId)) continue
        report.checked++
        const outcome = yield* follow(record, 3_000, newOwner()).pipe(Effect.orElseSucceed((): Resolution => ({ _tag: "Pending" })))
        switch (outcome._tag) {
          case "Succeeded":
            report.succeeded++
            break
          case "Failed":
            report.failed++
            break
          case "NotSent": {
            const t = yield* now
            yield* ledger.markFailed(cfg.walletId, record.requestId, { code: NOT_SENT, message: "the node never saw this payment", nowMs: t }).pipe(
              Effect.mapError(internal)
            )
            report.notSent++
            break
          }
          default:
            report.stillPending++
        }
      }
      yield* updateGauges
      if (report.checked > 0) yield* Effect.logInfo("wallet executor reconcile", report)
      return report
    }).pipe(Effect.catchAll((e) => Effect.as(Effect.logWarning(`reconcile failed: ${e.message}`), { checked: 0, succeeded: 0, failed: 0, notSent: 0, stillPending: 0 })))

    const status: Effect.Effect<WalletStatus> = Effect.gen(function*() {
      const info = yield* Effect.either(ensureNode)
      const balance = Either.isRight(info)
        ? yield* lnd.channelBalance.pipe(Effect.timeout(Duration.seconds(5)), Effect.option)
        : Option.none()
      const spend = yield* Effect.orElseSucceed(spendNow, () => ({ spendMsats: 0n, pendingCount: 0 }))
      const recent = yield* ledger.recent(cfg.walletId, 50).pipe(Effect.orElseSucceed(() => []))
      const lastPaid = recent.find((r) => r.status === "succeeded")
      const last = yield* Ref.get(lastError)
      return {
        walletId: cfg.walletId,
        lifecycle: Either.isRight(info) ? "connected" : info.left.code === "connect_failed" ? "disconnected" : "error",
        network: cfg.network,
        identityPubkey: Either.isRight(info) ? info.right.pubkey : undefined,
        balanceSats: Option.getOrUndefined(Option.map(balance, (b) => BigInt(b.local_balance.sat))),
        ready: Either.isRight(info),
        allowedHostCount: cfg.allowedHosts.length,
        requestCapMsats: cfg.requestCapMsats,
        windowCapMsats: cfg.windowCapMsats,
        windowMs: cfg.windowMs,
        windowSpendMsats: spend.spendMsats,
        pendingPaymentsCount: spend.pendingCount,
        recentPaymentsCount: recent.length,
        lastPaymentId: lastPaid?.paymentHash,
        lastPaymentAtMs: lastPaid?.settledAtMs,
        lastErrorCode: Option.getOrUndefined(Option.map(last, (l) => l.code)),
        lastErrorMessage: Option.getOrUndefined(Option.map(last, (l) => l.message)),
        updatedAtMs: yield* now
      } satisfies WalletStatus
    })

    return { config: cfg, pay, status, reconcile } satisfies WalletExecutorService
  })

/**
 * The executor, with a reconcile pass on start (before the layer is ready, so a restarted
 * executor has settled what it can of its crashed payments) and then every reconcileIntervalMs.
 */
export const layer = (cfg: WalletExecutorConfig): Layer.Layer<WalletExecutor, never, Lnd | PaymentLedger> =>
  Layer.scoped(
    WalletExecutor,
    Effect.gen(function*() {
      const service = yield* make(cfg)
      yield* service.reconcile
      yield* service.reconcile.pipe(
        Effect.repeat(Schedule.spaced(Duration.millis(cfg.reconcileIntervalMs))),
        Effect.delay(Duration.millis(cfg.reconcileIntervalMs)),
        Effect.forkScoped
      )
      return service
    })
  )

export const layerConfig = (settings: Config.Config<WalletExecutorConfig> = config) =>
  Layer.unwrapEffect(Effect.map(settings, layer))
