// The runtime's record of revoked sessions and devices, the same cases on every adapter (memory,
// PGlite, and Postgres when TEST_DATABASE_URL is set): a device is revoked for one user, or for
// every user when the notice names none; only tokens issued up to the revocation are refused; a
// notice is recorded all or nothing.
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Auth from "../src/Auth.js"
import { runtimeLayer } from "./support.js"

const adapters: ReadonlyArray<{ readonly name: string; readonly layer: () => Layer.Layer<Auth.RevokedSessions, unknown>; readonly sql: boolean }> = [
  { name: "memory", layer: () => Auth.layerRevokedSessionsMemory, sql: false },
  ...SqlTesting.engines().map((engine) => ({
    name: engine.name,
    layer: () => Auth.layerRevokedSessionsSql.pipe(Layer.provide(runtimeLayer(engine.layer))),
    sql: true
  }))
]

const TTL = 60_000
const nowSeconds = () => Math.floor(Date.now() / 1000)

for (const adapter of adapters) {
  describe(`RevokedSessions (${adapter.name})`, () => {
    let runtime: ManagedRuntime.ManagedRuntime<Auth.RevokedSessions, unknown>
    const run = <A, E>(f: (r: Auth.RevokedSessionsService) => Effect.Effect<A, E>) => runtime.runPromise(Effect.flatMap(Auth.RevokedSessions, f))
    beforeAll(async () => {
      runtime = ManagedRuntime.make(adapter.layer())
      await runtime.runtime()
    }, 60_000)
    afterAll(async () => {
      await runtime?.dispose()
    })

    it("revokes a device for the named user only, and only the tokens issued up to the revocation", async () => {
      const before = nowSeconds() - 5
      await run((r) => r.record({ sessionIds: ["sess_rs_1"], deviceIds: ["mobile:rs-shared"], userId: "usr_ann", reason: "user_requested", ttlMs: TTL }))
      expect(await run((r) => r.isRevoked("sess_rs_1"))).toBe(true)
      expect(await run((r) => r.isRevoked("sess_rs_other"))).toBe(false)
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-shared", before, "usr_ann"))).toBe(true)
      // Another user on the same device id, a token issued later (a new sign-in), another device.
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-shared", before, "usr_bob"))).toBe(false)
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-shared", nowSeconds() + 2, "usr_ann"))).toBe(false)
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-other", before, "usr_ann"))).toBe(false)
    })

    it("a notice without a user revokes the device for every user; a user's notice beside it does not narrow it", async () => {
      const before = nowSeconds() - 5
      await run((r) => r.record({ sessionIds: [], deviceIds: ["mobile:rs-all"], reason: "device_replaced", ttlMs: TTL }))
      await run((r) => r.record({ sessionIds: [], deviceIds: ["mobile:rs-all"], userId: "usr_ann", reason: "user_requested", ttlMs: TTL }))
      for (const user of ["usr_ann", "usr_bob"]) expect(await run((r) => r.isDeviceRevoked("mobile:rs-all", before, user))).toBe(true)
    })

    it("refuses the tokens issued up to the revocation's own time; a redelivered or older notice does not move it", async () => {
      const revokedAtMs = (nowSeconds() - 100) * 1000
      await run((r) => r.record({ sessionIds: [], deviceIds: ["mobile:rs-timed"], userId: "usr_ann", revokedAtMs, reason: "user_requested", ttlMs: TTL }))
      const signedInSince = nowSeconds() - 50
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-timed", revokedAtMs / 1000 - 1, "usr_ann"))).toBe(true)
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-timed", signedInSince, "usr_ann"))).toBe(false)
      // Control retries the same notice (its 2xx was lost), then an older one arrives late.
      await run((r) => r.record({ sessionIds: [], deviceIds: ["mobile:rs-timed"], userId: "usr_ann", revokedAtMs, reason: "user_requested", ttlMs: TTL }))
      await run((r) => r.record({ sessionIds: [], deviceIds: ["mobile:rs-timed"], userId: "usr_ann", revokedAtMs: revokedAtMs - 60_000, reason: "user_requested", ttlMs: TTL }))
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-timed", signedInSince, "usr_ann"))).toBe(false)
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-timed", revokedAtMs / 1000 - 30, "usr_ann"))).toBe(true)
      // A newer revocation does move it.
      await run((r) => r.record({ sessionIds: [], deviceIds: ["mobile:rs-timed"], userId: "usr_ann", revokedAtMs: Date.now(), reason: "user_requested", ttlMs: TTL }))
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-timed", signedInSince, "usr_ann"))).toBe(true)
    })

    it("forgets entries once they expire", async () => {
      const before = nowSeconds() - 5
      await run((r) => r.record({ sessionIds: ["sess_rs_short"], deviceIds: ["mobile:rs-short"], userId: "usr_ann", reason: "user_requested", ttlMs: 300 }))
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-short", before, "usr_ann"))).toBe(true)
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await run((r) => r.isRevoked("sess_rs_short"))).toBe(false)
      expect(await run((r) => r.isDeviceRevoked("mobile:rs-short", before, "usr_ann"))).toBe(false)
      expect(await run((r) => r.prune)).toBeGreaterThanOrEqual(2)
    })

    // (The memory adapter has no column limit to fail on: the case is the SQL transaction's.)
    if (adapter.sql) it("records a notice all or nothing", async () => {
      // A device id beyond the column's 256 characters fails the write: the session beside it is not recorded either.
      const failed = await run((r) =>
        Effect.either(r.record({ sessionIds: ["sess_rs_atomic"], deviceIds: ["d".repeat(300)], userId: "usr_ann", reason: "user_requested", ttlMs: TTL }))
      )
      expect(Either.isLeft(failed)).toBe(true)
      expect(await run((r) => r.isRevoked("sess_rs_atomic"))).toBe(false)
    })
  })
}
