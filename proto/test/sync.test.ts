import { create, equals, fromBinary, fromJson, fromJsonString, toBinary, toJson, toJsonString } from "@bufbuild/protobuf"
import {
  AuthFailureReason,
  SyncErrorSchema,
  FrameKind,
  HelloSchema,
  KhalaFrameSchema,
  QosTier,
  SlowConsumerAction,
  SnapshotResponseSchema,
  StaleReason,
  SubscribeSchema,
  SyncCloseCode,
  SyncErrorCode,
  UpdateBatchSchema,
  WelcomeSchema
} from "@openagents/proto/sync/v1"
import { describe, expect, it } from "vitest"

const MAX_U64 = 18446744073709551615n
const BEYOND_2_53 = 9007199254740993n // 2^53 + 1: not representable as a JS number

const batch = create(UpdateBatchSchema, {
  updates: [
    {
      topic: "runtime.run_summaries:user:42",
      docKey: "runtime/run_summary:run_1",
      docVersion: BEYOND_2_53,
      payload: new TextEncoder().encode(`{"status":"running"}`),
      watermark: MAX_U64,
      payloadHash: new Uint8Array(32).fill(7),
      hydrationRequired: false
    },
    { topic: "runtime.run_summaries:user:42", docKey: "runtime/run_summary:run_2", docVersion: 1n, watermark: MAX_U64 - 1n, hydrationRequired: true }
  ],
  replayComplete: true,
  headWatermarks: [{ topic: "runtime.run_summaries:user:42", watermark: MAX_U64, epoch: "ep_01" }]
})

describe("openagents.sync.v1 envelope", () => {
  it("round-trips an update batch inside a KhalaFrame through binary, keeping uint64 watermarks beyond 2^53", () => {
    const frame = create(KhalaFrameSchema, {
      schemaVersion: 1,
      topic: "runtime.run_summaries:user:42",
      seq: MAX_U64,
      kind: FrameKind.UPDATE_BATCH,
      payload: toBinary(UpdateBatchSchema, batch)
    })
    const wire = toBinary(KhalaFrameSchema, frame)
    const back = fromBinary(KhalaFrameSchema, wire)
    expect(equals(KhalaFrameSchema, frame, back)).toBe(true)
    expect(back.seq).toBe(MAX_U64)
    expect(back.kind).toBe(FrameKind.UPDATE_BATCH)
    const inner = fromBinary(UpdateBatchSchema, back.payload)
    expect(equals(UpdateBatchSchema, batch, inner)).toBe(true)
    expect(inner.updates[0]!.docVersion).toBe(BEYOND_2_53)
    expect(inner.updates[0]!.watermark).toBe(MAX_U64)
    expect(new TextDecoder().decode(inner.updates[0]!.payload)).toBe(`{"status":"running"}`)
  })

  it("round-trips through the proto3 JSON mapping with 64-bit values as decimal strings", () => {
    // json_types=true: toJson returns the typed JSON shape of the message.
    const json = toJson(UpdateBatchSchema, batch)
    expect(json.updates![0]!.watermark).toBe("18446744073709551615")
    expect(json.updates![0]!.docVersion).toBe("9007199254740993")
    expect(json.updates![0]!.docKey).toBe("runtime/run_summary:run_1")
    expect(json.updates![1]!.hydrationRequired).toBe(true)
    expect(json.replayComplete).toBe(true)
    const back = fromJson(UpdateBatchSchema, json)
    expect(equals(UpdateBatchSchema, batch, back)).toBe(true)
    const viaString = fromJsonString(UpdateBatchSchema, toJsonString(UpdateBatchSchema, batch))
    expect(viaString.updates[0]!.watermark).toBe(MAX_U64)
  })

  it("keeps the upstream numbers of the frame kinds", () => {
    expect(FrameKind.SUBSCRIBED).toBe(1)
    expect(FrameKind.UPDATE_BATCH).toBe(2)
    expect(FrameKind.HEARTBEAT).toBe(3)
    expect(FrameKind.ERROR).toBe(4)
    expect(toJson(KhalaFrameSchema, create(KhalaFrameSchema, { kind: FrameKind.HELLO }))).toEqual({ kind: "FRAME_KIND_HELLO" })
  })

  it("decodes an empty envelope to defaults and rejects truncated bytes", () => {
    const empty = fromBinary(KhalaFrameSchema, new Uint8Array())
    expect(empty.kind).toBe(FrameKind.UNSPECIFIED)
    expect(empty.seq).toBe(0n)
    const wire = toBinary(KhalaFrameSchema, create(KhalaFrameSchema, { topic: "runtime.run_summaries:user:1", kind: FrameKind.SUBSCRIBE, payload: new Uint8Array(40) }))
    expect(() => fromBinary(KhalaFrameSchema, wire.subarray(0, wire.length - 3))).toThrow()
  })
})

describe("openagents.sync.v1 connection frames", () => {
  it("round-trips hello, welcome and subscribe with resume cursors", () => {
    const hello = create(HelloSchema, {
      token: "eyJhbGciOiJIUzI1NiJ9.e30.sig",
      clientBuildId: "20261124T120000Z",
      protocolVersion: "khala.ws.v1",
      minSchemaVersion: 1,
      maxSchemaVersion: 1,
      deviceId: "device_1"
    })
    expect(equals(HelloSchema, hello, fromBinary(HelloSchema, toBinary(HelloSchema, hello)))).toBe(true)

    const welcome = create(WelcomeSchema, {
      connectionId: "conn_1",
      grantedScopes: ["runtime.run_summaries"],
      grantedTopics: ["runtime.run_summaries:user:42"],
      limits: { maxBatchUpdates: 200, maxBatchBytes: 2 * 1024 * 1024, maxUpdatePayloadBytes: 256 * 1024 },
      heartbeatIntervalMs: 15_000,
      idleTimeoutMs: 60_000,
      journalEpoch: "ep_01",
      tokenExpiresAtMs: 1_790_000_000_000n
    })
    const welcomeBack = fromJson(WelcomeSchema, toJson(WelcomeSchema, welcome))
    expect(equals(WelcomeSchema, welcome, welcomeBack)).toBe(true)
    expect(welcomeBack.limits?.maxBatchBytes).toBe(2_097_152)

    const subscribe = create(SubscribeSchema, {
      topics: ["runtime.run_summaries:user:42", "runtime.codex_worker_events:worker:w1"],
      resumeAfter: [{ topic: "runtime.run_summaries:user:42", watermark: BEYOND_2_53, epoch: "ep_01" }],
      requestId: "r1",
      replayBatchSize: 5000
    })
    const subscribeJson = toJson(SubscribeSchema, subscribe)
    expect(subscribeJson.resumeAfter![0]!.watermark).toBe("9007199254740993")
    expect(equals(SubscribeSchema, subscribe, fromBinary(SubscribeSchema, toBinary(SubscribeSchema, subscribe)))).toBe(true)
  })

  it("carries stale-cursor details with reason codes, lag, budget and a snapshot plan", () => {
    const error = create(SyncErrorSchema, {
      code: SyncErrorCode.STALE_CURSOR,
      message: "cursor is older than retention floor",
      fullResyncRequired: true,
      details: {
        case: "staleCursor",
        value: {
          staleTopics: [
            {
              topic: "runtime.run_summaries:user:42",
              reasons: [StaleReason.RETENTION_FLOOR_BREACH],
              qosTier: QosTier.WARM,
              resumeAfter: 0n,
              retentionFloor: 1n,
              headWatermark: 2n,
              replayLag: 2n,
              replayBudgetEvents: 20_000n
            }
          ],
          reasonCodes: [StaleReason.RETENTION_FLOOR_BREACH],
          snapshotPlan: {
            format: "openagents.sync.snapshot.v1",
            topics: [{ topic: "runtime.run_summaries:user:42", headWatermark: 2n, snapshot: { topic: "runtime.run_summaries:user:42", format: "openagents.sync.snapshot.v1", schemaVersion: 1, path: "/sync/v1/snapshot/runtime.run_summaries%3Auser%3A42" } }]
          }
        }
      }
    })
    const back = fromBinary(SyncErrorSchema, toBinary(SyncErrorSchema, error))
    expect(equals(SyncErrorSchema, error, back)).toBe(true)
    expect(back.details.case).toBe("staleCursor")
    if (back.details.case === "staleCursor") {
      expect(back.details.value.staleTopics[0]!.retentionFloor).toBe(1n)
    }
    const json = toJson(SyncErrorSchema, error)
    expect(json.code).toBe("SYNC_ERROR_CODE_STALE_CURSOR")
    expect(json.staleCursor!.staleTopics![0]!.reasons).toEqual(["STALE_REASON_RETENTION_FLOOR_BREACH"])
    expect(equals(SyncErrorSchema, error, fromJson(SyncErrorSchema, json))).toBe(true)
  })

  it("carries slow-consumer and unauthorized details", () => {
    const slow = create(SyncErrorSchema, {
      code: SyncErrorCode.SLOW_CONSUMER,
      retryAfterMs: 2000,
      details: { case: "slowConsumer", value: { action: SlowConsumerAction.DISCONNECT, topic: "runtime.run_summaries:user:1", reconnectAfterMs: 2000, strikes: 3, maxStrikes: 3 } }
    })
    expect(equals(SyncErrorSchema, slow, fromBinary(SyncErrorSchema, toBinary(SyncErrorSchema, slow)))).toBe(true)
    const unauthorized = create(SyncErrorSchema, {
      code: SyncErrorCode.UNAUTHORIZED,
      details: { case: "unauthorized", value: { reason: AuthFailureReason.UNKNOWN_KID } }
    })
    const json = toJson(SyncErrorSchema, unauthorized)
    expect(json.unauthorized!.reason).toBe("AUTH_FAILURE_REASON_UNKNOWN_KID")
  })

  it("splits close codes into reconnectable (4000-4499) and terminal (4500-4999) ranges", () => {
    const reconnectable = [SyncCloseCode.IDLE_TIMEOUT, SyncCloseCode.SLOW_CONSUMER, SyncCloseCode.TOKEN_EXPIRED, SyncCloseCode.HELLO_TIMEOUT, SyncCloseCode.RATE_LIMITED, SyncCloseCode.SERVER_RESTART]
    const terminal = [SyncCloseCode.UNAUTHORIZED, SyncCloseCode.REAUTH_REQUIRED, SyncCloseCode.UPGRADE_REQUIRED, SyncCloseCode.BAD_FRAME]
    for (const code of reconnectable) expect(code >= 4000 && code < 4500).toBe(true)
    for (const code of terminal) expect(code >= 4500 && code < 5000).toBe(true)
  })

  it("round-trips a snapshot response", () => {
    const snapshot = create(SnapshotResponseSchema, {
      format: "openagents.sync.snapshot.v1",
      topic: "runtime.run_summaries:user:42",
      epoch: "ep_01",
      watermark: MAX_U64,
      documents: [{ docKey: "runtime/run_summary:run_1", docVersion: 3n, payload: new TextEncoder().encode("{}"), payloadHash: new Uint8Array(32) }],
      schemaVersion: 1
    })
    expect(equals(SnapshotResponseSchema, snapshot, fromJson(SnapshotResponseSchema, toJson(SnapshotResponseSchema, snapshot)))).toBe(true)
    expect(fromBinary(SnapshotResponseSchema, toBinary(SnapshotResponseSchema, snapshot)).watermark).toBe(MAX_U64)
  })
})
