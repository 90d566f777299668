// Retention: each topic class keeps its journal for `retentionSeconds`. Pruning removes a prefix
// of each topic — never a row while an older one stays — up to the first event inserted within
// the horizon, in bounded batches (each its own transaction), raising the topic's retention
// floor with each batch. Resume points below the floor are then stale (retention_floor_breach).
//
// Rows are inserted in watermark order but their insert timestamps are transaction start times,
// which are not strictly monotonic across concurrent writers; cutting at the first unexpired row
// (rather than deleting every expired row) keeps the retained log contiguous.
//
// A topic whose prune fails (a lock timeout, a constraint the storage refuses) is logged, counted
// (khala_retention_prune_failures_total) and reported in `failedTopics`, and the run goes on with
// the other topics: one bad topic must not stop retention for every other one. It is retried at
// the next run.
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type { JournalStorageError } from "./Errors.js"
import * as Metrics from "./Metrics.js"
import { KhalaStorage } from "./Storage.js"
import * as Topic from "./Topic.js"

export interface PruneOptions {
  /** Treat this as the current time (default: the Clock). */
  readonly now?: Date | undefined
  /** Events deleted per transaction (default 5000). */
  readonly batchSize?: number | undefined
  /** Topics examined per class per run (default 1000); the next run continues. */
  readonly topicLimit?: number | undefined
}

export interface PruneReport {
  readonly topicClass: string
  readonly topics: number
  readonly events: number
  readonly floors: ReadonlyMap<string, bigint>
  /** Topics whose prune failed in this run (logged; retried at the next run). */
  readonly failedTopics: ReadonlyArray<string>
}

export interface RetentionService {
  readonly pruneClass: (className: string, options?: PruneOptions) => Effect.Effect<PruneReport, JournalStorageError>
  /** Prune every class. Fails only when a class's expired topics cannot be listed. */
  readonly pruneAll: (options?: PruneOptions) => Effect.Effect<ReadonlyArray<PruneReport>, JournalStorageError>
  /**
   * Prune every class, then again every `interval`, forever (fork it in a scope). A failed run
   * is logged and retried at the next interval.
   */
  readonly run: (interval: Duration.DurationInput, options?: PruneOptions) => Effect.Effect<never>
}

export class Retention extends Context.Tag("@openagents/khala-core/Retention")<Retention, RetentionService>() {}

export const DEFAULT_BATCH_SIZE = 5000

export const make: Effect.Effect<RetentionService, never, KhalaStorage> = Effect.gen(function*() {
  const storage = yield* KhalaStorage
  const registry = yield* Topic.TopicClasses

  const pruneClass = (className: string, options?: PruneOptions) =>
    Effect.gen(function*() {
      const topicClass = registry.get(className)
      const floors = new Map<string, bigint>()
      const failedTopics: Array<string> = []
      if (topicClass === undefined) return { topicClass: className, topics: 0, events: 0, floors, failedTopics }
      const now = options?.now ?? new Date(yield* Clock.currentTimeMillis)
      const cutoff = new Date(now.getTime() - topicClass.retentionSeconds * 1000)
      const batchSize = Math.max(1, options?.batchSize ?? DEFAULT_BATCH_SIZE)
      const topics = yield* storage.expiredTopics(className, cutoff, Math.max(1, options?.topicLimit ?? 1000))
      let events = 0
      for (const topic of topics) {
        const pruneTopic = Effect.gen(function*() {
          for (;;) {
            const { floor, pruned } = yield* storage.pruneBatch(topic, cutoff, batchSize)
            floors.set(topic, floor)
            events += pruned
            if (pruned < batchSize) break
          }
        })
        // Each batch is its own transaction: what a failing topic pruned before it failed stays pruned.
        yield* pruneTopic.pipe(Effect.catchAll((error) => {
          failedTopics.push(topic)
          Metrics.retentionPruneFailures.unsafeUpdate(1, [])
          return Effect.logWarning(`khala retention: pruning ${topic} failed; the next run retries it`, error)
        }))
      }
      return { topicClass: className, topics: topics.length, events, floors, failedTopics }
    })

  const pruneAll = (options?: PruneOptions) => Effect.forEach(registry.classes, (c) => pruneClass(c.name, options))

  return {
    pruneClass,
    pruneAll,
    run: (interval, options) =>
      pruneAll(options).pipe(
        Effect.tap((reports) => Effect.logDebug("khala retention", reports.map((r) => ({ class: r.topicClass, topics: r.topics, events: r.events, failed: r.failedTopics.length })))),
        Effect.catchAll((error) => Effect.logWarning("khala retention run failed", error)),
        Effect.repeat(Schedule.spaced(Duration.decode(interval))),
        Effect.zipRight(Effect.never)
      )
  }
})

export const layer: Layer.Layer<Retention, never, KhalaStorage> = Layer.effect(Retention, make)
