// L402 as HTTP middleware for @effect/platform: a paywall in front of any HttpApp. A request with
// a valid credential for the service reaches the app, with the verified token in context
// (`L402Token`, for the app's own capability/constraint checks); any other request gets a fresh
// challenge, as Aperture answers: 402, an invoice from the node (AddInvoice, memo "L402") and a
// token minted for its payment hash, `Cache-Control: no-store`, body "payment required". If the
// node cannot make an invoice the answer is 500 "challenge failure" — never the resource.
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import { fromBase64, toHex } from "./internal/bytes.js"
import * as L402 from "./L402.js"
import { Lnd } from "./Lnd.js"
import * as Macaroon from "./Macaroon.js"

export class L402Token extends Context.Tag("@openagents/lightning/L402Token")<L402Token, L402.VerifiedToken>() {}

export interface PaywallOptions {
  /** The service name in the token's caveats (Aperture's service `name`). */
  readonly service: string
  /** Price per token, msat (> 0). */
  readonly priceMsats: bigint
  /** Adds `<service>_valid_until` (seconds from minting). */
  readonly timeoutSeconds?: number | undefined
  readonly capabilities?: string | undefined
  readonly constraints?: Readonly<Record<string, string>> | undefined
  readonly challengeStyle?: L402.ChallengeStyle | undefined
  /** Invoice expiry, seconds (default 3600). */
  readonly invoiceExpirySeconds?: number | undefined
  /** Called with every invoice a challenge carries (the gateway journals it for control). */
  readonly onInvoice?: ((invoice: IssuedInvoice) => Effect.Effect<void>) | undefined
  /** Called with every accepted credential, before the app runs. */
  readonly onAccepted?: ((token: L402.VerifiedToken) => Effect.Effect<void>) | undefined
  /**
   * Asked before a challenge is made: a response here is sent instead, and no invoice is created
   * (the gateway answers 503 while its sales journal cannot take another invoice).
   */
  readonly beforeChallenge?: Effect.Effect<HttpServerResponse.HttpServerResponse | undefined> | undefined
}

export interface IssuedInvoice {
  /** Lower-case hex. */
  readonly paymentHash: string
  /** The BOLT11 invoice. */
  readonly paymentRequest: string
  readonly amountMsats: bigint
}

const challenges = Metric.counter("l402_challenges_total", { description: "402 challenges issued" })
const accepted = Metric.counter("l402_accepted_total", { description: "Requests admitted with a valid L402 credential" })
const refused = Metric.counter("l402_refused_total", { description: "L402 credentials refused, by code" })

/** A 402 answer with a fresh invoice and token for `options.service`. */
export const challenge = (options: PaywallOptions) =>
  Effect.gen(function*() {
    const lnd = yield* Lnd
    const added = yield* lnd.addInvoice({
      memo: "L402",
      value_msat: options.priceMsats.toString(),
      expiry: String(options.invoiceExpirySeconds ?? 3600)
    })
    const hash = fromBase64(added.r_hash)
    if (hash?.length !== 32) return yield* Effect.fail(new Error("the node returned a malformed r_hash"))
    const mac = yield* L402.mint({
      service: options.service,
      paymentHash: toHex(hash),
      capabilities: options.capabilities,
      constraints: options.constraints,
      timeoutSeconds: options.timeoutSeconds
    } as L402.MintOptions)
    yield* Metric.increment(challenges)
    if (options.onInvoice !== undefined) yield* options.onInvoice({ paymentHash: toHex(hash), paymentRequest: added.payment_request, amountMsats: options.priceMsats })
    // Both challenges in one comma-joined header value (RFC 9110 §5.3: equivalent to two lines;
    // LSAT first, so clients that read only the first challenge get Aperture's first value).
    return HttpServerResponse.text("payment required\n", {
      status: 402,
      headers: {
        "cache-control": "no-store",
        "www-authenticate": L402.challengeHeaders(Macaroon.toBase64String(mac), added.payment_request, options.challengeStyle).join(", ")
      }
    })
  }).pipe(
    Effect.catchAll((e) =>
      Effect.as(Effect.logWarning(`L402 challenge failure: ${e instanceof Error ? e.message : String(e)}`), HttpServerResponse.text("challenge failure\n", { status: 500 }))
    )
  )

/** Verify the request's credential for `service`; the verified token or the reason it is refused. */
export const authenticate = (service: string) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const credential = L402.parseAuthorization(request.headers["authorization"])
    if (Either.isLeft(credential)) return Either.left(credential.left)
    return yield* Effect.either(L402.verify(credential.right, { service }))
  })

/** Put `app` behind an L402 paywall. */
export const paywall = (options: PaywallOptions) =>
<E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, Exclude<R, L402Token> | HttpServerRequest.HttpServerRequest | Lnd | L402.L402Secrets> =>
  Effect.gen(function*() {
    const verified = yield* authenticate(options.service)
    if (Either.isRight(verified)) {
      yield* Metric.increment(accepted)
      if (options.onAccepted !== undefined) yield* options.onAccepted(verified.right)
      return yield* Effect.provideService(app, L402Token, verified.right)
    }
    if (verified.left.code !== "credential_missing") yield* Metric.increment(Metric.tagged(refused, "code", verified.left.code))
    const refusal = options.beforeChallenge === undefined ? undefined : yield* options.beforeChallenge
    if (refusal !== undefined) return refusal
    return yield* challenge(options)
  })
