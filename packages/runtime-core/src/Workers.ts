// Codex workers: lifecycle, requests and events, with heartbeat state, projected in the same
// transaction as each authority write into two Khala topics — the owner's worker summaries
// (read model + journal) and the worker's own event stream (journal only).
//
// Create is idempotent for the owner (an existing running worker is returned; a stopped or failed
// one is re-activated with worker.started {reason: "reattach"}); another principal gets 403.
// Stop is idempotent. Requests and events are refused (409) on a worker that is not running.
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Checkpoints, Publisher, ReadModels } from "@openagents/khala-core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Errors from "./Errors.js"
import * as Projection from "./Projection.js"
import type { Principal } from "./Runs.js"

export interface WorkerEvent {
  readonly workerId: string
  readonly seq: bigint
  readonly eventType: string
  readonly payload: unknown
  readonly at: Date
}

export interface WorkerView extends Projection.WorkerState {
  readonly heartbeatState: Projection.HeartbeatState
  readonly heartbeatAgeMs: number | null
}

export interface CreateInput {
  readonly workerId?: string | undefined
  readonly workspaceRef?: string | undefined
  readonly codexHomeRef?: string | undefined
  readonly adapter?: string | undefined
  readonly metadata?: Record<string, unknown> | undefined
}

type E = Errors.RuntimeError

export interface WorkersService {
  readonly create: (principal: Principal, input: CreateInput) => Effect.Effect<{ worker: WorkerView; created: boolean; idempotentReplay: boolean }, E>
  readonly get: (principal: Principal, workerId: string) => Effect.Effect<WorkerView, E>
  readonly list: (principal: Principal, filter: { status?: string | undefined; workspaceRef?: string | undefined; limit?: number | undefined }) => Effect.Effect<ReadonlyArray<WorkerView>, E>
  readonly request: (principal: Principal, workerId: string, request: { requestId: string; method: string; params?: unknown }) => Effect.Effect<{ workerId: string; seq: bigint }, E>
  readonly appendEvent: (principal: Principal, workerId: string, event: { eventType: string; payload?: unknown }) => Effect.Effect<WorkerEvent, E>
  readonly stop: (principal: Principal, workerId: string, reason?: string | undefined) => Effect.Effect<{ workerId: string; status: Projection.WorkerStatus; idempotentReplay: boolean }, E>
  readonly events: (principal: Principal, workerId: string, afterSeq: bigint, limit: number) => Effect.Effect<ReadonlyArray<WorkerEvent>, E>
  /** Recompute the worker's summary from its event log; check it against the row and the read model. */
  readonly verify: (workerId: string) => Effect.Effect<WorkerVerification, E>
  /** Rebuild the worker's row state and summary from its event log (only when they differ). */
  readonly reproject: (workerId: string) => Effect.Effect<{ changed: boolean }, E>
  readonly reprojectAll: Effect.Effect<{ workers: number; changed: number }, E>
  /** The latest seq of an owned worker and the lowest seq still stored (undefined when none is). */
  readonly eventBounds: (principal: Principal, workerId: string) => Effect.Effect<{ latest: bigint; first: bigint | undefined }, E>
  readonly ownerOf: (workerId: string) => Effect.Effect<string | undefined, E>
}

export interface WorkerVerification {
  readonly workerId: string
  readonly eventCount: number
  /** Seqs are 1..n with no gap. */
  readonly dense: boolean
  readonly rowMatches: boolean
  readonly summaryMatches: boolean
  readonly storedSummaryHash: string | undefined
  readonly recomputedSummaryHash: string
  readonly drift: boolean
}

export class Workers extends Context.Tag("@openagents/runtime-core/Workers")<Workers, WorkersService>() {}

export const PROJECTION_NAME = "codex_worker_summary"

interface WorkerRow {
  readonly worker_id: string
  readonly owner_user_id: string
  readonly workspace_ref: string | null
  readonly codex_home_ref: string | null
  readonly adapter: string
  readonly status: Projection.WorkerStatus
  readonly metadata: unknown
  readonly latest_seq: string
  readonly latest_event_type: string | null
  readonly latest_event_at: Date | null
  readonly started_at: Date
  readonly stopped_at: Date | null
  readonly last_heartbeat_at: Date | null
}

const toState = (r: WorkerRow): Projection.WorkerState => ({
  workerId: r.worker_id,
  ownerUserId: r.owner_user_id,
  workspaceRef: r.workspace_ref,
  codexHomeRef: r.codex_home_ref,
  adapter: r.adapter,
  metadata: r.metadata,
  status: r.status,
  latestSeq: BigInt(r.latest_seq),
  latestEventType: r.latest_event_type,
  latestEventAt: r.latest_event_at,
  startedAt: r.started_at,
  stoppedAt: r.stopped_at,
  lastHeartbeatAt: r.last_heartbeat_at
})

const view = (s: Projection.WorkerState, now = Date.now()): WorkerView => ({
  ...s,
  heartbeatState: Projection.heartbeatState(s, now),
  heartbeatAgeMs: s.lastHeartbeatAt === null ? null : now - s.lastHeartbeatAt.getTime()
})

const sqlFailure = (e: SqlError) => Errors.internal(`runtime storage failed: ${e.message}`)
const projectionFailure = (e: { message: string }) => Errors.internal(`projection failed: ${e.message}`)
const randomId = () => `w_${globalThis.crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`

/**
 * Handshake events (`worker.event` with method `ios/handshake` or `desktop/handshake_ack`) must
 * say who shook hands with whom: source, method, handshake_id, occurred_at, and device_id (iOS)
 * or desktop_session_id (desktop), as non-empty strings (UPSTREAM_SPEC §2.5).
 */
const HANDSHAKES: Record<string, string> = { "ios/handshake": "device_id", "desktop/handshake_ack": "desktop_session_id" }

export const checkHandshake = (eventType: string, payload: unknown): Errors.RuntimeError | undefined => {
  if (eventType !== "worker.event" || typeof payload !== "object" || payload === null) return undefined
  const p = payload as Record<string, unknown>
  const method = p["method"]
  if (typeof method !== "string" || !(method in HANDSHAKES)) return undefined
  const missing = ["source", "method", "handshake_id", "occurred_at", HANDSHAKES[method]!].filter((f) => typeof p[f] !== "string" || (p[f] as string).length === 0)
  return missing.length === 0 ? undefined : Errors.invalid(`a ${method} event needs ${missing.join(", ")}`, { field: "payload", missing })
}

export const make: Effect.Effect<WorkersService, never, SqlClient.SqlClient | Publisher.Publisher | Checkpoints.Checkpoints | ReadModels.ReadModels> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const publisher = yield* Publisher.Publisher
  const checkpoints = yield* Checkpoints.Checkpoints
  const readModels = yield* ReadModels.ReadModels

  const loadRow = (workerId: string, lock: boolean) =>
    (lock
      ? sql<WorkerRow>`SELECT * FROM runtime.codex_workers WHERE worker_id = ${workerId} FOR UPDATE`
      : sql<WorkerRow>`SELECT * FROM runtime.codex_workers WHERE worker_id = ${workerId}`).pipe(Effect.map((rows) => rows[0]), Effect.mapError(sqlFailure))

  const ownedRow = (principal: Principal, workerId: string, lock: boolean) =>
    Effect.flatMap(loadRow(workerId, lock), (row) =>
      row === undefined
        ? Effect.fail(Errors.notFound(`worker ${workerId} not found`))
        : row.owner_user_id !== principal.userId
        ? Effect.fail(Errors.forbidden(`worker ${workerId} belongs to another principal`))
        : Effect.succeed(row))

  const writeState = (s: Projection.WorkerState) =>
    sql`UPDATE runtime.codex_workers SET status = ${s.status}, latest_seq = ${s.latestSeq.toString()}, latest_event_type = ${s.latestEventType},
          latest_event_at = ${s.latestEventAt?.toISOString() ?? null}::timestamptz, started_at = ${s.startedAt.toISOString()}::timestamptz,
          stopped_at = ${s.stoppedAt?.toISOString() ?? null}::timestamptz, last_heartbeat_at = ${s.lastHeartbeatAt?.toISOString() ?? null}::timestamptz,
          updated_at = now()
        WHERE worker_id = ${s.workerId}`.pipe(Effect.mapError(sqlFailure))

  /** Append one event to a locked worker, fold, and project both topics. */
  const appendLocked = (state: Projection.WorkerState, eventType: string, payload: unknown) =>
    Effect.gen(function*() {
      const seq = state.latestSeq + 1n
      const at = new Date()
      yield* sql`INSERT INTO runtime.codex_worker_events (worker_id, seq, event_type, payload, inserted_at)
                 VALUES (${state.workerId}, ${seq.toString()}, ${eventType}, ${JSON.stringify(payload)}::jsonb, ${at.toISOString()}::timestamptz)`.pipe(
        Effect.mapError(sqlFailure)
      )
      const next = Projection.foldWorker(state, { seq, eventType, payload, at })
      yield* writeState(next)
      const summary = Projection.workerSummary(next)
      const topic = Projection.workerTopic(next.ownerUserId)
      const docKey = Projection.workerDocKey(next.workerId)
      // The owner's summary topic is shared by all of the owner's workers, and its watermark row
      // stays locked until commit: write everything else first, publish to it last.
      yield* checkpoints.put({
        projectionName: PROJECTION_NAME,
        entityId: next.workerId,
        documentId: docKey,
        topic,
        lastRuntimeSeq: seq,
        projectionVersion: Projection.PROJECTION_VERSION,
        summaryHash: Checkpoints.summaryHash(summary),
        lastProjectedAt: at
      })
      yield* publisher.append(Projection.workerEventsTopic(next.workerId), [{
        docKey: Projection.workerEventDocKey(next.workerId, seq),
        docVersion: seq,
        payload: { workerId: next.workerId, worker_id: next.workerId, seq: Number(seq), eventType, event_type: eventType, payload, occurredAt: at.toISOString(), occurred_at: at.toISOString() }
      }])
      yield* publisher.publish(topic, [{ docKey, docVersion: seq, payload: summary }])
      return { next, event: { workerId: next.workerId, seq, eventType, payload, at } satisfies WorkerEvent }
    }).pipe(Effect.catchTags({
      InvalidTopicError: (e) => Effect.fail(Errors.invalid(e.message)),
      InvalidDocKeyError: (e) => Effect.fail(Errors.invalid(e.message)),
      InvalidWatermarkError: (e) => Effect.fail(Errors.invalid(e.message)),
      InvalidPayloadError: (e) => Effect.fail(Errors.invalid(e.message, { field: "payload" })),
      PayloadTooLargeError: (e) => Effect.fail(Errors.invalid(e.message, { field: "payload" })),
      BatchTooLargeError: (e) => Effect.fail(Errors.invalid(e.message)),
      JournalStorageError: (e) => Effect.fail(projectionFailure(e))
    }))

  const inTransaction = <A>(effect: Effect.Effect<A, E>) =>
    publisher.transaction(effect).pipe(Effect.catchTag("JournalStorageError", (e) => Effect.fail(projectionFailure(e))))

  const requireRunning = (row: WorkerRow) =>
    row.status === "running" ? Effect.void : Effect.fail(Errors.conflict(`worker ${row.worker_id} is ${row.status}`, { status: row.status }))

  const allEvents = (workerId: string) =>
    sql<{ seq: string; event_type: string; payload: unknown; inserted_at: Date }>`
      SELECT seq, event_type, payload, inserted_at FROM runtime.codex_worker_events WHERE worker_id = ${workerId} ORDER BY seq`.pipe(
      Effect.map((rows) => rows.map((r) => ({ seq: BigInt(r.seq), eventType: r.event_type, payload: r.payload, at: r.inserted_at }))),
      Effect.mapError(sqlFailure)
    )

  /** The state the log folds into, from the row's fixed fields (the same fold as every append). */
  const refold = (row: WorkerRow, events: ReadonlyArray<Projection.WorkerEventInput>) => {
    const fixed = toState(row)
    const initial: Projection.WorkerState = {
      ...fixed,
      status: "running",
      latestSeq: 0n,
      latestEventType: null,
      latestEventAt: null,
      startedAt: events[0]?.at ?? fixed.startedAt,
      stoppedAt: null,
      lastHeartbeatAt: null
    }
    return events.reduce(Projection.foldWorker, initial)
  }

  const sameState = (a: Projection.WorkerState, b: Projection.WorkerState) =>
    Checkpoints.summaryHash(Projection.workerSummary(a)) === Checkpoints.summaryHash(Projection.workerSummary(b))

  const storedSummaryHash = (state: Projection.WorkerState) =>
    readModels.get(Projection.workerTopic(state.ownerUserId), Projection.workerDocKey(state.workerId)).pipe(
      Effect.map((doc) => (doc === undefined ? undefined : Checkpoints.summaryHash(JSON.parse(doc.payload)))),
      Effect.mapError(projectionFailure)
    )

  const verify: WorkersService["verify"] = (workerId) =>
    Effect.gen(function*() {
      const row = yield* loadRow(workerId, false)
      if (row === undefined) return yield* Effect.fail(Errors.notFound(`worker ${workerId} not found`))
      const events = yield* allEvents(workerId)
      const state = refold(row, events)
      const recomputed = Checkpoints.summaryHash(Projection.workerSummary(state))
      const stored = yield* storedSummaryHash(state)
      const dense = events.every((e, i) => e.seq === BigInt(i + 1))
      const rowMatches = sameState(state, toState(row))
      const summaryMatches = stored === recomputed
      return { workerId, eventCount: events.length, dense, rowMatches, summaryMatches, storedSummaryHash: stored, recomputedSummaryHash: recomputed, drift: !dense || !rowMatches || !summaryMatches }
    })

  const reproject: WorkersService["reproject"] = (workerId) =>
    inTransaction(
      Effect.gen(function*() {
        const row = yield* loadRow(workerId, true)
        if (row === undefined) return yield* Effect.fail(Errors.notFound(`worker ${workerId} not found`))
        const state = refold(row, yield* allEvents(workerId))
        const summary = Projection.workerSummary(state)
        const wanted = Checkpoints.summaryHash(summary)
        if ((yield* storedSummaryHash(state)) === wanted && sameState(state, toState(row))) return { changed: false }
        yield* writeState(state)
        const topic = Projection.workerTopic(state.ownerUserId)
        const docKey = Projection.workerDocKey(state.workerId)
        yield* publisher.publish(topic, [{ docKey, docVersion: state.latestSeq, payload: summary }]).pipe(Effect.mapError(projectionFailure))
        yield* checkpoints.put({
          projectionName: PROJECTION_NAME,
          entityId: state.workerId,
          documentId: docKey,
          topic,
          lastRuntimeSeq: state.latestSeq,
          projectionVersion: Projection.PROJECTION_VERSION,
          summaryHash: wanted,
          lastProjectedAt: new Date()
        }).pipe(Effect.mapError(projectionFailure))
        return { changed: true }
      })
    )

  const optionalRef = (field: string, value: string | undefined) =>
    value === undefined ? Effect.succeed(undefined) : typeof value === "string" && value.length > 0 && value.length <= 255 ? Effect.succeed(value) : Effect.fail(Errors.invalid(`${field} must be 1..255 characters`, { field }))

  return {
    create: (principal, input) =>
      Effect.gen(function*() {
        const workerId = input.workerId ?? randomId()
        const checked = Errors.checkId("worker_id", workerId)
        if (typeof checked !== "string") return yield* Effect.fail(checked)
        const workspaceRef = yield* optionalRef("workspace_ref", input.workspaceRef)
        const codexHomeRef = yield* optionalRef("codex_home_ref", input.codexHomeRef)
        const adapter = input.adapter ?? "in_memory"
        if (!/^[a-z][a-z0-9_]{0,63}$/.test(adapter)) return yield* Effect.fail(Errors.invalid("adapter must be a lower-case identifier", { field: "adapter" }))
        const metadata = input.metadata ?? {}
        if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) return yield* Effect.fail(Errors.invalid("metadata must be an object", { field: "metadata" }))
        return yield* inTransaction(
          Effect.gen(function*() {
            const inserted = yield* sql<WorkerRow>`
              INSERT INTO runtime.codex_workers (worker_id, owner_user_id, workspace_ref, codex_home_ref, adapter, metadata)
              VALUES (${workerId}, ${principal.userId}, ${workspaceRef ?? null}, ${codexHomeRef ?? null}, ${adapter}, ${JSON.stringify(metadata)}::jsonb)
              ON CONFLICT (worker_id) DO NOTHING RETURNING *`.pipe(Effect.mapError(sqlFailure))
            const row = inserted[0] ?? (yield* loadRow(workerId, true))!
            if (row.owner_user_id !== principal.userId) return yield* Effect.fail(Errors.forbidden(`worker ${workerId} belongs to another principal`))
            if (inserted[0] !== undefined) {
              const { next } = yield* appendLocked(toState(row), "worker.started", { reason: "created", adapter, workspace_ref: workspaceRef ?? null })
              return { worker: view(next), created: true, idempotentReplay: false }
            }
            if (row.status === "running") return { worker: view(toState(row)), created: false, idempotentReplay: true }
            const { next } = yield* appendLocked(toState(row), "worker.started", { reason: "reattach" })
            return { worker: view(next), created: false, idempotentReplay: false }
          })
        )
      }),
    get: (principal, workerId) => Effect.map(ownedRow(principal, workerId, false), (row) => view(toState(row))),
    list: (principal, filter) =>
      Effect.gen(function*() {
        const limit = filter.limit ?? 50
        if (!Number.isSafeInteger(limit) || limit < 1 || limit > 200) return yield* Effect.fail(Errors.invalid("limit must be 1..200", { field: "limit" }))
        const rows = yield* sql<WorkerRow>`
          SELECT * FROM runtime.codex_workers
          WHERE owner_user_id = ${principal.userId}
            ${filter.status ? sql`AND status = ${filter.status}` : sql``}
            ${filter.workspaceRef ? sql`AND workspace_ref = ${filter.workspaceRef}` : sql``}
          ORDER BY updated_at DESC, worker_id LIMIT ${limit}`.pipe(Effect.mapError(sqlFailure))
        const now = Date.now()
        return rows.map((r) => view(toState(r), now))
      }),
    request: (principal, workerId, request) =>
      Effect.gen(function*() {
        if (typeof request.requestId !== "string" || request.requestId.length === 0 || request.requestId.length > 128) return yield* Effect.fail(Errors.invalid("request.request_id must be 1..128 characters", { field: "request_id" }))
        if (typeof request.method !== "string" || !/^[A-Za-z][A-Za-z0-9_./-]{0,127}$/.test(request.method)) return yield* Effect.fail(Errors.invalid("request.method must be a method name", { field: "method" }))
        return yield* inTransaction(
          Effect.gen(function*() {
            const row = yield* ownedRow(principal, workerId, true)
            yield* requireRunning(row)
            const { event } = yield* appendLocked(toState(row), "worker.request_received", { request_id: request.requestId, method: request.method, params: request.params ?? null })
            return { workerId, seq: event.seq }
          })
        )
      }),
    appendEvent: (principal, workerId, input) =>
      Effect.gen(function*() {
        const type = Errors.checkEventType(input.eventType, "worker.")
        if (typeof type !== "string") return yield* Effect.fail(type)
        const handshake = checkHandshake(type, input.payload)
        if (handshake !== undefined) return yield* Effect.fail(handshake)
        return yield* inTransaction(
          Effect.gen(function*() {
            const row = yield* ownedRow(principal, workerId, true)
            if (type !== "worker.started") yield* requireRunning(row)
            return (yield* appendLocked(toState(row), type, input.payload ?? {})).event
          })
        )
      }),
    stop: (principal, workerId, reason) =>
      inTransaction(
        Effect.gen(function*() {
          const row = yield* ownedRow(principal, workerId, true)
          if (row.status !== "running") return { workerId, status: row.status, idempotentReplay: true }
          const { next } = yield* appendLocked(toState(row), "worker.stopped", { reason: reason ?? "requested" })
          return { workerId, status: next.status, idempotentReplay: false }
        })
      ),
    events: (principal, workerId, afterSeq, limit) =>
      Effect.zipRight(
        ownedRow(principal, workerId, false),
        sql<{ worker_id: string; seq: string; event_type: string; payload: unknown; inserted_at: Date }>`
          SELECT worker_id, seq, event_type, payload, inserted_at FROM runtime.codex_worker_events
          WHERE worker_id = ${workerId} AND seq > ${afterSeq.toString()} ORDER BY seq LIMIT ${Math.max(1, Math.min(limit, 1000))}`.pipe(
          Effect.map((rows) => rows.map((r) => ({ workerId: r.worker_id, seq: BigInt(r.seq), eventType: r.event_type, payload: r.payload, at: r.inserted_at }))),
          Effect.mapError(sqlFailure)
        )
      ),
    verify,
    reproject,
    reprojectAll: Effect.gen(function*() {
      const ids = yield* sql<{ worker_id: string }>`SELECT worker_id FROM runtime.codex_workers ORDER BY worker_id`.pipe(Effect.mapError(sqlFailure))
      let changed = 0
      for (const { worker_id } of ids) if ((yield* reproject(worker_id)).changed) changed++
      return { workers: ids.length, changed }
    }),
    eventBounds: (principal, workerId) =>
      Effect.gen(function*() {
        const row = yield* ownedRow(principal, workerId, false)
        const [min] = yield* sql<{ first: string | null }>`SELECT min(seq) AS first FROM runtime.codex_worker_events WHERE worker_id = ${workerId}`.pipe(Effect.mapError(sqlFailure))
        return { latest: BigInt(row.latest_seq), first: min?.first == null ? undefined : BigInt(min.first) }
      }),
    ownerOf: (workerId) => Effect.map(loadRow(workerId, false), (row) => row?.owner_user_id)
  }
})

export const layer = Layer.effect(Workers, make)
