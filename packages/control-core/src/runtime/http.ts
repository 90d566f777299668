// The RuntimeClient over HTTP: every call to the runtime's internal API carries the signed
// internal header (host-kit InternalSignature: HMAC over iat/exp/nonce, method, path, body hash
// and the user binding), so the runtime can check who is calling and for whom without any
// shared state with control.
//
//   revokeSessions  POST {baseUrl}/internal/v1/sync/sessions/revoke
//                   {"session_ids": [...], "device_ids": [...], "user_id": "...", "revoked_at_ms": 1764…,
//                    "remember_until_ms": 1764…, "reason": "user_requested"}
//                   -> any 2xx is an acknowledgement; anything else is retried by the relay
//   forward         {method} {baseUrl}/internal/v1/codex/workers... with X-OA-USER-ID (signed)
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { InternalSignature } from "@openagents/host-kit"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { REVOKE_PATH, RuntimeClient, type RuntimeClientService, RuntimeUnavailable } from "../RuntimeClient.js"

export interface HttpRuntimeOptions {
  /** The runtime's base URL, e.g. http://127.0.0.1:4100. */
  readonly baseUrl: string
  /** The internal signing key shared with the runtime (OA_RUNTIME_SIGNING_KEY / _KEY_ID). */
  readonly key: InternalSignature.Key
  /** Until the response headers arrive; default 10 s (streams then run as long as they last). */
  readonly timeout?: Duration.DurationInput | undefined
}

const PASSED_RESPONSE_HEADERS = ["content-type", "cache-control", "x-request-id", "last-event-id", "retry-after"]

export const make = (options: HttpRuntimeOptions) =>
  Effect.gen(function*() {
    const baseUrl = options.baseUrl.replace(/\/+$/, "")
    const timeout = options.timeout ?? Duration.seconds(10)
    const client = yield* HttpClient.HttpClient
    const send = (request: HttpClientRequest.HttpClientRequest, bindings: InternalSignature.Bindings) =>
      InternalSignature.signRequest(options.key, bindings)(request).pipe(
        Effect.map(HttpClientRequest.prependUrl(baseUrl)),
        Effect.flatMap(client.execute),
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new RuntimeUnavailable({ detail: `${request.method} ${request.url} timed out` }) }),
        Effect.mapError((e) => (e instanceof RuntimeUnavailable ? e : new RuntimeUnavailable({ detail: `${request.method} ${request.url}: ${e.message}`, cause: e })))
      )

    const service: RuntimeClientService = {
      revokeSessions: (request) =>
        Effect.gen(function*() {
          const response = yield* send(
            HttpClientRequest.post(REVOKE_PATH).pipe(
              HttpClientRequest.setBody(InternalSignature.jsonBody({
                session_ids: request.sessionIds,
                device_ids: request.deviceIds,
                ...(request.userId === undefined ? {} : { user_id: request.userId }),
                ...(request.revokedAtMs === undefined ? {} : { revoked_at_ms: request.revokedAtMs }),
                ...(request.rememberUntilMs === undefined ? {} : { remember_until_ms: request.rememberUntilMs }),
                reason: request.reason
              }))
            ),
            {}
          )
          const text = yield* Effect.orElseSucceed(response.text, () => "")
          if (response.status < 200 || response.status >= 300) {
            return yield* new RuntimeUnavailable({ detail: `revocation answered ${response.status}: ${text.slice(0, 200)}`, status: response.status })
          }
        }),
      forward: (request) =>
        Effect.gen(function*() {
          const url = `${request.path}${request.query === "" ? "" : `?${request.query}`}`
          const threadId = new URLSearchParams(request.query).get("thread_id") ?? undefined
          const outgoing = HttpClientRequest.make(request.method.toUpperCase() as "GET")(url).pipe(
            HttpClientRequest.setHeaders(request.headers),
            HttpClientRequest.setBody(HttpBody.uint8Array(request.body, request.headers["content-type"] ?? "application/octet-stream"))
          )
          const response = yield* send(request.body.length === 0 ? HttpClientRequest.setBody(outgoing, HttpBody.empty) : outgoing, { userId: request.userId, threadId })
          const headers: Record<string, string> = {}
          for (const name of PASSED_RESPONSE_HEADERS) {
            const value = response.headers[name]
            if (value !== undefined) headers[name] = value
          }
          return {
            status: response.status,
            headers,
            body: response.stream.pipe(Stream.mapError((e) => new RuntimeUnavailable({ detail: `stream from ${request.path}: ${e.message}`, cause: e })))
          }
        })
    }
    return service
  })

/** The HTTP RuntimeClient (needs an HttpClient: FetchHttpClient.layer or NodeHttpClient). */
export const layer = (options: HttpRuntimeOptions): Layer.Layer<RuntimeClient, never, HttpClient.HttpClient> => Layer.effect(RuntimeClient, make(options))
