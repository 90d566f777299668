// Control storage in memory, for tests, embedding and single-process development. Both storages
// share one state. Every operation holds a one-slot permit (re-entrant within a fiber that
// already holds it), so each is atomic; `transaction` holds the permit for its whole block and
// restores the state it started from when the block fails. Same contract as storage/sql.ts,
// checked by the same suite. State lives as long as the layer.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import { advance, type InvoiceInput } from "../Invoices.js"
import type {
  CredentialRoleState,
  DeploymentIntent,
  GatewayEvent,
  Invoice,
  OwnerControl,
  SecurityGlobal,
  Settlement
} from "../LightningOpsRpc.js"
import { ControlPlaneConflict } from "../LightningOpsRpc.js"
import type {
  AuthStorageService,
  Challenge,
  L402StorageService,
  PaywallRow,
  RefreshToken,
  RevocationNotice,
  Session,
  User
} from "../Storage.js"
import { AuthStorage, L402Storage, paywallStatus, slideRateLimit } from "../Storage.js"

interface State {
  users: Map<string, User>
  challenges: Map<string, Challenge>
  sessions: Map<string, Session>
  refreshTokens: Map<string, RefreshToken>
  /** Allowed hit times per rate-limit key (ascending), and when each key was last used. */
  rateLimits: Map<string, { hits: ReadonlyArray<number>; usedAtMs: number }>
  revocations: Map<string, RevocationNotice>
  paywalls: Map<string, PaywallRow>
  deployments: Map<string, DeploymentIntent>
  events: Map<string, GatewayEvent>
  invoices: Map<string, Invoice>
  settlements: Map<string, Settlement>
  global: SecurityGlobal
  owners: Map<string, OwnerControl>
  roles: Map<string, CredentialRoleState>
}

const emptyState = (): State => ({
  users: new Map(),
  challenges: new Map(),
  sessions: new Map(),
  refreshTokens: new Map(),
  rateLimits: new Map(),
  revocations: new Map(),
  paywalls: new Map(),
  deployments: new Map(),
  events: new Map(),
  invoices: new Map(),
  settlements: new Map(),
  global: { stateId: "global", globalPause: false, updatedAtMs: 0 },
  owners: new Map(),
  roles: new Map()
})

const isLive = (c: Challenge, nowMs: number) => c.consumedAtMs === undefined && c.expiresAtMs > nowMs

export const make = Effect.gen(function*() {
  let state = emptyState()
  const permit = yield* Effect.makeSemaphore(1)
  const holding = FiberRef.unsafeMake(false)
  const exclusive = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(FiberRef.get(holding), (held) => (held ? effect : permit.withPermits(1)(Effect.locally(effect, holding, true))))
  const sync = <A>(f: () => A) => exclusive(Effect.sync(f))

  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    exclusive(Effect.suspend(() => {
      const before = structuredClone(state)
      return Effect.onExit(effect, (exit) => Effect.sync(() => {
        if (Exit.isFailure(exit)) state = before
      }))
    }))

  const ingestInvoiceNow = (input: InvoiceInput, nowMs: number) => {
    const result = advance(state.invoices.get(input.invoiceId), input, nowMs)
    if (result instanceof ControlPlaneConflict) return result
    if (result.changed) state.invoices.set(result.invoice.invoiceId, result.invoice)
    return result
  }

  const auth: AuthStorageService = {
    transaction,

    upsertUser: (input) =>
      sync(() => {
        const existing = [...state.users.values()].find((u) => u.email === input.email)
        if (existing === undefined) {
          const user: User = { id: input.id, email: input.email, name: input.name, provider: input.provider, providerUserId: input.providerUserId, createdAtMs: input.nowMs, updatedAtMs: input.nowMs }
          state.users.set(user.id, user)
          return { user, created: true }
        }
        if (existing.providerUserId === undefined && input.providerUserId !== undefined) {
          const user = { ...existing, providerUserId: input.providerUserId, updatedAtMs: input.nowMs }
          state.users.set(user.id, user)
          return { user, created: false }
        }
        return { user: existing, created: false }
      }),
    findUser: (id) => sync(() => state.users.get(id)),

    insertChallenge: (c) => sync(() => void state.challenges.set(c.id, c)),
    findChallenge: (id) => sync(() => state.challenges.get(id)),
    recordAttempt: (id, nowMs) =>
      sync(() => {
        const c = state.challenges.get(id)
        if (c === undefined || !isLive(c, nowMs) || c.attempts >= c.maxAttempts) return undefined
        const next = { ...c, attempts: c.attempts + 1 }
        state.challenges.set(id, next)
        return next
      }),
    consumeChallenge: (id, nowMs) =>
      sync(() => {
        const c = state.challenges.get(id)
        if (c === undefined || !isLive(c, nowMs)) return false
        state.challenges.set(id, { ...c, consumedAtMs: nowMs })
        return true
      }),

    insertSession: (s, t) =>
      sync(() => {
        if (state.sessions.has(s.id) || state.refreshTokens.has(t.id)) throw new Error(`duplicate session ${s.id}`)
        state.sessions.set(s.id, s)
        state.refreshTokens.set(t.id, t)
      }),
    findSession: (id) => sync(() => state.sessions.get(id)),
    listSessions: (userId, nowMs) =>
      sync(() =>
        [...state.sessions.values()]
          .filter((s) => s.userId === userId && s.expiresAtMs > nowMs)
          .sort((a, b) => b.createdAtMs - a.createdAtMs || (a.id < b.id ? -1 : 1))
      ),
    touchSession: (id, nowMs) =>
      sync(() => {
        const s = state.sessions.get(id)
        if (s !== undefined && s.lastSeenAtMs < nowMs - 60_000) state.sessions.set(id, { ...s, lastSeenAtMs: nowMs })
      }),
    revokeSessions: (input) =>
      sync(() => {
        const ids = new Set(input.sessionIds ?? [])
        const devices = new Set(input.deviceIds ?? [])
        const sessions: Array<Session> = []
        for (const s of state.sessions.values()) {
          if (s.userId !== input.userId || s.revokedAtMs !== undefined || !(ids.has(s.id) || devices.has(s.deviceId))) continue
          const revoked = { ...s, revokedAtMs: input.nowMs, revokedReason: input.reason }
          state.sessions.set(s.id, revoked)
          sessions.push(revoked)
        }
        const revokedIds = new Set(sessions.map((s) => s.id))
        const refreshTokenIds: Array<string> = []
        for (const t of state.refreshTokens.values()) {
          if (revokedIds.has(t.sessionId) && t.revokedAtMs === undefined && t.rotatedAtMs === undefined) {
            state.refreshTokens.set(t.id, { ...t, revokedAtMs: input.nowMs })
            refreshTokenIds.push(t.id)
          }
        }
        return { sessions: sessions.sort((a, b) => (a.id < b.id ? -1 : 1)), refreshTokenIds: refreshTokenIds.sort() }
      }),

    findRefreshToken: (tokenHash) => sync(() => [...state.refreshTokens.values()].find((t) => t.tokenHash === tokenHash)),
    rotateRefreshToken: (currentId, next, nowMs) =>
      sync(() => {
        const t = state.refreshTokens.get(currentId)
        if (t === undefined || t.rotatedAtMs !== undefined || t.revokedAtMs !== undefined || t.expiresAtMs <= nowMs) return false
        state.refreshTokens.set(currentId, { ...t, rotatedAtMs: nowMs, replacedBy: next.id })
        state.refreshTokens.set(next.id, next)
        const s = state.sessions.get(next.sessionId)
        if (s !== undefined) state.sessions.set(s.id, { ...s, expiresAtMs: next.expiresAtMs, lastSeenAtMs: nowMs })
        return true
      }),
    extendRefreshToken: (id, expiresAtMs) =>
      sync(() => {
        const t = state.refreshTokens.get(id)
        if (t === undefined || t.rotatedAtMs !== undefined || t.revokedAtMs !== undefined) return false
        state.refreshTokens.set(id, { ...t, expiresAtMs })
        const s = state.sessions.get(t.sessionId)
        if (s !== undefined) state.sessions.set(s.id, { ...s, expiresAtMs })
        return true
      }),

    takeRateLimit: (key, nowMs, windowMs, limit) =>
      sync(() => {
        const { keep, decision } = slideRateLimit(state.rateLimits.get(key)?.hits ?? [], nowMs, windowMs, limit)
        state.rateLimits.set(key, { hits: keep, usedAtMs: nowMs })
        return decision
      }),

    enqueueRevocation: (n) => sync(() => void state.revocations.set(n.id, n)),
    dueRevocations: (nowMs, limit) =>
      sync(() =>
        [...state.revocations.values()]
          .filter((n) => n.deliveredAtMs === undefined && n.nextAttemptAtMs <= nowMs)
          .sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1))
          .slice(0, limit)
      ),
    markRevocationDelivered: (id, nowMs) =>
      sync(() => {
        const n = state.revocations.get(id)
        if (n !== undefined && n.deliveredAtMs === undefined) state.revocations.set(id, { ...n, deliveredAtMs: nowMs, attempts: n.attempts + 1 })
      }),
    markRevocationFailed: (id, error, nextAttemptAtMs) =>
      sync(() => {
        const n = state.revocations.get(id)
        if (n !== undefined && n.deliveredAtMs === undefined) state.revocations.set(id, { ...n, attempts: n.attempts + 1, lastError: error.slice(0, 2000), nextAttemptAtMs })
      }),

    prune: (beforeMs) =>
      sync(() => {
        for (const [k, log] of state.rateLimits) if (log.usedAtMs < beforeMs) state.rateLimits.delete(k)
        for (const c of state.challenges.values()) if (c.expiresAtMs < beforeMs) state.challenges.delete(c.id)
      })
  }

  const l402: L402StorageService = {
    insertPaywall: (p) =>
      sync(() => {
        if (state.paywalls.has(p.id)) throw new Error(`duplicate paywall ${p.id}`)
        state.paywalls.set(p.id, p)
      }),
    findPaywall: (id) => sync(() => state.paywalls.get(id)),
    listPaywallsByOwner: (ownerUserId, includeArchived) =>
      sync(() =>
        [...state.paywalls.values()]
          .filter((p) => p.ownerUserId === ownerUserId && (includeArchived || p.deletedAtMs === undefined))
          .sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1))
      ),
    listPaywalls: (statuses) =>
      sync(() =>
        [...state.paywalls.values()]
          .filter((p) => statuses.includes(paywallStatus(p)))
          .sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1))
      ),
    updatePaywall: (id, update) =>
      exclusive(Effect.suspend(() => {
        const row = state.paywalls.get(id)
        if (row === undefined) return Effect.succeed(undefined)
        return Effect.map(update(row), (next) => {
          state.paywalls.set(id, next)
          return next
        })
      })),

    upsertDeployment: (d, reconciled = []) =>
      sync(() => {
        const existing = state.deployments.get(d.deploymentId)
        // A late report of an older run does not replace a later run's record of a reused id.
        const older = existing?.reconcileStartedAtMs !== undefined && d.reconcileStartedAtMs !== undefined && d.reconcileStartedAtMs < existing.reconcileStartedAtMs
        const next = existing === undefined ? d : older ? existing : { ...d, createdAtMs: existing.createdAtMs }
        state.deployments.set(d.deploymentId, next)
        for (const r of reconciled) {
          const p = state.paywalls.get(r.paywallId)
          if (p !== undefined && (p.lastReconcileStartedAtMs === undefined || p.lastReconcileStartedAtMs <= r.startedAtMs)) {
            state.paywalls.set(r.paywallId, {
              ...p,
              lastReconcileStatus: r.status,
              lastReconcileError: r.error,
              lastReconcileDiagnostics: r.diagnostics,
              lastReconciledAtMs: r.atMs,
              lastReconcileStartedAtMs: r.startedAtMs
            })
          }
        }
        return next
      }),
    insertGatewayEvent: (e) =>
      sync(() => {
        const existing = state.events.get(e.eventId)
        if (existing !== undefined) return { event: existing, existed: true }
        state.events.set(e.eventId, e)
        return { event: e, existed: false }
      }),
    listGatewayEvents: (filter) =>
      sync(() =>
        [...state.events.values()]
          .filter((e) => (filter.deploymentId === undefined || e.deploymentId === filter.deploymentId) && (filter.paywallId === undefined || e.paywallId === filter.paywallId))
          .sort((a, b) => a.createdAtMs - b.createdAtMs || (a.eventId < b.eventId ? -1 : 1))
      ),

    ingestInvoice: (input, nowMs) =>
      exclusive(Effect.suspend(() => {
        const result = ingestInvoiceNow(input, nowMs)
        return result instanceof ControlPlaneConflict ? Effect.fail(result) : Effect.succeed(result)
      })),
    findInvoice: (invoiceId) => sync(() => state.invoices.get(invoiceId)),
    ingestSettlement: (s, invoice, nowMs) =>
      exclusive(Effect.suspend((): Effect.Effect<{ existed: boolean; settlement: Settlement; invoice: Invoice | undefined }, ControlPlaneConflict> => {
        const stored = state.settlements.get(s.settlementId)
        if (stored !== undefined) {
          return Effect.succeed({ existed: true, settlement: stored, invoice: stored.invoiceId === undefined ? undefined : state.invoices.get(stored.invoiceId) })
        }
        const advanced = invoice === undefined ? undefined : ingestInvoiceNow(invoice, nowMs)
        if (advanced instanceof ControlPlaneConflict) return Effect.fail(advanced)
        state.settlements.set(s.settlementId, s)
        return Effect.succeed({ existed: false, settlement: s, invoice: advanced?.invoice })
      })),

    securityState: sync(() => ({
      global: state.global,
      ownerControls: [...state.owners.values()].sort((a, b) => (a.ownerId < b.ownerId ? -1 : 1)),
      credentialRoles: [...state.roles.values()].sort((a, b) => (a.role < b.role ? -1 : 1))
    })),
    setGlobal: (g) =>
      sync(() => {
        state.global = g
        return g
      }),
    setOwnerControl: (c) =>
      sync(() => {
        state.owners.set(c.ownerId, c)
        return c
      }),
    findOwnerControl: (ownerId) => sync(() => state.owners.get(ownerId)),
    updateCredentialRole: (role, update) =>
      exclusive(Effect.suspend(() =>
        Effect.map(update(state.roles.get(role)), (next) => {
          state.roles.set(role, next)
          return next
        })
      ))
  }

  return { auth, l402 }
})

/** Both storages, sharing one in-memory state. */
export const layer: Layer.Layer<AuthStorage | L402Storage> = Layer.effectContext(
  Effect.map(make, ({ auth, l402 }) => Context.make(AuthStorage, auth).pipe(Context.add(L402Storage, l402)))
)
