// Which sync sessions and devices are revoked, for everything that accepts a sync token: the
// WebSocket server at hello and refresh, and the snapshot endpoint on every request. One instance
// per node, shared by both (a host provides `layer` to the Server and to the HTTP routes), so a
// revocation that closes a session's sockets also stops its snapshot reads.
//
// Two sources: revocations announced through the Notifier (KhalaServer.revoke on any node), held
// in memory for `ttlMs` (longer than any token lives); and, optionally, durable lookups
// (`sessionRevoked`, `deviceRevoked`) for what was revoked while this node was not listening
// (before it started, or while its LISTEN connection was down). A durable lookup that fails makes
// the verdict "unknown": callers refuse the token, retryably (fail closed).
//
// A revoked session is refused whatever its tokens. A revoked device is refused only for tokens
// issued before its revocation, and only its user's (when the revocation names the user): the
// device may sign in again (a new session, new tokens), and a device id that several users share
// (a client that sends none gets its client's name) does not lock the other users out.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { Notifier, type Revocation } from "./Notifier.js"
import type { SyncPrincipal } from "./SyncToken.js"
import type { RevocationReasonName } from "./SyncWire.js"

/** Why a principal may not use its token, undefined when it may, "unknown" when that cannot be told now. */
export type Verdict = RevocationReasonName | undefined | "unknown"

export interface RevocationsOptions {
  /** How long announced revocations are held (default 15 min, longer than any token). */
  readonly ttlMs?: number | undefined
  /** The durable record of revoked sessions (the runtime's `runtime.revoked_sessions`). */
  readonly sessionRevoked?: ((sessionId: string) => Effect.Effect<boolean, unknown>) | undefined
  /**
   * The durable record of revoked devices (the runtime's `runtime.revoked_devices`): whether the
   * device was revoked for `userId` (or for every user) at or after `issuedAtSeconds` (a token's
   * `iat`).
   */
  readonly deviceRevoked?: ((deviceId: string, issuedAtSeconds: number, userId: string) => Effect.Effect<boolean, unknown>) | undefined
}

/** Who holds a token, as far as revocations go: a sync principal, or another plane's caller (the runtime's SSE). */
export interface Holder {
  readonly userId: string
  readonly sessionId?: string | undefined
  readonly deviceId?: string | undefined
  /** The token's iat (seconds); unknown counts as issued before any revocation. */
  readonly issuedAt?: number | undefined
}

/** Whether `revocation` covers `holder`: its session, or its device for its user and a token issued up to the revocation. */
export const covers = (revocation: Revocation, holder: Holder): boolean =>
  (holder.sessionId !== undefined && revocation.sessionIds.includes(holder.sessionId)) ||
  (holder.deviceId !== undefined && revocation.deviceIds.includes(holder.deviceId) &&
    (revocation.userId === undefined || revocation.userId === holder.userId) &&
    (revocation.revokedAtMs === undefined || holder.issuedAt === undefined || holder.issuedAt * 1000 <= revocation.revokedAtMs))

export interface RevocationsService {
  /** Hold a revocation (idempotent; extends its expiry). */
  readonly add: (revocation: Revocation) => void
  /** The in-memory verdict alone (no lookup): for checks that must not wait. */
  readonly reasonOf: (principal: SyncPrincipal) => RevocationReasonName | undefined
  /** In memory first, then the durable lookup. */
  readonly check: (principal: SyncPrincipal) => Effect.Effect<Verdict>
  /** Drop expired entries. */
  readonly sweep: () => void
}

export class Revocations extends Context.Tag("@openagents/khala-core/Revocations")<Revocations, RevocationsService>() {}

export const DEFAULT_TTL_MS = 15 * 60_000

/** A store without a Notifier listener: its owner feeds it (the Server does, from its own listener). */
export const makeStore = (options: RevocationsOptions = {}): RevocationsService => {
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS
  const sessions = new Map<string, { until: number; reason: RevocationReasonName }>()
  // Keyed by user id ("" for every user) and device id.
  const devices = new Map<string, { until: number; reason: RevocationReasonName; at: number }>()
  const deviceKey = (userId: string, deviceId: string) => `${userId}\u0000${deviceId}`
  const deviceReason = (key: string, principal: SyncPrincipal, now: number) => {
    const d = devices.get(key)
    return d !== undefined && d.until > now && principal.issuedAt * 1000 <= d.at ? d.reason : undefined
  }
  const reasonOf = (principal: SyncPrincipal) => {
    const now = Date.now()
    const s = sessions.get(principal.sessionId)
    if (s !== undefined && s.until > now) return s.reason
    return deviceReason(deviceKey("", principal.deviceId), principal, now) ??
      deviceReason(deviceKey(principal.userId, principal.deviceId), principal, now)
  }
  const { deviceRevoked, sessionRevoked } = options
  const lookup = sessionRevoked === undefined && deviceRevoked === undefined
    ? undefined
    : (principal: SyncPrincipal) =>
      Effect.map(
        Effect.all([
          sessionRevoked === undefined ? Effect.succeed(false) : sessionRevoked(principal.sessionId),
          deviceRevoked === undefined ? Effect.succeed(false) : deviceRevoked(principal.deviceId, principal.issuedAt, principal.userId)
        ], { concurrency: 2 }),
        ([session, device]) => session || device
      )
  return {
    add: (revocation) => {
      const now = Date.now()
      const entry = { until: now + ttlMs, reason: revocation.reason, at: revocation.revokedAtMs ?? now }
      for (const id of revocation.sessionIds) sessions.set(id, entry)
      for (const id of revocation.deviceIds) {
        const key = deviceKey(revocation.userId ?? "", id)
        const held = devices.get(key)
        // The latest revocation wins: a redelivered older one does not move it back.
        devices.set(key, held !== undefined && held.at > entry.at ? { ...entry, at: held.at } : entry)
      }
    },
    reasonOf,
    check: (principal) =>
      Effect.suspend((): Effect.Effect<Verdict> => {
        const held = reasonOf(principal)
        if (held !== undefined || lookup === undefined) return Effect.succeed(held)
        return lookup(principal).pipe(
          Effect.map((revoked): Verdict => (revoked ? "admin_revoked" : undefined)),
          Effect.catchAllCause((cause) =>
            Effect.as(Effect.logWarning("khala: the revocation lookup failed; the token is refused, retryably", cause), "unknown" as const))
        )
      }),
    sweep: () => {
      const now = Date.now()
      for (const [id, e] of sessions) if (e.until <= now) sessions.delete(id)
      for (const [id, e] of devices) if (e.until <= now) devices.delete(id)
    }
  }
}

/** The node's revocations, fed by the Notifier; provide one to the Server and the snapshot routes. */
export const layer = (options: RevocationsOptions = {}): Layer.Layer<Revocations, never, Notifier> =>
  Layer.scoped(
    Revocations,
    Effect.gen(function*() {
      const notifier = yield* Notifier
      const store = makeStore(options)
      yield* notifier.listen({ wake: () => {}, revoke: store.add })
      yield* Effect.forkScoped(Effect.repeat(Effect.sync(store.sweep), { schedule: Schedule.spaced("30 seconds") }))
      return store
    })
  )
