// The runtime's HTTP API, declared with @effect/platform HttpApi: the routes of UPSTREAM_SPEC
// §2.5 under /internal/v1 (runs, Codex workers, their SSE streams), the session-revocation
// endpoint control calls, and a health route. The OpenAPI document (/openapi.json) is generated
// from these definitions.
//
// Wire shapes follow the upstream contract: camelCase answers for runs and worker creation,
// snake_case for the worker list, snake_case request bodies. Every failure is the runtime error
// envelope {"error":{"code","message","details?"}} with the status of its code (Errors.ts),
// including request validation failures (400 invalid_request).
//
// Two kinds of callers authenticate (Auth.ts): control's proxy with the signed internal header
// (X-OA-RUNTIME-SIGNATURE, the user in a signed X-OA-USER-ID), and clients with control's bearer
// access token (ES256, verified locally against control's JWKS).
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"
import * as Errors from "./Errors.js"

// ---------------------------------------------------------------------------------------------
// Errors on the wire

const Details = Schema.Record({ key: Schema.String, value: Schema.Unknown })

export const envelopeSchema = <C extends Errors.Code>(code: C) =>
  Schema.Struct({
    error: Schema.Struct({ code: Schema.Literal(code), message: Schema.String, details: Schema.optionalWith(Details, { exact: true }) })
  })

export const envelope = (code: string, message: string, details?: Readonly<Record<string, unknown>>) => ({
  error: { code, message, ...(details !== undefined ? { details } : {}) }
})

const RuntimeErrorFromSelf = Schema.instanceOf(Errors.RuntimeError)

/** The wire schema of the RuntimeError with one code: the envelope, with that code's status. */
const wire = <C extends Errors.Code>(code: C, description: string) =>
  Schema.transform(envelopeSchema(code), RuntimeErrorFromSelf.pipe(Schema.filter((e) => e.code === code)), {
    strict: false,
    decode: (e) => new Errors.RuntimeError({ code, message: e.error.message, ...(e.error.details !== undefined ? { details: e.error.details } : {}) }),
    encode: (e) => envelope(e.code, e.message, e.details) as any
  }).annotations(HttpApiSchema.annotations({ status: Errors.STATUS[code], description }))

export const InvalidRequestWire = wire("invalid_request", "the request is invalid (details name the field)")
export const UnauthorizedWire = wire("unauthorized", "missing, invalid, expired or replayed credentials (details.reason)")
export const ForbiddenWire = wire("forbidden", "the resource belongs to another principal")
export const NotFoundWire = wire("not_found", "no such resource")
export const ConflictWire = wire("conflict", "the resource is in a state that does not allow this")
export const StaleCursorWire = wire("stale_cursor", "the cursor is older than what the runtime retains; start again from a snapshot")
export const InternalErrorWire = wire("internal_error", "internal error")

/** Request validation failures: 400 invalid_request with the issues in details. */
export const DecodeErrorWire = Schema.transform(envelopeSchema("invalid_request"), Schema.instanceOf(HttpApiDecodeError), {
  strict: false,
  decode: (e) => new HttpApiDecodeError({ issues: [], message: e.error.message }),
  encode: (error) =>
    envelope("invalid_request", error.message.split("\n")[0] ?? "invalid request", {
      issues: error.issues.map((i) => ({ path: i.path.map(String), message: i.message }))
    }) as any
}).annotations(HttpApiSchema.annotations({ status: 400, description: "The request does not match the schema (invalid_request)" }))

// ---------------------------------------------------------------------------------------------
// Authentication

/** Who a request acts for. `sessionId` / `deviceId` come from a bearer token (control's proxy does not send them). */
export interface Caller {
  readonly userId: string
  readonly via: "bearer" | "internal"
  readonly sessionId?: string | undefined
  readonly deviceId?: string | undefined
  /** The bearer token's iat (seconds). */
  readonly issuedAt?: number | undefined
}

export class CurrentCaller extends Context.Tag("@openagents/runtime-core/CurrentCaller")<CurrentCaller, Caller>() {}

/** User routes: the signed internal header with X-OA-USER-ID, or a bearer access token. */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("@openagents/runtime-core/Authentication", {
  failure: Schema.Union(UnauthorizedWire, ForbiddenWire, InternalErrorWire),
  provides: CurrentCaller,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(
        OpenApi.Description,
        "Control's ES256 access token, or none with control's signed internal header (X-OA-RUNTIME-SIGNATURE + X-OA-USER-ID)."
      )
    )
  }
}) {}

/** Service routes (control → runtime): the signed internal header only, no user. */
export class InternalAuthentication extends HttpApiMiddleware.Tag<InternalAuthentication>()("@openagents/runtime-core/InternalAuthentication", {
  failure: Schema.Union(UnauthorizedWire, ForbiddenWire, InternalErrorWire)
}) {}

// ---------------------------------------------------------------------------------------------
// Shapes

const opt = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })
const optNull = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true, nullable: true })
const Timestamp = Schema.String.annotations({ description: "RFC 3339 timestamp" })
const Seq = Schema.Number.annotations({ description: "Sequence number (an integer ≥ 0)" })
const Id = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/)).annotations({
  description: "1..128 characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit"
})

const RunPath = Schema.Struct({ run_id: Id })
const WorkerPath = Schema.Struct({ worker_id: Id })
const ThreadQuery = Schema.Struct({ thread_id: opt(Id) })
const StreamQuery = Schema.Struct({
  thread_id: opt(Id),
  cursor: opt(Schema.String),
  tail_ms: opt(Schema.String)
})

export const HealthResponse = Schema.Struct({ status: Schema.Literal("ok"), service: Schema.String, version: Schema.String })

export const RunSnapshot = Schema.Struct({
  runId: Schema.String,
  threadId: Schema.String,
  status: Schema.String,
  latestSeq: Seq,
  latestEventType: Schema.NullOr(Schema.String),
  terminalReasonClass: Schema.NullOr(Schema.String),
  terminalReason: Schema.NullOr(Schema.String),
  updatedAt: Timestamp
})

export const FrameRequest = Schema.Struct({
  thread_id: Id,
  frame_id: Id,
  type: Schema.String,
  payload: opt(Schema.Unknown)
})

const FrameAccepted = (replay: boolean) =>
  Schema.Struct({
    runId: Schema.String,
    frameId: Schema.String,
    seq: Seq,
    status: Schema.Literal("accepted"),
    idempotentReplay: Schema.Literal(replay)
  })

export const CancelRequest = Schema.Struct({ thread_id: Id, reason: optNull(Schema.String.pipe(Schema.maxLength(1000))) })

const CancelAccepted = (replay: boolean) =>
  Schema.Struct({
    runId: Schema.String,
    status: Schema.Literal("canceling"),
    cancelRequested: Schema.Literal(true),
    idempotentReplay: Schema.Literal(replay)
  })

export const Receipt = Schema.Struct({
  runId: Schema.String,
  eventCount: Seq,
  lastSeq: Seq,
  chainHead: Schema.NullOr(Schema.String),
  projectionVersion: Schema.String,
  summaryHash: Schema.String
})

export const WorkerListQuery = Schema.Struct({
  status: opt(Schema.Literal("running", "stopped", "failed")),
  workspace_ref: opt(Schema.String),
  limit: opt(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 200)))
})

export const WorkerItem = Schema.Struct({
  worker_id: Schema.String,
  status: Schema.String,
  latest_seq: Seq,
  heartbeat_state: Schema.Literal("fresh", "stale", "missing", "stopped", "failed"),
  heartbeat_age_ms: Schema.NullOr(Schema.Number),
  heartbeat_stale_after_ms: Schema.Number,
  workspace_ref: Schema.NullOr(Schema.String),
  adapter: Schema.String,
  started_at: Timestamp,
  stopped_at: Schema.NullOr(Timestamp),
  khala_projection: Schema.Struct({
    status: Schema.Literal("in_sync", "lagging"),
    lag_events: Schema.Number,
    last_runtime_seq: Seq,
    last_projected_at: Schema.NullOr(Timestamp)
  })
})

export const WorkerList = Schema.Struct({ data: Schema.Array(WorkerItem) })

export const CreateWorkerRequest = Schema.Struct({
  worker_id: optNull(Id),
  workspace_ref: optNull(Schema.String.pipe(Schema.maxLength(512))),
  codex_home_ref: optNull(Schema.String.pipe(Schema.maxLength(512))),
  adapter: optNull(Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_-]{0,63}$/))),
  metadata: optNull(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})

const WorkerCreated = (replay: boolean) =>
  Schema.Struct({
    data: Schema.Struct({ workerId: Schema.String, status: Schema.String, latestSeq: Seq, idempotentReplay: Schema.Literal(replay) })
  })

export const WorkerSnapshot = Schema.Struct({
  data: Schema.Struct({
    worker_id: Schema.String,
    status: Schema.String,
    latest_seq: Seq,
    latest_event_type: Schema.NullOr(Schema.String),
    heartbeat_state: Schema.String,
    heartbeat_age_ms: Schema.NullOr(Schema.Number),
    workspace_ref: Schema.NullOr(Schema.String),
    codex_home_ref: Schema.NullOr(Schema.String),
    adapter: Schema.String,
    metadata: Schema.Unknown,
    started_at: Timestamp,
    stopped_at: Schema.NullOr(Timestamp),
    last_heartbeat_at: Schema.NullOr(Timestamp)
  })
})

export const WorkerRequestBody = Schema.Struct({
  request: Schema.Struct({
    request_id: Id,
    method: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
    params: opt(Schema.Unknown)
  })
})

export const WorkerRequestAccepted = Schema.Struct({
  data: Schema.Struct({ worker_id: Schema.String, request_id: Schema.String, seq: Seq, status: Schema.Literal("accepted") })
})

export const WorkerEventBody = Schema.Struct({
  event: Schema.Struct({ event_type: Schema.String, payload: opt(Schema.Unknown) })
})

export const WorkerEventAccepted = Schema.Struct({
  data: Schema.Struct({ worker_id: Schema.String, seq: Seq, event_type: Schema.String, payload: Schema.Unknown, occurred_at: Timestamp })
})

export const StopRequest = Schema.Struct({ reason: optNull(Schema.String.pipe(Schema.maxLength(1000))) })

const Stopped = (replay: boolean) =>
  Schema.Struct({ data: Schema.Struct({ worker_id: Schema.String, status: Schema.String, idempotentReplay: Schema.Literal(replay) }) })

export const RevocationReason = Schema.Literal("user_requested", "admin_revoked", "token_replay", "device_replaced", "security_policy")

export const RevokeRequest = Schema.Struct({
  session_ids: Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))).pipe(Schema.maxItems(10_000)),
  device_ids: Schema.optionalWith(Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))).pipe(Schema.maxItems(10_000)), {
    exact: true,
    default: () => []
  }),
  /** Whose sessions and devices: device ids are revoked for this user only (absent: every user). */
  user_id: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)), { exact: true }),
  /** When control revoked them (ms since the epoch, control's clock, which also stamps the tokens' iat). */
  revoked_at_ms: Schema.optionalWith(Schema.Number.pipe(Schema.int(), Schema.between(0, 8_640_000_000_000_000)), { exact: true }),
  /**
   * Until when to refuse them (ms since the epoch, control's clock): control's longest token
   * lifetime after the revocation, plus skew. Never shorter than the runtime's default, at most
   * 8 days ahead. Absent: the runtime's default (3630 s).
   */
  remember_until_ms: Schema.optionalWith(Schema.Number.pipe(Schema.int(), Schema.between(0, 8_640_000_000_000_000)), { exact: true }),
  reason: RevocationReason
})

export const RevokeResponse = Schema.Struct({ ok: Schema.Literal(true), revoked_sessions: Schema.Number, revoked_devices: Schema.Number })

const sse = (description: string) =>
  Schema.String.annotations(HttpApiSchema.annotations({ status: 200, description, contentType: "text/event-stream" }))

// ---------------------------------------------------------------------------------------------
// Groups

export const HealthGroup = HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(HealthResponse))
  .prefix("/internal/v1")

export const RunsGroup = HttpApiGroup.make("runs")
  .add(HttpApiEndpoint.get("snapshot", "/runs/:run_id/snapshot").setPath(RunPath).setUrlParams(ThreadQuery).addSuccess(RunSnapshot))
  .add(
    HttpApiEndpoint.post("frames", "/runs/:run_id/frames")
      .setPath(RunPath)
      .setPayload(FrameRequest)
      .addSuccess(FrameAccepted(false), { status: 202 })
      .addSuccess(FrameAccepted(true), { status: 200 })
      .annotate(OpenApi.Description, "Ingest one frame: 202 when new, 200 when the same frame id and payload were already accepted, 409 when the payload differs.")
  )
  .add(
    HttpApiEndpoint.post("cancel", "/runs/:run_id/cancel")
      .setPath(RunPath)
      .setPayload(CancelRequest)
      .addSuccess(CancelAccepted(false), { status: 202 })
      .addSuccess(CancelAccepted(true), { status: 200 })
  )
  .add(HttpApiEndpoint.get("receipt", "/runs/:run_id/receipt").setPath(RunPath).setUrlParams(ThreadQuery).addSuccess(Receipt))
  .add(
    HttpApiEndpoint.get("stream", "/runs/:run_id/stream")
      .setPath(RunPath)
      .setUrlParams(StreamQuery)
      .addSuccess(sse("`id: <seq>`, `event: message`, `data: {runId, seq, eventType, payload, occurredAt}`; `data: [DONE]` after a terminal event"))
      .annotate(
        OpenApi.Description,
        "Server-sent events of the run. Resume with Last-Event-ID or ?cursor (both and different: 400); without either the stream starts after the latest event; a cursor older than what is retained: 410 stale_cursor."
      )
  )
  .addError(StaleCursorWire)
  .addError(ConflictWire)
  .addError(NotFoundWire)
  .addError(ForbiddenWire)
  .addError(InvalidRequestWire)
  .addError(InternalErrorWire)
  .middleware(Authentication)
  .prefix("/internal/v1")

export const WorkersGroup = HttpApiGroup.make("workers")
  .add(HttpApiEndpoint.get("list", "/codex/workers").setUrlParams(WorkerListQuery).addSuccess(WorkerList))
  .add(
    HttpApiEndpoint.post("create", "/codex/workers")
      .setPayload(CreateWorkerRequest)
      .addSuccess(WorkerCreated(false), { status: 202 })
      .addSuccess(WorkerCreated(true), { status: 200 })
      .annotate(OpenApi.Description, "Create a worker (202), or reattach the caller's existing worker (200; a stopped or failed one is started again).")
  )
  .add(HttpApiEndpoint.get("snapshot", "/codex/workers/:worker_id/snapshot").setPath(WorkerPath).addSuccess(WorkerSnapshot))
  .add(
    HttpApiEndpoint.post("requests", "/codex/workers/:worker_id/requests").setPath(WorkerPath).setPayload(WorkerRequestBody).addSuccess(WorkerRequestAccepted, {
      status: 202
    })
  )
  .add(
    HttpApiEndpoint.post("events", "/codex/workers/:worker_id/events").setPath(WorkerPath).setPayload(WorkerEventBody).addSuccess(WorkerEventAccepted, {
      status: 202
    })
  )
  .add(
    HttpApiEndpoint.get("stream", "/codex/workers/:worker_id/stream")
      .setPath(WorkerPath)
      .setUrlParams(StreamQuery)
      .addSuccess(sse("`id: <seq>`, `event: codex.worker.event`, `data: {workerId, seq, eventType, payload, occurredAt}`"))
  )
  .add(
    HttpApiEndpoint.post("stop", "/codex/workers/:worker_id/stop")
      .setPath(WorkerPath)
      .setPayload(StopRequest)
      .addSuccess(Stopped(false), { status: 202 })
      .addSuccess(Stopped(true), { status: 200 })
  )
  .addError(StaleCursorWire)
  .addError(ConflictWire)
  .addError(NotFoundWire)
  .addError(ForbiddenWire)
  .addError(InvalidRequestWire)
  .addError(InternalErrorWire)
  .middleware(Authentication)
  .prefix("/internal/v1")

export const SyncGroup = HttpApiGroup.make("sync")
  .add(
    HttpApiEndpoint.post("revoke", "/sync/sessions/revoke")
      .setPayload(RevokeRequest)
      .addSuccess(RevokeResponse)
      .annotate(
        OpenApi.Description,
        "Control revokes sessions/devices: live Khala sockets and SSE streams of those sessions are cut (reauth_required) and the session ids are refused until every token they hold has expired. Idempotent."
      )
  )
  .addError(InvalidRequestWire)
  .addError(InternalErrorWire)
  .middleware(InternalAuthentication)
  .prefix("/internal/v1")

export const RuntimeApi = (() => {
  const api = HttpApi.make("runtime")
    .add(HealthGroup)
    .add(RunsGroup)
    .add(WorkersGroup)
    .add(SyncGroup)
    .annotate(OpenApi.Title, "OpenAgents runtime API")
    .annotate(OpenApi.Description, "Runs, Codex workers and their event streams, and the session-revocation endpoint of the OpenAgents runtime.")
  // Request validation failures as the runtime envelope (400), not HttpApi's default `_tag` body.
  ;(api as unknown as { errorSchema: unknown }).errorSchema = DecodeErrorWire
  return api
})()
export type RuntimeApi = typeof RuntimeApi
