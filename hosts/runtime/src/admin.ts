// Operator commands on the runtime's database (the same DATABASE_URL / DATA_DIR as the host; with
// PGlite, stop the host first — one process at a time may open its data directory):
//
//   npm run admin --workspace hosts/runtime -- verify   --run-id <id> | --worker-id <id>
//   npm run admin --workspace hosts/runtime -- reproject --run-id <id> | --worker-id <id> | --all
//   npm run admin --workspace hosts/runtime -- parity
//
// verify recomputes an entity's summary (and, for runs, the hash chain) from its event log;
// reproject rebuilds summaries from the log where they differ (writing them to Khala like any
// projection); parity compares every checkpoint with its read-model document and the authority.
// Output is one JSON document; the exit code is 1 when drift or parity issues were found, 2 on
// bad usage.
import { Checkpoints, Journal, Notifier, Publisher, ReadModels, SqlStorage, Topic } from "@openagents/khala-core"
import { Database } from "@openagents/host-kit"
import { Migrations, Runs, Workers } from "@openagents/runtime-core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

const usage = "usage: admin verify (--run-id <id> | --worker-id <id>) | reproject (--run-id <id> | --worker-id <id> | --all) | parity"

const [command, flag, value] = process.argv.slice(2)

const bigints = (_: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v)
const print = (result: unknown) => console.log(JSON.stringify(result, bigints, 2))

const program = Effect.gen(function*() {
  const runs = yield* Runs.Runs
  const workers = yield* Workers.Workers
  const checkpoints = yield* Checkpoints.Checkpoints
  const sql = yield* SqlClient.SqlClient
  switch (command) {
    case "verify": {
      if (flag === "--run-id" && value) {
        const v = yield* runs.verify(value)
        print(v)
        return v.drift ? 1 : 0
      }
      if (flag === "--worker-id" && value) {
        const v = yield* workers.verify(value)
        print(v)
        return v.drift ? 1 : 0
      }
      break
    }
    case "reproject": {
      if (flag === "--run-id" && value) return (print(yield* runs.reproject(value)), 0)
      if (flag === "--worker-id" && value) return (print(yield* workers.reproject(value)), 0)
      if (flag === "--all") return (print({ runs: yield* runs.reprojectAll, workers: yield* workers.reprojectAll }), 0)
      break
    }
    case "parity": {
      const latest = (table: string, key: string) => (id: string) =>
        sql<{ latest_seq: string }>`SELECT latest_seq FROM ${sql(table)} WHERE ${sql(key)} = ${id}`.pipe(
          Effect.map((rows) => (rows[0] === undefined ? undefined : BigInt(rows[0].latest_seq))),
          Effect.orElseSucceed(() => undefined)
        )
      const reports = [
        yield* checkpoints.parity(Runs.PROJECTION_NAME, { latestSeq: latest("runtime.runs", "run_id") }),
        yield* checkpoints.parity(Workers.PROJECTION_NAME, { latestSeq: latest("runtime.codex_workers", "worker_id") })
      ]
      print(reports.map((r) => ({ projection: r.projectionName, checked: r.checked, mismatchRate: r.mismatchRate, issues: r.issues.map((i) => ({ kind: i.kind, entityId: i.checkpoint.entityId })) })))
      return reports.some((r) => r.issues.length > 0) ? 1 : 0
    }
  }
  console.error(usage)
  return 2
})

const services = Layer.mergeAll(Runs.layer, Workers.layer).pipe(
  Layer.provideMerge(Layer.effectDiscard(Migrations.migrate)),
  Layer.provideMerge(Layer.mergeAll(Checkpoints.layer, ReadModels.layer, Publisher.layer)),
  Layer.provideMerge(Layer.mergeAll(Journal.layer, Notifier.layerMemory)),
  Layer.provideMerge(SqlStorage.layerStorage),
  Layer.provideMerge(Layer.succeed(Topic.TopicClasses, Topic.makeRegistry(Topic.defaultClasses))),
  Layer.provideMerge(Database.layerConfig("runtime")),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
)

Effect.runPromise(program.pipe(Effect.provide(services), Effect.scoped)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof Error ? error.message : String(error))
    process.exit(1)
  }
)
