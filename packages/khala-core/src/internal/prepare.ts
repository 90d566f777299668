// Validation and preparation shared by every adapter: nothing reaches storage unless it passed
// these checks, so a rejected call writes nothing.
import * as nodeCrypto from "node:crypto"
import { canonicalJson, CanonicalJsonError } from "@openagents/proto/canonical-json"
import {
  BatchTooLargeError,
  InvalidDocKeyError,
  InvalidLimitError,
  InvalidPayloadError,
  InvalidWatermarkError,
  PayloadTooLargeError
} from "../Errors.js"
import type { JournalEvent, PreparedEntry } from "../Storage.js"
import { UPDATE_OVERHEAD_BYTES } from "../Storage.js"
import type { Topic } from "../Topic.js"
import { MAX_BATCH_BYTES, MAX_BATCH_UPDATES } from "../Topic.js"

export const MAX_INT8 = 9223372036854775807n
export const MAX_UINT64 = 18446744073709551615n
export const MAX_DOC_KEY_LENGTH = 255

/** UTF-8 byte length without allocating. */
export const utf8Length = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4
        i++
      } else n += 3
    } else n += 3
  }
  return n
}

/** What an update costs in a batch, as reads count it against their byte limit. */
export const updateCost = (e: { readonly payloadBytes: number; readonly docKey: string }): number =>
  e.payloadBytes + utf8Length(e.docKey) + UPDATE_OVERHEAD_BYTES

/**
 * SHA-256 of `data` (a string is hashed as its UTF-8). node:crypto, ~6× the pure-JS hash at 2 KiB;
 * its one-shot `hash` (Node >= 20.12) where present, ~3× cheaper than `createHash` for the small
 * documents of a commit (bench/FANOUT.md). The digest owns its 32-byte buffer: returned as a plain
 * Uint8Array view of it, without a copy.
 */
export const sha256OneShot = (data: string | Uint8Array): Uint8Array => {
  const digest = nodeCrypto.hash("sha256", data, "buffer")
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
}
/** The same digest through `createHash`, for Node 20 releases before 20.12. */
export const sha256Streaming = (data: string | Uint8Array): Uint8Array => {
  const digest = nodeCrypto.createHash("sha256").update(data).digest()
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
}
export const sha256: (data: string | Uint8Array) => Uint8Array = typeof nodeCrypto.hash === "function" ? sha256OneShot : sha256Streaming

/** SHA-256 of the UTF-8 bytes of canonical JSON `text`. */
export const hashCanonical = (text: string): Uint8Array => sha256(text)

const textEncoder = new TextEncoder()

export const validateDocKey = (docKey: unknown): string | InvalidDocKeyError => {
  if (typeof docKey !== "string") return new InvalidDocKeyError({ docKey: String(docKey), reason: "must be a string" })
  if (docKey.length === 0) return new InvalidDocKeyError({ docKey, reason: "empty" })
  if (docKey.length > MAX_DOC_KEY_LENGTH) return new InvalidDocKeyError({ docKey, reason: `longer than ${MAX_DOC_KEY_LENGTH} characters` })
  if (docKey.includes("\u0000")) return new InvalidDocKeyError({ docKey, reason: "contains NUL" })
  return docKey
}

/** A non-negative integer within `max`, as bigint. */
export const validateInteger = (field: string, value: unknown, max: bigint): bigint | InvalidWatermarkError => {
  let v: bigint
  if (typeof value === "bigint") v = value
  else if (typeof value === "number" && Number.isSafeInteger(value)) v = BigInt(value)
  else return new InvalidWatermarkError({ field, value: String(value), reason: "must be an integer (bigint or safe integer)" })
  if (v < 0n) return new InvalidWatermarkError({ field, value: v.toString(), reason: "must be >= 0" })
  if (v > max) return new InvalidWatermarkError({ field, value: v.toString(), reason: `must be <= ${max}` })
  return v
}

export const validateLimit = (field: string, value: number | undefined, fallback: number, clamp: number): number | InvalidLimitError => {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) return new InvalidLimitError({ field, value })
  return Math.min(value, clamp)
}

export interface AppendEntry {
  readonly docKey: string
  readonly docVersion: bigint | number
  /** Any JSON value with a canonical form (see @openagents/proto/canonical-json). */
  readonly payload: unknown
}

export type PrepareError = InvalidDocKeyError | InvalidWatermarkError | InvalidPayloadError | PayloadTooLargeError | BatchTooLargeError

/** Validate and prepare a batch for `topic`. `unique`: doc keys may not repeat (read-model upserts). */
export const prepareBatch = (
  topic: Topic,
  entries: ReadonlyArray<AppendEntry>,
  unique: boolean
): ReadonlyArray<PreparedEntry> | PrepareError => {
  const c = topic.topicClass
  if (entries.length > MAX_BATCH_UPDATES) {
    return new BatchTooLargeError({ topic: topic.topic, entries: entries.length, bytes: -1, maxEntries: MAX_BATCH_UPDATES, maxBytes: MAX_BATCH_BYTES })
  }
  const prepared: Array<PreparedEntry> = []
  const seen = unique ? new Set<string>() : undefined
  let total = 0
  for (const entry of entries) {
    const docKey = validateDocKey(entry?.docKey)
    if (typeof docKey !== "string") return docKey
    if (seen !== undefined) {
      if (seen.has(docKey)) return new InvalidDocKeyError({ docKey, reason: "appears twice in one batch" })
      seen.add(docKey)
    }
    const docVersion = validateInteger("doc_version", entry.docVersion, MAX_INT8)
    if (typeof docVersion !== "bigint") return docVersion
    let document: string
    try {
      document = canonicalJson(entry.payload)
    } catch (error) {
      if (error instanceof CanonicalJsonError) {
        return new InvalidPayloadError({ docKey, path: error.path, reason: error.message })
      }
      throw error
    }
    // The UTF-8 is encoded once, here: it is what the hash covers, its length is the size, and
    // every frame that carries the event copies it (eventOf).
    const documentUtf8 = textEncoder.encode(document)
    const payloadBytes = documentUtf8.length
    if (payloadBytes > c.maxPayloadBytes) {
      return new PayloadTooLargeError({ topic: topic.topic, docKey, sizeBytes: payloadBytes, limitBytes: c.maxPayloadBytes })
    }
    total += payloadBytes + utf8Length(docKey) + UPDATE_OVERHEAD_BYTES
    prepared.push({
      docKey,
      docVersion,
      document,
      documentUtf8,
      payload: c.payloadMode === "pointer" ? null : document,
      payloadHash: sha256(documentUtf8),
      payloadBytes
    })
  }
  if (total > MAX_BATCH_BYTES) {
    return new BatchTooLargeError({ topic: topic.topic, entries: entries.length, bytes: total, maxEntries: MAX_BATCH_UPDATES, maxBytes: MAX_BATCH_BYTES })
  }
  return prepared
}

/**
 * The journal event a prepared entry became, once storage gave it a watermark and a time. Its
 * UTF-8 is the one prepareBatch encoded; every live and catch-up batch sends these bytes.
 */
export const eventOf = (topic: string, watermark: bigint, e: PreparedEntry, insertedAt: Date): JournalEvent => ({
  topic,
  watermark,
  docKey: e.docKey,
  docVersion: e.docVersion,
  payload: e.payload,
  payloadUtf8: e.payload === null ? undefined : e.documentUtf8,
  payloadHash: e.payloadHash,
  payloadBytes: e.payloadBytes,
  insertedAt
})
