import { describe, expect, it } from "@effect/vitest"
import { Staleness, Topic } from "@openagents/khala-core"
import * as Effect from "effect/Effect"
import fc from "fast-check"

const registry = Topic.makeRegistry(Topic.defaultClasses)

describe("Topic", () => {
  it("parses owner-partitioned topics of every default class", () => {
    const parsed = registry.parse("runtime.run_summaries:user:42")
    expect(parsed).toMatchObject({ topic: "runtime.run_summaries:user:42", partition: "user", owner: "42" })
    expect(registry.parse("runtime.codex_worker_events:worker:w_7f3a.b~c-d")).toMatchObject({ owner: "w_7f3a.b~c-d" })
  })

  it.each([
    ["", "empty"],
    ["runtime.run_summaries", "expected <class>:<partition>:<id>"],
    ["runtime.run_summaries:user", "expected <class>:<partition>:<id>"],
    ["runtime.run_summaries:worker:42", "partitioned by user"],
    ["runtime.nope:user:42", "unknown topic class"],
    ["runtime.run_summaries:user:", "the id must be"],
    ["runtime.run_summaries:user:-42", "the id must be"],
    ["runtime.run_summaries:user:a/b", "the id must be"],
    ["runtime.run_summaries:user:a:b", "the id must be"],
    [`runtime.run_summaries:user:${"9".repeat(140)}`, "longer than 160"]
  ])("refuses %j (%s)", (topic, reason) => {
    const result = registry.parse(topic)
    expect("topicClass" in result).toBe(false)
    expect((result as { reason: string }).reason).toContain(reason)
  })

  it("property: every topic built from a class and a valid owner parses back to its parts", () => {
    const owner = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._~-]{0,40}$/)
    fc.assert(
      fc.property(fc.constantFrom(...Topic.defaultClasses), owner, (c, id) => {
        const parsed = registry.parse(`${c.name}:${c.partition}:${id}`)
        expect(parsed).toMatchObject({ owner: id, partition: c.partition, topicClass: c })
      })
    )
  })

  it.effect("builds topics with make, and custom classes replace the defaults", () =>
    Effect.gen(function*() {
      expect((yield* Topic.make("runtime.notifications", "7")).topic).toBe("runtime.notifications:user:7")
      const custom = yield* Topic.parse("acme.feeds:org:acme").pipe(
        Topic.withClasses([{ ...Topic.defaultClasses[0]!, name: "acme.feeds", partition: "org" }])
      )
      expect(custom.owner).toBe("acme")
      expect((yield* Effect.flip(Topic.parse("acme.feeds:org:acme"))).code).toBe("invalid_topic")
    }))

  it("refuses malformed class definitions", () => {
    const base = Topic.defaultClasses[0]!
    expect(() => Topic.makeRegistry([base, base])).toThrow(/defined twice/)
    expect(() => Topic.makeRegistry([{ ...base, name: "NoDots" }])).toThrow(/dotted/)
    expect(() => Topic.makeRegistry([{ ...base, maxPayloadBytes: 300 * 1024 }])).toThrow(/maxPayloadBytes/)
    expect(() => Topic.makeRegistry([{ ...base, readModelTable: "x; drop table" }])).toThrow(/identifier/)
    expect(() => Topic.makeRegistry([{ ...base, readModelTable: undefined }])).toThrow(/snapshot needs a read model/)
  })
})

describe("Staleness", () => {
  const summaries = registry.parse("runtime.run_summaries:user:1") as Topic.Topic
  const events = registry.parse("runtime.codex_worker_events:worker:w1") as Topic.Topic

  it("plans a snapshot for classes that have one and none for event streams", () => {
    const s1 = Staleness.check(summaries, { watermark: 0n }, { head: 10n, floor: 3n }, "ep_1")!
    const s2 = Staleness.check(events, { watermark: 0n }, { head: 5000n, floor: 0n }, "ep_1")!
    expect(s1.reasons).toEqual(["retention_floor_breach"])
    expect(s2.reasons).toEqual(["replay_budget_exceeded"])
    const plan = Staleness.snapshotPlan([{ topic: summaries, stale: s1 }, { topic: events, stale: s2 }])
    expect(plan.format).toBe("openagents.sync.snapshot.v1")
    expect(plan.topics[0]).toMatchObject({
      topic: "runtime.run_summaries:user:1",
      headWatermark: 10n,
      snapshot: { sourceTable: "runtime.sync_run_summaries", cadenceSeconds: 300, path: "/sync/v1/snapshot/runtime.run_summaries%3Auser%3A1" }
    })
    expect(plan.topics[1]).toEqual({ topic: "runtime.codex_worker_events:worker:w1", headWatermark: 5000n })
  })

  it("property: a cursor is fresh exactly when floor <= cursor <= head and head - cursor <= budget (same epoch)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 30_000n }), fc.bigInt({ min: 0n, max: 30_000n }), fc.bigInt({ min: 0n, max: 30_000n }), (a, b, cursor) => {
        const floor = a < b ? a : b
        const head = a < b ? b : a
        const fresh = cursor >= floor && cursor <= head && head - cursor <= 20_000n
        expect(Staleness.check(summaries, { watermark: cursor, epoch: "ep" }, { head, floor }, "ep") === undefined).toBe(fresh)
      })
    )
  })
})
