import { Checkpoints, Journal, Notifier, Publisher, ReadModels, SqlStorage } from "@openagents/khala-core"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { migrate } from "../src/migrations.js"
import * as Runs from "../src/Runs.js"
import * as Workers from "../src/Workers.js"

/** Khala (SQL) and the runtime's services over one SqlClient, migrated. */
export const runtimeLayer = (sql: Layer.Layer<SqlClient.SqlClient, SqlError>) => {
  const khala = Layer.mergeAll(Checkpoints.layer, ReadModels.layer, Publisher.layer).pipe(
    Layer.provideMerge(Layer.mergeAll(Journal.layer, Notifier.layerMemory)),
    Layer.provideMerge(SqlStorage.layerStorage)
  )
  const migrated = Layer.effectDiscard(migrate).pipe(Layer.provideMerge(khala))
  return Layer.mergeAll(Runs.layer, Workers.layer).pipe(Layer.provideMerge(migrated), Layer.provideMerge(sql))
}

export const run = <A, E, R>(effect: Effect.Effect<A, E, R>) => effect
