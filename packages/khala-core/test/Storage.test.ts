// The conformance suite on every adapter: in memory, SQL on embedded PGlite, SQL on Postgres.
import * as SqlClient from "@effect/sql/SqlClient"
import { MemoryStorage, SqlStorage } from "@openagents/khala-core"
import { JournalSuite } from "@openagents/khala-core/testing/vitest"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

JournalSuite.run("memory", MemoryStorage.layerStorage, { propertyRuns: 100 })

for (const engine of SqlTesting.engines()) {
  JournalSuite.run(`sql on ${engine.name}`, SqlStorage.layerStorage.pipe(Layer.provideMerge(engine.layer)), {
    concurrent: engine.concurrent,
    propertyRuns: 30,
    tamper: (table, topic, docKey, payload) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`UPDATE ${sql(`runtime.${table}`)} SET payload = ${JSON.stringify(payload)}::jsonb WHERE topic = ${topic} AND doc_key = ${docKey}`)
  })
}
