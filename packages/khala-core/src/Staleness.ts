// Resume-point freshness. A cursor is served only if the journal can return every event after
// it, in order, within the topic class's replay budget; otherwise the subscriber gets
// stale_cursor with per-topic details and a snapshot plan, never a partial log.
//
//   retention_floor_breach  cursor < floor (floor = oldest retained watermark - 1)
//   replay_budget_exceeded  head - cursor > class replay budget
//   cursor_ahead_of_head    cursor > head (the cursor cannot come from this journal)
//   epoch_mismatch          the cursor names another journal epoch (restored/recreated database)
//
// A subscriber with no cursor resumes from 0: a topic whose oldest events were pruned is then
// stale and recovers from a snapshot, rather than silently missing the pruned documents.
import type { QosTier, Topic } from "./Topic.js"

export type StaleReason = "retention_floor_breach" | "replay_budget_exceeded" | "epoch_mismatch" | "cursor_ahead_of_head"

export interface Position {
  /** Highest committed watermark (0 when the topic has no events). */
  readonly head: bigint
  /** Watermarks at or below this were pruned; the oldest retained event is floor + 1. */
  readonly floor: bigint
}

export interface Cursor {
  readonly watermark: bigint
  /** The journal epoch the watermark came from; undefined when unknown (first subscribe). */
  readonly epoch?: string | undefined
}

export interface StaleTopic {
  readonly topic: string
  readonly reasons: ReadonlyArray<StaleReason>
  readonly qosTier: QosTier
  readonly resumeAfter: bigint
  readonly retentionFloor: bigint
  readonly headWatermark: bigint
  readonly replayLag: bigint
  readonly replayBudgetEvents: number
  readonly epoch: string
}

/** Check one resume point; undefined when it can be served. */
export const check = (topic: Topic, cursor: Cursor, position: Position, journalEpoch: string): StaleTopic | undefined => {
  const reasons: Array<StaleReason> = []
  if (cursor.epoch !== undefined && cursor.epoch !== "" && cursor.epoch !== journalEpoch) {
    reasons.push("epoch_mismatch")
  } else {
    if (cursor.watermark < position.floor) reasons.push("retention_floor_breach")
    if (cursor.watermark > position.head) reasons.push("cursor_ahead_of_head")
    else if (position.head - cursor.watermark > BigInt(topic.topicClass.replayBudgetEvents)) reasons.push("replay_budget_exceeded")
  }
  if (reasons.length === 0) return undefined
  return {
    topic: topic.topic,
    reasons,
    qosTier: topic.topicClass.qosTier,
    resumeAfter: cursor.watermark,
    retentionFloor: position.floor,
    headWatermark: position.head,
    replayLag: position.head > cursor.watermark ? position.head - cursor.watermark : 0n,
    replayBudgetEvents: topic.topicClass.replayBudgetEvents,
    epoch: journalEpoch
  }
}

export const SNAPSHOT_FORMAT = "openagents.sync.snapshot.v1"

export interface SnapshotPlanTopic {
  readonly topic: string
  readonly headWatermark: bigint
  /** Absent when the class has no snapshot: the subscriber resumes from the head and the gap is reported. */
  readonly snapshot?: {
    readonly topic: string
    readonly format: string
    readonly schemaVersion: number
    readonly cadenceSeconds: number
    readonly sourceTable: string
    readonly path: string
  }
}

export interface SnapshotPlan {
  readonly format: string
  readonly topics: ReadonlyArray<SnapshotPlanTopic>
}

/** The HTTP path of a topic's snapshot, relative to the runtime's base URL. */
export const snapshotPath = (topic: string) => `/sync/v1/snapshot/${encodeURIComponent(topic)}`

export const snapshotPlan = (stale: ReadonlyArray<{ readonly topic: Topic; readonly stale: StaleTopic }>): SnapshotPlan => ({
  format: SNAPSHOT_FORMAT,
  topics: stale.map(({ stale, topic }) => {
    const c = topic.topicClass
    return c.snapshot === undefined || c.readModelTable === undefined
      ? { topic: topic.topic, headWatermark: stale.headWatermark }
      : {
        topic: topic.topic,
        headWatermark: stale.headWatermark,
        snapshot: {
          topic: topic.topic,
          format: SNAPSHOT_FORMAT,
          schemaVersion: 1,
          cadenceSeconds: c.snapshot.cadenceSeconds,
          sourceTable: `runtime.${c.readModelTable}`,
          path: snapshotPath(topic.topic)
        }
      }
  })
})
