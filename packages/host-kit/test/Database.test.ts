import * as SqlClient from "@effect/sql/SqlClient"
import { Database } from "@openagents/host-kit"
import { SqlNotify } from "@openagents/sql-pglite"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const dir = mkdtempSync(join(tmpdir(), "host-kit-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const withEnv = (env: Record<string, string>) => Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const count = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* SqlNotify.SqlNotify
  yield* sql`CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY)`
  yield* sql`INSERT INTO notes DEFAULT VALUES`
  const [row] = yield* sql<{ n: string }>`SELECT count(*) AS n FROM notes`
  return row!.n
})

describe("Database", () => {
  it("uses embedded PGlite in DATA_DIR when DATABASE_URL is unset, and keeps data across restarts", async () => {
    const env = withEnv({ DATA_DIR: join(dir, "plane") })
    const run = () => Effect.runPromise(count.pipe(Effect.provide(Database.layerConfig("runtime").pipe(Layer.provide(env)))))
    expect(await run()).toBe("1")
    expect(await run()).toBe("2")
  })

  it("refuses a DATABASE_URL that is not a postgres URL, with a clear message", async () => {
    const env = withEnv({ DATABASE_URL: "mysql://x" })
    const error = await Effect.runPromise(Effect.flip(count.pipe(Effect.provide(Database.layerConfig("runtime").pipe(Layer.provide(env))))))
    expect(String(error)).toContain("DATABASE_URL must be a postgres:// or postgresql:// URL")
  })

  it("redacts passwords in logged URLs", () => {
    expect(Database.redactUrl("postgres://u:secret@h:5432/db")).toBe("postgres://u:***@h:5432/db")
  })

  const url = process.env["TEST_DATABASE_URL"]
  it.runIf(url !== undefined)("uses Postgres when DATABASE_URL is set", async () => {
    const env = withEnv({ DATABASE_URL: url! })
    const n = await Effect.runPromise(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ v: string }>`SELECT current_setting('server_version_num') AS v`
        return row!.v
      }).pipe(Effect.provide(Database.layerConfig("runtime").pipe(Layer.provide(env))))
    )
    expect(Number(n)).toBeGreaterThan(100000)
  })
})
