// The L402 buyer: an HttpClient-based `fetch` that pays 402 challenges (UPSTREAM_SPEC §4.3).
//
// 1. A cached credential for (host, scope) younger than its TTL is sent; if the answer is not
//    401/402 that is the result (cache hit); otherwise it is invalidated and the request goes out
//    unauthenticated.
// 2. On 402 the challenge is parsed (L402 preferred over LSAT; `token=` or `macaroon=`). The
//    amount is the invoice's own (decoded and signature-checked here); a stated `amount_msats`
//    must agree with it.
// 3. Policy: a blocked host (`host_blocked`), a host missing from a non-empty allow-list
//    (`host_not_allowlisted`), an amount above min(defaultMaxSpendMsats, maxSpendMsats)
//    (`amount_over_cap`), or an amountless invoice, is refused before paying.
// 4. The payer pays with request id `l402:<payment hash>`, so a retried payment of the same
//    challenge is idempotent at the wallet executor; the preimage must hash to the invoice's
//    payment hash. The credential is cached, and the request retried with it; a 401/402 then
//    invalidates it (`credential_rejected`).
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Bolt11 from "./Bolt11.js"
import * as L402 from "./L402.js"
import { Lnd } from "./Lnd.js"
import { WalletError } from "./WalletExecutor.js"
import * as WalletExecutorClient from "./WalletExecutorClient.js"

export type BuyerErrorCode =
  | "host_blocked"
  | "host_not_allowlisted"
  | "amount_over_cap"
  | "challenge_invalid"
  | "payment_failed"
  | "payment_pending"
  | "credential_rejected"

export class BuyerError extends Data.TaggedError("BuyerError")<{ readonly code: BuyerErrorCode; readonly message: string; readonly cause?: unknown }> {}

// --- payer -------------------------------------------------------------------------------------

export interface PayInvoiceRequest {
  readonly invoice: string
  readonly maxAmountMsats: bigint
  readonly host: string
  /** Idempotency key: the same key never pays twice. */
  readonly requestId: string
}

export interface PaidInvoice {
  readonly preimageHex: string
  readonly amountMsats: bigint
  readonly paymentId: string
}

export interface InvoicePayerService {
  readonly payInvoice: (request: PayInvoiceRequest) => Effect.Effect<PaidInvoice, WalletError>
}

export class InvoicePayer extends Context.Tag("@openagents/lightning/InvoicePayer")<InvoicePayer, InvoicePayerService>() {}

/** Pay through the wallet executor's HTTP API (spend policy and idempotency live there). */
export const walletExecutorPayer = (config: WalletExecutorClient.ClientConfig): Layer.Layer<InvoicePayer, never, HttpClient.HttpClient> =>
  Layer.effect(
    InvoicePayer,
    Effect.map(WalletExecutorClient.make(config), (client) => ({
      payInvoice: (r) =>
        client.pay({ requestId: r.requestId, invoice: r.invoice, maxAmountMsats: r.maxAmountMsats, host: r.host }).pipe(
          Effect.map((result) => ({ preimageHex: result.payment.preimageHex, amountMsats: result.payment.amountMsats, paymentId: result.payment.paymentId }))
        )
    }))
  )

/**
 * Pay directly through an lnd node (no spend policy beyond the buyer's cap). The routing fee limit
 * is its own number — the upstream passed the amount cap as the fee limit ([gap]).
 */
export const lndPayer = (options: { readonly feeLimitMsats: bigint; readonly timeoutSeconds?: number }): Layer.Layer<InvoicePayer, never, Lnd> =>
  Layer.effect(
    InvoicePayer,
    Effect.map(Lnd, (lnd) => ({
      payInvoice: (r) =>
        Effect.gen(function*() {
          const invoice = yield* Bolt11.decode(r.invoice).pipe(Either.mapLeft((e) => new WalletError({ code: e.code, message: e.reason })))
          if (invoice.amountMsats === undefined || invoice.amountMsats > r.maxAmountMsats) {
            return yield* Effect.fail(new WalletError({ code: "quoted_amount_exceeds_cap", message: "the invoice is over the cap" }))
          }
          const last = yield* lnd.sendPayment({
            payment_request: r.invoice,
            fee_limit_msat: options.feeLimitMsats.toString(),
            timeout_seconds: options.timeoutSeconds ?? 60,
            no_inflight_updates: true
          }).pipe(
            Stream.runLast,
            Effect.mapError((e) => new WalletError({ code: e.code === "stream_interrupted" ? "payment_pending" : "send_failed", message: e.message }))
          )
          if (Option.isNone(last) || last.value.status !== "SUCCEEDED") {
            return yield* Effect.fail(new WalletError({ code: "payment_failed", message: Option.match(last, { onNone: () => "no outcome", onSome: (p) => p.failure_reason }) }))
          }
          return { preimageHex: last.value.payment_preimage, amountMsats: BigInt(last.value.value_msat), paymentId: last.value.payment_hash }
        })
    }))
  )

// --- credential cache --------------------------------------------------------------------------

export interface CachedCredential {
  readonly host: string
  readonly scope: string
  readonly macaroon: string
  readonly preimageHex: string
  readonly amountMsats: bigint
  readonly issuedAtMs: number
}

export interface CredentialCacheService {
  readonly get: (host: string, scope: string) => Effect.Effect<Option.Option<CachedCredential>>
  readonly put: (credential: CachedCredential) => Effect.Effect<void>
  readonly invalidate: (host: string, scope: string) => Effect.Effect<void>
}

export class CredentialCache extends Context.Tag("@openagents/lightning/CredentialCache")<CredentialCache, CredentialCacheService>() {}

export const memoryCache = Layer.sync(CredentialCache, () => {
  const entries = new Map<string, CachedCredential>()
  const key = (host: string, scope: string) => `${host}\u0000${scope}`
  return {
    get: (host, scope) => Effect.sync(() => Option.fromNullable(entries.get(key(host, scope)))),
    put: (c) => Effect.sync(() => void entries.set(key(c.host, c.scope), c)),
    invalidate: (host, scope) => Effect.sync(() => void entries.delete(key(host, scope)))
  }
})

// --- fetch -------------------------------------------------------------------------------------

export interface BuyerPolicy {
  /** Non-empty: only these hosts (host or host:port, lower-case) are paid. */
  readonly allowedHosts?: ReadonlyArray<string>
  readonly blockedHosts?: ReadonlyArray<string>
  /** Hard ceiling of this buyer (default 100 000 msat, the upstream default). */
  readonly defaultMaxSpendMsats?: bigint
  /** Credential TTL (default 5 minutes). */
  readonly credentialTtlMs?: number
  /** Authorization format per host (default: the spec's `L402 <macaroon>:<preimage>`). */
  readonly authorizationStyle?: (host: string) => L402.AuthorizationStyle
}

export type CacheStatus = "miss" | "hit" | "stale" | "invalid"

export interface FetchResult {
  readonly statusCode: number
  readonly cacheStatus: CacheStatus
  readonly fromCache: boolean
  readonly paid: boolean
  readonly amountMsats: bigint | undefined
  readonly paymentId: string | undefined
  /** "preimage:<first 16 hex>" or "none". */
  readonly proofReference: string
}

export interface FetchOptions {
  readonly scope?: string
  /** This call's ceiling (the effective cap is the lower of this and the buyer's). */
  readonly maxSpendMsats?: bigint
}

const listed = (list: ReadonlyArray<string> | undefined, host: string) => {
  const name = host.replace(/:\d+$/, "")
  return (list ?? []).some((h) => h.toLowerCase() === host || h.toLowerCase() === name)
}

export const make = (policy: BuyerPolicy = {}) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const payer = yield* InvoicePayer
    const cache = yield* CredentialCache
    const ttl = policy.credentialTtlMs ?? 300_000
    const ceiling = policy.defaultMaxSpendMsats ?? 100_000n

    const fetch = (
      request: HttpClientRequest.HttpClientRequest,
      options: FetchOptions = {}
    ): Effect.Effect<{ readonly response: HttpClientResponse.HttpClientResponse; readonly result: FetchResult }, BuyerError | HttpClientError.HttpClientError> =>
      Effect.gen(function*() {
        const host = new URL(request.url).host.toLowerCase()
        const scope = options.scope ?? "default"
        const style = policy.authorizationStyle?.(host) ?? "macaroon_preimage_colon"
        const now = yield* Clock.currentTimeMillis
        let cacheStatus: CacheStatus = "miss"
        const cached = yield* cache.get(host, scope)
        if (Option.isSome(cached)) {
          if (Number(now) - cached.value.issuedAtMs < ttl) {
            const authed = request.pipe(HttpClientRequest.setHeader("authorization", L402.authorizationHeader(cached.value.macaroon, cached.value.preimageHex, style)))
            const response = yield* http.execute(authed)
            if (response.status !== 401 && response.status !== 402) {
              return {
                response,
                result: { statusCode: response.status, cacheStatus: "hit", fromCache: true, paid: false, amountMsats: undefined, paymentId: undefined, proofReference: "none" }
              } as const
            }
            cacheStatus = "invalid"
          } else {
            cacheStatus = "stale"
          }
          yield* cache.invalidate(host, scope)
        }
        const first = yield* http.execute(request)
        if (first.status !== 402) {
          return {
            response: first,
            result: { statusCode: first.status, cacheStatus, fromCache: false, paid: false, amountMsats: undefined, paymentId: undefined, proofReference: "none" }
          } as const
        }
        const challenge = yield* L402.parseChallenge(first.headers["www-authenticate"] ?? "").pipe(
          Either.mapLeft((e) => new BuyerError({ code: "challenge_invalid", message: e.reason }))
        )
        if (listed(policy.blockedHosts, host)) return yield* Effect.fail(new BuyerError({ code: "host_blocked", message: `${host} is blocked` }))
        if ((policy.allowedHosts ?? []).length > 0 && !listed(policy.allowedHosts, host)) {
          return yield* Effect.fail(new BuyerError({ code: "host_not_allowlisted", message: `${host} is not on the allow-list` }))
        }
        const invoice = yield* Bolt11.decode(challenge.invoice).pipe(
          Either.mapLeft((e) => new BuyerError({ code: "challenge_invalid", message: `the challenge's invoice: ${e.message}` }))
        )
        const quoted = invoice.amountMsats
        if (quoted === undefined) return yield* Effect.fail(new BuyerError({ code: "challenge_invalid", message: "the challenge's invoice has no amount" }))
        if (challenge.amountMsats !== undefined && challenge.amountMsats !== quoted) {
          return yield* Effect.fail(new BuyerError({ code: "challenge_invalid", message: "amount_msats disagrees with the invoice" }))
        }
        const cap = options.maxSpendMsats !== undefined && options.maxSpendMsats < ceiling ? options.maxSpendMsats : ceiling
        if (quoted > cap) return yield* Effect.fail(new BuyerError({ code: "amount_over_cap", message: `${quoted} msat is above the cap ${cap}` }))
        const identifier = yield* L402.inspect(challenge.macaroon).pipe(Either.mapLeft((e) => new BuyerError({ code: "challenge_invalid", message: e.reason })))
        if (identifier.paymentHash !== invoice.paymentHash) {
          return yield* Effect.fail(new BuyerError({ code: "challenge_invalid", message: "the token is not for the invoice's payment hash" }))
        }
        const paid = yield* payer.payInvoice({ invoice: challenge.invoice, maxAmountMsats: cap, host, requestId: `l402:${invoice.paymentHash}` }).pipe(
          Effect.mapError((e) => new BuyerError({ code: e.code === "payment_pending" ? "payment_pending" : "payment_failed", message: `${e.code}: ${e.message}`, cause: e }))
        )
        if (!/^[0-9a-f]{64}$/.test(paid.preimageHex) || Bolt11.paymentHashOf(paid.preimageHex) !== invoice.paymentHash) {
          return yield* Effect.fail(new BuyerError({ code: "payment_failed", message: "the payer returned a preimage that does not match the invoice" }))
        }
        yield* cache.put({ host, scope, macaroon: challenge.macaroon, preimageHex: paid.preimageHex, amountMsats: quoted, issuedAtMs: Number(yield* Clock.currentTimeMillis) })
        const response = yield* http.execute(request.pipe(HttpClientRequest.setHeader("authorization", L402.authorizationHeader(challenge.macaroon, paid.preimageHex, style))))
        if (response.status === 401 || response.status === 402) {
          yield* cache.invalidate(host, scope)
          return yield* Effect.fail(new BuyerError({ code: "credential_rejected", message: `the server refused the paid credential (${response.status})` }))
        }
        return {
          response,
          result: {
            statusCode: response.status,
            cacheStatus,
            fromCache: false,
            paid: true,
            amountMsats: quoted,
            paymentId: paid.paymentId,
            proofReference: `preimage:${paid.preimageHex.slice(0, 16)}`
          }
        } as const
      })

    return { fetch }
  })
