// A small hand-written protobuf codec for openagents.sync.v1, for clients whose bundle size
// matters (the reflection-based generated code plus its runtime is ~22 KB gzipped; this is a few).
// It covers exactly the messages of the Khala wire, produces and accepts the same plain shapes
// as the generated code (camelCase fields, bigint for 64-bit integers, Uint8Array for bytes,
// `{ case, value }` for the SyncError details oneof, defaults for absent fields), and skips
// unknown fields. The generated code stays the schema source of truth:
// proto/test/sync-lite.test.ts checks, for random messages, that both directions agree with it,
// so the two cannot drift apart unnoticed.
type Scalar = "string" | "bytes" | "bool" | "uint32" | "enum" | "uint64" | "int64"
interface Field {
  readonly no: number
  readonly name: string
  readonly type: Scalar | (() => Desc)
  readonly repeated?: true
  /** Member of the message's oneof (SyncError.details). */
  readonly oneof?: string
}
interface Desc {
  readonly fields: ReadonlyArray<Field>
}

const f = (no: number, name: string, type: Field["type"], extra: Partial<Pick<Field, "repeated" | "oneof">> = {}): Field => ({ no, name, type, ...extra })
const d = (...fields: Array<Field>): Desc => ({ fields })

export const TopicCursor = d(f(1, "topic", "string"), f(2, "watermark", "uint64"), f(3, "epoch", "string"))
export const KhalaFrame = d(f(1, "schemaVersion", "uint32"), f(2, "topic", "string"), f(3, "seq", "uint64"), f(4, "kind", "enum"), f(5, "payload", "bytes"))
export const Hello = d(
  f(1, "token", "string"), f(2, "surface", "enum"), f(3, "clientBuildId", "string"), f(4, "protocolVersion", "string"),
  f(5, "minSchemaVersion", "uint32"), f(6, "maxSchemaVersion", "uint32"), f(7, "appVersion", "string"), f(8, "deviceId", "string")
)
export const ConnectionLimits = d(
  f(1, "maxInboundFrameBytes", "uint32"), f(2, "maxTopicsPerConnection", "uint32"), f(3, "maxBatchUpdates", "uint32"),
  f(4, "maxBatchBytes", "uint32"), f(5, "maxUpdatePayloadBytes", "uint32"), f(6, "maxSubscribesPerSecond", "uint32")
)
export const Welcome = d(
  f(1, "connectionId", "string"), f(2, "grantedScopes", "string", { repeated: true }), f(3, "grantedTopics", "string", { repeated: true }),
  f(4, "limits", () => ConnectionLimits), f(5, "heartbeatIntervalMs", "uint32"), f(6, "idleTimeoutMs", "uint32"), f(7, "journalEpoch", "string"),
  f(8, "tokenExpiresAtMs", "int64"), f(9, "protocolVersion", "string"), f(10, "schemaVersion", "uint32"), f(11, "serverTimeMs", "int64")
)
export const Subscribe = d(f(1, "topics", "string", { repeated: true }), f(2, "resumeAfter", () => TopicCursor, { repeated: true }), f(3, "requestId", "string"), f(4, "replayBatchSize", "uint32"))
export const Subscribed = d(
  f(1, "subscriptionId", "string"), f(2, "currentWatermarks", () => TopicCursor, { repeated: true }), f(3, "requestId", "string"),
  f(4, "topics", "string", { repeated: true }), f(5, "headWatermarks", () => TopicCursor, { repeated: true })
)
export const Unsubscribe = d(f(1, "topics", "string", { repeated: true }), f(2, "requestId", "string"))
export const Unsubscribed = d(f(1, "topics", "string", { repeated: true }), f(2, "requestId", "string"))
export const Update = d(
  f(1, "topic", "string"), f(2, "docKey", "string"), f(3, "docVersion", "uint64"), f(4, "payload", "bytes"),
  f(5, "watermark", "uint64"), f(6, "payloadHash", "bytes"), f(7, "hydrationRequired", "bool")
)
export const UpdateBatch = d(f(1, "updates", () => Update, { repeated: true }), f(2, "replayComplete", "bool"), f(3, "headWatermarks", () => TopicCursor, { repeated: true }))
export const Heartbeat = d(f(1, "watermarks", () => TopicCursor, { repeated: true }), f(2, "sentAtMs", "int64"))
export const RefreshToken = d(f(1, "token", "string"), f(2, "requestId", "string"))
export const TokenRefreshed = d(f(1, "tokenExpiresAtMs", "int64"), f(2, "requestId", "string"))
export const StaleTopic = d(
  f(1, "topic", "string"), f(2, "reasons", "enum", { repeated: true }), f(3, "qosTier", "enum"), f(4, "resumeAfter", "uint64"),
  f(5, "retentionFloor", "uint64"), f(6, "headWatermark", "uint64"), f(7, "replayLag", "uint64"), f(8, "replayBudgetEvents", "uint64"), f(9, "epoch", "string")
)
export const SnapshotSource = d(f(1, "topic", "string"), f(2, "format", "string"), f(3, "schemaVersion", "uint32"), f(4, "cadenceSeconds", "uint32"), f(5, "sourceTable", "string"), f(6, "path", "string"))
export const SnapshotPlanTopic = d(f(1, "topic", "string"), f(2, "headWatermark", "uint64"), f(3, "snapshot", () => SnapshotSource))
export const SnapshotPlan = d(f(1, "format", "string"), f(2, "topics", () => SnapshotPlanTopic, { repeated: true }))
export const StaleCursorDetails = d(f(1, "staleTopics", () => StaleTopic, { repeated: true }), f(2, "reasonCodes", "enum", { repeated: true }), f(3, "snapshotPlan", () => SnapshotPlan))
export const SlowConsumerDetails = d(
  f(1, "action", "enum"), f(2, "topic", "string"), f(3, "queueDepth", "uint32"), f(4, "queueLimit", "uint32"),
  f(5, "reconnectAfterMs", "uint32"), f(6, "strikes", "uint32"), f(7, "maxStrikes", "uint32"), f(8, "bufferedBytes", "uint64")
)
export const UpgradeRequiredDetails = d(
  f(1, "reason", "enum"), f(2, "surface", "string"), f(3, "minClientBuildId", "string"), f(4, "maxClientBuildId", "string"),
  f(5, "minSchemaVersion", "uint32"), f(6, "maxSchemaVersion", "uint32"), f(7, "protocolVersion", "string")
)
export const ReauthRequiredDetails = d(f(1, "reason", "enum"))
export const ForbiddenTopicDetails = d(f(1, "forbiddenTopics", "string", { repeated: true }))
export const UnauthorizedDetails = d(f(1, "reason", "enum"), f(2, "claim", "string"))
export const PayloadTooLargeDetails = d(f(1, "sizeBytes", "uint64"), f(2, "limitBytes", "uint64"))
export const SyncError = d(
  f(1, "code", "enum"), f(2, "message", "string"), f(3, "retryAfterMs", "uint32"), f(4, "fullResyncRequired", "bool"), f(5, "requestId", "string"),
  f(10, "staleCursor", () => StaleCursorDetails, { oneof: "details" }),
  f(11, "slowConsumer", () => SlowConsumerDetails, { oneof: "details" }),
  f(12, "upgradeRequired", () => UpgradeRequiredDetails, { oneof: "details" }),
  f(13, "reauthRequired", () => ReauthRequiredDetails, { oneof: "details" }),
  f(14, "forbiddenTopic", () => ForbiddenTopicDetails, { oneof: "details" }),
  f(15, "unauthorized", () => UnauthorizedDetails, { oneof: "details" }),
  f(16, "payloadTooLarge", () => PayloadTooLargeDetails, { oneof: "details" })
)
export const SnapshotDocument = d(f(1, "docKey", "string"), f(2, "docVersion", "uint64"), f(3, "payload", "bytes"), f(4, "payloadHash", "bytes"))
export const SnapshotResponse = d(
  f(1, "format", "string"), f(2, "topic", "string"), f(3, "epoch", "string"), f(4, "watermark", "uint64"),
  f(5, "documents", () => SnapshotDocument, { repeated: true }), f(6, "schemaVersion", "uint32")
)

/** Frame kinds (FrameKind). */
export const Kind = {
  SUBSCRIBED: 1, UPDATE_BATCH: 2, HEARTBEAT: 3, ERROR: 4, WELCOME: 5, UNSUBSCRIBED: 6, TOKEN_REFRESHED: 7,
  HELLO: 16, SUBSCRIBE: 17, UNSUBSCRIBE: 18, CLIENT_HEARTBEAT: 19, REFRESH_TOKEN: 20
} as const

const defaultOf = (type: Field["type"]): unknown =>
  type === "string" ? "" : type === "bytes" ? new Uint8Array(0) : type === "bool" ? false : type === "uint64" || type === "int64" ? 0n : typeof type === "function" ? undefined : 0

// ---------------------------------------------------------------------------------------------
// Encoding

const encoder = new TextEncoder()
class Writer {
  buf = new Uint8Array(256)
  pos = 0
  private ensure(n: number) {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }
  varint(v: number) {
    this.ensure(10)
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80
      v = Math.floor(v / 128)
    }
    this.buf[this.pos++] = v
  }
  varint64(v: bigint) {
    this.ensure(10)
    let x = BigInt.asUintN(64, v)
    while (x > 0x7fn) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80
      x >>= 7n
    }
    this.buf[this.pos++] = Number(x)
  }
  bytes(b: Uint8Array) {
    this.varint(b.length)
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
  finish() {
    return this.buf.subarray(0, this.pos)
  }
}

const writeScalar = (w: Writer, type: Scalar, v: unknown) => {
  switch (type) {
    case "string":
      w.bytes(encoder.encode(v as string))
      return
    case "bytes":
      w.bytes(v as Uint8Array)
      return
    case "bool":
      w.varint(v ? 1 : 0)
      return
    case "uint32":
      w.varint((v as number) >>> 0)
      return
    case "enum":
      // Negative enum values are sign-extended to 64 bits, as protobuf requires.
      if ((v as number) < 0) w.varint64(BigInt(v as number))
      else w.varint(v as number)
      return
    case "uint64":
    case "int64":
      w.varint64(BigInt(v as bigint))
  }
}

const isDefault = (type: Scalar, v: unknown) =>
  v === undefined || (type === "bytes" ? (v as Uint8Array).length === 0 : type === "uint64" || type === "int64" ? BigInt(v as bigint) === 0n : v === defaultOf(type))

const writeMessage = (w: Writer, desc: Desc, value: Record<string, any>) => {
  for (const field of desc.fields) {
    let v: unknown
    if (field.oneof !== undefined) {
      const o = value[field.oneof] as { case?: string; value?: unknown } | undefined
      if (o?.case !== field.name) continue
      v = o.value
    } else {
      v = value[field.name]
    }
    if (typeof field.type === "function") {
      const sub = field.type()
      const items = field.repeated ? ((v as Array<unknown>) ?? []) : v === undefined ? [] : [v]
      for (const item of items) {
        w.varint((field.no << 3) | 2)
        w.bytes(encode(sub, item as Record<string, unknown>))
      }
    } else if (field.repeated) {
      const items = (v as Array<unknown>) ?? []
      if (items.length === 0) continue
      if (field.type === "string" || field.type === "bytes") {
        for (const item of items) {
          w.varint((field.no << 3) | 2)
          writeScalar(w, field.type, item)
        }
      } else {
        // Packed, as proto3 does for repeated scalars.
        const inner = new Writer()
        for (const item of items) writeScalar(inner, field.type, item)
        w.varint((field.no << 3) | 2)
        w.bytes(inner.finish())
      }
    } else if (!isDefault(field.type, v) || field.oneof !== undefined) {
      w.varint((field.no << 3) | (field.type === "string" || field.type === "bytes" ? 2 : 0))
      writeScalar(w, field.type, v)
    }
  }
}

/** Encode a message (plain object in the generated code's shape). */
export const encode = (desc: Desc, value: Record<string, unknown>): Uint8Array => {
  const w = new Writer()
  writeMessage(w, desc, value)
  return w.finish()
}

// ---------------------------------------------------------------------------------------------
// Decoding

const decoder = new TextDecoder("utf-8", { fatal: true })
export class DecodeError extends Error {
  override readonly name = "DecodeError"
}

class Reader {
  pos = 0
  constructor(readonly buf: Uint8Array, readonly end = buf.length) {}
  varint(): number {
    let result = 0
    let shift = 1
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError("truncated varint")
      const b = this.buf[this.pos++]!
      result += (b & 0x7f) * shift
      if (b < 0x80) return result
      shift *= 128
    }
    throw new DecodeError("varint too long")
  }
  varint64(): bigint {
    let result = 0n
    let shift = 0n
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError("truncated varint")
      const b = this.buf[this.pos++]!
      result |= BigInt(b & 0x7f) << shift
      if (b < 0x80) return BigInt.asUintN(64, result)
      shift += 7n
    }
    throw new DecodeError("varint too long")
  }
  bytes(): Uint8Array {
    const n = this.varint()
    if (this.pos + n > this.end) throw new DecodeError("truncated length-delimited field")
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }
  skip(wireType: number) {
    switch (wireType) {
      case 0:
        this.varint64()
        return
      case 1:
        this.pos += 8
        break
      case 2:
        this.bytes()
        return
      case 5:
        this.pos += 4
        break
      default:
        throw new DecodeError(`unsupported wire type ${wireType}`)
    }
    if (this.pos > this.end) throw new DecodeError("truncated field")
  }
}

const readScalar = (r: Reader, type: Scalar): unknown => {
  switch (type) {
    case "string":
      return decoder.decode(r.bytes())
    case "bytes":
      return r.bytes().slice()
    case "bool":
      return r.varint64() !== 0n
    case "uint32":
      return Number(BigInt.asUintN(32, r.varint64()))
    case "enum":
      return Number(BigInt.asIntN(32, r.varint64()))
    case "uint64":
      return r.varint64()
    case "int64":
      return BigInt.asIntN(64, r.varint64())
  }
}

const fieldCache = new WeakMap<Desc, Map<number, Field>>()
const byNumber = (desc: Desc) => {
  let map = fieldCache.get(desc)
  if (map === undefined) fieldCache.set(desc, map = new Map(desc.fields.map((x) => [x.no, x])))
  return map
}

/** Decode a message. Throws DecodeError on malformed input; unknown fields are skipped. */
export const decode = <T = Record<string, any>>(desc: Desc, bytes: Uint8Array): T => {
  const out: Record<string, any> = {}
  const oneofs = new Set<string>()
  for (const field of desc.fields) {
    if (field.oneof !== undefined) {
      if (!oneofs.has(field.oneof)) out[field.oneof] = { case: undefined }
      oneofs.add(field.oneof)
    } else {
      out[field.name] = field.repeated ? [] : defaultOf(field.type)
    }
  }
  const r = new Reader(bytes)
  const fields = byNumber(desc)
  while (r.pos < r.end) {
    const tag = r.varint()
    const no = Math.floor(tag / 8)
    const wireType = tag & 7
    const field = fields.get(no)
    if (field === undefined || no === 0) {
      r.skip(wireType)
      continue
    }
    if (typeof field.type === "function") {
      if (wireType !== 2) throw new DecodeError(`field ${field.name}: expected a message`)
      const value = decode(field.type(), r.bytes())
      if (field.oneof !== undefined) out[field.oneof] = { case: field.name, value }
      else if (field.repeated) out[field.name].push(value)
      else out[field.name] = value
    } else if (field.repeated && wireType === 2 && field.type !== "string" && field.type !== "bytes") {
      const inner = r.bytes()
      const sub = new Reader(inner)
      while (sub.pos < sub.end) out[field.name].push(readScalar(sub, field.type))
    } else {
      const expected = field.type === "string" || field.type === "bytes" ? 2 : 0
      if (wireType !== expected) throw new DecodeError(`field ${field.name}: wire type ${wireType}`)
      const value = readScalar(r, field.type)
      if (field.repeated) out[field.name].push(value)
      else out[field.name] = value
    }
  }
  return out as T
}
