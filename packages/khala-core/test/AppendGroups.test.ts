// Group commit of concurrent appends to one topic (storage/appendGroups.ts), against a fake
// statement that records what it was sent: which appends merge, how results are split back,
// and what a failure or an interruption does.
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as AppendGroups from "../src/storage/appendGroups.js"
import type { JournalEvent, PreparedEntry } from "../src/Storage.js"

const entry = (docKey: string): PreparedEntry => ({ docKey, docVersion: 1n, payload: "{}", document: "{}", documentUtf8: new TextEncoder().encode("{}"), payloadHash: new Uint8Array(32), payloadBytes: 2 })

/** A fake statement: allocates watermarks per topic, records each call, waits for `gate` to be opened for each call. */
const fake = Effect.sync(() => {
  const calls: Array<{ topic: string; keys: Array<string> }> = []
  const heads = new Map<string, bigint>()
  const gates: Array<Deferred.Deferred<void, string>> = []
  const run = (topic: string, entries: ReadonlyArray<PreparedEntry>) =>
    Effect.gen(function*() {
      calls.push({ topic, keys: entries.map((e) => e.docKey) })
      const gate = yield* Deferred.make<void, string>()
      gates.push(gate)
      yield* Deferred.await(gate)
      let head = heads.get(topic) ?? 0n
      const events = entries.map((e): JournalEvent => ({
        topic,
        watermark: ++head,
        docKey: e.docKey,
        docVersion: e.docVersion,
        payload: e.payload,
        payloadHash: e.payloadHash,
        payloadBytes: e.payloadBytes,
        insertedAt: new Date(0)
      }))
      heads.set(topic, head)
      return events
    })
  /** Open the gate of call `i` (success or failure), once it exists. */
  const open = (i: number, failure?: string) =>
    Effect.gen(function*() {
      while (gates.length <= i) yield* Effect.sleep("1 millis")
      yield* failure === undefined ? Deferred.succeed(gates[i]!, undefined) : Deferred.fail(gates[i]!, failure)
    })
  return { run, calls, open }
})

const keysOf = (events: ReadonlyArray<JournalEvent>) => events.map((e) => [e.watermark, e.docKey])

describe("AppendGroups", () => {
  it.live("sends the appends that arrive during a statement as the next one, and gives each caller its own events", () =>
    Effect.gen(function*() {
      const f = yield* fake
      const append = AppendGroups.make(f.run)
      const first = yield* Effect.fork(append("t", [entry("a")]))
      yield* Effect.yieldNow()
      const rest = yield* Effect.forEach([["b1", "b2"], ["c"], ["d"]], (keys) => Effect.fork(append("t", keys.map(entry))))
      const other = yield* Effect.fork(append("u", [entry("x")]))
      yield* Effect.yieldNow()
      // Another topic does not wait.
      expect(f.calls).toEqual([{ topic: "t", keys: ["a"] }, { topic: "u", keys: ["x"] }])
      yield* f.open(0)
      yield* f.open(1)
      yield* f.open(2)
      expect(keysOf(yield* Fiber.join(first))).toEqual([[1n, "a"]])
      expect(yield* Effect.forEach(rest, (r) => Effect.map(Fiber.join(r), keysOf))).toEqual([[[2n, "b1"], [3n, "b2"]], [[4n, "c"]], [[5n, "d"]]])
      expect(keysOf(yield* Fiber.join(other))).toEqual([[1n, "x"]])
      expect(f.calls[2]).toEqual({ topic: "t", keys: ["b1", "b2", "c", "d"] })
      // Idle again: the next append goes out at once, alone.
      const again = yield* Effect.fork(append("t", [entry("e")]))
      yield* f.open(3)
      expect(keysOf(yield* Fiber.join(again))).toEqual([[6n, "e"]])
      expect(f.calls).toHaveLength(4)
    }))

  it.live("fails every append of a failed group with its error, and carries on with the next", () =>
    Effect.gen(function*() {
      const f = yield* fake
      const append = AppendGroups.make(f.run)
      const first = yield* Effect.fork(append("t", [entry("a")]))
      yield* Effect.yieldNow()
      const group = yield* Effect.forEach(["b", "c"], (k) => Effect.fork(append("t", [entry(k)])))
      yield* f.open(0)
      yield* Fiber.join(first)
      // b and c are in flight together; d arrives meanwhile and goes in the next statement.
      const later = yield* Effect.fork(append("t", [entry("d")]))
      yield* f.open(1, "boom")
      for (const g of group) expect(yield* Fiber.await(g)).toEqual(Exit.fail("boom"))
      yield* f.open(2)
      expect(keysOf(yield* Fiber.join(later))).toEqual([[2n, "d"]])
      expect(f.calls.map((c) => c.keys)).toEqual([["a"], ["b", "c"], ["d"]])
    }))

  it.live("drops an append interrupted while queued", () =>
    Effect.gen(function*() {
      const f = yield* fake
      const append = AppendGroups.make(f.run)
      const first = yield* Effect.fork(append("t", [entry("a")]))
      yield* Effect.yieldNow()
      const dropped = yield* Effect.fork(append("t", [entry("b")]))
      const kept = yield* Effect.fork(append("t", [entry("c")]))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(dropped)
      yield* f.open(0)
      yield* f.open(1)
      yield* Fiber.join(first)
      expect(keysOf(yield* Fiber.join(kept))).toEqual([[2n, "c"]])
      expect(f.calls.map((c) => c.keys)).toEqual([["a"], ["c"]])
    }))

  it.live("splits a queue larger than one group into several statements, in arrival order", () =>
    Effect.gen(function*() {
      const f = yield* fake
      const append = AppendGroups.make(f.run)
      const first = yield* Effect.fork(append("t", [entry("a")]))
      yield* Effect.yieldNow()
      const size = AppendGroups.MAX_GROUP_ENTRIES / 2
      const queued = yield* Effect.forEach([0, 1, 2], (b) => Effect.fork(append("t", Array.from({ length: size }, (_, i) => entry(`${b}:${i}`)))))
      yield* Effect.yieldNow()
      for (let i = 0; i < 3; i++) yield* f.open(i)
      yield* Fiber.join(first)
      const results = yield* Effect.forEach(queued, Fiber.join)
      expect(f.calls.map((c) => c.keys.length)).toEqual([1, 2 * size, size])
      expect(results.flat().map((e) => e.watermark)).toEqual(Array.from({ length: 3 * size }, (_, i) => BigInt(i + 2)))
    }))
})
