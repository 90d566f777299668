// Runs: ordered, hash-chained events with idempotent ingest by frame id, projected into the
// owner's run-summaries topic in the same transaction as the authority write — so a crash can
// never leave an event without its projection, or a projection without its event.
//
// One append, one transaction: lock the run row (creating the run on its first frame) → check the
// frame id (same payload: idempotent replay; different: conflict) → insert the event with seq =
// latest + 1 and its chain hash → fold it into the row's state (never re-reading history) →
// publish the summary (read model + Khala journal) → record the projection checkpoint. The row
// lock serialises appends per run, so seqs are dense and the chain is linear under concurrency.
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Checkpoints, type Journal, Publisher, ReadModels } from "@openagents/khala-core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Errors from "./Errors.js"
import * as HashChain from "./HashChain.js"
import * as Projection from "./Projection.js"

export interface Principal {
  readonly userId: string
}

export interface FrameInput {
  readonly threadId: string
  readonly frameId: string
  readonly type: string
  readonly payload: unknown
}

export interface RunEvent {
  readonly runId: string
  readonly seq: bigint
  readonly eventType: string
  readonly payload: unknown
  readonly payloadHash: string
  readonly prevHash: string | null
  readonly eventHash: string
  readonly at: Date
}

export interface Receipt {
  readonly runId: string
  readonly eventCount: bigint
  readonly lastSeq: bigint
  readonly chainHead: string | null
  readonly projectionVersion: string
  readonly summaryHash: string
}

export interface Verification {
  readonly runId: string
  readonly chain: ReturnType<typeof HashChain.verify>
  readonly summaryMatches: boolean
  readonly storedSummaryHash: string | undefined
  readonly recomputedSummaryHash: string
  readonly drift: boolean
}

type E = Errors.RuntimeError

export interface RunsService {
  readonly ingestFrame: (principal: Principal, runId: string, frame: FrameInput) => Effect.Effect<{ runId: string; frameId: string; seq: bigint; idempotentReplay: boolean }, E>
  readonly cancel: (principal: Principal, runId: string, input: { threadId: string; reason?: string | undefined }) => Effect.Effect<{ runId: string; seq: bigint; idempotentReplay: boolean }, E>
  readonly snapshot: (principal: Principal, runId: string) => Effect.Effect<Projection.RunState & { updatedAt: Date }, E>
  /** Events after `afterSeq`, in order (for streams). */
  readonly events: (principal: Principal, runId: string, afterSeq: bigint, limit: number) => Effect.Effect<ReadonlyArray<RunEvent>, E>
  /** The latest seq of an owned run and the lowest seq still stored (undefined when none is). */
  readonly eventBounds: (principal: Principal, runId: string) => Effect.Effect<{ latest: bigint; first: bigint | undefined; threadId: string }, E>
  readonly receipt: (principal: Principal, runId: string) => Effect.Effect<Receipt, E>
  /** Recompute the chain and the summary from the log; report any drift. */
  readonly verify: (runId: string) => Effect.Effect<Verification, E>
  /** Rebuild the run's state and summary from its log (repairing drift); returns whether anything changed. */
  readonly reproject: (runId: string) => Effect.Effect<{ changed: boolean }, E>
  readonly reprojectAll: Effect.Effect<{ runs: number; changed: number }, E>
  /** The owner of a run (for topic authorization), or undefined. */
  readonly ownerOf: (runId: string) => Effect.Effect<string | undefined, E>
}

export class Runs extends Context.Tag("@openagents/runtime-core/Runs")<Runs, RunsService>() {}

interface RunRow {
  readonly run_id: string
  readonly thread_id: string
  readonly owner_user_id: string
  readonly status: Projection.RunStatus
  readonly latest_seq: string
  readonly latest_event_hash: string | null
  readonly latest_event_type: string | null
  readonly latest_event_at: Date | null
  readonly terminal_reason_class: string | null
  readonly terminal_reason: string | null
  readonly terminal_at: Date | null
  readonly updated_at: Date
}

const toState = (r: RunRow): Projection.RunState => ({
  runId: r.run_id,
  threadId: r.thread_id,
  ownerUserId: r.owner_user_id,
  status: r.status,
  latestSeq: BigInt(r.latest_seq),
  latestEventHash: r.latest_event_hash,
  latestEventType: r.latest_event_type,
  latestEventAt: r.latest_event_at,
  terminalReasonClass: r.terminal_reason_class,
  terminalReason: r.terminal_reason,
  terminalAt: r.terminal_at
})

interface EventRow {
  readonly run_id: string
  readonly seq: string
  readonly event_type: string
  readonly payload: unknown
  readonly payload_hash: string
  readonly prev_hash: string | null
  readonly event_hash: string
  readonly inserted_at: Date
}
const toEvent = (r: EventRow): RunEvent => ({
  runId: r.run_id,
  seq: BigInt(r.seq),
  eventType: r.event_type,
  payload: r.payload,
  payloadHash: r.payload_hash,
  prevHash: r.prev_hash,
  eventHash: r.event_hash,
  at: r.inserted_at
})

export const PROJECTION_NAME = "run_summary"

const sqlFailure = (e: SqlError) => Errors.internal(`runtime storage failed: ${e.message}`)
const storageFailure = (e: { message: string }) => Errors.internal(`projection failed: ${e.message}`)

export const make: Effect.Effect<RunsService, never, SqlClient.SqlClient | Publisher.Publisher | Checkpoints.Checkpoints | ReadModels.ReadModels | Journal.Journal> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const publisher = yield* Publisher.Publisher
  const checkpoints = yield* Checkpoints.Checkpoints
  const readModels = yield* ReadModels.ReadModels

  const loadRow = (runId: string, lock: boolean) =>
    (lock
      ? sql<RunRow>`SELECT * FROM runtime.runs WHERE run_id = ${runId} FOR UPDATE`
      : sql<RunRow>`SELECT * FROM runtime.runs WHERE run_id = ${runId}`).pipe(Effect.map((rows) => rows[0]), Effect.mapError(sqlFailure))

  const owned = (principal: Principal, runId: string) =>
    Effect.flatMap(loadRow(runId, false), (row) =>
      row === undefined
        ? Effect.fail(Errors.notFound(`run ${runId} not found`))
        : row.owner_user_id !== principal.userId
        ? Effect.fail(Errors.forbidden(`run ${runId} belongs to another principal`))
        : Effect.succeed(row))

  /** Publish the summary of `state` and record the checkpoint (inside the caller's transaction). */
  const project = (state: Projection.RunState) => {
    const summary = Projection.runSummary(state)
    const topic = Projection.runTopic(state.ownerUserId)
    const docKey = Projection.runDocKey(state.runId)
    // The owner's topic is shared by all of the owner's runs and its watermark row stays locked
    // until commit: the checkpoint first, the publish last.
    return checkpoints.put({
      projectionName: PROJECTION_NAME,
      entityId: state.runId,
      documentId: docKey,
      topic,
      lastRuntimeSeq: state.latestSeq,
      projectionVersion: Projection.PROJECTION_VERSION,
      summaryHash: Checkpoints.summaryHash(summary),
      lastProjectedAt: new Date()
    }).pipe(
      Effect.zipRight(publisher.publish(topic, [{ docKey, docVersion: state.latestSeq, payload: summary }])),
      Effect.mapError(storageFailure)
    )
  }

  const writeState = (s: Projection.RunState) =>
    sql`UPDATE runtime.runs SET status = ${s.status}, latest_seq = ${s.latestSeq.toString()}, latest_event_hash = ${s.latestEventHash},
          latest_event_type = ${s.latestEventType}, latest_event_at = ${s.latestEventAt?.toISOString() ?? null}::timestamptz,
          terminal_reason_class = ${s.terminalReasonClass}, terminal_reason = ${s.terminalReason},
          terminal_at = ${s.terminalAt?.toISOString() ?? null}::timestamptz, updated_at = now()
        WHERE run_id = ${s.runId}`.pipe(Effect.mapError(sqlFailure))

  /** Append one event to a locked run (state = its row), fold, project. */
  const appendLocked = (state: Projection.RunState, eventType: string, payload: unknown) =>
    Effect.gen(function*() {
      const seq = state.latestSeq + 1n
      const digest = HashChain.payloadHash(payload)
      const hash = HashChain.eventHash(state.runId, seq, eventType, digest, state.latestEventHash)
      const at = new Date()
      yield* sql`INSERT INTO runtime.run_events (run_id, seq, event_type, payload, payload_hash, prev_hash, event_hash, inserted_at)
                 VALUES (${state.runId}, ${seq.toString()}, ${eventType}, ${JSON.stringify(payload)}::jsonb, ${digest}, ${state.latestEventHash}, ${hash}, ${at.toISOString()}::timestamptz)`.pipe(
        Effect.mapError(sqlFailure)
      )
      const next = Projection.foldRun(state, { seq, eventType, payload, eventHash: hash, at })
      yield* writeState(next)
      yield* project(next)
      return next
    })

  const validatePayload = (payload: unknown) =>
    Effect.try({ try: () => HashChain.payloadHash(payload), catch: (e) => Errors.invalid(`payload is not JSON: ${e instanceof Error ? e.message : String(e)}`, { field: "payload" }) })

  const ingestFrame: RunsService["ingestFrame"] = (principal, runId, frame) =>
    Effect.gen(function*() {
      const id = Errors.checkId("run_id", runId)
      if (typeof id !== "string") return yield* Effect.fail(id)
      for (const [field, value] of [["thread_id", frame.threadId], ["frame_id", frame.frameId]] as const) {
        const checked = Errors.checkId(field, value)
        if (typeof checked !== "string") return yield* Effect.fail(checked)
      }
      const type = Errors.checkEventType(frame.type)
      if (typeof type !== "string") return yield* Effect.fail(type)
      const digest = yield* validatePayload(frame.payload)
      return yield* publisher.transaction(
        Effect.gen(function*() {
          yield* sql`INSERT INTO runtime.runs (run_id, thread_id, owner_user_id) VALUES (${runId}, ${frame.threadId}, ${principal.userId})
                     ON CONFLICT (run_id) DO NOTHING`.pipe(Effect.mapError(sqlFailure))
          const row = (yield* loadRow(runId, true))!
          if (row.owner_user_id !== principal.userId) return yield* Effect.fail(Errors.forbidden(`run ${runId} belongs to another principal`))
          if (row.thread_id !== frame.threadId) return yield* Effect.fail(Errors.conflict(`run ${runId} belongs to thread ${row.thread_id}`, { thread_id: row.thread_id }))
          const [existing] = yield* sql<{ payload_hash: string; frame_type: string; seq: string }>`
            SELECT payload_hash, frame_type, seq FROM runtime.run_frames WHERE run_id = ${runId} AND frame_id = ${frame.frameId}`.pipe(Effect.mapError(sqlFailure))
          if (existing !== undefined) {
            if (existing.payload_hash === digest && existing.frame_type === frame.type) {
              return { runId, frameId: frame.frameId, seq: BigInt(existing.seq), idempotentReplay: true }
            }
            return yield* Effect.fail(Errors.conflict(`frame ${frame.frameId} was already accepted with a different payload`, { frame_id: frame.frameId }))
          }
          // The frame row before the event (its seq is the next one): appendLocked ends with the
          // publish to the owner's topic, whose lock is held until commit.
          yield* sql`INSERT INTO runtime.run_frames (run_id, frame_id, frame_type, payload_hash, seq)
                     VALUES (${runId}, ${frame.frameId}, ${frame.type}, ${digest}, ${(BigInt(row.latest_seq) + 1n).toString()})`.pipe(Effect.mapError(sqlFailure))
          const next = yield* appendLocked(toState(row), frame.type, frame.payload)
          return { runId, frameId: frame.frameId, seq: next.latestSeq, idempotentReplay: false }
        })
      ).pipe(Effect.catchTag("JournalStorageError", storageFailure2))
    })

  const storageFailure2 = (e: { message: string }) => Effect.fail(storageFailure(e))

  const cancel: RunsService["cancel"] = (principal, runId, input) =>
    publisher.transaction(
      Effect.gen(function*() {
        const row = yield* loadRow(runId, true)
        if (row === undefined) return yield* Effect.fail(Errors.notFound(`run ${runId} not found`))
        if (row.owner_user_id !== principal.userId) return yield* Effect.fail(Errors.forbidden(`run ${runId} belongs to another principal`))
        if (row.thread_id !== input.threadId) return yield* Effect.fail(Errors.conflict(`run ${runId} belongs to thread ${row.thread_id}`))
        const state = toState(row)
        if (state.status === "canceling" || state.status === "succeeded" || state.status === "failed" || state.status === "canceled") {
          return { runId, seq: state.latestSeq, idempotentReplay: true }
        }
        const next = yield* appendLocked(state, "run.cancel_requested", input.reason === undefined ? {} : { reason: input.reason })
        return { runId, seq: next.latestSeq, idempotentReplay: false }
      })
    ).pipe(Effect.catchTag("JournalStorageError", storageFailure2))

  const allEvents = (runId: string) =>
    sql<EventRow>`SELECT * FROM runtime.run_events WHERE run_id = ${runId} ORDER BY seq`.pipe(Effect.map((rows) => rows.map(toEvent)), Effect.mapError(sqlFailure))

  const refold = (row: RunRow, events: ReadonlyArray<RunEvent>) =>
    events.reduce(
      (s, e) => Projection.foldRun(s, { seq: e.seq, eventType: e.eventType, payload: e.payload, eventHash: e.eventHash, at: e.at }),
      Projection.initialRun(row.run_id, row.thread_id, row.owner_user_id)
    )

  const storedSummaryHash = (state: Projection.RunState) =>
    readModels.get(Projection.runTopic(state.ownerUserId), Projection.runDocKey(state.runId)).pipe(
      Effect.map((doc) => (doc === undefined ? undefined : Checkpoints.summaryHash(JSON.parse(doc.payload)))),
      Effect.mapError(storageFailure)
    )

  const reproject: RunsService["reproject"] = (runId) =>
    publisher.transaction(
      Effect.gen(function*() {
        const row = yield* loadRow(runId, true)
        if (row === undefined) return yield* Effect.fail(Errors.notFound(`run ${runId} not found`))
        const state = refold(row, yield* allEvents(runId))
        const current = yield* storedSummaryHash(state)
        const wanted = Checkpoints.summaryHash(Projection.runSummary(state))
        if (current === wanted && state.latestSeq === BigInt(row.latest_seq) && state.status === row.status) return { changed: false }
        yield* writeState(state)
        yield* project(state)
        return { changed: true }
      })
    ).pipe(Effect.catchTag("JournalStorageError", storageFailure2))

  return {
    ingestFrame,
    cancel,
    snapshot: (principal, runId) => Effect.map(owned(principal, runId), (row) => ({ ...toState(row), updatedAt: row.updated_at })),
    events: (principal, runId, afterSeq, limit) =>
      Effect.zipRight(
        owned(principal, runId),
        sql<EventRow>`SELECT * FROM runtime.run_events WHERE run_id = ${runId} AND seq > ${afterSeq.toString()} ORDER BY seq LIMIT ${Math.max(1, Math.min(limit, 1000))}`.pipe(
          Effect.map((rows) => rows.map(toEvent)),
          Effect.mapError(sqlFailure)
        )
      ),
    eventBounds: (principal, runId) =>
      Effect.gen(function*() {
        const row = yield* owned(principal, runId)
        const [min] = yield* sql<{ first: string | null }>`SELECT min(seq) AS first FROM runtime.run_events WHERE run_id = ${runId}`.pipe(Effect.mapError(sqlFailure))
        return { latest: BigInt(row.latest_seq), first: min?.first == null ? undefined : BigInt(min.first), threadId: row.thread_id }
      }),
    receipt: (principal, runId) =>
      Effect.gen(function*() {
        const row = yield* owned(principal, runId)
        const state = toState(row)
        return {
          runId,
          eventCount: state.latestSeq,
          lastSeq: state.latestSeq,
          chainHead: state.latestEventHash,
          projectionVersion: Projection.PROJECTION_VERSION,
          summaryHash: Checkpoints.summaryHash(Projection.runSummary(state))
        }
      }),
    verify: (runId) =>
      Effect.gen(function*() {
        const row = yield* loadRow(runId, false)
        if (row === undefined) return yield* Effect.fail(Errors.notFound(`run ${runId} not found`))
        const events = yield* allEvents(runId)
        const chain = HashChain.verify(runId, events)
        const state = refold(row, events)
        const recomputed = Checkpoints.summaryHash(Projection.runSummary(state))
        const stored = yield* storedSummaryHash(toState(row))
        const summaryMatches = stored === recomputed
        return { runId, chain, summaryMatches, storedSummaryHash: stored, recomputedSummaryHash: recomputed, drift: !summaryMatches || chain.problems.length > 0 || chain.head !== row.latest_event_hash }
      }),
    reproject,
    reprojectAll: Effect.gen(function*() {
      const ids = yield* sql<{ run_id: string }>`SELECT run_id FROM runtime.runs ORDER BY run_id`.pipe(Effect.mapError(sqlFailure))
      let changed = 0
      for (const { run_id } of ids) if ((yield* reproject(run_id)).changed) changed++
      return { runs: ids.length, changed }
    }),
    ownerOf: (runId) => Effect.map(loadRow(runId, false), (row) => row?.owner_user_id)
  }
})

export const layer = Layer.effect(Runs, make)
