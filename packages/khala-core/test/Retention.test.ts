// Retention runs over every topic of every class; one topic whose prune fails must not stop it
// for the others (a failing topic aborted the whole run; found by review, failed before the fix).
import { describe, expect, it } from "@effect/vitest"
import { Journal, Metrics, Retention, Topic } from "@openagents/khala-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { JournalStorageError } from "../src/Errors.js"
import { KhalaStorage } from "../src/Storage.js"
import * as MemoryStorage from "../src/storage/memory.js"

const broken = "runtime.run_summaries:user:broken"

/** Memory storage whose prune of `broken` fails, as a lock timeout or a refused constraint would. */
const storage = Layer.effect(KhalaStorage, Effect.map(MemoryStorage.make, (s) => ({
  ...s,
  pruneBatch: (topic: string, cutoff: Date, batchSize: number) =>
    topic === broken ? Effect.fail(new JournalStorageError({ operation: "prune", cause: "check violation" })) : s.pruneBatch(topic, cutoff, batchSize)
})))

const ports = Layer.mergeAll(Retention.layer, Journal.layer).pipe(
  Layer.provideMerge(storage),
  Layer.provide(Layer.succeed(Topic.TopicClasses, Topic.makeRegistry(Topic.defaultClasses)))
)

describe("Retention", () => {
  it.effect("a topic whose prune fails is reported and counted, and every other topic is still pruned", () =>
    Effect.gen(function*() {
      const journal = yield* Journal.Journal
      const retention = yield* Retention.Retention
      const docs = [{ docKey: "d", docVersion: 1, payload: {} }]
      const topics = ["runtime.run_summaries:user:a", broken, "runtime.run_summaries:user:z"]
      for (const topic of topics) yield* journal.append(topic, docs)
      yield* journal.append("runtime.notifications:user:a", docs)
      const failuresBefore = (yield* Metric.value(Metrics.retentionPruneFailures)).count
      const reports = yield* retention.pruneAll({ now: new Date(Date.now() + 30 * 86_400_000) })
      const summaries = reports.find((r) => r.topicClass === "runtime.run_summaries")!
      expect(summaries.failedTopics).toEqual([broken])
      expect([...summaries.floors.entries()].sort()).toEqual([["runtime.run_summaries:user:a", 1n], ["runtime.run_summaries:user:z", 1n]])
      expect(reports.find((r) => r.topicClass === "runtime.notifications")!.floors.get("runtime.notifications:user:a")).toBe(1n)
      expect(yield* journal.position(broken)).toEqual({ head: 1n, floor: 0n })
      expect((yield* Metric.value(Metrics.retentionPruneFailures)).count - failuresBefore).toBe(1)
    }).pipe(Effect.provide(ports)))
})
