// Test support: the SQL engines a suite should run against. PGlite (in memory) always; real
// Postgres when TEST_DATABASE_URL is set, each layer on a database of its own that is created
// when the layer is built and dropped when it is released. A conformance suite is written once
// against `SqlClient` and called once per engine:
//
//   for (const engine of SqlTesting.engines()) describe(engine.name, () => suite(engine))
import * as SqlClient from "@effect/sql/SqlClient"
import { type SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as PgliteClient from "./PgliteClient.js"

export interface SqlEngine {
  readonly name: "pglite" | "postgres"
  /** A fresh, empty database. */
  readonly layer: Layer.Layer<SqlClient.SqlClient, SqlError>
  /**
   * Whether transactions really run concurrently. PGlite serialises them, so tests of locking
   * and lost updates only mean something where this is true.
   */
  readonly concurrent: boolean
  /** Postgres only: the connection URL of the fresh database, for tests that need a second client. */
  readonly url?: string
}

export const TEST_DATABASE_URL_ENV = "TEST_DATABASE_URL"

export const postgresUrl = (): string | undefined => {
  const url = process.env[TEST_DATABASE_URL_ENV]
  return url === undefined || url.trim() === "" ? undefined : url.trim()
}

let counter = 0
const freshName = () => `oa_test_${process.pid}_${Date.now().toString(36)}_${(counter++).toString(36)}`

const withDatabase = (adminUrl: string, name: string) => {
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

const adminStatement = (adminUrl: string, statement: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(adminUrl), maxConnections: 1 }))
  )

/**
 * A layer on a new database of the Postgres server at `adminUrl`, dropped on release. The
 * database name is fixed when this function is called, so `url` can be handed to other clients.
 */
export const freshPostgres = (adminUrl: string): { readonly layer: Layer.Layer<SqlClient.SqlClient, SqlError>; readonly url: string } => {
  const name = freshName()
  const url = withDatabase(adminUrl, name)
  const database = Layer.scopedDiscard(
    Effect.acquireRelease(
      // Test databases do not need commit durability: skipping the WAL flush per commit keeps
      // sequential-write tests fast without changing any semantics they check.
      Effect.zipRight(
        adminStatement(adminUrl, `CREATE DATABASE "${name}"`),
        adminStatement(adminUrl, `ALTER DATABASE "${name}" SET synchronous_commit = off`)
      ),
      () => adminStatement(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).pipe(Effect.orDie)
    )
  )
  return { layer: PgClient.layer({ url: Redacted.make(url), maxConnections: 20 }).pipe(Layer.provide(database)), url }
}

/** The engines available in this environment: PGlite always, Postgres when configured. */
export const engines = (): ReadonlyArray<SqlEngine> => {
  const result: Array<SqlEngine> = [
    { name: "pglite", layer: PgliteClient.layer(), concurrent: false }
  ]
  const adminUrl = postgresUrl()
  if (adminUrl !== undefined) {
    const { layer, url } = freshPostgres(adminUrl)
    result.push({ name: "postgres", layer, concurrent: true, url })
  }
  return result
}
