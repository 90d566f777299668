// One conformance suite for the control storages, called once per adapter (memory, PGlite,
// Postgres). Tests that need real concurrent transactions run only where the engine has them.
import { describe, expect, layer } from "@effect/vitest"
import { Storage } from "@openagents/control-core"
import type { CredentialRoleState } from "@openagents/control-core/lightning-ops-rpc"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import { randomBytes } from "node:crypto"

const id = (prefix: string) => `${prefix}_${randomBytes(8).toString("hex")}`
const NOW = 1_800_000_000_000

export const userInput = (email = `${id("u")}@example.com`) => ({ id: id("usr"), email, name: "", provider: "local", providerUserId: undefined, nowMs: NOW })

const session = (userId: string, over: Partial<Storage.Session> = {}): Storage.Session => ({
  id: id("sess"),
  userId,
  deviceId: "mobile:autopilot-ios",
  client: "autopilot-ios",
  tokenName: "mobile:autopilot-ios",
  kind: "bearer",
  createdAtMs: NOW,
  lastSeenAtMs: NOW,
  expiresAtMs: NOW + 86_400_000,
  revokedAtMs: undefined,
  revokedReason: undefined,
  ...over
})

const refreshToken = (sessionId: string, over: Partial<Storage.RefreshToken> = {}): Storage.RefreshToken => ({
  id: id("rt"),
  sessionId,
  tokenHash: randomBytes(32).toString("hex"),
  createdAtMs: NOW,
  expiresAtMs: NOW + 86_400_000,
  rotatedAtMs: undefined,
  replacedBy: undefined,
  revokedAtMs: undefined,
  ...over
})

const challenge = (over: Partial<Storage.Challenge> = {}): Storage.Challenge => ({
  id: id("ch"),
  email: "ada@example.com",
  provider: "local",
  providerRef: undefined,
  providerUserId: undefined,
  verifier: "f".repeat(64),
  attempts: 0,
  maxAttempts: 5,
  createdAtMs: NOW,
  expiresAtMs: NOW + 600_000,
  consumedAtMs: undefined,
  ...over
})

const paywall = (ownerUserId: string, over: Partial<Storage.PaywallRow> = {}): Storage.PaywallRow => ({
  id: id("pw"),
  ownerUserId,
  name: "premium",
  hostRegexp: "api\\.example\\.com",
  pathRegexp: "^/premium/.*",
  priceMsats: 70_000,
  upstream: "https://upstream.example.com",
  enabled: true,
  meta: { timeoutMs: 5000 },
  lastReconcileStatus: undefined,
  lastReconcileError: undefined,
  lastReconciledAtMs: undefined,
  lastReconcileStartedAtMs: undefined,
  lastReconcileDiagnostics: [],
  createdAtMs: NOW,
  updatedAtMs: NOW,
  deletedAtMs: undefined,
  ...over
})

const invoiceInput = (invoiceId: string, status: "open" | "canceled" | "expired" | "settled", over: Record<string, unknown> = {}) => ({
  invoiceId,
  paywallId: "pw_1",
  ownerId: "owner_1",
  amountMsats: 70_000,
  status,
  ...over
})

export const storageSuite = (
  name: string,
  storage: Layer.Layer<Storage.AuthStorage | Storage.L402Storage, unknown>,
  options: { readonly concurrent: boolean }
) =>
  describe(`control storage: ${name}`, () => {
    layer(storage, { excludeTestServices: true })((it) => {
      it.effect("upserts users by normalized email and fills the provider id once", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const input = userInput()
          const first = yield* auth.upsertUser(input)
          expect(first.created).toBe(true)
          const again = yield* auth.upsertUser({ ...input, id: id("usr"), providerUserId: "user_01WORKOS", nowMs: NOW + 1 })
          expect(again).toMatchObject({ created: false, user: { id: first.user.id, providerUserId: "user_01WORKOS" } })
          const third = yield* auth.upsertUser({ ...input, id: id("usr"), providerUserId: "user_02OTHER" })
          expect(third.user.providerUserId).toBe("user_01WORKOS")
          expect(yield* auth.findUser(first.user.id)).toEqual(again.user)
        }))

      it.effect("counts at most maxAttempts attempts on a live challenge and consumes it once", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const c = challenge()
          yield* auth.insertChallenge(c)
          for (let i = 1; i <= 5; i++) expect((yield* auth.recordAttempt(c.id, NOW))?.attempts).toBe(i)
          expect(yield* auth.recordAttempt(c.id, NOW)).toBeUndefined()
          const fresh = challenge()
          yield* auth.insertChallenge(fresh)
          expect(yield* auth.recordAttempt(fresh.id, fresh.expiresAtMs)).toBeUndefined()
          expect(yield* auth.consumeChallenge(fresh.id, NOW)).toBe(true)
          expect(yield* auth.consumeChallenge(fresh.id, NOW)).toBe(false)
          expect(yield* auth.recordAttempt(fresh.id, NOW)).toBeUndefined()
          expect(yield* auth.recordAttempt("ch_missing", NOW)).toBeUndefined()
          expect((yield* auth.findChallenge(fresh.id))?.consumedAtMs).toBe(NOW)
        }))

      it.effect("under concurrent verification a challenge is checked at most maxAttempts times", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const c = challenge()
          yield* auth.insertChallenge(c)
          const results = yield* Effect.all(Array.from({ length: 20 }, () => auth.recordAttempt(c.id, NOW)), { concurrency: "unbounded" })
          expect(results.filter((r) => r !== undefined)).toHaveLength(5)
          const consumed = yield* Effect.all(Array.from({ length: 10 }, () => auth.consumeChallenge(c.id, NOW)), { concurrency: "unbounded" })
          expect(consumed.filter(Boolean)).toHaveLength(1)
        }))

      it.effect("lists and revokes a user's sessions by id and by device, never another user's", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const { user } = yield* auth.upsertUser(userInput())
          const { user: other } = yield* auth.upsertUser(userInput())
          const a = session(user.id, { deviceId: "dev_a", createdAtMs: NOW })
          const b = session(user.id, { deviceId: "dev_b", createdAtMs: NOW + 1 })
          const c = session(user.id, { deviceId: "dev_b", createdAtMs: NOW + 2 })
          const foreign = session(other.id, { deviceId: "dev_b" })
          const ta = refreshToken(a.id)
          for (const [s, t] of [[a, ta], [b, refreshToken(b.id)], [c, refreshToken(c.id)], [foreign, refreshToken(foreign.id)]] as const) yield* auth.insertSession(s, t)
          expect((yield* auth.listSessions(user.id, NOW)).map((s) => s.id)).toEqual([c.id, b.id, a.id])
          const byDevice = yield* auth.revokeSessions({ userId: user.id, deviceIds: ["dev_b"], reason: "device_replaced", nowMs: NOW + 10 })
          expect(byDevice.sessions.map((s) => s.id).sort()).toEqual([b.id, c.id].sort())
          expect(byDevice.refreshTokenIds).toHaveLength(2)
          expect((yield* auth.findSession(foreign.id))?.revokedAtMs).toBeUndefined()
          const byId = yield* auth.revokeSessions({ userId: other.id, sessionIds: [a.id], reason: "user_requested", nowMs: NOW + 11 })
          expect(byId.sessions).toEqual([])
          const own = yield* auth.revokeSessions({ userId: user.id, sessionIds: [a.id, b.id], reason: "user_requested", nowMs: NOW + 12 })
          expect(own.sessions.map((s) => [s.id, s.revokedReason, s.revokedAtMs])).toEqual([[a.id, "user_requested", NOW + 12]])
          expect(own.refreshTokenIds).toEqual([ta.id])
          expect((yield* auth.findRefreshToken(ta.tokenHash))?.revokedAtMs).toBe(NOW + 12)
          expect(yield* auth.revokeSessions({ userId: user.id, reason: "user_requested", nowMs: NOW })).toEqual({ sessions: [], refreshTokenIds: [] })
        }))

      it.effect("rotates a refresh token once, extending the session; concurrent rotations have one winner", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const { user } = yield* auth.upsertUser(userInput())
          const s = session(user.id)
          const t = refreshToken(s.id)
          yield* auth.insertSession(s, t)
          const next = refreshToken(s.id, { createdAtMs: NOW + 5, expiresAtMs: NOW + 200_000_000 })
          expect(yield* auth.rotateRefreshToken(t.id, next, NOW + 5)).toBe(true)
          expect(yield* auth.rotateRefreshToken(t.id, refreshToken(s.id), NOW + 6)).toBe(false)
          expect(yield* auth.findRefreshToken(t.tokenHash)).toMatchObject({ rotatedAtMs: NOW + 5, replacedBy: next.id })
          expect((yield* auth.findSession(s.id))?.expiresAtMs).toBe(NOW + 200_000_000)
          const racers = yield* Effect.all(
            Array.from({ length: 8 }, () => auth.rotateRefreshToken(next.id, refreshToken(s.id), NOW + 7)),
            { concurrency: "unbounded" }
          )
          expect(racers.filter(Boolean)).toHaveLength(1)
          expect(yield* auth.extendRefreshToken(next.id, NOW + 1)).toBe(false)
        }))

      it.effect("rate limits over a sliding window: exactly `limit` of concurrent hits pass, none more across a window boundary, and old logs are pruned", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const W = 60_000
          const key = id("email")
          const first = yield* Effect.all(Array.from({ length: 7 }, () => auth.takeRateLimit(key, NOW, W, 6)), { concurrency: "unbounded" })
          expect(first.filter((d) => d.allowed)).toHaveLength(6)
          expect(first.filter((d) => !d.allowed)).toEqual([{ allowed: false, retryAfterMs: W }])
          expect(yield* auth.takeRateLimit(key, NOW + W - 1, W, 6)).toEqual({ allowed: false, retryAfterMs: 1 })
          // The six hits at NOW leave the window at NOW + W.
          expect(yield* auth.takeRateLimit(key, NOW + W, W, 6)).toEqual({ allowed: true, remaining: 5 })

          // Six hits late in one minute and a seventh early in the next: a fixed window would let it
          // through (and six more); the sliding window refuses until the first of the six is a minute old.
          const edge = id("email")
          for (let i = 0; i < 6; i++) expect((yield* auth.takeRateLimit(edge, NOW + 59_000 + i, W, 6)).allowed).toBe(true)
          expect(yield* auth.takeRateLimit(edge, NOW + 61_000, W, 6)).toEqual({ allowed: false, retryAfterMs: 59_000 + W - 61_000 })
          // Refused hits are not counted: at NOW + 59_000 + W the first allowed hit has left.
          expect(yield* auth.takeRateLimit(edge, NOW + 59_000 + W, W, 6)).toEqual({ allowed: true, remaining: 0 })

          yield* auth.prune(NOW + 59_000 + W + 1)
          expect(yield* auth.takeRateLimit(edge, NOW + 59_000 + W + 2, W, 6)).toEqual({ allowed: true, remaining: 5 })
        }))

      it.effect("keeps revocation notices until delivered, retrying failed ones later", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const at = NOW + 5_000_000
          const notice: Storage.RevocationNotice = {
            id: id("rev"), userId: "usr_1", sessionIds: ["sess_1"], deviceIds: ["dev_1"], reason: "user_requested",
            createdAtMs: at, attempts: 0, nextAttemptAtMs: at, deliveredAtMs: undefined, lastError: undefined
          }
          yield* auth.enqueueRevocation(notice)
          expect((yield* auth.dueRevocations(at, 100)).filter((n) => n.id === notice.id)).toEqual([notice])
          yield* auth.markRevocationFailed(notice.id, "connection refused", at + 1000)
          expect((yield* auth.dueRevocations(at + 999, 100)).some((n) => n.id === notice.id)).toBe(false)
          const [retry] = (yield* auth.dueRevocations(at + 1000, 100)).filter((n) => n.id === notice.id)
          expect(retry).toMatchObject({ attempts: 1, lastError: "connection refused" })
          yield* auth.markRevocationDelivered(notice.id, at + 1001)
          expect((yield* auth.dueRevocations(at + 10_000, 100)).some((n) => n.id === notice.id)).toBe(false)
        }))

      it.effect("rolls a transaction back when it fails", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const input = userInput()
          const result = yield* Effect.either(auth.transaction(Effect.gen(function*() {
            yield* auth.upsertUser(input)
            return yield* Effect.fail("boom" as const)
          })))
          expect(result).toEqual(Either.left("boom"))
          const again = yield* auth.upsertUser({ ...input, id: id("usr") })
          expect(again.created).toBe(true)
        }))

      it.effect("stores paywalls with derived status and updates them under a lock", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const l402 = yield* Storage.L402Storage
          const { user } = yield* auth.upsertUser(userInput())
          const active = paywall(user.id)
          const paused = paywall(user.id, { enabled: false, createdAtMs: NOW + 1 })
          const archived = paywall(user.id, { deletedAtMs: NOW + 3, createdAtMs: NOW + 2 })
          for (const p of [active, paused, archived]) yield* l402.insertPaywall(p)
          expect(yield* l402.findPaywall(active.id)).toEqual(active)
          expect((yield* l402.listPaywallsByOwner(user.id, false)).map((p) => p.id)).toEqual([active.id, paused.id])
          expect((yield* l402.listPaywallsByOwner(user.id, true)).map((p) => p.id)).toEqual([active.id, paused.id, archived.id])
          const mine = (statuses: ReadonlyArray<"active" | "paused" | "archived">) =>
            Effect.map(l402.listPaywalls(statuses), (rows) => rows.filter((p) => p.ownerUserId === user.id).map((p) => p.id))
          expect(yield* mine(["active", "paused"])).toEqual([active.id, paused.id])
          expect(yield* mine(["archived"])).toEqual([archived.id])
          const updated = yield* l402.updatePaywall(active.id, (p) => Effect.succeed({ ...p, enabled: false, meta: { priority: 3 }, updatedAtMs: NOW + 9 }))
          expect(updated).toMatchObject({ enabled: false, meta: { priority: 3 } })
          expect(yield* l402.findPaywall(active.id)).toEqual(updated)
          expect(yield* l402.updatePaywall("pw_missing", (p) => Effect.succeed(p))).toBeUndefined()
          const refused = yield* Effect.either(l402.updatePaywall(paused.id, () => Effect.fail("archived" as const)))
          expect(refused).toEqual(Either.left("archived"))
        }))

      it.effect("records a deployment with the reconcile status of every paywall it covers (one owner's status never stands in for the others')", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const l402 = yield* Storage.L402Storage
          const owners = [yield* auth.upsertUser(userInput()), yield* auth.upsertUser(userInput()), yield* auth.upsertUser(userInput())]
          const [a, b, c] = owners.map(({ user }) => paywall(user.id))
          for (const p of [a!, b!, c!]) yield* l402.insertPaywall(p)
          const deploymentId = id("dep_reconcile")
          const intent = { deploymentId, paywallId: a!.id, configHash: "cfg_1", status: "applied" as const, diagnostics: [], createdAtMs: NOW, updatedAtMs: NOW + 20, paywallIds: [a!.id, b!.id] }
          const diagnostic = { code: "duplicate_route" as const, severity: "error" as const, message: "held by another paywall", paywallId: c!.id, relatedPaywallId: a!.id }
          const stored = yield* l402.upsertDeployment(intent, [
            { paywallId: a!.id, status: "applied", error: undefined, diagnostics: [], atMs: NOW + 20, startedAtMs: NOW + 20 },
            { paywallId: b!.id, status: "applied", error: undefined, diagnostics: [], atMs: NOW + 20, startedAtMs: NOW + 20 },
            { paywallId: c!.id, status: "failed", error: "compile_validation_failed", diagnostics: [diagnostic], atMs: NOW + 20, startedAtMs: NOW + 20 },
            { paywallId: "pw_unknown", status: "applied", error: undefined, diagnostics: [], atMs: NOW + 20, startedAtMs: NOW + 20 }
          ])
          expect(stored).toMatchObject({ deploymentId, paywallIds: [a!.id, b!.id] })
          for (const p of [a!, b!]) expect(yield* l402.findPaywall(p.id)).toMatchObject({ lastReconcileStatus: "applied", lastReconcileError: undefined, lastReconcileDiagnostics: [], lastReconciledAtMs: NOW + 20 })
          expect(yield* l402.findPaywall(c!.id)).toMatchObject({ lastReconcileStatus: "failed", lastReconcileError: "compile_validation_failed", lastReconcileDiagnostics: [diagnostic] })
          // A later outcome replaces the whole status, diagnostics included.
          yield* l402.upsertDeployment({ ...intent, status: "rolled_back", updatedAtMs: NOW + 30 }, [{ paywallId: c!.id, status: "rolled_back", error: "health_check_failed", diagnostics: [], atMs: NOW + 30, startedAtMs: NOW + 30 }])
          expect(yield* l402.findPaywall(c!.id)).toMatchObject({ lastReconcileStatus: "rolled_back", lastReconcileError: "health_check_failed", lastReconcileDiagnostics: [] })
          // A user's edit keeps the reconcile status (it is control-plane state, not the owner's).
          const edited = yield* l402.updatePaywall(c!.id, (p) => Effect.succeed({ ...p, name: "renamed" }))
          expect(edited).toMatchObject({ name: "renamed", lastReconcileStatus: "rolled_back" })
          expect(yield* l402.findPaywall(c!.id)).toEqual(edited)
        }))

      it.effect("a paywall keeps the outcome of the reconcile that started last: a late report of an older one does not replace it", () =>
        Effect.gen(function*() {
          const auth = yield* Storage.AuthStorage
          const l402 = yield* Storage.L402Storage
          const { user } = yield* auth.upsertUser(userInput())
          const [a, b] = [paywall(user.id), paywall(user.id)]
          for (const p of [a, b]) yield* l402.insertPaywall(p)
          const intent = (n: number, status: "applied" | "failed", startedAtMs: number) => ({
            deploymentId: id("dep_reconcile"),
            configHash: `cfg_${n}`,
            status,
            diagnostics: [],
            createdAtMs: NOW + n,
            updatedAtMs: NOW + n,
            paywallIds: [a.id, b.id],
            reconcileStartedAtMs: startedAtMs
          })
          const outcome = (paywallId: string, status: string, atMs: number, startedAtMs: number) => ({
            paywallId,
            status,
            error: status === "failed" ? "health_check_failed" : undefined,
            diagnostics: [],
            atMs,
            startedAtMs
          })
          // The newer reconcile (started at +200) reports first; the older one (+100) reports later.
          yield* l402.upsertDeployment(intent(1, "applied", NOW + 200), [outcome(a.id, "applied", NOW + 300, NOW + 200), outcome(b.id, "applied", NOW + 300, NOW + 200)])
          const late = yield* l402.upsertDeployment(intent(2, "failed", NOW + 100), [outcome(a.id, "failed", NOW + 400, NOW + 100)])
          expect(late).toMatchObject({ status: "failed", reconcileStartedAtMs: NOW + 100 })
          expect(yield* l402.findPaywall(a.id)).toMatchObject({ lastReconcileStatus: "applied", lastReconcileError: undefined, lastReconciledAtMs: NOW + 300, lastReconcileStartedAtMs: NOW + 200 })
          // The same reconcile reporting again (equal start) and a later one do replace it.
          yield* l402.upsertDeployment(intent(3, "failed", NOW + 200), [outcome(a.id, "failed", NOW + 500, NOW + 200)])
          expect(yield* l402.findPaywall(a.id)).toMatchObject({ lastReconcileStatus: "failed", lastReconcileError: "health_check_failed", lastReconciledAtMs: NOW + 500 })
          yield* l402.upsertDeployment(intent(4, "applied", NOW + 250), [outcome(a.id, "applied", NOW + 600, NOW + 250), outcome(b.id, "applied", NOW + 600, NOW + 250)])
          for (const p of [a, b]) expect(yield* l402.findPaywall(p.id)).toMatchObject({ lastReconcileStatus: "applied", lastReconciledAtMs: NOW + 600, lastReconcileStartedAtMs: NOW + 250 })
          // An intent id reused across runs (a paywall's own, stable while its reason is): the
          // older run's late report leaves the newer run's record as it is.
          const reused = { ...intent(5, "applied", NOW + 300), deploymentId: id("dep_paywall") }
          yield* l402.upsertDeployment(reused)
          const kept = yield* l402.upsertDeployment({ ...reused, status: "failed", updatedAtMs: NOW + 700, reconcileStartedAtMs: NOW + 290 })
          expect(kept).toMatchObject({ status: "applied", reconcileStartedAtMs: NOW + 300 })
          expect(yield* l402.upsertDeployment({ ...reused, status: "failed", updatedAtMs: NOW + 800, reconcileStartedAtMs: NOW + 300 })).toMatchObject({ status: "failed" })
        }))

      if (name !== "memory") {
        it.effect("a deployment and its paywalls' reconcile statuses are written all or nothing", () =>
          Effect.gen(function*() {
            const auth = yield* Storage.AuthStorage
            const l402 = yield* Storage.L402Storage
            const { user } = yield* auth.upsertUser(userInput())
            const [a, b] = [paywall(user.id), paywall(user.id)]
            for (const p of [a, b]) yield* l402.insertPaywall(p)
            const deploymentId = id("dep_reconcile")
            const intent = { deploymentId, configHash: "cfg_1", status: "applied" as const, diagnostics: [], createdAtMs: NOW, updatedAtMs: NOW, paywallIds: [a.id, b.id] }
            // The second paywall's status does not fit its column: nothing of the write may remain.
            const failed = yield* Effect.either(l402.upsertDeployment(intent, [
              { paywallId: a.id, status: "applied", error: undefined, diagnostics: [], atMs: NOW, startedAtMs: NOW },
              { paywallId: b.id, status: "x".repeat(64), error: undefined, diagnostics: [], atMs: NOW, startedAtMs: NOW }
            ]))
            expect(failed._tag).toBe("Left")
            expect(yield* l402.findPaywall(a.id)).toMatchObject({ lastReconcileStatus: undefined, lastReconciledAtMs: undefined })
            // The deployment row was not kept either: a new write is a first insert (its own createdAtMs).
            expect(yield* l402.upsertDeployment({ ...intent, createdAtMs: NOW + 1, updatedAtMs: NOW + 1 })).toMatchObject({ createdAtMs: NOW + 1 })
          }))
      }

      it.effect("upserts deployments by id keeping createdAtMs, and records gateway events once with their correlation", () =>
        Effect.gen(function*() {
          const l402 = yield* Storage.L402Storage
          const deploymentId = id("dep_reconcile")
          const first = yield* l402.upsertDeployment({ deploymentId, configHash: "cfg_1", status: "pending", diagnostics: [], createdAtMs: NOW, updatedAtMs: NOW, paywallIds: [] })
          const second = yield* l402.upsertDeployment({
            deploymentId, configHash: "cfg_1", status: "applied", diagnostics: [], appliedAtMs: NOW + 5, imageDigest: "sha256:abc",
            metadata: { executionPath: "hosted-node" }, createdAtMs: NOW + 5, updatedAtMs: NOW + 5, paywallIds: []
          })
          expect(first.status).toBe("pending")
          expect(second).toMatchObject({ status: "applied", createdAtMs: NOW, updatedAtMs: NOW + 5, metadata: { executionPath: "hosted-node" } })
          const event = {
            eventId: id("evt"), paywallId: "pw_1", ownerId: "owner_1", eventType: "gateway_reconcile_health_ok", level: "info" as const,
            deploymentId, configHash: "cfg_1", executionPath: "hosted-node", createdAtMs: NOW
          }
          expect(yield* l402.insertGatewayEvent(event)).toEqual({ event, existed: false })
          expect(yield* l402.insertGatewayEvent({ ...event, eventType: "other" })).toEqual({ event, existed: true })
          expect(yield* l402.listGatewayEvents({ deploymentId })).toEqual([event])
        }))

      it.effect("applies invoice lifecycle updates monotonically and refuses another identity for an invoice id", () =>
        Effect.gen(function*() {
          const l402 = yield* Storage.L402Storage
          const invoiceId = id("inv")
          expect(yield* l402.ingestInvoice(invoiceInput(invoiceId, "open", { paymentHash: "aa" }), NOW)).toMatchObject({ changed: true, invoice: { status: "open", paymentHash: "aa" } })
          expect((yield* l402.ingestInvoice(invoiceInput(invoiceId, "open", { paymentHash: "bb" }), NOW + 1)).changed).toBe(false)
          const settled = yield* l402.ingestInvoice(invoiceInput(invoiceId, "settled", { paymentProofRef: "lightning_preimage:00", settledAtMs: NOW + 2 }), NOW + 2)
          expect(settled).toMatchObject({ changed: true, invoice: { status: "settled", paymentHash: "aa", settledAtMs: NOW + 2 } })
          expect((yield* l402.ingestInvoice(invoiceInput(invoiceId, "expired"), NOW + 3)).changed).toBe(false)
          expect((yield* l402.ingestInvoice(invoiceInput(invoiceId, "settled", { settledAtMs: NOW + 9 }), NOW + 9)).invoice.settledAtMs).toBe(NOW + 2)
          const conflict = yield* Effect.flip(l402.ingestInvoice(invoiceInput(invoiceId, "settled", { amountMsats: 1 }), NOW + 4))
          expect(conflict._tag).toBe("ControlPlaneConflict")
          expect(yield* l402.findInvoice(invoiceId)).toEqual(settled.invoice)
        }))

      it.effect("ingests a settlement once, settling its invoice in the same transaction", () =>
        Effect.gen(function*() {
          const l402 = yield* Storage.L402Storage
          const invoiceId = id("inv")
          yield* l402.ingestInvoice(invoiceInput(invoiceId, "open"), NOW)
          const settlement = { settlementId: id("set"), paywallId: "pw_1", ownerId: "owner_1", invoiceId, amountMsats: 70_000, paymentProofRef: "lightning_preimage:abc", createdAtMs: NOW + 1 }
          const first = yield* l402.ingestSettlement(settlement, invoiceInput(invoiceId, "settled", { paymentProofRef: "lightning_preimage:abc" }), NOW + 1)
          expect(first).toMatchObject({ existed: false, settlement, invoice: { status: "settled", settledAtMs: NOW + 1, paymentProofRef: "lightning_preimage:abc" } })
          const replay = yield* l402.ingestSettlement({ ...settlement, createdAtMs: NOW + 2 }, invoiceInput(invoiceId, "settled"), NOW + 2)
          expect(replay).toEqual({ existed: true, settlement, invoice: first.invoice })
          // A settlement whose invoice conflicts is not stored at all.
          const bad = { ...settlement, settlementId: id("set") }
          expect((yield* Effect.flip(l402.ingestSettlement(bad, invoiceInput(invoiceId, "settled", { ownerId: "owner_2" }), NOW + 3)))._tag).toBe("ControlPlaneConflict")
          const retried = yield* l402.ingestSettlement(bad, undefined, NOW + 4)
          expect(retried.existed).toBe(false)
        }))

      it.effect("keeps the security state: the seeded global row, owner controls and credential roles", () =>
        Effect.gen(function*() {
          const l402 = yield* Storage.L402Storage
          const initial = yield* l402.securityState
          expect(initial.global).toMatchObject({ stateId: "global" })
          const paused = yield* l402.setGlobal({ stateId: "global", globalPause: true, denyReasonCode: "global_pause_active", denyReason: "incident", updatedBy: "ops", updatedAtMs: NOW })
          expect((yield* l402.securityState).global).toEqual(paused)
          const ownerId = id("owner")
          yield* l402.setOwnerControl({ ownerId, killSwitch: true, denyReasonCode: "owner_kill_switch_active", updatedAtMs: NOW })
          const off = yield* l402.setOwnerControl({ ownerId, killSwitch: false, updatedAtMs: NOW + 1 })
          expect(yield* l402.findOwnerControl(ownerId)).toEqual(off)
          const rotate = (existing: CredentialRoleState | undefined) =>
            Effect.succeed({ role: "gateway_invoice" as const, status: "rotating" as const, version: (existing?.version ?? 0) + 1, updatedAtMs: NOW })
          const v1 = yield* l402.updateCredentialRole("gateway_invoice", rotate)
          const v2 = yield* l402.updateCredentialRole("gateway_invoice", rotate)
          expect(v2.version).toBe(v1.version + 1)
          expect((yield* l402.securityState).credentialRoles.find((r) => r.role === "gateway_invoice")).toEqual(v2)
          yield* l402.setGlobal({ stateId: "global", globalPause: false, updatedAtMs: NOW + 2 })
        }))

      if (options.concurrent) {
        it.effect("converges concurrent invoice lifecycle updates to the highest-ranked status (real concurrency)", () =>
          Effect.gen(function*() {
            const l402 = yield* Storage.L402Storage
            for (let round = 0; round < 5; round++) {
              const invoiceId = id("inv")
              const statuses = ["open", "expired", "canceled", "open", "settled", "open", "expired", "settled", "open", "canceled"] as const
              const results = yield* Effect.all(
                statuses.map((status, i) => l402.ingestInvoice(invoiceInput(invoiceId, status, { paymentHash: `hash_${i}`, settledAtMs: NOW + i }), NOW + i)),
                { concurrency: "unbounded" }
              )
              const stored = (yield* l402.findInvoice(invoiceId))!
              expect(stored.status).toBe("settled")
              // Exactly one call won each fillable field and the settle transition.
              expect(results.filter((r) => r.changed && r.invoice.status === "settled" && r.invoice.settledAtMs === stored.settledAtMs).length).toBeGreaterThanOrEqual(1)
              expect(results.filter((r) => r.invoice.paymentHash === stored.paymentHash).length).toBeGreaterThanOrEqual(1)
              expect(new Set(results.map((r) => r.invoice.paymentHash)).size).toBe(1)
            }
          }))

        it.effect("ingests concurrent replays of one settlement exactly once (real concurrency)", () =>
          Effect.gen(function*() {
            const l402 = yield* Storage.L402Storage
            const invoiceId = id("inv")
            const settlement = { settlementId: id("set"), paywallId: "pw_1", ownerId: "owner_1", invoiceId, amountMsats: 70_000, paymentProofRef: "lightning_preimage:abc", createdAtMs: NOW }
            const results = yield* Effect.all(
              Array.from({ length: 16 }, () => l402.ingestSettlement(settlement, invoiceInput(invoiceId, "settled"), NOW)),
              { concurrency: "unbounded" }
            )
            expect(results.filter((r) => !r.existed)).toHaveLength(1)
            expect(results.every((r) => r.settlement.settlementId === settlement.settlementId && r.invoice?.status === "settled")).toBe(true)
          }))

        it.effect("serializes concurrent credential role writers, including the first ones (real concurrency)", () =>
          Effect.gen(function*() {
            const l402 = yield* Storage.L402Storage
            const before = (yield* l402.securityState).credentialRoles.find((r) => r.role === "settlement_read")?.version ?? 0
            yield* Effect.all(
              Array.from({ length: 10 }, () =>
                l402.updateCredentialRole("settlement_read", (existing) =>
                  Effect.succeed({ role: "settlement_read" as const, status: "rotating" as const, version: (existing?.version ?? 0) + 1, updatedAtMs: NOW }))),
              { concurrency: "unbounded" }
            )
            expect((yield* l402.securityState).credentialRoles.find((r) => r.role === "settlement_read")?.version).toBe(before + 10)
          }))
      }
    })
  })
