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
//    (`amount_over_cap`), or an amountless invoice, is refused before paying. Hosts are compared
//    lower-case and without a trailing dot (`example.com.` is `example.com`); a blocked entry
//    also blocks its subdomains.
// 4. The payer pays with request id `l402:<payment hash>`, so a retried payment of the same
//    challenge is idempotent at the wallet executor; the preimage must hash to the invoice's
//    payment hash. The credential is cached, and the request retried with it; a 401/402 then
//    invalidates it (`credential_rejected`).
// 5. A payment whose outcome is unknown (the payer answered payment_pending, or failed in a way
//    that does not prove nothing was paid: unreachable, internal error) keeps its challenge for
//    (host, scope): the next fetch resumes that payment — same invoice, same request id, same
//    cap — instead of taking a new 402 and paying a second invoice, until it is paid, fails
//    definitively, or its invoice expires (then the challenge is dropped and a fresh one taken).
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
import type { WalletErrorCode } from "./WalletExecutor.js"
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
  /**
   * Never paid: each entry blocks its name and every subdomain of it, on any port unless the entry
   * names one (`example.com` and `*.example.com` both block `a.b.example.com`; broader on purpose
   * than a route pattern's `*.`, which matches one label). Compared lower-case, trailing dot removed.
   */
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

/** A host as compared by the policy: lower-case, one trailing dot removed, port apart. */
export const parseHost = (host: string): { readonly name: string; readonly port: string | undefined } => {
  const h = host.trim().toLowerCase()
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(h)
  return { name: (m?.[1] ?? h).replace(/\.$/, ""), port: m?.[2] }
}

const hostKey = (host: { readonly name: string; readonly port: string | undefined }) => host.port === undefined ? host.name : `${host.name}:${host.port}`

/** On the allow-list: the exact name, or name:port (no subdomains). */
const allowListed = (list: ReadonlyArray<string>, host: string) => {
  const h = parseHost(host)
  return list.some((entry) => {
    const e = parseHost(entry)
    return e.name === h.name && (e.port === undefined || e.port === h.port)
  })
}

/** Blocked: the name or any subdomain of a blocked entry (`*.name` reads as `name`), on any port unless the entry names one. */
export const hostBlocked = (list: ReadonlyArray<string>, host: string): boolean => {
  const h = parseHost(host)
  return list.some((entry) => {
    const e = parseHost(entry)
    const name = e.name.replace(/^\*\./, "")
    return name !== "" && (h.name === name || h.name.endsWith(`.${name}`)) && (e.port === undefined || e.port === h.port)
  })
}

/** Payer answers that do not prove the invoice unpaid: the payment may still complete. */
const UNSETTLED: ReadonlySet<WalletErrorCode> = new Set<WalletErrorCode>(["payment_pending", "connect_failed", "internal_error", "payment_missing_preimage"])

/** A challenge whose payment was started and has no known outcome yet. */
interface PendingChallenge {
  readonly macaroon: string
  readonly invoice: string
  readonly paymentHash: string
  readonly amountMsats: bigint
  /** Unix seconds. */
  readonly expiresAt: number
  /** What the payment was asked with: a resume sends the same (the executor's idempotency key covers it). */
  readonly request: PayInvoiceRequest
}

export const make = (policy: BuyerPolicy = {}) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const payer = yield* InvoicePayer
    const cache = yield* CredentialCache
    const ttl = policy.credentialTtlMs ?? 300_000
    const ceiling = policy.defaultMaxSpendMsats ?? 100_000n
    // Per (host, scope): kept for the life of this buyer (build it once, as with the cache).
    const pending = new Map<string, PendingChallenge>()
    const pendingKey = (host: string, scope: string) => `${host}\u0000${scope}`

    /** Take a new challenge: the request without credential; a 402 is checked against the policy. */
    const challengeFor = (request: HttpClientRequest.HttpClientRequest, host: string, cap: bigint) =>
      Effect.gen(function*() {
        const first = yield* http.execute(request)
        if (first.status !== 402) return { _tag: "NotPaywalled", response: first } as const
        const challenge = yield* L402.parseChallenge(first.headers["www-authenticate"] ?? "").pipe(
          Either.mapLeft((e) => new BuyerError({ code: "challenge_invalid", message: e.reason }))
        )
        if (hostBlocked(policy.blockedHosts ?? [], host)) return yield* Effect.fail(new BuyerError({ code: "host_blocked", message: `${host} is blocked` }))
        if ((policy.allowedHosts ?? []).length > 0 && !allowListed(policy.allowedHosts ?? [], host)) {
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
        if (quoted > cap) return yield* Effect.fail(new BuyerError({ code: "amount_over_cap", message: `${quoted} msat is above the cap ${cap}` }))
        const identifier = yield* L402.inspect(challenge.macaroon).pipe(Either.mapLeft((e) => new BuyerError({ code: "challenge_invalid", message: e.reason })))
        if (identifier.paymentHash !== invoice.paymentHash) {
          return yield* Effect.fail(new BuyerError({ code: "challenge_invalid", message: "the token is not for the invoice's payment hash" }))
        }
        const taken: PendingChallenge = {
          macaroon: challenge.macaroon,
          invoice: challenge.invoice,
          paymentHash: invoice.paymentHash,
          amountMsats: quoted,
          expiresAt: invoice.expiresAt,
          request: { invoice: challenge.invoice, maxAmountMsats: cap, host, requestId: `l402:${invoice.paymentHash}` }
        }
        return { _tag: "Challenge", challenge: taken } as const
      })

    const fetch = (
      request: HttpClientRequest.HttpClientRequest,
      options: FetchOptions = {}
    ): Effect.Effect<{ readonly response: HttpClientResponse.HttpClientResponse; readonly result: FetchResult }, BuyerError | HttpClientError.HttpClientError> =>
      Effect.gen(function*() {
        const host = hostKey(parseHost(new URL(request.url).host))
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
        const key = pendingKey(host, scope)
        // A payment started by an earlier fetch and not settled: resume it, never pay another invoice.
        const resumed = pending.get(key)
        let challenge: PendingChallenge
        if (resumed !== undefined) {
          challenge = resumed
        } else {
          const cap = options.maxSpendMsats !== undefined && options.maxSpendMsats < ceiling ? options.maxSpendMsats : ceiling
          const taken = yield* challengeFor(request, host, cap)
          if (taken._tag === "NotPaywalled") {
            return {
              response: taken.response,
              result: { statusCode: taken.response.status, cacheStatus, fromCache: false, paid: false, amountMsats: undefined, paymentId: undefined, proofReference: "none" }
            } as const
          }
          challenge = taken.challenge
        }
        const attempt = yield* Effect.either(payer.payInvoice(challenge.request))
        if (Either.isLeft(attempt)) {
          const e = attempt.left
          const expired = Number(yield* Clock.currentTimeMillis) >= challenge.expiresAt * 1000
          if (UNSETTLED.has(e.code) && !expired) {
            pending.set(key, challenge)
            return yield* Effect.fail(new BuyerError({
              code: "payment_pending",
              message: `${e.code}: ${e.message} (the payment of ${challenge.request.requestId} may still complete; the next fetch resumes it)`,
              cause: e
            }))
          }
          pending.delete(key)
          // The invoice expired with its payment unresolved: it can no longer be paid; take a fresh challenge.
          if (resumed !== undefined && expired) return yield* fetch(request, options)
          return yield* Effect.fail(new BuyerError({ code: UNSETTLED.has(e.code) ? "payment_pending" : "payment_failed", message: `${e.code}: ${e.message}`, cause: e }))
        }
        pending.delete(key)
        const paid = attempt.right
        if (!/^[0-9a-f]{64}$/.test(paid.preimageHex) || Bolt11.paymentHashOf(paid.preimageHex) !== challenge.paymentHash) {
          return yield* Effect.fail(new BuyerError({ code: "payment_failed", message: "the payer returned a preimage that does not match the invoice" }))
        }
        yield* cache.put({ host, scope, macaroon: challenge.macaroon, preimageHex: paid.preimageHex, amountMsats: challenge.amountMsats, issuedAtMs: Number(yield* Clock.currentTimeMillis) })
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
            amountMsats: challenge.amountMsats,
            paymentId: paid.paymentId,
            proofReference: `preimage:${paid.preimageHex.slice(0, 16)}`
          }
        } as const
      })

    return { fetch }
  })
