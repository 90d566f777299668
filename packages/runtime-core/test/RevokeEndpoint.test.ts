// The revocation endpoint's memory: a notice is remembered for the runtime's default TTL, or until
// its remember_until_ms when that is later (control's access tokens may live up to 24 h), capped at
// 8 days — on PGlite and (with TEST_DATABASE_URL) Postgres. The routes run with a short default
// TTL, so the default running out is seen in a test.
import { NodeHttpServer } from "@effect/platform-node"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import { InternalSignature } from "@openagents/host-kit"
import { TestServer } from "@openagents/khala-core/testing"
import { SqlNotify } from "@openagents/sql-pglite"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { createServer } from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Auth from "../src/Auth.js"
import * as RuntimeHost from "../src/RuntimeHost.js"
import * as RuntimeServer from "../src/RuntimeServer.js"
import { INTERNAL_KEY } from "./host-support.js"

const DEFAULT_TTL_MS = 400
const PATH = "/internal/v1/sync/sessions/revoke"

for (const engine of SqlTesting.engines()) {
  describe(`revocation endpoint memory (${engine.name})`, () => {
    let runtime: ManagedRuntime.ManagedRuntime<any, unknown>
    let baseUrl: string
    const run = <A>(effect: Effect.Effect<A, unknown, any>) => runtime.runPromise(effect) as Promise<A>
    const revoke = async (body: Record<string, unknown>) => {
      const text = JSON.stringify({ reason: "user_requested", ...body })
      const headers = await Effect.runPromise(InternalSignature.sign(INTERNAL_KEY, { method: "POST", path: PATH, body: text }))
      return fetch(`${baseUrl}${PATH}`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: text })
    }

    beforeAll(async () => {
      const config: RuntimeHost.RuntimeHostConfig = {
        host: "127.0.0.1",
        port: 0,
        khala: { host: "127.0.0.1", port: 0, transport: "ws" },
        controlUrl: undefined,
        controlJwks: undefined,
        internalKeys: [INTERNAL_KEY],
        sync: TestServer.VERIFIER,
        retentionIntervalMs: 60_000
      }
      const layer = HttpLayerRouter.serve(RuntimeServer.routes({ revocationTtlMs: DEFAULT_TTL_MS }), { disableLogger: true }).pipe(
        Layer.provideMerge(RuntimeHost.services(config)),
        Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
        Layer.provideMerge(SqlNotify.layer),
        Layer.provideMerge(engine.layer)
      )
      runtime = ManagedRuntime.make(layer as Layer.Layer<any, unknown>)
      const address = await run(Effect.map(HttpServer.HttpServer, (s) => s.address)) as { port: number }
      baseUrl = `http://127.0.0.1:${address.port}`
    }, 60_000)
    afterAll(async () => {
      await runtime?.dispose()
    })

    it("a notice with remember_until_ms far ahead keeps its session and device refused past the default TTL; one without, or with a past one, lapses", async () => {
      const now = Date.now()
      const iat = Math.floor(now / 1000) - 10
      expect((await revoke({ session_ids: ["sess_far"], device_ids: ["mobile:far"], user_id: "usr_far", revoked_at_ms: now, remember_until_ms: now + 86_430_000 })).status).toBe(200)
      expect((await revoke({ session_ids: ["sess_default"], device_ids: ["mobile:default"], user_id: "usr_far", revoked_at_ms: now })).status).toBe(200)
      expect((await revoke({ session_ids: ["sess_past"], revoked_at_ms: now, remember_until_ms: now - 60_000 })).status).toBe(200)
      const state = () =>
        run(Effect.gen(function*() {
          const revoked = yield* Auth.RevokedSessions
          return {
            far: yield* revoked.isRevoked("sess_far"),
            farDevice: yield* revoked.isDeviceRevoked("mobile:far", iat, "usr_far"),
            default: yield* revoked.isRevoked("sess_default"),
            defaultDevice: yield* revoked.isDeviceRevoked("mobile:default", iat, "usr_far"),
            past: yield* revoked.isRevoked("sess_past")
          }
        }))
      expect(await state()).toEqual({ far: true, farDevice: true, default: true, defaultDevice: true, past: true })
      await new Promise((r) => setTimeout(r, DEFAULT_TTL_MS + 400))
      expect(await state()).toEqual({ far: true, farDevice: true, default: false, defaultDevice: false, past: false })
    })

    it("remember_until_ms is capped at 8 days ahead, and must be a non-negative integer", async () => {
      const now = Date.now()
      expect((await revoke({ session_ids: ["sess_cap"], remember_until_ms: now + 30 * 86_400_000 })).status).toBe(200)
      const [row] = await run(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ ms: string }>`SELECT (extract(epoch FROM expires_at) * 1000)::bigint AS ms FROM runtime.revoked_sessions WHERE session_id = 'sess_cap'`))
      const expiresAtMs = Number(row!.ms)
      expect(expiresAtMs).toBeGreaterThan(now + RuntimeServer.MAX_REVOCATION_TTL_MS - 60_000)
      expect(expiresAtMs).toBeLessThan(now + RuntimeServer.MAX_REVOCATION_TTL_MS + 60_000)
      for (const remember_until_ms of [-1, 1.5, "1764028800000", 9e15]) {
        expect((await revoke({ session_ids: ["s"], remember_until_ms })).status).toBe(400)
      }
    })
  })
}
