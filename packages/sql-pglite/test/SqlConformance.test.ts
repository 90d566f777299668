// One suite, every engine: the SQL behaviour the planes rely on must be identical on embedded
// PGlite and on real Postgres (TEST_DATABASE_URL). Each engine gets a fresh database.
import { describe, expect, layer } from "@effect/vitest"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { SqlNotify } from "@openagents/sql-pglite"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Layer from "effect/Layer"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"

const migrations = {
  "0001_create_accounts": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`CREATE TABLE accounts (
      id bigserial PRIMARY KEY,
      name text UNIQUE NOT NULL,
      balance bigint NOT NULL DEFAULT 0,
      meta jsonb,
      digest bytea,
      created_at timestamptz NOT NULL DEFAULT now()
    )`),
  // A multi-statement script: runs through the simple protocol on both engines.
  "0002_seed_and_sequences": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`
      INSERT INTO accounts (name, balance) VALUES ('alice', 100), ('bob', 0);
      CREATE TABLE topic_sequences (topic text PRIMARY KEY, next_watermark bigint NOT NULL DEFAULT 0);
    `))
}

const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations) })

class Boom extends Error {}

const balance = (name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ balance: string }>`SELECT balance FROM accounts WHERE name = ${name}`.pipe(Effect.map((rows) => rows[0]?.balance))
  )

const deposit = (name: string, amount: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const [row] = yield* sql<{ balance: string }>`SELECT balance FROM accounts WHERE name = ${name} FOR UPDATE`
        // Yield between read and write so that, without the row lock, concurrent deposits would
        // read the same balance and lose updates.
        yield* Effect.sleep("2 millis")
        yield* sql`UPDATE accounts SET balance = ${Number(row!.balance) + amount} WHERE name = ${name}`
      })
    )
  )

for (const engine of SqlTesting.engines()) {
  describe(`SQL conformance on ${engine.name}`, () => {
    layer(Layer.provideMerge(SqlNotify.layer, engine.layer), { excludeTestServices: true })((it) => {
      it.effect("runs the migrations once, then reports nothing to run", () =>
        Effect.gen(function*() {
          expect(yield* migrate).toEqual([[1, "create_accounts"], [2, "seed_and_sequences"]])
          expect(yield* migrate).toEqual([])
        }))

      it.effect("INSERT … RETURNING returns the row with int8 as a string, jsonb parsed, bytea as bytes, timestamptz as Date", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const [row] = yield* sql<{ id: string; balance: string; meta: unknown; digest: Uint8Array; created_at: Date }>`
            INSERT INTO accounts ${sql.insert({ name: "carol", balance: "9007199254740993", meta: JSON.stringify({ a: [1, "x"] }), digest: new Uint8Array([1, 2, 255]) })}
            RETURNING id, balance, meta, digest, created_at`
          expect(typeof row!.id).toBe("string")
          expect(row!.balance).toBe("9007199254740993")
          expect(row!.meta).toEqual({ a: [1, "x"] })
          expect(row!.digest).toBeInstanceOf(Uint8Array)
          expect([...row!.digest]).toEqual([1, 2, 255])
          expect(row!.created_at).toBeInstanceOf(Date)
          const [count] = yield* sql<{ n: string }>`SELECT count(*) AS n FROM accounts`
          expect(count!.n).toBe("3")
        }))

      it.effect("a failed transaction rolls back everything it wrote", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const exit = yield* sql.withTransaction(
            Effect.gen(function*() {
              yield* sql`UPDATE accounts SET balance = balance + 50 WHERE name = 'alice'`
              yield* sql`INSERT INTO accounts ${sql.insert({ name: "dave" })}`
              return yield* Effect.fail(new Boom())
            })
          ).pipe(Effect.exit)
          expect(Exit.isFailure(exit)).toBe(true)
          expect(yield* balance("alice")).toBe("100")
          expect(yield* balance("dave")).toBeUndefined()
        }))

      it.effect("a nested transaction rolls back to its savepoint and the outer one commits", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql.withTransaction(
            Effect.gen(function*() {
              yield* sql`UPDATE accounts SET balance = balance + 1 WHERE name = 'bob'`
              yield* sql.withTransaction(
                Effect.zipRight(sql`UPDATE accounts SET balance = balance + 1000 WHERE name = 'bob'`, Effect.fail(new Boom()))
              ).pipe(Effect.ignore)
            })
          )
          expect(yield* balance("bob")).toBe("1")
        }))

      it.effect("a unique violation is a SqlError carrying SQLSTATE 23505, and ON CONFLICT resolves it", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const error = yield* Effect.flip(sql`INSERT INTO accounts ${sql.insert({ name: "alice" })}`)
          expect(error).toBeInstanceOf(SqlError)
          expect((error.cause as { code?: string }).code).toBe("23505")
          const nothing = yield* sql`INSERT INTO accounts ${sql.insert({ name: "alice" })} ON CONFLICT (name) DO NOTHING RETURNING id`
          expect(nothing).toEqual([])
          const [upserted] = yield* sql<{ balance: string; inserted: boolean }>`
            INSERT INTO accounts ${sql.insert({ name: "alice", balance: 7 })}
            ON CONFLICT (name) DO UPDATE SET balance = accounts.balance + EXCLUDED.balance
            RETURNING balance, (xmax = 0) AS inserted`
          expect(upserted).toEqual({ balance: "107", inserted: false })
          yield* sql`UPDATE accounts SET balance = 100 WHERE name = 'alice'`
        }))

      it.effect("UPDATE … RETURNING allocates a dense per-topic sequence, and a rolled-back allocation leaves no gap", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const next = (topic: string) =>
            Effect.gen(function*() {
              yield* sql`INSERT INTO topic_sequences (topic) VALUES (${topic}) ON CONFLICT DO NOTHING`
              const [row] = yield* sql<{ next_watermark: string }>`
                UPDATE topic_sequences SET next_watermark = next_watermark + 1 WHERE topic = ${topic} RETURNING next_watermark`
              return row!.next_watermark
            })
          expect(yield* sql.withTransaction(next("t"))).toBe("1")
          yield* sql.withTransaction(Effect.zipRight(next("t"), Effect.fail(new Boom()))).pipe(Effect.ignore)
          expect(yield* sql.withTransaction(next("t"))).toBe("2")
        }))

      it.effect("SELECT … FOR UPDATE serialises 20 concurrent read-modify-write transactions without losing one", () =>
        Effect.gen(function*() {
          yield* Effect.all(Array.from({ length: 20 }, () => deposit("bob", 5)), { concurrency: "unbounded" })
          expect(yield* balance("bob")).toBe("101")
        }))

      it.effect("LISTEN receives a pg_notify sent after commit, and not one sent in a rolled-back transaction", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const notify = yield* SqlNotify.SqlNotify
          const received = yield* notify.listen("khala_wake").pipe(Stream.take(2), Stream.runCollect, Effect.fork)
          yield* Effect.sleep("200 millis") // LISTEN is asynchronous on node-pg
          yield* sql.withTransaction(Effect.zipRight(sql`SELECT pg_notify('khala_wake', 'rolled-back')`, Effect.fail(new Boom()))).pipe(Effect.ignore)
          yield* sql.withTransaction(sql`SELECT pg_notify('khala_wake', 'first')`)
          yield* notify.notify("khala_wake", "second")
          const payloads = yield* Fiber.join(received).pipe(Effect.timeout("5 seconds"))
          expect([...payloads]).toEqual(["first", "second"])
        }))
    })
  })
}
