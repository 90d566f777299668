import { create, equals, fromBinary, fromJson, fromJsonString, toBinary, toJson, toJsonString } from "@bufbuild/protobuf"
import { timestampDate, timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt"
import {
  CodexWorkerEventSchema,
  CodexWorkerListItemSchema,
  CodexWorkerStatus,
  CodexWorkerSummarySchema,
  ErrorEnvelopeSchema,
  HeartbeatState,
  ProjectionSyncStatus,
  ReplayReceiptSchema,
  RunEventSchema,
  RunFrameSchema,
  RunSnapshotSchema,
  RunStatus,
  RunSummarySchema,
  RuntimeErrorCode
} from "@openagents/proto/runtime/v1"
import { describe, expect, it } from "vitest"

const MAX_U64 = 18446744073709551615n
const BEYOND_2_53 = 9007199254740993n // 2^53 + 1: not representable as a JS number
const EMITTED = new Date("2026-02-19T23:47:01.250Z")

const toolCall = create(RunEventSchema, {
  runId: "run_1",
  seq: BEYOND_2_53,
  eventType: "run.tool_call",
  emittedAt: timestampFromDate(EMITTED),
  prevHash: "a".repeat(64),
  eventHash: "b".repeat(64),
  payload: {
    case: "toolCall",
    value: {
      toolCallId: "call_1",
      toolName: "web.fetch",
      input: { url: "https://example.com", retries: 2, headers: { accept: "text/html" }, follow: true, body: null, tags: ["a", "b"] }
    }
  }
})

const finished = create(RunEventSchema, {
  runId: "run_1",
  seq: MAX_U64,
  eventType: "run.finished",
  emittedAt: timestampFromMs(1771544821250),
  prevHash: "b".repeat(64),
  eventHash: "c".repeat(64),
  payload: {
    case: "runFinished",
    value: { status: RunStatus.CANCELED, reasonClass: "cancel_requested", reason: "user pressed stop", frameId: "frame_9" }
  }
})

const workerError = create(CodexWorkerEventSchema, {
  workerId: "codexw_1",
  seq: MAX_U64,
  eventType: "worker.error",
  eventVersion: 1,
  emittedAt: timestampFromDate(EMITTED),
  projection: {
    runtimeSource: "codex_worker",
    runtimeWorkerId: "codexw_1",
    runtimeSeq: BEYOND_2_53,
    runtimeSeqEnd: MAX_U64,
    projectionVersion: 1,
    projectedAt: timestampFromMs(1771544822000)
  },
  payload: {
    case: "workerError",
    value: { requestId: "req_7", code: "rpc_failed", message: "thread not found", response: { error: { code: -32000, data: [1, 2.5] } } }
  }
})

const runSummary = create(RunSummarySchema, {
  documentId: "runtime/run_summary:run_1",
  kind: "run_summary",
  runId: "run_1",
  threadId: "thread_1",
  status: RunStatus.SUCCEEDED,
  ownerUserId: 42n,
  latestSeq: MAX_U64,
  eventCount: BEYOND_2_53,
  latestEventType: "run.finished",
  latestEventAt: timestampFromDate(EMITTED),
  terminalReasonClass: "completed",
  terminalReason: "completed",
  terminalAt: timestampFromDate(EMITTED),
  updatedAt: timestampFromDate(EMITTED),
  runtimeSource: { entity: "run", id: { case: "runId", value: "run_1" }, seq: MAX_U64 },
  projectionVersion: "khala_summary_v1",
  projectedAt: timestampFromMs(1771544822000)
})

const workerSummary = create(CodexWorkerSummarySchema, {
  documentId: "runtime/codex_worker_summary:codexw_1",
  kind: "codex_worker_summary",
  workerId: "codexw_1",
  status: CodexWorkerStatus.RUNNING,
  ownerGuestScope: "guest:abc",
  workspaceRef: "ws_1",
  codexHomeRef: "home_1",
  adapter: "in_memory",
  metadata: { source: "desktop", labels: { team: "core" } },
  latestSeq: 7n,
  eventCount: 7n,
  lastHeartbeatAt: timestampFromDate(EMITTED),
  runtimeSource: { entity: "codex_worker", id: { case: "workerId", value: "codexw_1" }, seq: 7n },
  projectionVersion: "khala_summary_v1"
})

describe("openagents.runtime.v1 run events", () => {
  it("round-trips hash-chained run events with oneof payloads through binary, keeping uint64 seq beyond 2^53", () => {
    for (const event of [toolCall, finished]) {
      const back = fromBinary(RunEventSchema, toBinary(RunEventSchema, event))
      expect(equals(RunEventSchema, event, back)).toBe(true)
    }
    const back = fromBinary(RunEventSchema, toBinary(RunEventSchema, toolCall))
    expect(back.seq).toBe(BEYOND_2_53)
    expect(back.prevHash).toBe("a".repeat(64))
    expect(back.eventHash).toBe("b".repeat(64))
    expect(timestampDate(back.emittedAt!).toISOString()).toBe("2026-02-19T23:47:01.250Z")
    expect(back.payload.case).toBe("toolCall")
    if (back.payload.case !== "toolCall") throw new Error("unreachable")
    expect(back.payload.value.input).toEqual({
      url: "https://example.com",
      retries: 2,
      headers: { accept: "text/html" },
      follow: true,
      body: null,
      tags: ["a", "b"]
    })
    const fin = fromBinary(RunEventSchema, toBinary(RunEventSchema, finished))
    expect(fin.seq).toBe(MAX_U64)
    expect(fin.payload.case === "runFinished" && fin.payload.value.status).toBe(RunStatus.CANCELED)
  })

  it("round-trips through proto3 JSON: lowerCamelCase names, uint64 as strings, Struct as plain JSON, RFC 3339 times", () => {
    const json = toJson(RunEventSchema, toolCall)
    expect(Object.keys(json)).toEqual(["runId", "seq", "eventType", "emittedAt", "prevHash", "eventHash", "toolCall"])
    expect(json.seq).toBe("9007199254740993")
    expect(json.emittedAt).toBe("2026-02-19T23:47:01.250Z")
    expect(json.toolCall!.toolCallId).toBe("call_1")
    expect(json.toolCall!.input).toEqual({
      url: "https://example.com",
      retries: 2,
      headers: { accept: "text/html" },
      follow: true,
      body: null,
      tags: ["a", "b"]
    })
    expect(equals(RunEventSchema, toolCall, fromJson(RunEventSchema, json))).toBe(true)

    const finJson = toJson(RunEventSchema, finished)
    expect(finJson.seq).toBe("18446744073709551615")
    expect(finJson.runFinished!.status).toBe("RUN_STATUS_CANCELED")
    expect(finJson.runFinished!.reasonClass).toBe("cancel_requested")
    const viaString = fromJsonString(RunEventSchema, toJsonString(RunEventSchema, finished))
    expect(equals(RunEventSchema, finished, viaString)).toBe(true)
    expect(viaString.seq).toBe(MAX_U64)
  })

  it("accepts the upstream snake_case frame ingest body", () => {
    const frame = fromJson(RunFrameSchema, { thread_id: "thread_1", frame_id: "frame_1", type: "text", payload: { text: "hi" } })
    expect(frame.threadId).toBe("thread_1")
    expect(frame.frameId).toBe("frame_1")
    expect(frame.payload).toEqual({ text: "hi" })
    expect(equals(RunFrameSchema, frame, fromBinary(RunFrameSchema, toBinary(RunFrameSchema, frame)))).toBe(true)
  })

  it("serializes the run snapshot with the upstream JSON field names", () => {
    const snapshot = create(RunSnapshotSchema, {
      runId: "run_1",
      threadId: "thread_1",
      status: RunStatus.RUNNING,
      latestSeq: 12n,
      updatedAt: timestampFromDate(EMITTED)
    })
    expect(toJson(RunSnapshotSchema, snapshot)).toEqual({
      runId: "run_1",
      threadId: "thread_1",
      status: "RUN_STATUS_RUNNING",
      latestSeq: "12",
      updatedAt: "2026-02-19T23:47:01.250Z"
    })
  })
})

describe("openagents.runtime.v1 Codex workers", () => {
  it("round-trips a worker event with its projection envelope through binary and JSON", () => {
    const back = fromBinary(CodexWorkerEventSchema, toBinary(CodexWorkerEventSchema, workerError))
    expect(equals(CodexWorkerEventSchema, workerError, back)).toBe(true)
    expect(back.projection!.runtimeSeqEnd).toBe(MAX_U64)
    expect(back.payload.case === "workerError" && back.payload.value.response).toEqual({ error: { code: -32000, data: [1, 2.5] } })

    const json = toJson(CodexWorkerEventSchema, workerError)
    expect(json.workerError!.requestId).toBe("req_7")
    expect(json.projection!.runtimeSeq).toBe("9007199254740993")
    expect(json.projection!.runtimeSeqEnd).toBe("18446744073709551615")
    expect(json.projection!.projectedAt).toBe("2026-02-19T23:47:02Z")
    expect(equals(CodexWorkerEventSchema, workerError, fromJson(CodexWorkerEventSchema, json))).toBe(true)
  })

  it("carries heartbeat state and projection lag in the worker list", () => {
    const item = create(CodexWorkerListItemSchema, {
      workerId: "codexw_1",
      status: CodexWorkerStatus.RUNNING,
      latestSeq: 9n,
      heartbeatState: HeartbeatState.STALE,
      heartbeatAgeMs: 130000n,
      heartbeatStaleAfterMs: 120000,
      workspaceRef: "ws_1",
      khalaProjection: { status: ProjectionSyncStatus.LAGGING, lagEvents: 2n, lastRuntimeSeq: 7n, lastProjectedAt: timestampFromDate(EMITTED) }
    })
    const back = fromBinary(CodexWorkerListItemSchema, toBinary(CodexWorkerListItemSchema, item))
    expect(equals(CodexWorkerListItemSchema, item, back)).toBe(true)
    expect(back.heartbeatAgeMs).toBe(130000n)
    const json = toJson(CodexWorkerListItemSchema, item)
    expect(json.heartbeatState).toBe("HEARTBEAT_STATE_STALE")
    expect(json.heartbeatStaleAfterMs).toBe(120000)
    expect(json.khalaProjection).toEqual({
      status: "PROJECTION_SYNC_STATUS_LAGGING",
      lagEvents: "2",
      lastRuntimeSeq: "7",
      lastProjectedAt: "2026-02-19T23:47:01.250Z"
    })
    expect(equals(CodexWorkerListItemSchema, item, fromJson(CodexWorkerListItemSchema, json))).toBe(true)
    // A worker that never sent a heartbeat has no age (explicit presence).
    const missing = create(CodexWorkerListItemSchema, { workerId: "codexw_2", heartbeatState: HeartbeatState.MISSING })
    expect(missing.heartbeatAgeMs).toBeUndefined()
    expect("heartbeatAgeMs" in toJson(CodexWorkerListItemSchema, missing)).toBe(false)
  })
})

describe("openagents.runtime.v1 summaries and receipts", () => {
  it("round-trips run and worker summaries, keeping the runtime_source oneof", () => {
    const run = fromBinary(RunSummarySchema, toBinary(RunSummarySchema, runSummary))
    expect(equals(RunSummarySchema, runSummary, run)).toBe(true)
    expect(run.runtimeSource!.id).toEqual({ case: "runId", value: "run_1" })
    expect(run.runtimeSource!.seq).toBe(MAX_U64)
    expect(run.eventCount).toBe(BEYOND_2_53)

    const json = toJson(RunSummarySchema, runSummary)
    expect(json.runtimeSource).toEqual({ entity: "run", runId: "run_1", seq: "18446744073709551615" })
    expect(json.projectionVersion).toBe("khala_summary_v1")
    expect(json.ownerUserId).toBe("42")
    expect(equals(RunSummarySchema, runSummary, fromJson(RunSummarySchema, json))).toBe(true)

    const worker = fromJsonString(CodexWorkerSummarySchema, toJsonString(CodexWorkerSummarySchema, workerSummary))
    expect(equals(CodexWorkerSummarySchema, workerSummary, worker)).toBe(true)
    expect(worker.runtimeSource!.id).toEqual({ case: "workerId", value: "codexw_1" })
    expect(worker.metadata).toEqual({ source: "desktop", labels: { team: "core" } })
    expect(equals(CodexWorkerSummarySchema, workerSummary, fromBinary(CodexWorkerSummarySchema, toBinary(CodexWorkerSummarySchema, workerSummary)))).toBe(true)
  })

  it("round-trips a replay receipt", () => {
    const receipt = create(ReplayReceiptSchema, {
      runId: "run_1",
      eventCount: MAX_U64,
      lastSeq: MAX_U64,
      chainHeadHash: "c".repeat(64),
      projectionVersion: "khala_summary_v1",
      summaryHash: "d".repeat(64)
    })
    const back = fromBinary(ReplayReceiptSchema, toBinary(ReplayReceiptSchema, receipt))
    expect(equals(ReplayReceiptSchema, receipt, back)).toBe(true)
    expect(back.lastSeq).toBe(MAX_U64)
    const json = toJson(ReplayReceiptSchema, receipt)
    expect(json).toEqual({
      runId: "run_1",
      eventCount: "18446744073709551615",
      lastSeq: "18446744073709551615",
      chainHeadHash: "c".repeat(64),
      projectionVersion: "khala_summary_v1",
      summaryHash: "d".repeat(64)
    })
    expect(equals(ReplayReceiptSchema, receipt, fromJson(ReplayReceiptSchema, json))).toBe(true)
  })
})

describe("openagents.runtime.v1 error envelope", () => {
  it("reads and writes the upstream {error: {code, message, details}} body unchanged", () => {
    const wire = {
      error: {
        code: "stale_cursor",
        message: "cursor is older than retention floor",
        details: { retention_floor: 41, recovery: "reset_local_watermark_and_replay_bootstrap" }
      }
    }
    const envelope = fromJson(ErrorEnvelopeSchema, wire)
    expect(envelope.error!.code).toBe("stale_cursor")
    expect(envelope.error!.details).toEqual({ retention_floor: 41, recovery: "reset_local_watermark_and_replay_bootstrap" })
    expect(toJson(ErrorEnvelopeSchema, envelope)).toEqual(wire)
    expect(equals(ErrorEnvelopeSchema, envelope, fromBinary(ErrorEnvelopeSchema, toBinary(ErrorEnvelopeSchema, envelope)))).toBe(true)
    // The code string is the snake_case name of the RuntimeErrorCode value.
    expect(RuntimeErrorCode[RuntimeErrorCode.STALE_CURSOR].toLowerCase()).toBe(envelope.error!.code)
  })
})
