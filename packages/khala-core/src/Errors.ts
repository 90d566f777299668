// The typed errors of the Khala journal and read models. Each carries a stable snake_case `code`
// (the wire code where the error reaches a client) and the context a caller needs to act on it.
// Storage failures are `JournalStorageError`; validation failures are raised before anything is
// written, so a rejected call has no effect.
import * as Data from "effect/Data"
import type { StaleTopic } from "./Staleness.js"

export class InvalidTopicError extends Data.TaggedError("InvalidTopicError")<{
  readonly topic: string
  readonly reason: string
}> {
  readonly code = "invalid_topic" as const
  override get message() {
    return `invalid topic ${JSON.stringify(this.topic.slice(0, 200))}: ${this.reason}`
  }
}

export class InvalidDocKeyError extends Data.TaggedError("InvalidDocKeyError")<{
  readonly docKey: string
  readonly reason: string
}> {
  readonly code = "invalid_doc_key" as const
  override get message() {
    return `invalid doc_key ${JSON.stringify(this.docKey.slice(0, 300))}: ${this.reason}`
  }
}

export class InvalidWatermarkError extends Data.TaggedError("InvalidWatermarkError")<{
  readonly field: string
  readonly value: string
  readonly reason: string
}> {
  readonly code = "invalid_watermark" as const
  override get message() {
    return `invalid ${this.field} ${this.value}: ${this.reason}`
  }
}

export class InvalidPayloadError extends Data.TaggedError("InvalidPayloadError")<{
  readonly docKey: string
  readonly path: string
  readonly reason: string
}> {
  readonly code = "invalid_payload" as const
  override get message() {
    return `payload of ${this.docKey} is not canonical JSON at ${this.path}: ${this.reason}`
  }
}

export class PayloadTooLargeError extends Data.TaggedError("PayloadTooLargeError")<{
  readonly topic: string
  readonly docKey: string
  readonly sizeBytes: number
  readonly limitBytes: number
}> {
  readonly code = "payload_too_large" as const
  override get message() {
    return `payload of ${this.docKey} on ${this.topic} is ${this.sizeBytes} bytes; the topic class allows ${this.limitBytes}`
  }
}

export class BatchTooLargeError extends Data.TaggedError("BatchTooLargeError")<{
  readonly topic: string
  readonly entries: number
  readonly bytes: number
  readonly maxEntries: number
  readonly maxBytes: number
}> {
  readonly code = "batch_too_large" as const
  override get message() {
    return `batch for ${this.topic} has ${this.entries} entries / ${this.bytes} bytes; at most ${this.maxEntries} entries and ${this.maxBytes} bytes are allowed`
  }
}

export class InvalidLimitError extends Data.TaggedError("InvalidLimitError")<{
  readonly field: string
  readonly value: number
}> {
  readonly code = "invalid_limit" as const
  override get message() {
    return `${this.field} must be a positive integer, got ${this.value}`
  }
}

/** The resume point cannot be served without a gap: recover from a snapshot. */
export class StaleCursorError extends Data.TaggedError("StaleCursorError")<{
  readonly staleTopics: ReadonlyArray<StaleTopic>
}> {
  readonly code = "stale_cursor" as const
  readonly fullResyncRequired = true as const
  override get message() {
    const reasons = new Set(this.staleTopics.flatMap((t) => t.reasons))
    if (reasons.size === 1 && reasons.has("replay_budget_exceeded")) {
      return "replay budget exceeded for topic qos tier; full resync required"
    }
    if (reasons.size === 1 && reasons.has("epoch_mismatch")) return "cursor belongs to another journal epoch; full resync required"
    return "cursor is older than retention floor"
  }
}

export class SnapshotUnsupportedError extends Data.TaggedError("SnapshotUnsupportedError")<{
  readonly topic: string
  readonly topicClass: string
}> {
  readonly code = "snapshot_unsupported" as const
  override get message() {
    return `topic class ${this.topicClass} has no snapshot (topic ${this.topic})`
  }
}

export class JournalStorageError extends Data.TaggedError("JournalStorageError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  readonly code = "storage_unavailable" as const
  override get message() {
    return `journal storage failed during ${this.operation}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

export type ValidationError =
  | InvalidTopicError
  | InvalidDocKeyError
  | InvalidWatermarkError
  | InvalidPayloadError
  | PayloadTooLargeError
  | BatchTooLargeError
  | InvalidLimitError
