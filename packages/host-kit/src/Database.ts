// The database of a host: real Postgres when DATABASE_URL is set, otherwise embedded PGlite in a
// data directory (default `.data/<plane>`), so a host runs with no database server and keeps its
// state across restarts. Both give the same SqlClient (and SqlNotify for LISTEN/NOTIFY).
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import { PgliteClient, SqlNotify } from "@openagents/sql-pglite"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

export interface DatabaseSettings {
  readonly url: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly maxConnections: number
}

/** DATABASE_URL (optional), DATA_DIR (default `.data/<plane>`), DATABASE_MAX_CONNECTIONS (default 10). */
export const config = (plane: string): Config.Config<DatabaseSettings> =>
  Config.all({
    url: Config.option(Config.redacted("DATABASE_URL")).pipe(
      Config.validate({
        message: "DATABASE_URL must be a postgres:// or postgresql:// URL",
        validation: (url) => Option.match(url, { onNone: () => true, onSome: (u) => /^postgres(ql)?:\/\//.test(Redacted.value(u)) })
      })
    ),
    dataDir: Config.string("DATA_DIR").pipe(Config.withDefault(`.data/${plane}`)),
    maxConnections: Config.integer("DATABASE_MAX_CONNECTIONS").pipe(
      Config.withDefault(10),
      Config.validate({ message: "DATABASE_MAX_CONNECTIONS must be between 1 and 1000", validation: (n) => n >= 1 && n <= 1000 })
    )
  })

export const layer = (settings: DatabaseSettings): Layer.Layer<SqlClient.SqlClient | SqlNotify.SqlNotify, SqlError> => {
  const client = Option.match(settings.url, {
    onNone: () =>
      PgliteClient.layer({ dataDir: settings.dataDir }).pipe(
        Layer.tap(() => Effect.logInfo(`database: embedded PGlite in ${settings.dataDir}`))
      ),
    onSome: (url) =>
      PgClient.layer({ url, maxConnections: settings.maxConnections }).pipe(
        Layer.tap(() => Effect.logInfo(`database: Postgres at ${redactUrl(Redacted.value(url))}`))
      )
  })
  return Layer.provideMerge(SqlNotify.layer, client)
}

/** Read the settings for `plane` from the environment and build the layer. */
export const layerConfig = (plane: string): Layer.Layer<SqlClient.SqlClient | SqlNotify.SqlNotify, SqlError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(config(plane), layer))

/** A URL with its password replaced, for logs. */
export const redactUrl = (url: string): string => {
  try {
    const u = new URL(url)
    if (u.password) u.password = "***"
    return u.toString()
  } catch {
    return "<invalid url>"
  }
}
