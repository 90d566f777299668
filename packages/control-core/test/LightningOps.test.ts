// The lightning-ops internal API over a real HTTP server, through both transports: the typed
// @effect/rpc client built from the contract (`@openagents/control-core/lightning-ops-rpc`), and
// the upstream JSON route. On every storage; the concurrency tests wherever transactions really
// run concurrently (memory and Postgres).
import { FetchHttpClient } from "@effect/platform"
import * as RpcClient from "@effect/rpc/RpcClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Invoices, MemoryStorage, SqlStorage } from "@openagents/control-core"
import * as LightningOpsRpc from "@openagents/control-core/lightning-ops-rpc"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import { randomBytes } from "node:crypto"
import { call, controlServer, OPS_SECRET, paywallBody, serverUrl, signInNative } from "./harness.js"

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const id = (prefix: string) => `${prefix}_${randomBytes(6).toString("hex")}`
const preimage = () => randomBytes(32).toString("hex")

const makeOps = RpcClient.make(LightningOpsRpc.LightningOpsRpcs)
type OpsClient = Effect.Effect.Success<typeof makeOps>

/** Run `f` with an RPC client of the lightning-ops group against the test server. */
const withOps = <A, E, R>(f: (client: OpsClient) => Effect.Effect<A, E, R>, secret = OPS_SECRET) =>
  Effect.gen(function*() {
    const baseUrl = yield* serverUrl
    return yield* Effect.scoped(Effect.flatMap(makeOps, f)).pipe(
      Effect.provide(LightningOpsRpc.layerClient({ baseUrl, secret })),
      Effect.provide(FetchHttpClient.layer)
    )
  })

const json = (kind: "query" | "mutation", functionName: string, args: Record<string, unknown>, secret: string | null = Redacted.value(OPS_SECRET)) =>
  call("POST", `/api/internal/lightning-ops/control-plane/${kind}`, { body: { functionName, args: secret === null ? args : { ...args, secret } } })

const opsSuite = (name: string, storage: Layer.Layer<any, unknown>, concurrent: boolean) =>
  describe(`lightning-ops API on ${name}`, () => {
    layer(controlServer(storage), { excludeTestServices: true })((it) => {
      it.effect("serves the compiled view of active and paused paywalls, with policy, route and the owner's kill switch", () =>
        Effect.gen(function*() {
          const owner = yield* signInNative("autopilot-desktop")
          const auth = bearer(owner.body.token)
          const ownerId = `owner_${owner.body.userId}`
          const active = (yield* call("POST", "/api/l402/paywalls", { body: paywallBody(), headers: auth })).body.data
          const paused = (yield* call("POST", "/api/l402/paywalls", { body: paywallBody({ upstream: "http://plain.example.com", enabled: false, metadata: {} }), headers: auth })).body.data
          const archived = (yield* call("POST", "/api/l402/paywalls", { body: paywallBody(), headers: auth })).body.data
          yield* call("DELETE", `/api/l402/paywalls/${archived.id}`, { headers: auth })

          const snapshot = yield* withOps((ops) => ops.listPaywallControlPlaneState({}))
          const mine = snapshot.paywalls.filter((p) => p.ownerId === ownerId)
          expect(mine.map((p) => [p.paywallId, p.status])).toEqual([[active.id, "active"], [paused.id, "paused"]])
          expect(mine[0]).toMatchObject({
            name: "premium signal",
            policy: { paywallId: active.id, ownerId, pricingMode: "fixed", fixedAmountMsats: 70_000, allowedHosts: ["l402.example.com"], killSwitch: false },
            routes: [{
              routeId: `route_${active.id}`, hostPattern: "l402.example.com", pathPattern: "/ep212/premium-signal",
              upstreamUrl: "https://upstream.example.com/signal", protocol: "https", timeoutMs: 5000, priority: 3
            }]
          })
          expect(mine[1]!.routes[0]).toMatchObject({ protocol: "http", timeoutMs: 6000, priority: 10 })
          const onlyArchived = yield* withOps((ops) => ops.listPaywallControlPlaneState({ statuses: ["archived"] }))
          expect(onlyArchived.paywalls.filter((p) => p.ownerId === ownerId).map((p) => p.paywallId)).toEqual([archived.id])

          yield* withOps((ops) => ops.setOwnerKillSwitch({ ownerId, active: true, reason: "abuse", updatedBy: "ops" }))
          const killed = yield* withOps((ops) => ops.listPaywallControlPlaneState({}))
          expect(killed.paywalls.filter((p) => p.ownerId === ownerId).every((p) => p.policy.killSwitch)).toBe(true)
          const security = yield* withOps((ops) => ops.getControlPlaneSecurityState())
          expect(security.ownerControls.find((c) => c.ownerId === ownerId)).toMatchObject({ killSwitch: true, denyReasonCode: "owner_kill_switch_active", denyReason: "abuse", updatedBy: "ops" })
          const released = yield* withOps((ops) => ops.setOwnerKillSwitch({ ownerId, active: false }))
          expect(released.ownerControl).toMatchObject({ killSwitch: false })
          expect(released.ownerControl.denyReasonCode).toBeUndefined()
        }))

      it.effect("records deployment intents by id (updating the paywall's reconcile status) and gateway events with their correlation", () =>
        Effect.gen(function*() {
          const owner = yield* signInNative("autopilot-ios")
          const pw = (yield* call("POST", "/api/l402/paywalls", { body: paywallBody(), headers: bearer(owner.body.token) })).body.data
          const deploymentId = `dep_reconcile_${id("req")}`
          const pending = yield* withOps((ops) => ops.recordGatewayCompileIntent({ deploymentId, paywallId: pw.id, ownerId: pw.ownerId, configHash: "cfg_abc", status: "pending" }))
          expect(pending.deployment).toMatchObject({ deploymentId, status: "pending", diagnostics: [] })
          const applied = yield* withOps((ops) =>
            ops.recordGatewayCompileIntent({
              deploymentId, paywallId: pw.id, ownerId: pw.ownerId, configHash: "cfg_abc", status: "applied", appliedAtMs: 1_800_000_000_000,
              imageDigest: "sha256:feed", metadata: { executionPath: "hosted-node", progress: { healthOk: true } }
            }))
          expect(applied.deployment).toMatchObject({ status: "applied", createdAtMs: pending.deployment.createdAtMs, imageDigest: "sha256:feed" })
          const after = yield* call("GET", `/api/l402/paywalls/${pw.id}`, { headers: bearer(owner.body.token) })
          expect(after.body.data.lastReconcileStatus).toBe("applied")
          const generated = yield* withOps((ops) => ops.recordGatewayCompileIntent({ configHash: "cfg_snapshot", status: "failed", failureCode: "compile_validation_failed", diagnostics: [{ code: "missing_pricing", severity: "error", message: "no price" }] }))
          expect(generated.deployment.deploymentId).toMatch(/^dep_[0-9a-f]{32}$/)
          expect(generated.deployment.diagnostics).toEqual([{ code: "missing_pricing", severity: "error", message: "no price" }])

          const event = yield* withOps((ops) =>
            ops.recordGatewayDeploymentEvent({
              paywallId: pw.id, ownerId: pw.ownerId, eventType: "gateway_reconcile_health_ok", level: "info",
              deploymentId, configHash: "cfg_abc", executionPath: "hosted-node", requestId: "req_1"
            }))
          expect(event.event).toMatchObject({ eventId: expect.stringMatching(/^evt_[0-9a-f]{32}$/), deploymentId, configHash: "cfg_abc", executionPath: "hosted-node" })
          const replay = yield* withOps((ops) => ops.recordGatewayDeploymentEvent({ eventId: event.event.eventId, paywallId: pw.id, ownerId: pw.ownerId, eventType: "other", level: "error" }))
          expect(replay.event).toEqual(event.event)
        }))

      it.effect("an intent's outcome becomes the reconcile status of EVERY paywall it serves (each owner sees it), with the diagnostics naming that paywall", () =>
        Effect.gen(function*() {
          const owners = [yield* signInNative("autopilot-ios"), yield* signInNative("autopilot-desktop"), yield* signInNative("autopilot-ios")]
          const paywalls: Array<any> = []
          for (const owner of owners) paywalls.push((yield* call("POST", "/api/l402/paywalls", { body: paywallBody(), headers: bearer(owner.body.token) })).body.data)
          const [a, b, c] = paywalls
          const view = (i: number) => Effect.map(call("GET", `/api/l402/paywalls/${paywalls[i].id}`, { headers: bearer(owners[i]!.body.token) }), (r) => r.body.data)
          const deploymentId = `dep_reconcile_${id("req")}`
          const intent = { deploymentId, paywallId: a.id, ownerId: a.ownerId, configHash: "cfg_two_owners", paywallIds: [a.id, b.id] }
          const pending = yield* withOps((ops) => ops.recordGatewayCompileIntent({ ...intent, status: "pending" }))
          expect(pending.deployment.paywallIds).toEqual([a.id, b.id])
          expect((yield* view(1)).lastReconcileStatus).toBeUndefined()
          yield* withOps((ops) => ops.recordGatewayCompileIntent({ ...intent, status: "applied", appliedAtMs: 1_800_000_000_000 }))
          for (const i of [0, 1]) expect(yield* view(i)).toMatchObject({ lastReconcileStatus: "applied", lastReconciledAt: expect.any(String) })
          expect((yield* view(2)).lastReconcileStatus).toBeUndefined()

          // Upstream JSON route: the same field; a rolled-back deployment reaches every owner too.
          const rolled = yield* json("mutation", "lightning/ops:recordGatewayCompileIntent", { ...intent, status: "rolled_back", failureCode: "health_check_failed", rolledBackFrom: deploymentId })
          expect(rolled.status).toBe(200)
          for (const i of [0, 1]) expect(yield* view(i)).toMatchObject({ lastReconcileStatus: "rolled_back", lastReconcileError: "health_check_failed" })

          // A paywall left out: its own intent, its diagnostic, visible to its owner (without the other paywall's id).
          const conflict = {
            code: "duplicate_route", severity: "error", message: "route_x repeats a route another owner's paywall keeps (deployed)",
            paywallId: c.id, routeId: `route_${c.id}`, relatedRouteId: `route_${a.id}`, relatedPaywallId: a.id
          } as const
          yield* withOps((ops) =>
            ops.recordGatewayCompileIntent({ deploymentId: `dep_paywall_${id("h")}`, paywallId: c.id, ownerId: c.ownerId, configHash: "cfg_c", status: "failed", failureCode: "compile_validation_failed", diagnostics: [conflict] }))
          expect(yield* view(2)).toMatchObject({
            lastReconcileStatus: "failed",
            lastReconcileError: "compile_validation_failed",
            lastReconcileDiagnostics: [{ code: "duplicate_route", severity: "error", message: conflict.message, routeId: conflict.routeId }]
          })
          expect(JSON.stringify((yield* view(2)).lastReconcileDiagnostics)).not.toContain(a.id)
          const snapshot = yield* withOps((ops) => ops.listPaywallControlPlaneState({}))
          expect(snapshot.paywalls.find((p) => p.paywallId === c.id)?.lastReconcileDiagnostics).toEqual([conflict])
          expect(snapshot.paywalls.find((p) => p.paywallId === a.id)?.lastReconcileDiagnostics).toBeUndefined()
        }))

      it.effect("a paywall keeps the outcome of the reconcile that started last; a start time ahead of control's clock is clamped to it", () =>
        Effect.gen(function*() {
          const owner = yield* signInNative("autopilot-ios")
          const pw = (yield* call("POST", "/api/l402/paywalls", { body: paywallBody(), headers: bearer(owner.body.token) })).body.data
          const view = Effect.map(call("GET", `/api/l402/paywalls/${pw.id}`, { headers: bearer(owner.body.token) }), (r) => r.body.data)
          const record = (status: "applied" | "failed", reconcileStartedAtMs: number) =>
            withOps((ops) =>
              ops.recordGatewayCompileIntent({
                deploymentId: `dep_reconcile_${id("req")}`,
                configHash: `cfg_${status}`,
                status,
                ...(status === "failed" ? { failureCode: "health_check_failed" as const } : {}),
                paywallIds: [pw.id],
                reconcileStartedAtMs
              }))
          const t = Date.now()
          // Run B (started at t - 1 s) finishes first; run A (started at t - 2 s) reports its failure late.
          expect((yield* record("applied", t - 1000)).deployment.reconcileStartedAtMs).toBe(t - 1000)
          yield* record("failed", t - 2000)
          expect(yield* view).toMatchObject({ lastReconcileStatus: "applied" })
          expect((yield* view).lastReconcileError).toBeUndefined()
          // A writer whose clock runs a day ahead: its start is taken as control's time of receipt,
          // so the next run of an honest clock is not locked out for a day.
          const ahead = yield* record("failed", t + 86_400_000)
          expect(ahead.deployment.reconcileStartedAtMs).toBeLessThanOrEqual(Date.now())
          expect(yield* view).toMatchObject({ lastReconcileStatus: "failed", lastReconcileError: "health_check_failed" })
          yield* Effect.sleep("2 millis")
          yield* record("applied", Date.now())
          expect(yield* view).toMatchObject({ lastReconcileStatus: "applied" })
          // Without a start time (an older writer), the time of receipt orders it.
          yield* Effect.sleep("2 millis")
          yield* withOps((ops) => ops.recordGatewayCompileIntent({ deploymentId: `dep_reconcile_${id("req")}`, configHash: "cfg_old_writer", status: "failed", failureCode: "deploy_apply_failed", paywallIds: [pw.id] }))
          expect(yield* view).toMatchObject({ lastReconcileStatus: "failed", lastReconcileError: "deploy_apply_failed" })
        }))

      it.effect("applies invoice lifecycle updates monotonically", () =>
        Effect.gen(function*() {
          const invoiceId = id("inv")
          const base = { invoiceId, paywallId: "pw_1", ownerId: "owner_1", amountMsats: 70_000 }
          const open = yield* withOps((ops) => ops.ingestInvoiceLifecycle({ ...base, status: "open", paymentHash: "ab".repeat(32), paymentRequest: "lnbcrt700n1..." }))
          expect(open).toMatchObject({ ok: true, changed: true, invoice: { status: "open" } })
          const settled = yield* withOps((ops) => ops.ingestInvoiceLifecycle({ ...base, status: "settled", paymentHash: "cd".repeat(32) }))
          expect(settled.invoice).toMatchObject({ status: "settled", paymentHash: "ab".repeat(32), settledAtMs: expect.any(Number) })
          const late = yield* withOps((ops) => ops.ingestInvoiceLifecycle({ ...base, status: "expired" }))
          expect(late).toMatchObject({ changed: false, invoice: { status: "settled", settledAtMs: settled.invoice.settledAtMs } })
          const conflict = yield* withOps((ops) => Effect.flip(ops.ingestInvoiceLifecycle({ ...base, ownerId: "owner_2", status: "open" })))
          expect(conflict).toBeInstanceOf(LightningOpsRpc.ControlPlaneConflict)
        }))

      it.effect("ingests a settlement idempotently, settling its invoice; another settlement under the same id is a conflict", () =>
        Effect.gen(function*() {
          const invoiceId = id("inv")
          const pre = preimage()
          yield* withOps((ops) => ops.ingestInvoiceLifecycle({ invoiceId, paywallId: "pw_1", ownerId: "owner_1", amountMsats: 70_000, status: "open" }))
          const settlement = {
            settlementId: id("set"), paywallId: "pw_1", ownerId: "owner_1", invoiceId, amountMsats: 70_000,
            paymentProofType: "lightning_preimage", paymentProofValue: pre.toUpperCase(), requestId: "req_9", occurredAtMs: 1_800_000_000_123
          }
          const first = yield* withOps((ops) => ops.ingestSettlement(settlement))
          expect(first).toMatchObject({
            ok: true, existed: false,
            settlement: { settlementId: settlement.settlementId, paymentProofRef: `lightning_preimage:${pre.slice(0, 24)}` },
            invoice: { status: "settled", settledAtMs: 1_800_000_000_123, paymentProofRef: `lightning_preimage:${pre.slice(0, 24)}` }
          })
          const replay = yield* withOps((ops) => ops.ingestSettlement(settlement))
          expect(replay).toEqual({ ...first, existed: true })
          const conflict = yield* withOps((ops) => Effect.flip(ops.ingestSettlement({ ...settlement, amountMsats: 1 })))
          expect(conflict).toMatchObject({ _tag: "ControlPlaneConflict", code: "conflict", id: settlement.settlementId })
          const badType = yield* withOps((ops) => Effect.flip(ops.ingestSettlement({ ...settlement, settlementId: id("set"), paymentProofType: "hmac" })))
          expect(badType).toMatchObject({ _tag: "InvalidArguments", message: "invalid_payment_proof_type" })
          const badPreimage = yield* withOps((ops) => Effect.flip(ops.ingestSettlement({ ...settlement, settlementId: id("set"), paymentProofValue: "xyz" })))
          expect(badPreimage).toMatchObject({ _tag: "InvalidArguments", message: "invalid_preimage" })
          // Without an invoice id, no invoice is touched.
          const { invoiceId: _invoiceId, ...withoutInvoice } = settlement
          const bare = yield* withOps((ops) => ops.ingestSettlement({ ...withoutInvoice, settlementId: id("set") }))
          expect(bare.invoice).toBeUndefined()
        }))

      it.effect("sets the global pause and walks credential roles through rotate, activate and revoke", () =>
        Effect.gen(function*() {
          const paused = yield* withOps((ops) => ops.setGlobalPause({ active: true, reason: "incident 42", updatedBy: "oncall" }))
          expect(paused.global).toMatchObject({ stateId: "global", globalPause: true, denyReasonCode: "global_pause_active", denyReason: "incident 42" })
          expect((yield* withOps((ops) => ops.getControlPlaneSecurityState())).global.globalPause).toBe(true)
          const resumed = yield* withOps((ops) => ops.setGlobalPause({ active: false }))
          expect(resumed.global).toEqual({ stateId: "global", globalPause: false, updatedAtMs: expect.any(Number) })

          const before = (yield* withOps((ops) => ops.getControlPlaneSecurityState())).credentialRoles.find((r) => r.role === "operator_admin")
          const rotated = yield* withOps((ops) => ops.rotateCredentialRole({ role: "operator_admin", fingerprint: "fp_new", note: "quarterly" }))
          expect(rotated.role).toMatchObject({ status: "rotating", version: (before?.version ?? 0) + 1, fingerprint: "fp_new", lastRotatedAtMs: expect.any(Number) })
          const active = yield* withOps((ops) => ops.activateCredentialRole({ role: "operator_admin" }))
          expect(active.role).toMatchObject({ status: "active", version: rotated.role.version, fingerprint: "fp_new" })
          const revoked = yield* withOps((ops) => ops.revokeCredentialRole({ role: "operator_admin" }))
          expect(revoked.role).toMatchObject({ status: "revoked", revokedAtMs: expect.any(Number) })
          expect(revoked.role.fingerprint).toBeUndefined()
          const refused = yield* withOps((ops) => Effect.flip(ops.activateCredentialRole({ role: "operator_admin" })))
          expect(refused).toMatchObject({ _tag: "InvalidArguments", message: "missing_fingerprint" })
          const again = yield* withOps((ops) => ops.activateCredentialRole({ role: "operator_admin", fingerprint: "fp_newer" }))
          expect(again.role).toMatchObject({ status: "active", fingerprint: "fp_newer" })
        }))

      it.effect("refuses a wrong operations secret", () =>
        Effect.gen(function*() {
          const refused = yield* withOps((ops) => Effect.flip(ops.getControlPlaneSecurityState()), Redacted.make("x".repeat(40)))
          expect(refused).toBeInstanceOf(LightningOpsRpc.InvalidOpsSecret)
        }))

      it.effect("serves the upstream JSON route with the upstream error codes", () =>
        Effect.gen(function*() {
          const snapshot = yield* json("query", "lightning/ops:listPaywallControlPlaneState", { statuses: null })
          expect(snapshot.status).toBe(200)
          expect(snapshot.body).toMatchObject({ ok: true, paywalls: expect.any(Array) })
          const security = yield* json("query", "lightning/security:getControlPlaneSecurityState", {})
          expect(security.body).toMatchObject({ ok: true, global: { stateId: "global" } })
          expect((yield* json("query", "lightning/security:getControlPlaneSecurityState", {}, null)).body).toEqual({ ok: false, error: { code: "invalid_ops_secret", message: "invalid lightning-ops secret" } })
          expect((yield* json("query", "lightning/security:getControlPlaneSecurityState", {}, "wrong")).status).toBe(401)
          const unsupported = yield* json("query", "lightning/ops:recordGatewayCompileIntent", { configHash: "cfg", status: "pending" })
          expect(unsupported.status).toBe(404)
          expect(unsupported.body.error.code).toBe("unsupported_function")
          expect((yield* json("mutation", "lightning/ops:dropTables", {})).status).toBe(404)
          const missing = yield* json("mutation", "lightning/ops:recordGatewayCompileIntent", { status: "pending", deploymentId: null })
          expect(missing.status).toBe(422)
          expect(missing.body.error).toMatchObject({ code: "invalid_arguments", message: "missing_configHash" })
          const badStatus = yield* json("mutation", "lightning/settlements:ingestInvoiceLifecycle", { invoiceId: "i", paywallId: "p", ownerId: "o", amountMsats: 1, status: "paid" })
          expect(badStatus.body.error.message).toBe("invalid_status")
          const intent = yield* json("mutation", "lightning/ops:recordGatewayCompileIntent", { configHash: "cfg_json", status: "pending", paywallId: null, imageDigest: null })
          expect(intent.status).toBe(200)
          expect(intent.body).toMatchObject({ ok: true, deployment: { configHash: "cfg_json", status: "pending" } })
          const settlement = { settlementId: id("set"), paywallId: "pw_1", ownerId: "owner_1", amountMsats: 5, paymentProofType: "lightning_preimage", paymentProofValue: preimage() }
          expect((yield* json("mutation", "lightning/settlements:ingestSettlement", settlement)).body.existed).toBe(false)
          expect((yield* json("mutation", "lightning/settlements:ingestSettlement", settlement)).body.existed).toBe(true)
          const conflict = yield* json("mutation", "lightning/settlements:ingestSettlement", { ...settlement, amountMsats: 6 })
          expect(conflict.status).toBe(409)
          expect(conflict.body.error.code).toBe("conflict")
          const badPreimage = yield* json("mutation", "lightning/settlements:ingestSettlement", { ...settlement, settlementId: id("set"), paymentProofValue: "zz" })
          expect(badPreimage.body).toEqual({ ok: false, error: { code: "invalid_arguments", message: "invalid_preimage", details: { field: "paymentProofValue" } } })
        }))

      if (concurrent) {
        it.effect("concurrent replays of one settlement record it exactly once (RPC and JSON together)", () =>
          Effect.gen(function*() {
            const invoiceId = id("inv")
            const settlement = {
              settlementId: id("set"), paywallId: "pw_1", ownerId: "owner_1", invoiceId, amountMsats: 21_000,
              paymentProofType: "lightning_preimage", paymentProofValue: preimage()
            }
            const results = yield* Effect.all([
              ...Array.from({ length: 10 }, () => withOps((ops) => Effect.map(ops.ingestSettlement(settlement), (r) => r.existed))),
              ...Array.from({ length: 10 }, () => Effect.map(json("mutation", "lightning/settlements:ingestSettlement", settlement), (r) => r.body.existed as boolean))
            ], { concurrency: "unbounded" })
            expect(results.filter((existed) => !existed)).toHaveLength(1)
            const invoice = yield* json("mutation", "lightning/settlements:ingestInvoiceLifecycle", { invoiceId, paywallId: "pw_1", ownerId: "owner_1", amountMsats: 21_000, status: "open" })
            expect(invoice.body).toMatchObject({ changed: false, invoice: { status: "settled" } })
          }))

        it.effect("concurrent invoice lifecycle updates end settled, whatever their order", () =>
          Effect.gen(function*() {
            const invoiceId = id("inv")
            const base = { invoiceId, paywallId: "pw_1", ownerId: "owner_1", amountMsats: 1000 }
            const statuses = ["open", "expired", "settled", "canceled", "open", "settled", "expired", "open"] as const
            yield* Effect.all(
              statuses.map((status, i) =>
                i % 2 === 0
                  ? withOps((ops) => ops.ingestInvoiceLifecycle({ ...base, status }))
                  : json("mutation", "lightning/settlements:ingestInvoiceLifecycle", { ...base, status })),
              { concurrency: "unbounded" }
            )
            const final = yield* withOps((ops) => ops.ingestInvoiceLifecycle({ ...base, status: "open" }))
            expect(final).toMatchObject({ changed: false, invoice: { status: "settled", settledAtMs: expect.any(Number) } })
          }))
      }
    })
  })

opsSuite("memory", MemoryStorage.layer, true)
for (const engine of SqlTesting.engines()) opsSuite(engine.name, SqlStorage.layer.pipe(Layer.provide(engine.layer)), engine.concurrent)

describe("lightning-ops API without a usable secret", () => {
  for (const [label, secret] of [["unset", undefined], ["weak", Redacted.make("short-secret")]] as const) {
    layer(controlServer(MemoryStorage.layer, { opsSecret: secret }), { excludeTestServices: true })((it) => {
      it.effect(`fails closed when the secret is ${label}: every call is ops_secret_unconfigured`, () =>
        Effect.gen(function*() {
          const refused = yield* withOps((ops) => Effect.flip(ops.getControlPlaneSecurityState()), secret ?? Redacted.make(""))
          expect(refused).toBeInstanceOf(LightningOpsRpc.OpsSecretUnconfigured)
          const viaJson = yield* json("query", "lightning/security:getControlPlaneSecurityState", {}, secret === undefined ? "" : Redacted.value(secret))
          expect(viaJson.status).toBe(500)
          expect(viaJson.body.error.code).toBe("ops_secret_unconfigured")
        }))
    })
  }
})

describe("invoice lifecycle rules", () => {
  const statuses = ["open", "canceled", "expired", "settled"] as const
  const update = fc.record({
    status: fc.constantFrom(...statuses),
    paymentHash: fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 2, maxLength: 8 }),
    settledAtMs: fc.integer({ min: 1, max: 1_000_000 })
  }, { requiredKeys: ["status"] })

  it("status never moves down the rank, fields are never overwritten, settledAtMs is set once, whatever the order", () => {
    fc.assert(fc.property(fc.array(update, { minLength: 1, maxLength: 12 }), (updates) => {
      let invoice: LightningOpsRpc.Invoice | undefined
      let firstHash: string | undefined
      let settledAt: number | undefined
      for (const [i, u] of updates.entries()) {
        const result = Invoices.advance(invoice, { invoiceId: "inv", paywallId: "pw", ownerId: "o", amountMsats: 1, ...u }, 1000 + i)
        if (result instanceof LightningOpsRpc.ControlPlaneConflict) return false
        const next = result.invoice
        if (invoice !== undefined && Invoices.rank(next.status) < Invoices.rank(invoice.status)) return false
        if (invoice?.status === "settled" && next.settledAtMs !== invoice.settledAtMs) return false
        firstHash ??= u.paymentHash
        if (next.status === "settled") settledAt ??= next.settledAtMs
        invoice = next
      }
      const maxRank = Math.max(...updates.map((u) => Invoices.rank(u.status)))
      return Invoices.rank(invoice!.status) === maxRank && invoice!.paymentHash === firstHash && invoice!.settledAtMs === settledAt
    }), { numRuns: 1000 })
  })
})
