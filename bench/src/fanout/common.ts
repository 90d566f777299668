// Shared by the fanout server and client children: the clock, the benchmark payloads, and a
// minimal protobuf scanner that counts the updates of a Khala frame without decoding it.
//
// Every server kind (khala, uws-raw, ws-loop) sends real Khala UPDATE_BATCH frames (the baselines
// send pre-encoded ones of the same size), and the client runs this same scanner on every message
// whatever the server kind, so the client does identical work per message in every run.
import { canonicalJson } from "@openagents/proto/canonical-json"

// performance.timeOrigin is fixed at process start and can be several ms off Date.now(), so
// `timeOrigin + performance.now()` does not compare between processes. Calibrate against the
// system clock instead: at the instant Date.now() ticks to a new millisecond, the wall clock is
// exactly that millisecond; take the median offset of a few such edges (error: a few µs).
const calibrate = (): number => {
  const offsets: Array<number> = []
  for (let i = 0; i < 7; i++) {
    const start = Date.now()
    let wall = start
    let hr = 0
    while ((wall = Date.now()) === start) hr = performance.now()
    const after = performance.now()
    offsets.push(wall - (hr + after) / 2)
  }
  offsets.sort((a, b) => a - b)
  return offsets[3]!
}
const offset = calibrate()

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes. */
export const now = (): number => offset + performance.now()

export const FRAME_KIND_UPDATE_BATCH = 2 // FrameKind.UPDATE_BATCH, checked at startup by the children

/**
 * The document published for one event: `{"p":"xxx…","t":"<stamp>"}` whose canonical JSON is
 * exactly `bytes` long. `stamp` is a string of at most 24 characters (left-padded).
 */
export const makePayload = (bytes: number, stamp = ""): { p: string; t: string } => {
  const t = stamp.padStart(24, "0")
  const overhead = canonicalJson({ p: "", t }).length
  if (bytes < overhead) throw new Error(`payload of ${bytes} B is smaller than its ${overhead} B frame`)
  const doc = { p: "x".repeat(bytes - overhead), t }
  const size = canonicalJson(doc).length
  if (size !== bytes) throw new Error(`payload is ${size} B, wanted ${bytes}`)
  return doc
}

export const userTopic = (user: string) => `runtime.notifications:user:${user}`

// ---------------------------------------------------------------------------------------------
// Frame scanner. KhalaFrame: 1 schema_version (varint), 2 topic (bytes), 3 seq (varint),
// 4 kind (varint), 5 payload (bytes). UpdateBatch: 1 updates (repeated, bytes), 2, 3.

/** Results of the last `scan` call (module state: no allocation per message). */
export const scanned = { kind: 0, seq: 0, updates: 0 }

let pos = 0
const varint = (buf: Uint8Array): number => {
  let result = 0
  let shift = 1
  for (;;) {
    const b = buf[pos++]!
    result += (b & 0x7f) * shift
    if (b < 0x80) return result
    shift *= 128
  }
}

const skip = (buf: Uint8Array, wireType: number) => {
  switch (wireType) {
    case 0:
      varint(buf)
      return
    case 1:
      pos += 8
      return
    case 2: {
      const len = varint(buf)
      pos += len
      return
    }
    case 5:
      pos += 4
      return
    default:
      throw new Error(`unsupported wire type ${wireType}`)
  }
}

/** Scan one binary Khala frame: its kind, seq and (for update batches) the number of updates. */
export const scan = (buf: Uint8Array): void => {
  scanned.kind = 0
  scanned.seq = 0
  scanned.updates = 0
  pos = 0
  let payloadStart = -1
  let payloadEnd = -1
  const end = buf.length
  while (pos < end) {
    const tag = varint(buf)
    const field = tag >>> 3
    const wireType = tag & 7
    if (field === 3 && wireType === 0) scanned.seq = varint(buf)
    else if (field === 4 && wireType === 0) scanned.kind = varint(buf)
    else if (field === 5 && wireType === 2) {
      const len = varint(buf)
      payloadStart = pos
      payloadEnd = pos + len
      pos = payloadEnd
    } else skip(buf, wireType)
  }
  if (scanned.kind !== FRAME_KIND_UPDATE_BATCH || payloadStart < 0) return
  pos = payloadStart
  let updates = 0
  while (pos < payloadEnd) {
    const tag = varint(buf)
    if (tag === 0x0a) updates++
    skip(buf, tag & 7)
  }
  scanned.updates = updates
}

/** Percentiles of a sorted numeric array (nearest rank). */
export const percentile = (sorted: ArrayLike<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}
