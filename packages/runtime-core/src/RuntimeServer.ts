// The runtime's HTTP surface as HttpLayerRouter routes: the HttpApi (Api.ts) with its OpenAPI
// document, Khala's snapshot endpoint (GET /sync/v1/snapshot/:topic, for clients recovering from
// stale_cursor), and the last-resort envelopes (unknown route → 404, defect → 500). The handlers
// translate between the wire and the Runs / Workers services, which hold the rules.
import type * as Etag from "@effect/platform/Etag"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type * as HttpPlatform from "@effect/platform/HttpPlatform"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Path from "@effect/platform/Path"
import { Checkpoints, Notifier, SnapshotHttp } from "@openagents/khala-core"
import type { Revocations } from "@openagents/khala-core"
// Named here so the declaration build can name the routes' type (TS2742).
import type { Snapshot, SyncToken, TopicAuthorizer } from "@openagents/khala-core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { Authentication, CurrentCaller, envelope, InternalAuthentication, RuntimeApi } from "./Api.js"
import { Authenticator, DEFAULT_REVOCATION_TTL_MS, RevokedSessions } from "./Auth.js"
import * as Errors from "./Errors.js"
import * as Projection from "./Projection.js"
import { Runs } from "./Runs.js"
import * as Streams from "./Streams.js"
import { Workers, type WorkerView } from "./Workers.js"

export const SERVICE = "runtime"
export const VERSION = "0.0.0"
export const OPENAPI_PATH = "/openapi.json"

const iso = (d: Date) => d.toISOString()
const isoOrNull = (d: Date | null) => (d === null ? null : d.toISOString())
const num = (n: bigint) => Number(n)

const fail = <A>(e: A | Errors.RuntimeError): Effect.Effect<A, Errors.RuntimeError> => e instanceof Errors.RuntimeError ? Effect.fail(e) : Effect.succeed(e)

const lastEventId = Effect.map(HttpServerRequest.HttpServerRequest, (r) => r.headers["last-event-id"])

// ---------------------------------------------------------------------------------------------
// Middleware

const bearerOf = (token: Redacted.Redacted<string>) => Redacted.value(token).trim()

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(Authenticator, (auth) =>
    Authentication.of({
      bearer: (token) => Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => auth.user(request, bearerOf(token)))
    }))
)

export const InternalAuthenticationLive = Layer.effect(
  InternalAuthentication,
  Effect.map(Authenticator, (auth) => Effect.asVoid(Effect.flatMap(HttpServerRequest.HttpServerRequest, auth.internal)))
)

// ---------------------------------------------------------------------------------------------
// Handlers

const HealthHandlers = HttpApiBuilder.group(RuntimeApi, "health", (h) => h.handle("health", () => Effect.succeed({ status: "ok" as const, service: SERVICE, version: VERSION })))

const RunsHandlers = HttpApiBuilder.group(RuntimeApi, "runs", (handlers) =>
  Effect.gen(function*() {
    const runs = yield* Runs
    const checkThread = (runId: string, threadId: string | undefined, actual: string) =>
      threadId === undefined || threadId === actual
        ? Effect.void
        : Effect.fail(Errors.conflict(`run ${runId} belongs to another thread`, { field: "thread_id" }))
    return handlers
      .handle("snapshot", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const s = yield* runs.snapshot(caller, path.run_id)
          yield* checkThread(path.run_id, urlParams.thread_id, s.threadId)
          return {
            runId: s.runId,
            threadId: s.threadId,
            status: s.status,
            latestSeq: num(s.latestSeq),
            latestEventType: s.latestEventType,
            terminalReasonClass: s.terminalReasonClass,
            terminalReason: s.terminalReason,
            updatedAt: iso(s.updatedAt)
          }
        }))
      .handle("frames", ({ path, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const r = yield* runs.ingestFrame(caller, path.run_id, { threadId: payload.thread_id, frameId: payload.frame_id, type: payload.type, payload: payload.payload ?? {} })
          return { runId: r.runId, frameId: r.frameId, seq: num(r.seq), status: "accepted" as const, idempotentReplay: r.idempotentReplay as never }
        }))
      .handle("cancel", ({ path, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const r = yield* runs.cancel(caller, path.run_id, { threadId: payload.thread_id, reason: payload.reason ?? undefined })
          return { runId: r.runId, status: "canceling" as const, cancelRequested: true as const, idempotentReplay: r.idempotentReplay as never }
        }))
      .handle("receipt", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const bounds = yield* runs.eventBounds(caller, path.run_id)
          yield* checkThread(path.run_id, urlParams.thread_id, bounds.threadId)
          const r = yield* runs.receipt(caller, path.run_id)
          return { ...r, eventCount: num(r.eventCount), lastSeq: num(r.lastSeq) }
        }))
      .handle("stream", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const p = yield* fail(Streams.params(yield* lastEventId, urlParams))
          const bounds = yield* runs.eventBounds(caller, path.run_id)
          yield* checkThread(path.run_id, urlParams.thread_id, bounds.threadId)
          const owner = (yield* runs.ownerOf(path.run_id)) ?? caller.userId
          const response = yield* Streams.respond(caller, {
            topic: Projection.runTopic(owner),
            after: (seq, limit) => runs.events(caller, path.run_id, seq, limit),
            bounds: runs.eventBounds(caller, path.run_id),
            format: (e) =>
              Streams.message(e.seq, "message", { runId: e.runId, seq: num(e.seq), eventType: e.eventType, payload: e.payload, eventHash: e.eventHash, occurredAt: iso(e.at) }),
            isTerminal: (e) => Projection.isTerminalRunEvent(e.eventType)
          }, p)
          return response as never
        }))
  }))

const heartbeatStaleAfter = Projection.HEARTBEAT_STALE_AFTER_MS

const WorkersHandlers = HttpApiBuilder.group(RuntimeApi, "workers", (handlers) =>
  Effect.gen(function*() {
    const workers = yield* Workers
    const checkpoints = yield* Checkpoints.Checkpoints
    const projectionOf = (w: WorkerView) =>
      Effect.map(Effect.orElseSucceed(checkpoints.get("codex_worker_summary", w.workerId), () => undefined), (cp) => {
        const last = cp?.lastRuntimeSeq ?? 0n
        const lag = w.latestSeq > last ? Number(w.latestSeq - last) : 0
        return {
          status: lag === 0 ? "in_sync" as const : "lagging" as const,
          lag_events: lag,
          last_runtime_seq: num(last),
          last_projected_at: cp === undefined ? null : iso(cp.lastProjectedAt)
        }
      })
    return handlers
      .handle("list", ({ urlParams }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const list = yield* workers.list(caller, { status: urlParams.status, workspaceRef: urlParams.workspace_ref, limit: urlParams.limit })
          const data = yield* Effect.forEach(list, (w) =>
            Effect.map(projectionOf(w), (khala_projection) => ({
              worker_id: w.workerId,
              status: w.status,
              latest_seq: num(w.latestSeq),
              heartbeat_state: w.heartbeatState,
              heartbeat_age_ms: w.heartbeatAgeMs,
              heartbeat_stale_after_ms: heartbeatStaleAfter,
              workspace_ref: w.workspaceRef,
              adapter: w.adapter,
              started_at: iso(w.startedAt),
              stopped_at: isoOrNull(w.stoppedAt),
              khala_projection
            })))
          return { data }
        }))
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const r = yield* workers.create(caller, {
            workerId: payload.worker_id ?? undefined,
            workspaceRef: payload.workspace_ref ?? undefined,
            codexHomeRef: payload.codex_home_ref ?? undefined,
            adapter: payload.adapter ?? undefined,
            metadata: payload.metadata ?? undefined
          })
          return { data: { workerId: r.worker.workerId, status: r.worker.status, latestSeq: num(r.worker.latestSeq), idempotentReplay: (!r.created) as never } }
        }))
      .handle("snapshot", ({ path }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const w = yield* workers.get(caller, path.worker_id)
          return {
            data: {
              worker_id: w.workerId,
              status: w.status,
              latest_seq: num(w.latestSeq),
              latest_event_type: w.latestEventType,
              heartbeat_state: w.heartbeatState,
              heartbeat_age_ms: w.heartbeatAgeMs,
              workspace_ref: w.workspaceRef,
              codex_home_ref: w.codexHomeRef,
              adapter: w.adapter,
              metadata: w.metadata,
              started_at: iso(w.startedAt),
              stopped_at: isoOrNull(w.stoppedAt),
              last_heartbeat_at: isoOrNull(w.lastHeartbeatAt)
            }
          }
        }))
      .handle("requests", ({ path, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const r = yield* workers.request(caller, path.worker_id, { requestId: payload.request.request_id, method: payload.request.method, params: payload.request.params })
          return { data: { worker_id: r.workerId, request_id: payload.request.request_id, seq: num(r.seq), status: "accepted" as const } }
        }))
      .handle("events", ({ path, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const e = yield* workers.appendEvent(caller, path.worker_id, { eventType: payload.event.event_type, payload: payload.event.payload })
          return { data: { worker_id: e.workerId, seq: num(e.seq), event_type: e.eventType, payload: e.payload, occurred_at: iso(e.at) } }
        }))
      .handle("stream", ({ path, urlParams }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const p = yield* fail(Streams.params(yield* lastEventId, urlParams))
          const response = yield* Streams.respond(caller, {
            topic: Projection.workerEventsTopic(path.worker_id),
            after: (seq, limit) => workers.events(caller, path.worker_id, seq, limit),
            bounds: workers.eventBounds(caller, path.worker_id),
            format: (e) => Streams.message(e.seq, "codex.worker.event", { workerId: e.workerId, seq: num(e.seq), eventType: e.eventType, payload: e.payload, occurredAt: iso(e.at) })
          }, p)
          return response as never
        }))
      .handle("stop", ({ path, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          const r = yield* workers.stop(caller, path.worker_id, payload.reason ?? undefined)
          return { data: { worker_id: r.workerId, status: r.status, idempotentReplay: r.idempotentReplay as never } }
        }))
  }))

export interface SyncHandlerOptions {
  /**
   * How long revoked session ids are refused at least (default 3630 s: a 3600 s access token plus
   * skew); longer when the notice's remember_until_ms says so.
   */
  readonly revocationTtlMs?: number | undefined
}

/** The longest a notice's remember_until_ms may keep a revocation: 8 days (control's access tokens live at most 24 h). */
export const MAX_REVOCATION_TTL_MS = 8 * 86_400_000

const syncHandlers = (options: SyncHandlerOptions) =>
  HttpApiBuilder.group(RuntimeApi, "sync", (handlers) =>
    Effect.gen(function*() {
      const revoked = yield* RevokedSessions
      const notifier = yield* Notifier.Notifier
      return handlers.handle("revoke", ({ payload }) =>
        Effect.gen(function*() {
          const sessionIds = [...new Set(payload.session_ids)]
          const deviceIds = [...new Set(payload.device_ids)]
          // Remember first (durable, every node), then cut what is live on every node.
          // As long as control says its tokens may live (its access-token TTL is configurable
          // up to 24 h), never less than our default, and capped so a bad clock cannot pin an entry.
          const nowMs = Date.now()
          const defaultTtlMs = options.revocationTtlMs ?? DEFAULT_REVOCATION_TTL_MS
          const ttlMs = payload.remember_until_ms === undefined
            ? defaultTtlMs
            : Math.max(defaultTtlMs, Math.min(payload.remember_until_ms - nowMs, MAX_REVOCATION_TTL_MS))
          const userId = payload.user_id
          // Control's time (its clock stamps the tokens' iat too), at most a minute ahead of ours.
          const revokedAtMs = Math.min(payload.revoked_at_ms ?? nowMs, nowMs + 60_000)
          yield* revoked.record({ sessionIds, deviceIds, userId, revokedAtMs, reason: payload.reason, ttlMs })
          yield* notifier.revoke({ sessionIds, deviceIds, ...(userId === undefined ? {} : { userId }), revokedAtMs, reason: payload.reason })
          yield* Effect.logInfo(`revoked ${sessionIds.length} session(s), ${deviceIds.length} device(s): ${payload.reason}`)
          return { ok: true as const, revoked_sessions: sessionIds.length, revoked_devices: deviceIds.length }
        }))
    }))

// ---------------------------------------------------------------------------------------------
// Routes

const lastResort = (effect: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled>) =>
  Effect.catchAllCause(effect, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some" && HttpServerError.isServerError(failure.value) && (failure.value as { _tag: string })._tag === "RouteNotFound") {
      return Effect.succeed(HttpServerResponse.unsafeJson(envelope("not_found", "no such route"), { status: 404 }))
    }
    // A body that is not JSON never reaches schema decoding (it can arrive as a failure or a defect).
    const squashed = Cause.squash(cause)
    if (HttpServerError.isServerError(squashed) && squashed._tag === "RequestError" && squashed.reason === "Decode") {
      return Effect.succeed(HttpServerResponse.unsafeJson(envelope("invalid_request", "the request body could not be read as JSON"), { status: 400 }))
    }
    return Effect.as(
      Effect.logError("unhandled failure in a runtime route", cause),
      HttpServerResponse.unsafeJson(envelope("internal_error", "internal error"), { status: 500 })
    )
  }) as Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled>

/** The API routes, the OpenAPI document and the Khala snapshot endpoint. */
export const routes = (options: SyncHandlerOptions = {}): Layer.Layer<
  never,
  never,
  | RevokedSessions
  | Authenticator
  | Checkpoints.Checkpoints
  | Notifier.Notifier
  | Runs
  | Workers
  | HttpLayerRouter.HttpRouter
  | HttpLayerRouter.Request<"Requires", SyncToken.SyncTokenVerifier>
  | HttpLayerRouter.Request<"Requires", Snapshot.Snapshot>
  | HttpLayerRouter.Request<"Requires", TopicAuthorizer.TopicAuthorizer>
  | HttpLayerRouter.Request<"Requires", Revocations.Revocations>
  | FileSystem.FileSystem
  | Path.Path
  | HttpPlatform.HttpPlatform
  | Etag.Generator
> =>
  Layer.mergeAll(
    HttpLayerRouter.addHttpApi(RuntimeApi, { openapiPath: OPENAPI_PATH }).pipe(
      Layer.provide([HealthHandlers, RunsHandlers, WorkersHandlers, syncHandlers(options)]),
      Layer.provide([AuthenticationLive, InternalAuthenticationLive])
    ),
    SnapshotHttp.layer,
    HttpLayerRouter.use((router) => router.addGlobalMiddleware(lastResort))
  )
