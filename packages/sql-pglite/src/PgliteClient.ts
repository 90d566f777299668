// An @effect/sql `SqlClient` over embedded PGlite (Postgres compiled to WASM), so that the same
// migrations and queries run on PGlite and on @effect/sql-pg.
//
// PGlite is one Postgres backend: one connection, one transaction at a time. Every statement
// takes the permit of a one-slot lock, and a transaction holds that permit from BEGIN to
// COMMIT/ROLLBACK; without it, a statement of another fiber would run inside someone else's
// transaction. The lock is FIFO (internal/fairLock.ts), so a fiber issuing statements in a loop
// cannot starve the others. The consequence is that PGlite can never exhibit a lock conflict or a lost
// update: concurrency and locking behaviour must be tested against real Postgres.
//
// Types are returned as node-pg returns them, so code written against one engine reads the
// other unchanged: int8 and numeric as strings, timestamptz as Date, json/jsonb parsed, bytea
// as a Uint8Array (node-pg's Buffer is one too).
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as Statement from "@effect/sql/Statement"
import { PGlite, types } from "@electric-sql/pglite"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { makeCompiler, PgliteJson } from "./internal/compiler.js"
import * as FairLock from "./internal/fairLock.js"

export const TypeId: unique symbol = Symbol.for("@openagents/sql-pglite/PgliteClient")
export type TypeId = typeof TypeId

export interface PgliteClient extends Client.SqlClient {
  readonly [TypeId]: TypeId
  readonly config: PgliteClientConfig
  /** The underlying PGlite instance, for what @effect/sql does not cover (dumps, extensions). */
  readonly pglite: PGlite
  /** A jsonb parameter, as `PgClient.json`. */
  readonly json: (value: unknown) => Fragment
  /** LISTEN on a channel; emits each notification payload (empty payloads included). */
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
  /** NOTIFY through `pg_notify`, which takes parameters (unlike `NOTIFY ch, $1`). */
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, SqlError>
}

export const PgliteClient = Context.GenericTag<PgliteClient>("@openagents/sql-pglite/PgliteClient")

export interface PgliteClientConfig {
  /**
   * Where the database lives: a directory path (created if missing; data survives restarts),
   * or undefined / "memory://" for an in-memory database.
   */
  readonly dataDir?: string | undefined
  /** Do not wait for the file system to flush after each query (faster, less durable). */
  readonly relaxedDurability?: boolean | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}

const asString = (value: string) => value

const attempt = <A>(message: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new SqlError({ cause, message }) })

export const make = (config: PgliteClientConfig = {}): Effect.Effect<PgliteClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const dataDir = config.dataDir === undefined || config.dataDir === "" ? "memory://" : config.dataDir
    const db = yield* Effect.acquireRelease(
      attempt(`PgliteClient: failed to open ${dataDir}`, () =>
        PGlite.create({
          dataDir,
          relaxedDurability: config.relaxedDurability ?? false,
          parsers: { [types.INT8]: asString, [types.NUMERIC]: asString }
        })),
      (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
    )

    const compiler = makeCompiler(config.transformQueryNames, config.transformJson)
    const transformRows = config.transformResultNames
      ? Statement.defaultTransforms(config.transformResultNames, config.transformJson).array
      : undefined

    // Parameterless statements use the simple protocol, like node-pg, so multi-statement
    // migration scripts work; a script's result is the list of its statements' rows.
    const run = (sql: string, params: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<any>, SqlError> =>
      params.length === 0
        ? Effect.map(
          attempt("Failed to execute statement", () => db.exec(sql)),
          (results) => (results.length === 1 ? results[0]!.rows : results.map((r) => r.rows))
        )
        : Effect.map(attempt("Failed to execute statement", () => db.query(sql, params as Array<unknown>)), (r) => r.rows)

    const connection: Connection = {
      execute: (sql, params, transform) => (transform ? Effect.map(run(sql, params), transform) : run(sql, params)),
      executeRaw: (sql, params) => attempt("Failed to execute statement", () => db.query(sql, params as Array<unknown>)),
      executeValues: (sql, params) =>
        Effect.map(
          attempt("Failed to execute statement", () => db.query<Array<unknown>>(sql, params as Array<unknown>, { rowMode: "array" })),
          (r) => r.rows
        ),
      executeUnprepared: (sql, params, transform) => connection.execute(sql, params, transform),
      // PGlite has no server-side cursor across calls: the rows are read at once, then streamed.
      executeStream: (sql, params, transform) => Stream.fromIterableEffect(connection.execute(sql, params, transform))
    }

    const permit = yield* FairLock.make
    const acquirer = Effect.uninterruptibleMask((restore) =>
      restore(permit.take).pipe(
        Effect.zipRight(Effect.addFinalizer(() => permit.release)),
        Effect.as(connection)
      )
    )
    const exclusive = <A, E>(effect: Effect.Effect<A, E>) => permit.withPermit(effect)

    const client = yield* Client.make({
      acquirer,
      transactionAcquirer: acquirer,
      compiler,
      spanAttributes: [
        ...(config.spanAttributes ? Object.entries(config.spanAttributes) : []),
        ["db.system.name", "postgresql"],
        ["db.namespace", dataDir]
      ],
      transformRows
    })

    return Object.assign(client, {
      [TypeId]: TypeId as TypeId,
      config,
      pglite: db,
      json: (value: unknown) => PgliteJson(value),
      listen: (channel: string) =>
        Stream.asyncPush<string, SqlError>((emit) =>
          Effect.acquireRelease(
            exclusive(attempt("Failed to listen", () => db.listen(channel, (payload) => emit.single(payload)))),
            (unlisten) => exclusive(Effect.promise(() => unlisten()).pipe(Effect.ignore))
          )
        ),
      notify: (channel: string, payload: string) =>
        exclusive(attempt("Failed to notify", () => db.query("SELECT pg_notify($1, $2)", [channel, payload]))).pipe(Effect.asVoid)
    })
  })

export const layer = (config: PgliteClientConfig = {}): Layer.Layer<PgliteClient | Client.SqlClient, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(config), (client) => Context.make(PgliteClient, client).pipe(Context.add(Client.SqlClient, client)))
  ).pipe(Layer.provide(Reactivity.layer))

export const layerConfig = (
  config: Config.Config.Wrap<PgliteClientConfig>
): Layer.Layer<PgliteClient | Client.SqlClient, ConfigError.ConfigError | SqlError> =>
  Layer.scopedContext(
    Config.unwrap(config).pipe(
      Effect.flatMap(make),
      Effect.map((client) => Context.make(PgliteClient, client).pipe(Context.add(Client.SqlClient, client)))
    )
  ).pipe(Layer.provide(Reactivity.layer))
