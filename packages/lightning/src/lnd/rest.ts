// The Lnd port over lnd's REST API, on any @effect/platform HttpClient. TLS to lnd's self-signed
// certificate is the HttpClient's business: on Node, provide NodeHttpClient with an https agent
// whose `ca` is lnd's tls.cert (the hosts do this from LND_TLS_CERT_PATH).
//
// Every request carries `Grpc-Metadata-macaroon: <hex>`. Streaming calls (`/v2/router/send`,
// `/v2/router/track`) are read line by line and end at the first terminal status (lnd may keep
// the stream open after it, lnd#9881); a stream that ends or breaks before one fails with
// `stream_interrupted`, which means "outcome unknown", never "failed".
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Option from "effect/Option"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { fromHex, toBase64Url, toHex } from "../internal/bytes.js"
import type { LndErrorCode, LndService, Payment, SendPaymentRequest, TrackOptions } from "../Lnd.js"
import * as Lnd from "../Lnd.js"

export interface LndRestConfig {
  /** e.g. https://127.0.0.1:8080 */
  readonly baseUrl: string
  /** Hex of the macaroon file (admin, or one baked with offchain:read/write, info:read, invoices:*). */
  readonly macaroon: Redacted.Redacted<string>
}

const MACAROON_MESSAGE = /macaroon|verification failed|permission denied|unauthorized/i

/** Map an lnd error answer (HTTP status + `{code, message}`) onto an LndError. */
export const errorOf = (httpStatus: number | undefined, grpcCode: number | undefined, message: string): Lnd.LndError => {
  let code: LndErrorCode
  if (httpStatus === 401 || httpStatus === 403 || grpcCode === Lnd.GrpcCode.unauthenticated || grpcCode === Lnd.GrpcCode.permissionDenied || MACAROON_MESSAGE.test(message)) {
    code = "lnd_unauthorized"
  } else if (httpStatus === 404 || grpcCode === Lnd.GrpcCode.notFound) code = "not_found"
  else if (httpStatus === 409 || grpcCode === Lnd.GrpcCode.alreadyExists) code = "payment_already_exists"
  else if (httpStatus === 400 || grpcCode === Lnd.GrpcCode.invalidArgument || grpcCode === Lnd.GrpcCode.failedPrecondition) code = "invalid_argument"
  else if (httpStatus === 503) code = "lnd_unreachable"
  else code = "lnd_error"
  return new Lnd.LndError({ code, message, httpStatus, grpcCode })
}

const parseErrorBody = (status: number, text: string): Lnd.LndError => {
  for (const line of text.split("\n")) {
    try {
      const body = JSON.parse(line) as { code?: number; message?: string; error?: { code?: number; message?: string } }
      const e = body.error ?? body
      if (typeof e.message === "string") return errorOf(status, e.code, e.message)
    } catch {
      // not JSON: fall through
    }
  }
  return errorOf(status, undefined, `HTTP ${status}: ${text.slice(0, 200)}`)
}

const transportError = (e: HttpClientError.HttpClientError) =>
  new Lnd.LndError({ code: e._tag === "RequestError" ? "lnd_unreachable" : "stream_interrupted", message: e.message })

const decodeWith = <A, I>(schema: Schema.Schema<A, I>, what: string) => (body: unknown) =>
  Schema.decodeUnknown(schema)(body).pipe(
    Effect.mapError((e) => new Lnd.LndError({ code: "bad_response", message: `${what}: ${e.message}` }))
  )

/** Build the service over the HttpClient in context. */
export const make = (config: LndRestConfig): Effect.Effect<LndService, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const base = config.baseUrl.replace(/\/+$/, "")
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) =>
        request.pipe(
          HttpClientRequest.prependUrl(base),
          HttpClientRequest.setHeader("Grpc-Metadata-macaroon", Redacted.value(config.macaroon)),
          HttpClientRequest.acceptJson
        )
      )
    )

    const unary = <A, I>(request: HttpClientRequest.HttpClientRequest, schema: Schema.Schema<A, I>, what: string) =>
      client.execute(request).pipe(
        Effect.mapError(transportError),
        Effect.flatMap((response) =>
          response.text.pipe(
            Effect.mapError(transportError),
            Effect.flatMap((text) => {
              if (response.status >= 300) return Effect.fail(parseErrorBody(response.status, text))
              return Effect.try({
                try: () => JSON.parse(text) as unknown,
                catch: () => new Lnd.LndError({ code: "bad_response", message: `${what}: not JSON` })
              }).pipe(Effect.flatMap(decodeWith(schema, what)))
            })
          )
        )
      )

    const lines = (response: HttpClientResponse.HttpClientResponse): Stream.Stream<Payment, Lnd.LndError> =>
      response.stream.pipe(
        Stream.mapError(transportError),
        Stream.decodeText(),
        Stream.splitLines,
        Stream.filter((line) => line.trim() !== ""),
        Stream.mapEffect((line) =>
          Effect.gen(function*() {
            const body = yield* Effect.try({
              try: () => JSON.parse(line) as { result?: unknown; error?: { code?: number; message?: string } },
              catch: () => new Lnd.LndError({ code: "bad_response", message: `stream line is not JSON: ${line.slice(0, 120)}` })
            })
            if (body.error !== undefined) {
              return yield* Effect.fail(errorOf(undefined, body.error.code, body.error.message ?? "stream error"))
            }
            return yield* decodeWith(Lnd.Payment, "payment update")(body.result)
          })
        )
      )

    /** Updates until (and including) the first terminal one; an early end is stream_interrupted. */
    const untilTerminal = (request: HttpClientRequest.HttpClientRequest): Stream.Stream<Payment, Lnd.LndError> =>
      Stream.unwrap(
        client.execute(request).pipe(
          Effect.mapError(transportError),
          Effect.flatMap((response) =>
            response.status >= 300
              ? Effect.flatMap(Effect.orElseSucceed(response.text, () => ""), (text) => Effect.fail(parseErrorBody(response.status, text)))
              : Effect.succeed(lines(response))
          ),
          Effect.map((updates) => {
            let terminal = false
            return updates.pipe(
              Stream.takeUntil((p) => Lnd.isTerminal(p.status)),
              Stream.tap((p) => Effect.sync(() => { terminal = terminal || Lnd.isTerminal(p.status) })),
              Stream.concat(
                Stream.suspend(() =>
                  terminal
                    ? Stream.empty
                    : Stream.fail(new Lnd.LndError({ code: "stream_interrupted", message: "payment stream ended before a terminal status" }))
                )
              )
            )
          })
        )
      )

    const hashPath = (hashHex: string) => {
      const bytes = fromHex(hashHex)
      return bytes === undefined || bytes.length !== 32 ? undefined : toBase64Url(bytes)
    }
    const badHash = (hashHex: string) => new Lnd.LndError({ code: "invalid_argument", message: `not a 32-byte hex payment hash: ${hashHex}` })

    const service: LndService = {
      getInfo: unary(HttpClientRequest.get("/v1/getinfo"), Lnd.GetInfo, "getinfo"),
      channelBalance: unary(HttpClientRequest.get("/v1/balance/channels"), Lnd.ChannelBalance, "channel balance"),
      decodePayReq: (paymentRequest) => unary(HttpClientRequest.get(`/v1/payreq/${encodeURIComponent(paymentRequest)}`), Lnd.PayReq, "payreq"),
      sendPayment: (request: SendPaymentRequest) =>
        untilTerminal(HttpClientRequest.post("/v2/router/send").pipe(HttpClientRequest.bodyUnsafeJson(request))),
      trackPayment: (paymentHashHex: string, options?: TrackOptions) => {
        const path = hashPath(paymentHashHex)
        if (path === undefined) return Stream.fail(badHash(paymentHashHex))
        return untilTerminal(
          HttpClientRequest.get(`/v2/router/track/${path}`).pipe(
            HttpClientRequest.setUrlParam("no_inflight_updates", String(options?.noInflightUpdates ?? false))
          )
        )
      },
      listPayments: (options) =>
        unary(
          HttpClientRequest.get("/v1/payments").pipe(
            HttpClientRequest.setUrlParam("include_incomplete", String(options?.includeIncomplete ?? true))
          ),
          Lnd.ListPaymentsResponse,
          "list payments"
        ).pipe(Effect.map((r) => r.payments)),
      addInvoice: (request) =>
        unary(HttpClientRequest.post("/v1/invoices").pipe(HttpClientRequest.bodyUnsafeJson(request)), Lnd.AddInvoiceResponse, "add invoice"),
      lookupInvoice: (paymentHashHex) =>
        hashPath(paymentHashHex) === undefined
          ? Effect.fail(badHash(paymentHashHex))
          : unary(HttpClientRequest.get(`/v1/invoice/${paymentHashHex}`), Lnd.Invoice, "lookup invoice")
    }
    return service
  })

export const layer = (config: LndRestConfig): Layer.Layer<Lnd.Lnd, never, HttpClient.HttpClient> => Layer.effect(Lnd.Lnd, make(config))

/**
 * LND_REST_URL (e.g. https://127.0.0.1:8080) and LND_MACAROON_HEX (the hex of the macaroon
 * file). Hosts that read the macaroon from a file pass its hex here.
 */
export const config: Config.Config<LndRestConfig> = Config.all({
  baseUrl: Config.string("LND_REST_URL").pipe(
    Config.validate({ message: "LND_REST_URL must be an http:// or https:// URL", validation: (u) => /^https?:\/\/[^/]+/.test(u) })
  ),
  macaroon: Config.redacted("LND_MACAROON_HEX").pipe(
    Config.validate({
      message: "LND_MACAROON_HEX must be the hex of an lnd macaroon",
      validation: (m) => /^[0-9a-fA-F]+$/.test(Redacted.value(m)) && Redacted.value(m).length >= 64
    })
  )
})

export const layerConfig = (
  settings: Config.Config<LndRestConfig> = config
): Layer.Layer<Lnd.Lnd, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(Lnd.Lnd, Effect.flatMap(settings, make))

export interface LndSettings {
  readonly rest: LndRestConfig
  /** lnd's tls.cert, to trust when the URL is https (Node hosts build an https agent with it). */
  readonly tlsCertPath: Option.Option<string>
}

/**
 * LND_REST_URL, the macaroon from LND_MACAROON_HEX or else the (binary or hex) file at
 * LND_MACAROON_PATH, and LND_TLS_CERT_PATH (optional): what a host needs to reach its node.
 */
export const loadSettings = Effect.gen(function*() {
  const baseUrl = yield* Config.string("LND_REST_URL").pipe(
    Config.validate({ message: "LND_REST_URL must be an http:// or https:// URL", validation: (u) => /^https?:\/\/[^/]+/.test(u) })
  )
  const hex = yield* Config.option(Config.redacted("LND_MACAROON_HEX"))
  const path = yield* Config.option(Config.string("LND_MACAROON_PATH"))
  let macaroon: Redacted.Redacted<string>
  if (Option.isSome(hex)) macaroon = hex.value
  else if (Option.isSome(path)) {
    const fs = yield* FileSystem.FileSystem
    const bytes = yield* fs.readFile(path.value)
    const text = new TextDecoder().decode(bytes).trim()
    macaroon = Redacted.make(/^[0-9a-fA-F]+$/.test(text) ? text.toLowerCase() : toHex(bytes))
  } else {
    return yield* Effect.fail(ConfigError.MissingData(["LND_MACAROON_HEX"], "set LND_MACAROON_HEX (hex) or LND_MACAROON_PATH (the macaroon file lnd wrote)"))
  }
  const tlsCertPath = yield* Config.option(Config.string("LND_TLS_CERT_PATH"))
  if (baseUrl.startsWith("https:") && Option.isNone(tlsCertPath)) {
    yield* Effect.logWarning("LND_REST_URL is https but LND_TLS_CERT_PATH is not set: lnd's self-signed certificate will not be trusted")
  }
  return { rest: { baseUrl, macaroon }, tlsCertPath } satisfies LndSettings
})
