// The owner's paywall API over HTTP on every storage: CRUD, validation, archive, and ownership
// (403 across owners).
import { describe, expect, layer } from "@effect/vitest"
import { MemoryStorage, SqlStorage } from "@openagents/control-core"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { call, controlServer, paywallBody, signInNative } from "./harness.js"

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const paywallSuite = (name: string, storage: Layer.Layer<any, unknown>) =>
  describe(`paywalls on ${name}`, () => {
    layer(controlServer(storage), { excludeTestServices: true })((it) => {
      it.effect("an owner creates, reads, updates, pauses, resumes and archives a paywall", () =>
        Effect.gen(function*() {
          const owner = yield* signInNative("autopilot-desktop")
          const auth = bearer(owner.body.token)
          const created = yield* call("POST", "/api/l402/paywalls", { body: paywallBody(), headers: auth })
          expect(created.status).toBe(201)
          const pw = created.body.data
          expect(pw).toMatchObject({
            id: expect.stringMatching(/^pw_/),
            ownerId: `owner_${owner.body.userId}`,
            status: "active",
            enabled: true,
            priceMsats: 70_000,
            metadata: { timeoutMs: 5000, priority: 3, allowedHosts: ["l402.example.com"] }
          })
          expect((yield* call("GET", `/api/l402/paywalls/${pw.id}`, { headers: auth })).body.data).toEqual(pw)
          const updated = yield* call("PATCH", `/api/l402/paywalls/${pw.id}`, { body: { priceMsats: 250_000, name: "expensive" }, headers: auth })
          expect(updated.body.data).toMatchObject({ priceMsats: 250_000, name: "expensive", pathRegexp: pw.pathRegexp })
          expect((yield* call("POST", `/api/l402/paywalls/${pw.id}/pause`, { headers: auth })).body.data.status).toBe("paused")
          expect((yield* call("POST", `/api/l402/paywalls/${pw.id}/resume`, { headers: auth })).body.data.status).toBe("active")
          const archived = yield* call("DELETE", `/api/l402/paywalls/${pw.id}`, { headers: auth })
          expect(archived.body.data).toMatchObject({ status: "archived", archivedAt: expect.any(String) })
          expect((yield* call("GET", "/api/l402/paywalls", { headers: auth })).body.data).toEqual([])
          expect((yield* call("GET", "/api/l402/paywalls?include_archived=true", { headers: auth })).body.data.map((p: any) => p.id)).toEqual([pw.id])
          const frozen = yield* call("PATCH", `/api/l402/paywalls/${pw.id}`, { body: { name: "again" }, headers: auth })
          expect(frozen.status).toBe(409)
          expect(frozen.body.error.code).toBe("conflict")
          expect((yield* call("POST", `/api/l402/paywalls/${pw.id}/resume`, { headers: auth })).status).toBe(409)
        }))

      it.effect("another owner gets 403 on every operation, and the paywall is unchanged", () =>
        Effect.gen(function*() {
          const owner = yield* signInNative("autopilot-ios")
          const other = yield* signInNative("openagents-expo")
          const pw = (yield* call("POST", "/api/l402/paywalls", { body: paywallBody(), headers: bearer(owner.body.token) })).body.data
          const intruder = bearer(other.body.token)
          const attempts = [
            call("GET", `/api/l402/paywalls/${pw.id}`, { headers: intruder }),
            call("PATCH", `/api/l402/paywalls/${pw.id}`, { body: { priceMsats: 1 }, headers: intruder }),
            call("POST", `/api/l402/paywalls/${pw.id}/pause`, { headers: intruder }),
            call("POST", `/api/l402/paywalls/${pw.id}/resume`, { headers: intruder }),
            call("DELETE", `/api/l402/paywalls/${pw.id}`, { headers: intruder })
          ]
          for (const attempt of attempts) {
            const refused = yield* attempt
            expect(refused.status).toBe(403)
            expect(refused.body.error.code).toBe("forbidden")
          }
          expect((yield* call("GET", "/api/l402/paywalls", { headers: intruder })).body.data).toEqual([])
          expect((yield* call("GET", `/api/l402/paywalls/${pw.id}`, { headers: bearer(owner.body.token) })).body.data).toEqual(pw)
          const missing = yield* call("GET", "/api/l402/paywalls/pw_missing", { headers: intruder })
          expect(missing.status).toBe(404)
          expect((yield* call("GET", "/api/l402/paywalls")).status).toBe(401)
        }))

      it.effect("validates the paywall with per-field errors, route patterns by the shared grammar", () =>
        Effect.gen(function*() {
          const owner = yield* signInNative("autopilot-ios")
          const auth = bearer(owner.body.token)
          const bad = yield* call("POST", "/api/l402/paywalls", {
            body: paywallBody({ name: "", hostRegexp: "(", priceMsats: 0, upstream: "ftp://x", metadata: { timeoutMs: -1, allowedHosts: "x" } }),
            headers: auth
          })
          expect(bad.status).toBe(422)
          expect(bad.body.error.code).toBe("invalid_request")
          expect(Object.keys(bad.body.errors).sort()).toEqual(["hostRegexp", "metadata.allowedHosts", "metadata.timeoutMs", "name", "priceMsats", "upstream"])
          // Route patterns, not free regexes (the grammar lightning-ops compiles: @openagents/proto/lightning/v1).
          for (const [hostRegexp, pathRegexp, fields] of [
            ["^l402\\.example\\.com$", "/premium", ["hostRegexp"]],
            ["l402.example.com", "/(?=a)b", ["pathRegexp"]],
            ["bad host!", "/a\\1", ["hostRegexp", "pathRegexp"]]
          ] as const) {
            const refused = yield* call("POST", "/api/l402/paywalls", { body: paywallBody({ hostRegexp, pathRegexp }), headers: auth })
            expect(refused.status, `${hostRegexp} ${pathRegexp}`).toBe(422)
            expect(Object.keys(refused.body.errors).sort()).toEqual(fields)
          }
          for (const [hostRegexp, pathRegexp] of [["*.example.com:8443", "/api/*"], ["*", "/"], ["L402.Example.com", "/items/[0-9]+"]] as const) {
            expect((yield* call("POST", "/api/l402/paywalls", { body: paywallBody({ hostRegexp, pathRegexp }), headers: auth })).status, `${hostRegexp} ${pathRegexp}`).toBe(201)
          }
          const wrongType = yield* call("POST", "/api/l402/paywalls", { body: paywallBody({ priceMsats: "lots" }), headers: auth })
          expect(wrongType.status).toBe(422)
          expect(Object.keys(wrongType.body.errors)).toEqual(["priceMsats"])
        }))
    })
  })

paywallSuite("memory", MemoryStorage.layer)
for (const engine of SqlTesting.engines()) paywallSuite(engine.name, SqlStorage.layer.pipe(Layer.provide(engine.layer)))
