// The demo worker adapter: each tick appends an output line to every running worker with adapter
// "demo" (and a heartbeat when the last one is old), through the Workers service — so both Khala
// topics get the events — and leaves other adapters and stopped workers alone. The layer drives
// it on a schedule.
import { describe, expect, layer } from "@effect/vitest"
import { Journal } from "@openagents/khala-core"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DemoWorker from "../src/DemoWorker.js"
import * as Projection from "../src/Projection.js"
import * as Workers from "../src/Workers.js"
import { runtimeLayer } from "./support.js"

const ada = { userId: "demo-ada" }
let n = 0
const freshWorker = () => `demo_${Date.now().toString(36)}_${n++}`
const types = (id: string) => Effect.flatMap(Workers.Workers, (w) => w.events(ada, id, 0n, 100)).pipe(Effect.map((es) => es.map((e) => e.eventType)))

for (const engine of SqlTesting.engines()) {
  describe(`demo worker on ${engine.name}`, () => {
    layer(runtimeLayer(engine.layer), { excludeTestServices: true })((it) => {
      it.effect("drives running demo workers only: an output line per tick, a heartbeat when the last one is old", () =>
        Effect.gen(function*() {
          const workers = yield* Workers.Workers
          const journal = yield* Journal.Journal
          const [demo, stopped, other] = [freshWorker(), freshWorker(), freshWorker()]
          yield* workers.create(ada, { workerId: demo, adapter: DemoWorker.ADAPTER })
          yield* workers.create(ada, { workerId: stopped, adapter: DemoWorker.ADAPTER })
          yield* workers.stop(ada, stopped)
          yield* workers.create(ada, { workerId: other })

          const options = { intervalMs: 1_000, heartbeatEveryMs: 60_000 }
          expect(yield* DemoWorker.tick(options)).toBeGreaterThanOrEqual(1)
          yield* DemoWorker.tick(options)
          expect(yield* types(demo)).toEqual(["worker.started", "worker.heartbeat", "worker.output", "worker.output"])
          expect(yield* types(stopped)).toEqual(["worker.started", "worker.stopped"])
          expect(yield* types(other)).toEqual(["worker.started"])

          // The lines are numbered by their seq, and reach the worker's Khala event topic.
          const stream = (yield* journal.read(Projection.workerEventsTopic(demo), 0n)).events
          expect(stream.map((e) => JSON.parse(e.payload!).payload?.text ?? null)).toEqual([null, null, DemoWorker.line(3), DemoWorker.line(4)])
          expect((yield* workers.get(ada, demo)).heartbeatState).toBe("fresh")
          yield* workers.stop(ada, demo)
        }))

      it.effect("the layer keeps appending on its schedule until its scope closes", () =>
        Effect.gen(function*() {
          const workers = yield* Workers.Workers
          const id = freshWorker()
          yield* workers.create(ada, { workerId: id, adapter: DemoWorker.ADAPTER })
          yield* Effect.scoped(Effect.gen(function*() {
            yield* Layer.buildWithScope(DemoWorker.layer({ intervalMs: 100 }), yield* Effect.scope)
            for (let i = 0; i < 100 && (yield* workers.get(ada, id)).latestSeq < 5n; i++) yield* Effect.sleep(50)
          }))
          const after = (yield* workers.get(ada, id)).latestSeq
          expect(after).toBeGreaterThanOrEqual(5n)
          yield* Effect.sleep(300)
          expect((yield* workers.get(ada, id)).latestSeq).toBe(after)
          yield* workers.stop(ada, id)
        }))
    })
  })
}
