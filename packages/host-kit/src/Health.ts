// `/healthz`: 200 {"status":"ok","service","version","checks":{…}} when every check passes,
// 503 with the failing checks otherwise. Checks are effects with a timeout (default 2 s).
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

export type Check = Effect.Effect<unknown, unknown>

export interface HealthOptions {
  readonly service: string
  readonly version: string
  readonly checks?: Readonly<Record<string, Check>>
  readonly timeout?: Duration.DurationInput
}

export const response = (options: HealthOptions) =>
  Effect.gen(function*() {
    const entries = Object.entries(options.checks ?? {})
    const results = yield* Effect.forEach(
      entries,
      ([name, check]) =>
        check.pipe(
          Effect.timeoutFail({ duration: options.timeout ?? Duration.seconds(2), onTimeout: () => new Error("timed out") }),
          Effect.match({
            onFailure: (e) => [name, { ok: false, error: e instanceof Error ? e.message : String(e) }] as const,
            onSuccess: () => [name, { ok: true }] as const
          })
        ),
      { concurrency: "unbounded" }
    )
    const ok = results.every(([, r]) => r.ok)
    return yield* HttpServerResponse.json(
      { status: ok ? "ok" : "unavailable", service: options.service, version: options.version, checks: Object.fromEntries(results) },
      { status: ok ? 200 : 503 }
    )
  })

/** A check that the SqlClient answers `SELECT 1`. */
export const database: Effect.Effect<Check, never, SqlClient.SqlClient> = Effect.map(SqlClient.SqlClient, (sql) => sql`SELECT 1`)
