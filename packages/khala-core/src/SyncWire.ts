// The Khala wire, one module: decoding client frames and encoding server frames of
// openagents.sync.v1, in the two subprotocols.
//
//   khala.v1+proto  binary WebSocket messages: one KhalaFrame per message, `payload` the binary
//                   encoding of the message named by `kind`. The default.
//   khala.v1+json   text messages for debugging: the proto3 JSON mapping of KhalaFrame, except
//                   that `payload` holds the proto3 JSON of the inner message (not base64).
//
// A frame is decoded in two steps: the envelope first (schema version and kind are checked before
// the payload is touched), then the payload. Anything that does not decode, has an unknown or a
// server-side kind, or an unsupported schema version is a FrameError — never an exception.
import { create, fromBinary, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf"
import type { DescMessage, MessageShape } from "@bufbuild/protobuf"
import {
  AuthFailureReason,
  FrameKind,
  HeartbeatSchema,
  HelloSchema,
  KhalaFrameSchema,
  QosTier,
  RefreshTokenSchema,
  RevocationReason,
  SlowConsumerAction,
  StaleReason,
  SubscribedSchema,
  SubscribeSchema,
  SyncCloseCode,
  SyncErrorCode,
  SyncErrorSchema,
  TokenRefreshedSchema,
  UnsubscribedSchema,
  UnsubscribeSchema,
  UpdateBatchSchema,
  UpgradeReason,
  WelcomeSchema
} from "@openagents/proto/sync/v1"
import type { Heartbeat, Hello, RefreshToken, Subscribe, SyncError, TopicCursor, Unsubscribe, Update, Welcome } from "@openagents/proto/sync/v1"
import type { StaleCursorError } from "./Errors.js"
import type * as Staleness from "./Staleness.js"
import type { JournalEvent } from "./Storage.js"
import type { AuthFailureReason as AuthReason, SyncTokenError } from "./SyncToken.js"

export const PROTOCOL_VERSION = "khala.ws.v1"
export const SCHEMA_VERSION = 1
export const SUBPROTOCOL_BINARY = "khala.v1+proto"
export const SUBPROTOCOL_JSON = "khala.v1+json"
export type Format = "binary" | "json"

/** Pick the subprotocol from the client's offer; binary unless only JSON is offered. */
export const negotiate = (offered: string | undefined): { format: Format; protocol: string } | undefined => {
  const list = (offered ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  if (list.length === 0 || list.includes(SUBPROTOCOL_BINARY)) return { format: "binary", protocol: list.length === 0 ? "" : SUBPROTOCOL_BINARY }
  if (list.includes(SUBPROTOCOL_JSON)) return { format: "json", protocol: SUBPROTOCOL_JSON }
  return undefined
}

export type ClientFrame =
  | { readonly kind: "hello"; readonly hello: Hello }
  | { readonly kind: "subscribe"; readonly subscribe: Subscribe }
  | { readonly kind: "unsubscribe"; readonly unsubscribe: Unsubscribe }
  | { readonly kind: "heartbeat"; readonly heartbeat: Heartbeat }
  | { readonly kind: "refresh_token"; readonly refresh: RefreshToken }

export class FrameError {
  readonly _tag = "FrameError"
  readonly code = "bad_frame"
  constructor(readonly reason: "malformed" | "unknown_kind" | "server_kind" | "unsupported_schema_version" | "empty", readonly detail: string) {}
}

const textDecoder = new TextDecoder("utf-8", { fatal: true })
const textEncoder = new TextEncoder()

const clientKinds = new Map<FrameKind, { schema: DescMessage; wrap: (m: any) => ClientFrame }>([
  [FrameKind.HELLO, { schema: HelloSchema, wrap: (hello) => ({ kind: "hello", hello }) }],
  [FrameKind.SUBSCRIBE, { schema: SubscribeSchema, wrap: (subscribe) => ({ kind: "subscribe", subscribe }) }],
  [FrameKind.UNSUBSCRIBE, { schema: UnsubscribeSchema, wrap: (unsubscribe) => ({ kind: "unsubscribe", unsubscribe }) }],
  [FrameKind.CLIENT_HEARTBEAT, { schema: HeartbeatSchema, wrap: (heartbeat) => ({ kind: "heartbeat", heartbeat }) }],
  [FrameKind.REFRESH_TOKEN, { schema: RefreshTokenSchema, wrap: (refresh) => ({ kind: "refresh_token", refresh }) }]
])

/** Decode one client message. `data` is the message bytes (text messages: their UTF-8). */
export const decodeClientFrame = (data: Uint8Array, format: Format): ClientFrame | FrameError => {
  if (data.length === 0) return new FrameError("empty", "empty message")
  try {
    let kind: FrameKind
    let schemaVersion: number
    let payload: Uint8Array | undefined
    let payloadJson: unknown
    if (format === "binary") {
      const envelope = fromBinary(KhalaFrameSchema, data)
      kind = envelope.kind
      schemaVersion = envelope.schemaVersion
      payload = envelope.payload
    } else {
      const parsed = JSON.parse(textDecoder.decode(data)) as unknown
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return new FrameError("malformed", "expected a JSON object")
      const { payload: inner, ...rest } = parsed as Record<string, unknown>
      const envelope = fromJson(KhalaFrameSchema, rest as JsonValue)
      kind = envelope.kind
      schemaVersion = envelope.schemaVersion
      payloadJson = inner ?? {}
    }
    if (schemaVersion !== SCHEMA_VERSION) return new FrameError("unsupported_schema_version", `schema_version ${schemaVersion} is not ${SCHEMA_VERSION}`)
    const entry = clientKinds.get(kind)
    if (entry === undefined) {
      return kind !== FrameKind.UNSPECIFIED && kind < 16
        ? new FrameError("server_kind", `frame kind ${FrameKind[kind] ?? kind} is sent by servers, not clients`)
        : new FrameError("unknown_kind", `unknown frame kind ${kind}`)
    }
    const message = payload !== undefined ? fromBinary(entry.schema, payload) : fromJson(entry.schema, payloadJson as JsonValue)
    return entry.wrap(message)
  } catch (error) {
    return new FrameError("malformed", error instanceof Error ? error.message : String(error))
  }
}

/** An encoded frame, ready to send: bytes for the binary subprotocol, a string for JSON. */
export type Encoded = Uint8Array | string

const encodeFrame = <Desc extends DescMessage>(
  format: Format,
  kind: FrameKind,
  schema: Desc,
  message: MessageShape<Desc>,
  topic = "",
  seq = 0n
): Encoded => {
  if (format === "binary") {
    return toBinary(KhalaFrameSchema, create(KhalaFrameSchema, { schemaVersion: SCHEMA_VERSION, topic, seq, kind, payload: toBinary(schema, message) }))
  }
  return JSON.stringify({
    ...(toJson(KhalaFrameSchema, create(KhalaFrameSchema, { schemaVersion: SCHEMA_VERSION, topic, seq, kind })) as object),
    payload: toJson(schema, message)
  })
}

/** Encode a server frame in one format. */
export const welcome = (format: Format, message: Welcome) => encodeFrame(format, FrameKind.WELCOME, WelcomeSchema, message)

export const subscribed = (format: Format, init: Parameters<typeof create<typeof SubscribedSchema>>[1]) =>
  encodeFrame(format, FrameKind.SUBSCRIBED, SubscribedSchema, create(SubscribedSchema, init))

export const unsubscribed = (format: Format, topics: ReadonlyArray<string>, requestId: string) =>
  encodeFrame(format, FrameKind.UNSUBSCRIBED, UnsubscribedSchema, create(UnsubscribedSchema, { topics: [...topics], requestId }))

export const heartbeat = (format: Format, watermarks: ReadonlyArray<TopicCursor>, sentAtMs: number) =>
  encodeFrame(format, FrameKind.HEARTBEAT, HeartbeatSchema, create(HeartbeatSchema, { watermarks: [...watermarks], sentAtMs: BigInt(sentAtMs) }))

export const tokenRefreshed = (format: Format, expiresAtMs: number, requestId: string) =>
  encodeFrame(format, FrameKind.TOKEN_REFRESHED, TokenRefreshedSchema, create(TokenRefreshedSchema, { tokenExpiresAtMs: BigInt(expiresAtMs), requestId }))

export const error = (format: Format, message: SyncError, topic = "") => encodeFrame(format, FrameKind.ERROR, SyncErrorSchema, message, topic)

/** The UTF-8 of an event's payload: the adapter's copy when it kept one (the built-in ones do). */
const payloadUtf8 = (e: JournalEvent): Uint8Array =>
  e.payload === null ? EMPTY : (e.payloadUtf8 ?? textEncoder.encode(e.payload))
const EMPTY = new Uint8Array(0)

/** Journal events as wire updates (payload bytes are the stored canonical JSON). */
export const toUpdates = (events: ReadonlyArray<JournalEvent>): Array<Update> =>
  events.map((e) => ({
    $typeName: "openagents.sync.v1.Update",
    topic: e.topic,
    docKey: e.docKey,
    docVersion: e.docVersion,
    payload: payloadUtf8(e),
    watermark: e.watermark,
    payloadHash: e.payloadHash ?? EMPTY,
    hydrationRequired: e.payload === null
  }))

/**
 * One update batch for `topic`, encoded once and sent to every subscriber that needs exactly it.
 * The envelope's `seq` is the batch's highest watermark, so a client drops a duplicate batch
 * without decoding it.
 */
export const updateBatch = (
  format: Format,
  topic: string,
  events: ReadonlyArray<JournalEvent>,
  replayComplete: boolean,
  head: bigint,
  epoch: string
): Encoded => {
  if (format === "binary") return encodeUpdateBatchFrame(topic, events, replayComplete, head, epoch)
  const last = events[events.length - 1]
  return encodeFrame(
    format,
    FrameKind.UPDATE_BATCH,
    UpdateBatchSchema,
    create(UpdateBatchSchema, { updates: toUpdates(events), replayComplete, headWatermarks: [{ topic, watermark: head, epoch }] }),
    topic,
    last?.watermark ?? 0n
  )
}

// ---------------------------------------------------------------------------------------------
// The update batch frame, encoded by hand.
//
// It is the one frame on the hot path (every live fanout and every catch-up batch), and
// protobuf-es's reflective toBinary costs ~10 µs per one-update frame: it builds the message
// objects, encodes the UpdateBatch, then copies it into the KhalaFrame envelope. Here the sizes
// are computed first and every byte is written once into one buffer; the payload is copied
// once, from the journal's UTF-8. The output is byte-identical to
// `toBinary(KhalaFrame{payload: toBinary(UpdateBatch)})` — fields in number order, proto3
// defaults (0, "", false, empty bytes) omitted — which test/SyncWire.test.ts checks by property.
//
//   KhalaFrame   1 schema_version varint, 2 topic bytes, 3 seq varint, 4 kind varint, 5 payload bytes
//   UpdateBatch  1 updates (Update, repeated), 2 replay_complete bool, 3 head_watermarks (TopicCursor)
//   Update       1 topic, 2 doc_key, 3 doc_version, 4 payload, 5 watermark, 6 payload_hash, 7 hydration_required
//   TopicCursor  1 topic, 2 watermark, 3 epoch

const TWO_32 = 0x1_0000_0000n

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : n < 0x1000_0000 ? 4 : 5)
const varint64Size = (v: bigint): number => {
  if (v < TWO_32) return varintSize(Number(v))
  let n = 0
  while (v > 0n) {
    n++
    v >>= 7n
  }
  return n
}
/** Bytes of a length-delimited field with a one-byte tag: tag + length + data. */
const fieldSize = (length: number): number => 1 + varintSize(length) + length

/** ASCII strings (topics, keys, epochs in practice) are written from their char codes; others through TextEncoder. */
const isAscii = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false
  return true
}
/** A string's UTF-8 for writing: itself when ASCII (then its length is its byte length). */
const utf8 = (s: string): string | Uint8Array => (isAscii(s) ? s : textEncoder.encode(s))

// The frame being written, and its write position: module state, so that encoding allocates
// nothing but the frame itself (encoding is synchronous, never re-entered).
let buf = EMPTY
let pos = 0
const writeVarint = (n: number) => {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80
    n >>>= 7
  }
  buf[pos++] = n
}
const writeVarint64 = (v: bigint) => {
  if (v < TWO_32) return writeVarint(Number(v))
  while (v >= 0x80n) {
    buf[pos++] = Number(v & 0x7fn) | 0x80
    v >>= 7n
  }
  buf[pos++] = Number(v)
}
const writeBytes = (tag: number, b: string | Uint8Array) => {
  buf[pos++] = tag
  writeVarint(b.length)
  if (typeof b === "string") {
    for (let i = 0; i < b.length; i++) buf[pos++] = b.charCodeAt(i)
  } else {
    buf.set(b, pos)
    pos += b.length
  }
}

// Per-update sizes of the batch being encoded, reused between calls.
const updateSizes: Array<number> = []

/** Lengths and enum values are written with `>>>`, so they must stay below 2^32 (frames are far smaller). */
const encodeUpdateBatchFrame = (
  topic: string,
  events: ReadonlyArray<JournalEvent>,
  replayComplete: boolean,
  head: bigint,
  epoch: string
): Uint8Array => {
  const topicBytes = utf8(topic)
  const epochBytes = utf8(epoch)
  // Sizes, innermost first. Strings are converted again when written: ASCII ones cost nothing.
  const n = events.length
  let batchSize = 0
  for (let i = 0; i < n; i++) {
    const e = events[i]!
    let size = 0
    const t = e.topic === topic ? topicBytes : utf8(e.topic)
    if (t.length > 0) size += fieldSize(t.length)
    const k = utf8(e.docKey)
    if (k.length > 0) size += fieldSize(k.length)
    if (e.docVersion !== 0n) size += 1 + varint64Size(e.docVersion)
    const p = payloadUtf8(e)
    if (p.length > 0) size += fieldSize(p.length)
    if (e.watermark !== 0n) size += 1 + varint64Size(e.watermark)
    const h = e.payloadHash
    if (h !== null && h.length > 0) size += fieldSize(h.length)
    if (e.payload === null) size += 2
    updateSizes[i] = size
    batchSize += fieldSize(size)
  }
  let cursorSize = 0
  if (topicBytes.length > 0) cursorSize += fieldSize(topicBytes.length)
  if (head !== 0n) cursorSize += 1 + varint64Size(head)
  if (epochBytes.length > 0) cursorSize += fieldSize(epochBytes.length)
  if (replayComplete) batchSize += 2
  batchSize += fieldSize(cursorSize)
  const seq = n > 0 ? events[n - 1]!.watermark : 0n
  let frameSize = 2 + 2 + fieldSize(batchSize) // schema_version and kind: one byte each
  if (topicBytes.length > 0) frameSize += fieldSize(topicBytes.length)
  if (seq !== 0n) frameSize += 1 + varint64Size(seq)

  // allocUnsafe takes small frames from Node's shared pool, much cheaper than a new ArrayBuffer;
  // every byte is written below.
  buf = Buffer.allocUnsafe(frameSize)
  pos = 0
  buf[pos++] = 0x08
  writeVarint(SCHEMA_VERSION)
  if (topicBytes.length > 0) writeBytes(0x12, topicBytes)
  if (seq !== 0n) {
    buf[pos++] = 0x18
    writeVarint64(seq)
  }
  buf[pos++] = 0x20
  writeVarint(FrameKind.UPDATE_BATCH)
  buf[pos++] = 0x2a
  writeVarint(batchSize)
  for (let i = 0; i < n; i++) {
    const e = events[i]!
    buf[pos++] = 0x0a
    writeVarint(updateSizes[i]!)
    const t = e.topic === topic ? topicBytes : utf8(e.topic)
    if (t.length > 0) writeBytes(0x0a, t)
    const k = utf8(e.docKey)
    if (k.length > 0) writeBytes(0x12, k)
    if (e.docVersion !== 0n) {
      buf[pos++] = 0x18
      writeVarint64(e.docVersion)
    }
    const p = payloadUtf8(e)
    if (p.length > 0) writeBytes(0x22, p)
    if (e.watermark !== 0n) {
      buf[pos++] = 0x28
      writeVarint64(e.watermark)
    }
    const h = e.payloadHash
    if (h !== null && h.length > 0) writeBytes(0x32, h)
    if (e.payload === null) {
      buf[pos++] = 0x38
      buf[pos++] = 1
    }
  }
  if (replayComplete) {
    buf[pos++] = 0x10
    buf[pos++] = 1
  }
  buf[pos++] = 0x1a
  writeVarint(cursorSize)
  if (topicBytes.length > 0) writeBytes(0x0a, topicBytes)
  if (head !== 0n) {
    buf[pos++] = 0x10
    writeVarint64(head)
  }
  if (epochBytes.length > 0) writeBytes(0x1a, epochBytes)
  const frame = buf
  buf = EMPTY
  if (pos !== frameSize) throw new Error(`khala: update batch frame encoded to ${pos} bytes, sized ${frameSize}`)
  return frame
}

// ---------------------------------------------------------------------------------------------
// Errors on the wire

const AUTH_REASONS: Record<AuthReason, AuthFailureReason> = {
  missing_token: AuthFailureReason.MISSING_TOKEN,
  invalid_token_format: AuthFailureReason.INVALID_TOKEN_FORMAT,
  invalid_token_encoding: AuthFailureReason.INVALID_TOKEN_ENCODING,
  invalid_header: AuthFailureReason.INVALID_HEADER,
  unsupported_alg: AuthFailureReason.UNSUPPORTED_ALG,
  missing_kid: AuthFailureReason.MISSING_KID,
  unknown_kid: AuthFailureReason.UNKNOWN_KID,
  invalid_signature: AuthFailureReason.INVALID_SIGNATURE,
  invalid_claims: AuthFailureReason.INVALID_CLAIMS,
  token_expired: AuthFailureReason.TOKEN_EXPIRED,
  token_not_yet_valid: AuthFailureReason.TOKEN_NOT_YET_VALID,
  claim_mismatch: AuthFailureReason.CLAIM_MISMATCH
}

export const authError = (error: SyncTokenError, requestId = ""): SyncError =>
  create(SyncErrorSchema, {
    code: error.reason === "token_expired" ? SyncErrorCode.TOKEN_EXPIRED : SyncErrorCode.UNAUTHORIZED,
    message: error.message,
    requestId,
    details: { case: "unauthorized", value: { reason: AUTH_REASONS[error.reason], claim: error.claim ?? "" } }
  })

export const helloTimeout = (): SyncError =>
  create(SyncErrorSchema, {
    code: SyncErrorCode.UNAUTHORIZED,
    message: "no hello frame with a sync token arrived in time",
    details: { case: "unauthorized", value: { reason: AuthFailureReason.HELLO_TIMEOUT } }
  })

const STALE_REASONS: Record<Staleness.StaleReason, StaleReason> = {
  retention_floor_breach: StaleReason.RETENTION_FLOOR_BREACH,
  replay_budget_exceeded: StaleReason.REPLAY_BUDGET_EXCEEDED,
  epoch_mismatch: StaleReason.EPOCH_MISMATCH,
  cursor_ahead_of_head: StaleReason.CURSOR_AHEAD_OF_HEAD
}
const TIERS = { hot: QosTier.HOT, warm: QosTier.WARM, cold: QosTier.COLD } as const

export const staleCursor = (error: StaleCursorError, plan: Staleness.SnapshotPlan, requestId = ""): SyncError =>
  create(SyncErrorSchema, {
    code: SyncErrorCode.STALE_CURSOR,
    message: error.message,
    fullResyncRequired: true,
    requestId,
    details: {
      case: "staleCursor",
      value: {
        staleTopics: error.staleTopics.map((t) => ({
          topic: t.topic,
          reasons: t.reasons.map((r) => STALE_REASONS[r]),
          qosTier: TIERS[t.qosTier],
          resumeAfter: t.resumeAfter,
          retentionFloor: t.retentionFloor,
          headWatermark: t.headWatermark,
          replayLag: t.replayLag,
          replayBudgetEvents: BigInt(t.replayBudgetEvents),
          epoch: t.epoch
        })),
        reasonCodes: [...new Set(error.staleTopics.flatMap((t) => t.reasons))].map((r) => STALE_REASONS[r]),
        snapshotPlan: {
          format: plan.format,
          topics: plan.topics.map((t) => ({
            topic: t.topic,
            headWatermark: t.headWatermark,
            ...(t.snapshot ? { snapshot: { ...t.snapshot } } : {})
          }))
        }
      }
    }
  })

export const simple = (code: SyncErrorCode, message: string, requestId = "", retryAfterMs = 0): SyncError =>
  create(SyncErrorSchema, { code, message, requestId, retryAfterMs })

export const forbiddenTopics = (topics: ReadonlyArray<string>, requestId: string): SyncError =>
  create(SyncErrorSchema, {
    code: SyncErrorCode.FORBIDDEN_TOPIC,
    message: `not allowed to subscribe to ${topics.join(", ")}`,
    requestId,
    details: { case: "forbiddenTopic", value: { forbiddenTopics: [...topics] } }
  })

export const slowConsumer = (
  action: "throttle" | "disconnect",
  details: { topic: string; queueDepth: number; queueLimit: number; reconnectAfterMs: number; strikes: number; maxStrikes: number; bufferedBytes: number }
): SyncError =>
  create(SyncErrorSchema, {
    code: SyncErrorCode.SLOW_CONSUMER,
    message: action === "throttle" ? "consumer is slow: live push suspended, catching up from the journal" : "consumer too slow: disconnecting; resume after reconnect_after_ms",
    retryAfterMs: action === "disconnect" ? details.reconnectAfterMs : 0,
    details: {
      case: "slowConsumer",
      value: {
        action: action === "throttle" ? SlowConsumerAction.THROTTLE : SlowConsumerAction.DISCONNECT,
        topic: details.topic,
        queueDepth: details.queueDepth,
        queueLimit: details.queueLimit,
        reconnectAfterMs: details.reconnectAfterMs,
        strikes: details.strikes,
        maxStrikes: details.maxStrikes,
        bufferedBytes: BigInt(details.bufferedBytes)
      }
    }
  })

export type RevocationReasonName = "user_requested" | "admin_revoked" | "token_replay" | "device_replaced" | "security_policy"
const REVOCATION: Record<RevocationReasonName, RevocationReason> = {
  user_requested: RevocationReason.USER_REQUESTED,
  admin_revoked: RevocationReason.ADMIN_REVOKED,
  token_replay: RevocationReason.TOKEN_REPLAY,
  device_replaced: RevocationReason.DEVICE_REPLACED,
  security_policy: RevocationReason.SECURITY_POLICY
}

export const reauthRequired = (reason: RevocationReasonName): SyncError =>
  create(SyncErrorSchema, {
    code: SyncErrorCode.REAUTH_REQUIRED,
    message: "session access was revoked; sign in again",
    details: { case: "reauthRequired", value: { reason: REVOCATION[reason] } }
  })

export type UpgradeReasonName =
  | "invalid_client_build"
  | "unsupported_protocol_version"
  | "unsupported_schema_version"
  | "upgrade_required"
  | "unsupported_client_build"
const UPGRADE: Record<UpgradeReasonName, UpgradeReason> = {
  invalid_client_build: UpgradeReason.INVALID_CLIENT_BUILD,
  unsupported_protocol_version: UpgradeReason.UNSUPPORTED_PROTOCOL_VERSION,
  unsupported_schema_version: UpgradeReason.UNSUPPORTED_SCHEMA_VERSION,
  upgrade_required: UpgradeReason.UPGRADE_REQUIRED,
  unsupported_client_build: UpgradeReason.UNSUPPORTED_CLIENT_BUILD
}

export const upgradeRequired = (
  reason: UpgradeReasonName,
  gate: { minClientBuildId: string; maxClientBuildId: string; minSchemaVersion: number; maxSchemaVersion: number; protocolVersion: string }
): SyncError =>
  create(SyncErrorSchema, {
    code: SyncErrorCode.UPGRADE_REQUIRED,
    message: `client must upgrade (${reason})`,
    details: { case: "upgradeRequired", value: { reason: UPGRADE[reason], surface: "khala_websocket", ...gate } }
  })

export const payloadTooLarge = (size: number, limit: number): SyncError =>
  create(SyncErrorSchema, {
    code: SyncErrorCode.PAYLOAD_TOO_LARGE,
    message: `frame of ${size} bytes exceeds the ${limit}-byte limit`,
    details: { case: "payloadTooLarge", value: { sizeBytes: BigInt(size), limitBytes: BigInt(limit) } }
  })

export { SyncCloseCode, SyncErrorCode }

// ---------------------------------------------------------------------------------------------
// The other direction, for test clients and tools: encode client frames, decode server frames.

const serverKinds = new Map<FrameKind, DescMessage>([
  [FrameKind.WELCOME, WelcomeSchema],
  [FrameKind.SUBSCRIBED, SubscribedSchema],
  [FrameKind.UNSUBSCRIBED, UnsubscribedSchema],
  [FrameKind.UPDATE_BATCH, UpdateBatchSchema],
  [FrameKind.HEARTBEAT, HeartbeatSchema],
  [FrameKind.ERROR, SyncErrorSchema],
  [FrameKind.TOKEN_REFRESHED, TokenRefreshedSchema]
])

export interface ServerFrame {
  readonly kind: FrameKind
  readonly topic: string
  readonly seq: bigint
  readonly message: any
}

export const decodeServerFrame = (data: Uint8Array | string): ServerFrame => {
  if (typeof data === "string") {
    const { payload, ...rest } = JSON.parse(data) as Record<string, unknown>
    const envelope = fromJson(KhalaFrameSchema, rest as JsonValue)
    const schema = serverKinds.get(envelope.kind)
    if (schema === undefined) throw new Error(`not a server frame kind: ${envelope.kind}`)
    return { kind: envelope.kind, topic: envelope.topic, seq: envelope.seq, message: fromJson(schema, (payload ?? {}) as JsonValue) }
  }
  const envelope = fromBinary(KhalaFrameSchema, data)
  const schema = serverKinds.get(envelope.kind)
  if (schema === undefined) throw new Error(`not a server frame kind: ${envelope.kind}`)
  return { kind: envelope.kind, topic: envelope.topic, seq: envelope.seq, message: fromBinary(schema, envelope.payload) }
}

const clientSchemas = {
  hello: [FrameKind.HELLO, HelloSchema],
  subscribe: [FrameKind.SUBSCRIBE, SubscribeSchema],
  unsubscribe: [FrameKind.UNSUBSCRIBE, UnsubscribeSchema],
  heartbeat: [FrameKind.CLIENT_HEARTBEAT, HeartbeatSchema],
  refresh_token: [FrameKind.REFRESH_TOKEN, RefreshTokenSchema]
} as const

export const encodeClientFrame = (format: Format, kind: keyof typeof clientSchemas, init: Record<string, unknown>): Encoded => {
  const [frameKind, schema] = clientSchemas[kind]
  return encodeFrame(format, frameKind, schema as DescMessage, create(schema as DescMessage, init as any))
}
