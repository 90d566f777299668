// GET /sync/v1/snapshot/:topic — what a client fetches after stale_cursor: every current document
// of the topic and the watermark they are consistent with (Snapshot.ts), so it can replace its
// documents and resubscribe after that watermark. Authorised like a subscription: the sync token
// (Authorization: Bearer) must grant the topic's class and the TopicAuthorizer its owner, and its
// session and device must not be revoked (the node's Revocations, shared with the WebSocket
// server: a revocation that closes a session's sockets also stops its snapshot reads).
//
// The body is SnapshotResponse (openagents.sync.v1): binary protobuf when the client accepts
// application/x-protobuf, otherwise its proto3 JSON mapping. Errors are
// {"error":{"code","message"}} with 400 (invalid_topic, snapshot_unsupported), 401
// (unauthorized, token_expired, reauth_required), 403 (forbidden_topic), 503 (storage_unavailable;
// revocation_check_unavailable, with Retry-After: the durable revocation lookup failed).
import { create, toBinary, toJson } from "@bufbuild/protobuf"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { SnapshotResponseSchema } from "@openagents/proto/sync/v1"
import * as Effect from "effect/Effect"
import { InvalidTopicError } from "./Errors.js"
import { Revocations } from "./Revocations.js"
import { Snapshot } from "./Snapshot.js"
import { SyncTokenVerifier } from "./SyncToken.js"
import * as Topic from "./Topic.js"
import { TopicAuthorizer } from "./TopicAuthorizer.js"

export const PATH_PREFIX = "/sync/v1/snapshot/"
export const PROTOBUF = "application/x-protobuf"

const failure = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status, headers: { "cache-control": "no-store", ...headers } })

const textEncoder = new TextEncoder()

/** Serve one snapshot request (the request is read from context). */
export const handler = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const verifier = yield* SyncTokenVerifier
  const revocations = yield* Revocations
  const authorizer = yield* TopicAuthorizer
  const snapshot = yield* Snapshot
  const registry = yield* Topic.TopicClasses
  const path = new URL(request.url, "http://localhost").pathname
  const index = path.indexOf(PATH_PREFIX)
  let raw: string
  try {
    raw = index < 0 ? "" : decodeURIComponent(path.slice(index + PATH_PREFIX.length))
  } catch {
    return failure(400, "invalid_topic", "the topic is not valid percent-encoding")
  }
  const topic = registry.parse(raw)
  if (topic instanceof InvalidTopicError) return failure(400, "invalid_topic", topic.message)
  const authorization = request.headers["authorization"] ?? ""
  const token = /^Bearer\s+(.+)$/i.exec(authorization)?.[1]
  const principal = yield* Effect.either(verifier.verify(token))
  if (principal._tag === "Left") return failure(401, principal.left.code, principal.left.message)
  const verdict = yield* revocations.check(principal.right)
  if (verdict === "unknown") return failure(503, "revocation_check_unavailable", "cannot check whether this session was revoked; retry", { "retry-after": "1" })
  if (verdict !== undefined) return failure(401, "reauth_required", `the session was revoked (${verdict}); sign in again`)
  const allowed = principal.right.scopes.includes(topic.topicClass.name) && (yield* authorizer.authorize(principal.right, topic))
  if (!allowed) return failure(403, "forbidden_topic", `not allowed to read ${topic.topic}`)
  const result = yield* Effect.either(snapshot.get(topic.topic))
  if (result._tag === "Left") {
    const error = result.left
    return error._tag === "SnapshotUnsupportedError"
      ? failure(400, error.code, error.message)
      : error._tag === "InvalidTopicError"
      ? failure(400, error.code, error.message)
      : failure(503, error.code, error.message)
  }
  const s = result.right
  const message = create(SnapshotResponseSchema, {
    format: s.format,
    topic: s.topic,
    epoch: s.epoch,
    watermark: s.watermark,
    schemaVersion: 1,
    documents: s.documents.map((d) => ({ docKey: d.docKey, docVersion: d.docVersion, payload: textEncoder.encode(d.payload), payloadHash: d.payloadHash }))
  })
  const headers = { "cache-control": "no-store" }
  return (request.headers["accept"] ?? "").includes(PROTOBUF)
    ? HttpServerResponse.uint8Array(toBinary(SnapshotResponseSchema, message), { contentType: PROTOBUF, headers })
    : HttpServerResponse.unsafeJson(toJson(SnapshotResponseSchema, message), { headers })
})

/** The route, for an HttpLayerRouter-based host. */
export const route = HttpLayerRouter.route("GET", `${PATH_PREFIX}*`, handler)

/** The route as a layer to merge into a host's HttpLayerRouter routes. */
export const layer = HttpLayerRouter.addAll([route])
