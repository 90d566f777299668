// The README's example, run as written.
import { Journal, MemoryStorage } from "@openagents/khala-core"
import { Effect } from "effect"
import { expect, it } from "vitest"

it("README example: publish then read from watermark 0", async () => {
  const program = Effect.gen(function*() {
    const journal = yield* Journal.Journal
    const topic = "runtime.run_summaries:user:42"
    yield* journal.publish(topic, [{ docKey: "runtime/run_summary:run_1", docVersion: 1, payload: { status: "running" } }])
    const batch = yield* journal.read(topic, 0n)
    return batch.events.map((e) => [e.watermark, e.docKey, e.payload])
  })
  expect(await Effect.runPromise(program.pipe(Effect.provide(MemoryStorage.layer)))).toEqual([[1n, "runtime/run_summary:run_1", `{"status":"running"}`]])
})
