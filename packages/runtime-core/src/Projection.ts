// How authority events fold into their summaries — pure, and the same function for incremental
// projection (fold the new event into the state stored on the run/worker row) and for
// reprojection from the event log (fold every event from the initial state). Summaries are
// deterministic functions of the events (no projection timestamp in them), so reprojecting an
// unchanged log reproduces byte-identical documents and parity hashes compare exactly.
export const PROJECTION_VERSION = "khala_summary_v1"
export const RUN_SUMMARIES = "runtime.run_summaries"
export const WORKER_SUMMARIES = "runtime.codex_worker_summaries"
export const WORKER_EVENTS = "runtime.codex_worker_events"

export const runTopic = (owner: string) => `${RUN_SUMMARIES}:user:${owner}`
export const workerTopic = (owner: string) => `${WORKER_SUMMARIES}:user:${owner}`
export const workerEventsTopic = (workerId: string) => `${WORKER_EVENTS}:worker:${workerId}`
export const runDocKey = (runId: string) => `runtime/run_summary:${runId}`
export const workerDocKey = (workerId: string) => `runtime/codex_worker_summary:${workerId}`
export const workerEventDocKey = (workerId: string, seq: bigint) => `runtime/codex_worker_event:${workerId}:${seq}`

export type RunStatus = "created" | "running" | "canceling" | "succeeded" | "failed" | "canceled"

export interface RunState {
  readonly runId: string
  readonly threadId: string
  readonly ownerUserId: string
  readonly status: RunStatus
  readonly latestSeq: bigint
  readonly latestEventHash: string | null
  readonly latestEventType: string | null
  readonly latestEventAt: Date | null
  readonly terminalReasonClass: string | null
  readonly terminalReason: string | null
  readonly terminalAt: Date | null
}

export interface RunEventInput {
  readonly seq: bigint
  readonly eventType: string
  readonly payload: unknown
  readonly eventHash: string
  readonly at: Date
}

const TERMINAL = new Set<RunStatus>(["succeeded", "failed", "canceled"])
const asRecord = (p: unknown): Record<string, unknown> => (typeof p === "object" && p !== null && !Array.isArray(p) ? (p as Record<string, unknown>) : {})

export const initialRun = (runId: string, threadId: string, ownerUserId: string): RunState => ({
  runId, threadId, ownerUserId, status: "created", latestSeq: 0n, latestEventHash: null, latestEventType: null,
  latestEventAt: null, terminalReasonClass: null, terminalReason: null, terminalAt: null
})

/** The event that ends a run (its stream then ends with `data: [DONE]`). */
export const isTerminalRunEvent = (eventType: string) => eventType === "run.finished"

/** Fold one event into a run's state. */
export const foldRun = (state: RunState, event: RunEventInput): RunState => {
  const base = { ...state, latestSeq: event.seq, latestEventHash: event.eventHash, latestEventType: event.eventType, latestEventAt: event.at }
  if (TERMINAL.has(state.status)) return base
  switch (event.eventType) {
    case "run.started":
      return { ...base, status: "running" }
    case "run.cancel_requested":
      return { ...base, status: "canceling" }
    case "run.finished": {
      const p = asRecord(event.payload)
      const status: RunStatus = p["status"] === "failed" ? "failed" : p["status"] === "canceled" ? "canceled" : "succeeded"
      return {
        ...base,
        status,
        terminalReasonClass: typeof p["reason_class"] === "string" ? p["reason_class"] : null,
        terminalReason: typeof p["reason"] === "string" ? p["reason"] : null,
        terminalAt: event.at
      }
    }
    default:
      return state.status === "created" ? { ...base, status: "running" } : base
  }
}

const iso = (d: Date | null) => (d === null ? null : d.toISOString())

/** The run summary document (UPSTREAM_SPEC §2.2 fields; no projected_at: deterministic). */
export const runSummary = (s: RunState) => ({
  document_id: runDocKey(s.runId),
  kind: "run_summary",
  run_id: s.runId,
  thread_id: s.threadId,
  status: s.status,
  owner_user_id: s.ownerUserId,
  latest_seq: Number(s.latestSeq),
  event_count: Number(s.latestSeq),
  latest_event_type: s.latestEventType,
  latest_event_at: iso(s.latestEventAt),
  terminal_reason_class: s.terminalReasonClass,
  terminal_reason: s.terminalReason,
  terminal_at: iso(s.terminalAt),
  chain_head: s.latestEventHash,
  runtime_source: { entity: "run", run_id: s.runId, seq: Number(s.latestSeq) },
  projection_version: PROJECTION_VERSION
})

export type WorkerStatus = "running" | "stopped" | "failed"

export interface WorkerState {
  readonly workerId: string
  readonly ownerUserId: string
  readonly workspaceRef: string | null
  readonly codexHomeRef: string | null
  readonly adapter: string
  readonly metadata: unknown
  readonly status: WorkerStatus
  readonly latestSeq: bigint
  readonly latestEventType: string | null
  readonly latestEventAt: Date | null
  readonly startedAt: Date
  readonly stoppedAt: Date | null
  readonly lastHeartbeatAt: Date | null
}

export interface WorkerEventInput {
  readonly seq: bigint
  readonly eventType: string
  readonly payload: unknown
  readonly at: Date
}

/** Fold one worker event into the worker's state. */
export const foldWorker = (state: WorkerState, event: WorkerEventInput): WorkerState => {
  const base = { ...state, latestSeq: event.seq, latestEventType: event.eventType, latestEventAt: event.at }
  switch (event.eventType) {
    case "worker.started":
      return { ...base, status: "running", startedAt: event.at, stoppedAt: null }
    case "worker.heartbeat":
      return { ...base, lastHeartbeatAt: event.at }
    case "worker.stopped":
      return { ...base, status: "stopped", stoppedAt: event.at }
    case "worker.error":
      return asRecord(event.payload)["fatal"] === true ? { ...base, status: "failed", stoppedAt: event.at } : base
    default:
      return base
  }
}

export const workerSummary = (s: WorkerState) => ({
  document_id: workerDocKey(s.workerId),
  kind: "codex_worker_summary",
  worker_id: s.workerId,
  status: s.status,
  owner_user_id: s.ownerUserId,
  workspace_ref: s.workspaceRef,
  codex_home_ref: s.codexHomeRef,
  adapter: s.adapter,
  metadata: s.metadata,
  latest_seq: Number(s.latestSeq),
  event_count: Number(s.latestSeq),
  latest_event_type: s.latestEventType,
  latest_event_at: iso(s.latestEventAt),
  started_at: iso(s.startedAt),
  stopped_at: iso(s.stoppedAt),
  last_heartbeat_at: iso(s.lastHeartbeatAt),
  runtime_source: { entity: "codex_worker", worker_id: s.workerId, seq: Number(s.latestSeq) },
  projection_version: PROJECTION_VERSION
})

export type HeartbeatState = "fresh" | "stale" | "missing" | "stopped" | "failed"
export const HEARTBEAT_STALE_AFTER_MS = 120_000

export const heartbeatState = (s: Pick<WorkerState, "status" | "lastHeartbeatAt">, now: number, staleAfterMs = HEARTBEAT_STALE_AFTER_MS): HeartbeatState =>
  s.status === "stopped" ? "stopped"
    : s.status === "failed" ? "failed"
    : s.lastHeartbeatAt === null ? "missing"
    : now - s.lastHeartbeatAt.getTime() > staleAfterMs ? "stale"
    : "fresh"
