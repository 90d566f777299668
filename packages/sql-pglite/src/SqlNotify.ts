// LISTEN/NOTIFY over whichever Postgres engine provides the SqlClient: @effect/sql-pg's PgClient
// or this package's PgliteClient (both expose `listen`). `notify` always goes through
// `SELECT pg_notify(…)`: it takes bind parameters, works inside a transaction (the notification
// is delivered at commit and dropped on rollback), and avoids PgClient.notify, which sends
// `NOTIFY ch, $1` and is rejected by Postgres (sql-pg 0.53).
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Stream from "effect/Stream"

export interface SqlNotifyService {
  /** Notification payloads on `channel`, for as long as the stream runs. */
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
  /** Send `payload` on `channel`; inside a transaction it is delivered only if that commits. */
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, SqlError>
}

export class SqlNotify extends Context.Tag("@openagents/sql-pglite/SqlNotify")<SqlNotify, SqlNotifyService>() {}

interface Listening {
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
}

const canListen = (sql: SqlClient.SqlClient): sql is SqlClient.SqlClient & Listening =>
  typeof (sql as Partial<Listening>).listen === "function"

export const make: Effect.Effect<SqlNotifyService, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if (!canListen(sql)) {
    return yield* Effect.dieMessage("SqlNotify needs a Postgres SqlClient with listen(): @effect/sql-pg PgClient or PgliteClient")
  }
  return {
    listen: (channel) => sql.listen(channel),
    notify: (channel, payload) => Effect.asVoid(sql`SELECT pg_notify(${channel}, ${payload})`)
  }
})

export const layer: Layer.Layer<SqlNotify, never, SqlClient.SqlClient> = Layer.effect(SqlNotify, make)
