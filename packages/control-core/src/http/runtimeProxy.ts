// The user-facing runtime proxy: `/api/runtime/codex/workers*` (GET and POST) is forwarded to the
// runtime's `/internal/v1/codex/workers*` with the signed internal header binding the
// authenticated user (X-OA-USER-ID), as the upstream Laravel proxy did (UPSTREAM_SPEC §2.5). The
// runtime decides what that user may see; control only proves who is asking. Responses (SSE
// streams included) are streamed through as they arrive.
//
// Only the worker routes are forwarded — the collection, a worker, and its snapshot, stream,
// requests, events and stop — with path segments of [A-Za-z0-9._~-] that are not "." or "..",
// so a crafted path can never reach another internal route.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { Auth } from "../Auth.js"
import * as Errors from "../Errors.js"
import { randomId } from "../internal/crypto.js"
import { RuntimeClient } from "../RuntimeClient.js"
import { authenticate, bearerOf } from "./auth.js"
import { envelopeResponse } from "./common.js"

export const PUBLIC_PREFIX = "/api/runtime/codex/workers"
export const INTERNAL_PREFIX = "/internal/v1/codex/workers"

const SEGMENT = /^[A-Za-z0-9._~-]{1,160}$/
const ACTIONS = new Set(["snapshot", "stream", "requests", "events", "stop"])

/** The runtime path for a public path, or undefined when it is not a forwarded route. */
export const internalPath = (publicPath: string): string | undefined => {
  if (publicPath === PUBLIC_PREFIX) return INTERNAL_PREFIX
  if (!publicPath.startsWith(`${PUBLIC_PREFIX}/`)) return undefined
  const segments = publicPath.slice(PUBLIC_PREFIX.length + 1).split("/")
  if (segments.length > 2) return undefined
  const [workerId, action] = segments as [string, string | undefined]
  if (!SEGMENT.test(workerId) || workerId === "." || workerId === "..") return undefined
  if (action !== undefined && !ACTIONS.has(action)) return undefined
  return `${INTERNAL_PREFIX}/${workerId}${action === undefined ? "" : `/${action}`}`
}

const forwarded = Metric.counter("control_runtime_proxy_requests_total", { description: "Requests forwarded to the runtime" })
const PASSED_REQUEST_HEADERS = ["content-type", "accept", "last-event-id"]

const handler = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const url = new URL(request.url, "http://placeholder.invalid")
  const path = internalPath(url.pathname)
  if (path === undefined || (request.method !== "GET" && request.method !== "POST")) {
    return envelopeResponse(404, "not_found", { message: "no such runtime route" })
  }
  const auth = yield* Auth
  const principal = yield* Effect.either(authenticate(auth, bearerOf(request), Option.some(request)))
  if (principal._tag === "Left") {
    const e = principal.left
    return e._tag === "StorageError"
      ? envelopeResponse(500, "internal_error", { message: "internal error" })
      : envelopeResponse(401, e.code, e)
  }
  const body = request.method === "POST" ? new Uint8Array(yield* Effect.orElseSucceed(request.arrayBuffer, () => new ArrayBuffer(0))) : new Uint8Array()
  const headers: Record<string, string> = { "x-request-id": request.headers["x-request-id"] ?? randomId("req") }
  for (const name of PASSED_REQUEST_HEADERS) {
    const value = request.headers[name]
    if (value !== undefined) headers[name] = value
  }
  const runtime = yield* RuntimeClient
  const response = yield* Effect.either(runtime.forward({
    method: request.method,
    path,
    query: url.search.replace(/^\?/, ""),
    headers,
    body,
    userId: principal.right.userId
  }))
  yield* Metric.increment(forwarded)
  if (response._tag === "Left") {
    yield* Effect.logWarning(`runtime proxy: ${response.left.message}`)
    return envelopeResponse(Errors.ServiceUnavailable.status, "service_unavailable", { message: "the runtime is unavailable" })
  }
  const { status, headers: responseHeaders, body: stream } = response.right
  return HttpServerResponse.stream(stream, { status, headers: responseHeaders, contentType: responseHeaders["content-type"] ?? "application/json" })
})

/** The proxy routes (needs Auth and RuntimeClient). */
export const routes = Layer.mergeAll(
  HttpLayerRouter.add("*", PUBLIC_PREFIX, handler),
  HttpLayerRouter.add("*", `${PUBLIC_PREFIX}/*`, handler)
)
