// A client of the wallet executor's HTTP API: `pay` returns the result or the executor's typed
// error (same codes as on the server). Used by the L402 buyer as its invoice payer. Pass a stable
// requestId to make retries safe: the executor pays a request id at most once.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { PayRequest, PayResult, WalletErrorCode } from "./WalletExecutor.js"
import { WalletError } from "./WalletExecutor.js"

export interface ClientConfig {
  readonly baseUrl: string
  readonly token: Redacted.Redacted<string>
}

interface ResultJson {
  readonly requestId: string
  readonly walletId: string
  readonly payment: { paymentId: string; paymentHash: string; amountMsats: number; feeMsats: number; preimageHex: string; paidAtMs: number }
  readonly quotedAmountMsats: number
  readonly windowSpendMsatsAfterPayment: number
  readonly idempotentReplay: boolean
}

const big = (n: unknown) => BigInt(typeof n === "number" || typeof n === "string" ? n : 0)

export const make = (config: ClientConfig) =>
  Effect.map(HttpClient.HttpClient, (http) => {
    const client = http.pipe(
      HttpClient.mapRequest((r) => r.pipe(HttpClientRequest.prependUrl(config.baseUrl.replace(/\/+$/, "")), HttpClientRequest.bearerToken(Redacted.value(config.token))))
    )
    const pay = (request: PayRequest): Effect.Effect<PayResult, WalletError> =>
      client.execute(
        HttpClientRequest.post("/pay-bolt11").pipe(
          HttpClientRequest.bodyUnsafeJson({
            requestId: request.requestId,
            payment: {
              invoice: request.invoice,
              maxAmountMsats: request.maxAmountMsats.toString(),
              host: request.host,
              ...(request.maxFeeMsats === undefined ? {} : { maxFeeMsats: request.maxFeeMsats.toString() })
            }
          })
        )
      ).pipe(
        Effect.flatMap((response) => response.json),
        Effect.mapError((e) => new WalletError({ code: "connect_failed", message: `wallet executor unreachable: ${e.message}` })),
        Effect.flatMap((body): Effect.Effect<PayResult, WalletError> => {
          const b = body as { ok?: boolean; result?: ResultJson; error?: { code?: string; message?: string } }
          if (b.ok === true && b.result !== undefined) {
            const r = b.result
            return Effect.succeed({
              requestId: r.requestId,
              walletId: r.walletId,
              payment: {
                paymentId: r.payment.paymentId,
                paymentHash: r.payment.paymentHash,
                amountMsats: big(r.payment.amountMsats),
                feeMsats: big(r.payment.feeMsats),
                preimageHex: r.payment.preimageHex,
                paidAtMs: r.payment.paidAtMs
              },
              quotedAmountMsats: big(r.quotedAmountMsats),
              windowSpendMsatsAfterPayment: big(r.windowSpendMsatsAfterPayment),
              idempotentReplay: r.idempotentReplay
            })
          }
          return Effect.fail(new WalletError({
            code: (b.error?.code ?? "internal_error") as WalletErrorCode,
            message: b.error?.message ?? "the wallet executor answered without a result"
          }))
        })
      )
    return { pay }
  })
