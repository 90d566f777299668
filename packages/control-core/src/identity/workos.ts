// The WorkOS identity provider: User Management magic auth over WorkOS's REST API.
//
//   send:   POST {baseUrl}/user_management/magic_auth      Authorization: Bearer <api key>
//           {"email"}  ->  201 {"object":"magic_auth","id","user_id","email","expires_at","code",...}
//           (WorkOS emails the code; control keeps only the magic auth id and user id)
//   verify: POST {baseUrl}/user_management/authenticate
//           {"client_id","client_secret","grant_type":"urn:workos:oauth:grant-type:magic-auth:code",
//            "code","email","ip_address"?,"user_agent"?}
//           ->  200 {"user":{"id","email","first_name","last_name",...},"access_token","refresh_token",...}
//
// A 4xx answer to authenticate means the code is wrong, expired or used (InvalidCode); network
// failures, timeouts, 429 and 5xx are ProviderUnavailable. WorkOS's own session tokens are not
// kept: control issues its own. Codes and secrets never reach a log line.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { IdentityProvider, type IdentityProviderService, InvalidCode, ProviderUnavailable } from "../IdentityProvider.js"

export const DEFAULT_BASE_URL = "https://api.workos.com"
export const MAGIC_AUTH_GRANT_TYPE = "urn:workos:oauth:grant-type:magic-auth:code"

export interface WorkOsOptions {
  readonly apiKey: Redacted.Redacted<string>
  readonly clientId: string
  readonly baseUrl?: string | undefined
  /** Per request; default 10 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

const MagicAuth = Schema.Struct({ id: Schema.String, user_id: Schema.String, email: Schema.String })
const Authentication = Schema.Struct({
  user: Schema.Struct({
    id: Schema.String,
    email: Schema.String,
    first_name: Schema.optionalWith(Schema.NullOr(Schema.String), { exact: true }),
    last_name: Schema.optionalWith(Schema.NullOr(Schema.String), { exact: true })
  })
})

export const make = (options: WorkOsOptions) =>
  Effect.gen(function*() {
    const baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, "")
    const timeout = options.timeout ?? Duration.seconds(10)
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest(HttpClientRequest.prependUrl(baseUrl)),
      HttpClient.mapRequest(HttpClientRequest.acceptJson)
    )
    const unavailable = (detail: string) => (cause: unknown) => new ProviderUnavailable({ detail, cause })

    const post = (path: string, body: Record<string, unknown>, bearer: boolean) =>
      HttpClientRequest.post(path).pipe(
        bearer ? HttpClientRequest.bearerToken(Redacted.value(options.apiKey)) : (r) => r,
        HttpClientRequest.bodyUnsafeJson(body),
        client.execute,
        Effect.mapError((e) => new ProviderUnavailable({ detail: `WorkOS ${path} unreachable`, cause: e })),
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new ProviderUnavailable({ detail: `WorkOS ${path} timed out` }) })
      )

    const service: IdentityProviderService = {
      name: "workos",
      sendCode: (input) =>
        Effect.scoped(Effect.gen(function*() {
          const response = yield* post("/user_management/magic_auth", { email: input.email }, true)
          if (response.status < 200 || response.status >= 300) {
            return yield* new ProviderUnavailable({ detail: `WorkOS magic_auth answered ${response.status}` })
          }
          const body = yield* response.json.pipe(Effect.flatMap(Schema.decodeUnknown(MagicAuth)), Effect.mapError(unavailable("WorkOS magic_auth answer is malformed")))
          return { providerRef: body.id, providerUserId: body.user_id }
        })),
      verifyCode: (input) =>
        Effect.scoped(Effect.gen(function*() {
          const response = yield* post("/user_management/authenticate", {
            client_id: options.clientId,
            client_secret: Redacted.value(options.apiKey),
            grant_type: MAGIC_AUTH_GRANT_TYPE,
            code: input.code.trim(),
            email: input.email,
            ...(input.ipAddress !== undefined ? { ip_address: input.ipAddress } : {}),
            ...(input.userAgent !== undefined ? { user_agent: input.userAgent } : {})
          }, false)
          if (response.status === 429 || response.status >= 500) {
            return yield* new ProviderUnavailable({ detail: `WorkOS authenticate answered ${response.status}` })
          }
          if (response.status >= 400) return yield* new InvalidCode({ detail: `WorkOS authenticate answered ${response.status}` })
          if (response.status < 200 || response.status >= 300) {
            return yield* new ProviderUnavailable({ detail: `WorkOS authenticate answered ${response.status}` })
          }
          const body = yield* response.json.pipe(Effect.flatMap(Schema.decodeUnknown(Authentication)), Effect.mapError(unavailable("WorkOS authenticate answer is malformed")))
          if (body.user.email.trim().toLowerCase() !== input.email) {
            return yield* new InvalidCode({ detail: "WorkOS authenticated another email" })
          }
          const name = [body.user.first_name, body.user.last_name].filter((s): s is string => typeof s === "string" && s.length > 0).join(" ")
          return { email: input.email, providerUserId: body.user.id, ...(name !== "" ? { name } : {}) }
        }))
    }
    return service
  })

/** The WorkOS provider (needs an HttpClient: FetchHttpClient.layer or NodeHttpClient). */
export const layer = (options: WorkOsOptions): Layer.Layer<IdentityProvider, never, HttpClient.HttpClient> => Layer.effect(IdentityProvider, make(options))
