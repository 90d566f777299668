// The wallet executor's HTTP API (UPSTREAM_SPEC §4.2), as an @effect/platform router:
//
//   POST /pay-bolt11 {requestId?, payment: {invoice, maxAmountMsats, host, maxFeeMsats?}}
//     200 {ok: true, requestId, result: {requestId, walletId, payment: {paymentId, paymentHash,
//          amountMsats, feeMsats, preimageHex, paidAtMs}, quotedAmountMsats,
//          windowSpendMsatsAfterPayment, idempotentReplay}}
//     4xx/5xx {ok: false, error: {requestId, code, message, details?}}
//   GET /status  {ok: true, requestId, status: {...}}
//
// Every route requires `Authorization: Bearer <token>` (401 with
// `WWW-Authenticate: Bearer realm="wallet-executor"`). The request id is the idempotency key:
// from the body, else `x-request-id`, else a random UUID (which makes the call unsafe to retry).
// Amounts are JSON numbers (msat), as upstream; they are accepted as numbers or digit strings.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { equalBytes, utf8 } from "../internal/bytes.js"
import type { PayResult, WalletErrorDetails, WalletStatus } from "../WalletExecutor.js"
import { httpStatusOf, WalletError, WalletExecutor } from "../WalletExecutor.js"

const Msats = Schema.Union(
  Schema.Int.pipe(Schema.nonNegative()),
  Schema.String.pipe(Schema.pattern(/^[0-9]{1,19}$/))
).pipe(Schema.transform(Schema.BigIntFromSelf, { strict: true, decode: (v) => BigInt(v), encode: (v) => v.toString() }))

export const PayBody = Schema.Struct({
  requestId: Schema.optional(Schema.String),
  payment: Schema.Struct({
    invoice: Schema.String,
    maxAmountMsats: Msats,
    host: Schema.String,
    maxFeeMsats: Schema.optional(Msats)
  })
})

const num = (v: bigint | undefined) => (v === undefined ? undefined : Number(v))

export const resultJson = (r: PayResult) => ({
  requestId: r.requestId,
  walletId: r.walletId,
  payment: {
    paymentId: r.payment.paymentId,
    paymentHash: r.payment.paymentHash,
    amountMsats: num(r.payment.amountMsats),
    feeMsats: num(r.payment.feeMsats),
    preimageHex: r.payment.preimageHex,
    paidAtMs: r.payment.paidAtMs
  },
  quotedAmountMsats: num(r.quotedAmountMsats),
  windowSpendMsatsAfterPayment: num(r.windowSpendMsatsAfterPayment),
  idempotentReplay: r.idempotentReplay
})

const detailsJson = (d: WalletErrorDetails | undefined) =>
  d === undefined ? undefined : {
    host: d.host,
    maxAllowedMsats: num(d.maxAllowedMsats),
    quotedAmountMsats: num(d.quotedAmountMsats),
    windowSpendMsats: num(d.windowSpendMsats),
    windowCapMsats: num(d.windowCapMsats),
    paymentHash: d.paymentHash,
    failureReason: d.failureReason
  }

export const statusJson = (s: WalletStatus) => ({
  walletId: s.walletId,
  mode: "lnd_rest",
  lifecycle: s.lifecycle,
  network: s.network,
  identityPubkey: s.identityPubkey,
  balanceSats: num(s.balanceSats),
  macaroonConfigured: true,
  ready: s.ready,
  allowedHostCount: s.allowedHostCount,
  requestCapMsats: num(s.requestCapMsats),
  windowCapMsats: num(s.windowCapMsats),
  windowMs: s.windowMs,
  windowSpendMsats: num(s.windowSpendMsats),
  pendingPaymentsCount: s.pendingPaymentsCount,
  recentPaymentsCount: s.recentPaymentsCount,
  lastPaymentId: s.lastPaymentId,
  lastPaymentAtMs: s.lastPaymentAtMs,
  lastErrorCode: s.lastErrorCode,
  lastErrorMessage: s.lastErrorMessage,
  updatedAtMs: s.updatedAtMs
})

const errorResponse = (requestId: string, error: WalletError) =>
  HttpServerResponse.unsafeJson(
    { ok: false, error: { requestId, code: error.code, message: error.message, details: detailsJson(error.details) } },
    {
      status: httpStatusOf(error.code),
      headers: error.code === "unauthorized" ? { "www-authenticate": "Bearer realm=\"wallet-executor\"" } : {}
    }
  )

const requestIdOf = (request: HttpServerRequest.HttpServerRequest, body?: string) => {
  const header = request.headers["x-request-id"]
  return body !== undefined && body !== "" ? body : header !== undefined && header !== "" ? header : crypto.randomUUID()
}

/** Constant-time bearer check. */
const authorized = (request: HttpServerRequest.HttpServerRequest, token: Redacted.Redacted<string>) => {
  const header = request.headers["authorization"] ?? ""
  const match = /^Bearer\s+(.+)$/i.exec(header.trim())
  if (match === null) return false
  const given = utf8(match[1]!)
  const expected = utf8(Redacted.value(token))
  return given.length === expected.length && equalBytes(given, expected)
}

/** The executor's routes; `authToken` is required on each of them. */
export const router = (authToken: Redacted.Redacted<string>) => {
  const guard = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (!authorized(request, authToken)) {
        return errorResponse(requestIdOf(request), new WalletError({ code: "unauthorized", message: "a valid Bearer token is required" }))
      }
      return yield* handler
    })

  return HttpRouter.empty.pipe(
    HttpRouter.post(
      "/pay-bolt11",
      guard(Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const executor = yield* WalletExecutor
        const raw = yield* Effect.either(request.json)
        const body = raw._tag === "Right" ? Schema.decodeUnknownEither(PayBody)(raw.right) : undefined
        if (body === undefined || body._tag === "Left") {
          const reason = body === undefined ? "the body is not JSON" : body.left.message
          return errorResponse(requestIdOf(request), new WalletError({ code: "invalid_request", message: reason }))
        }
        const requestId = requestIdOf(request, body.right.requestId)
        return yield* executor.pay({
          requestId,
          invoice: body.right.payment.invoice,
          maxAmountMsats: body.right.payment.maxAmountMsats,
          host: body.right.payment.host,
          maxFeeMsats: body.right.payment.maxFeeMsats
        }).pipe(
          Effect.map((result) => HttpServerResponse.unsafeJson({ ok: true, requestId, result: resultJson(result) })),
          Effect.catchAll((error) => Effect.succeed(errorResponse(requestId, error)))
        )
      }))
    ),
    HttpRouter.get(
      "/status",
      guard(Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const executor = yield* WalletExecutor
        const status = yield* executor.status
        return HttpServerResponse.unsafeJson({ ok: true, requestId: requestIdOf(request), status: statusJson(status) })
      }))
    )
  )
}
