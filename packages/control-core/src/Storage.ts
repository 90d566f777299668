// The storage contracts of the control plane, implemented in memory (storage/memory.ts) and on
// Postgres or PGlite through @effect/sql (storage/sql.ts); test/StorageSuite.ts runs one suite
// against all of them.
//
// AuthStorage keeps users, sign-in challenges, sessions, refresh tokens, rate-limit windows and
// the outbox of session revocations still to be delivered to the runtime. L402Storage keeps the
// paywalls and the lightning-ops control-plane records.
//
// What an adapter must guarantee (the suite checks each):
// - recordAttempt counts an attempt atomically and only while the challenge is live (not
//   consumed, not expired, attempts < maxAttempts): under any concurrency a challenge is checked
//   at most maxAttempts times; consumeChallenge succeeds once.
// - rotateRefreshToken retires the presented token atomically: of two concurrent rotations of
//   the same token, one wins.
// - ingestInvoice applies `Invoices.advance` under a row lock (or equivalent), so concurrent
//   lifecycle updates converge to the highest-ranked status; ingestSettlement inserts by
//   settlementId exactly once, and advances its invoice in the same transaction.
// - upsertDeployment writes the intent and the reconcile status of every paywall it covers in
//   one transaction (all or nothing).
// - `transaction` commits or rolls back everything inside it, including a typed failure.
// Times are Unix milliseconds passed in by the caller (the services read Effect's Clock), so
// tests control time.
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { StorageError } from "./Errors.js"
import type {
  CompileDiagnostic,
  ControlPlaneConflict,
  CredentialRole,
  CredentialRoleState,
  DeploymentIntent,
  GatewayEvent,
  Invoice,
  OwnerControl,
  PaywallStatus,
  SecurityGlobal,
  Settlement
} from "./LightningOpsRpc.js"
import type { InvoiceInput } from "./Invoices.js"

// ---------------------------------------------------------------------------------------------
// Identity and sessions

export interface User {
  readonly id: string
  /** Normalized: trimmed, lower-cased. Unique. */
  readonly email: string
  readonly name: string
  /** The identity provider that verified the email first ("local", "workos"). */
  readonly provider: string
  readonly providerUserId: string | undefined
  readonly createdAtMs: number
  readonly updatedAtMs: number
}

export interface Challenge {
  readonly id: string
  readonly email: string
  readonly provider: string
  /** The provider's handle on the code (WorkOS magic auth id). */
  readonly providerRef: string | undefined
  readonly providerUserId: string | undefined
  /** Keyed hash of the code, for providers that let control check it (the local provider). */
  readonly verifier: string | undefined
  readonly attempts: number
  readonly maxAttempts: number
  readonly createdAtMs: number
  readonly expiresAtMs: number
  readonly consumedAtMs: number | undefined
}

export type RevocationReason = "user_requested" | "admin_revoked" | "token_replay" | "device_replaced" | "security_policy"
export const REVOCATION_REASONS: ReadonlyArray<RevocationReason> = ["user_requested", "admin_revoked", "token_replay", "device_replaced", "security_policy"]

/** "bearer": native clients holding an access token; "cookie": the web, holding a session cookie. */
export type SessionKind = "bearer" | "cookie"

export interface Session {
  readonly id: string
  readonly userId: string
  readonly deviceId: string
  /** The X-Client of the sign-in (lower-cased), or "web". */
  readonly client: string
  readonly tokenName: string
  readonly kind: SessionKind
  readonly createdAtMs: number
  readonly lastSeenAtMs: number
  /** When the session ends unless refreshed (the refresh token's expiry). */
  readonly expiresAtMs: number
  readonly revokedAtMs: number | undefined
  readonly revokedReason: RevocationReason | undefined
}

export interface RefreshToken {
  readonly id: string
  readonly sessionId: string
  /** SHA-256 hex of the secret; the secret itself is never stored. */
  readonly tokenHash: string
  readonly createdAtMs: number
  readonly expiresAtMs: number
  readonly rotatedAtMs: number | undefined
  readonly replacedBy: string | undefined
  readonly revokedAtMs: number | undefined
}

/** A revocation the runtime has to hear about (the outbox row). */
export interface RevocationNotice {
  readonly id: string
  /**
   * The user whose sessions and devices these are: the runtime refuses the listed devices' tokens
   * for this user only (device ids are not unique across users). Undefined in notices written
   * before migration 0006, which the runtime applies to every user of the devices.
   */
  readonly userId: string | undefined
  readonly sessionIds: ReadonlyArray<string>
  readonly deviceIds: ReadonlyArray<string>
  readonly reason: RevocationReason
  readonly createdAtMs: number
  readonly attempts: number
  readonly nextAttemptAtMs: number
  readonly deliveredAtMs: number | undefined
  readonly lastError: string | undefined
}

export interface RevokeInput {
  /** Only sessions of this user are revoked. */
  readonly userId: string
  readonly sessionIds?: ReadonlyArray<string> | undefined
  readonly deviceIds?: ReadonlyArray<string> | undefined
  readonly reason: RevocationReason
  readonly nowMs: number
}

export interface RevokeResult {
  /** The sessions that were live and are now revoked. */
  readonly sessions: ReadonlyArray<Session>
  readonly refreshTokenIds: ReadonlyArray<string>
}

/** What takeRateLimit decided; `retryAfterMs` is when the oldest counted hit leaves the window. */
export type RateLimitDecision =
  | { readonly allowed: true; readonly remaining: number }
  | { readonly allowed: false; readonly retryAfterMs: number }

/**
 * The sliding-log decision over the hits of one key (ascending times): the times to keep (the
 * ones inside the window, plus now when allowed) and the decision. Shared by the adapters.
 */
export const slideRateLimit = (hits: ReadonlyArray<number>, nowMs: number, windowMs: number, limit: number): { readonly keep: ReadonlyArray<number>; readonly decision: RateLimitDecision } => {
  const recent = hits.filter((at) => at > nowMs - windowMs)
  if (recent.length < limit) return { keep: [...recent, nowMs], decision: { allowed: true, remaining: limit - recent.length - 1 } }
  return { keep: recent, decision: { allowed: false, retryAfterMs: Math.max(1, recent[recent.length - limit]! + windowMs - nowMs) } }
}

export interface AuthStorageService {
  /** Run `effect` in one transaction (rolled back when it fails). */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StorageError, R>

  /** Insert the user for an email, or return the existing one (updating the provider user id when it was unknown). */
  readonly upsertUser: (input: {
    readonly id: string
    readonly email: string
    readonly name: string
    readonly provider: string
    readonly providerUserId: string | undefined
    readonly nowMs: number
  }) => Effect.Effect<{ readonly user: User; readonly created: boolean }, StorageError>
  readonly findUser: (id: string) => Effect.Effect<User | undefined, StorageError>

  readonly insertChallenge: (challenge: Challenge) => Effect.Effect<void, StorageError>
  readonly findChallenge: (id: string) => Effect.Effect<Challenge | undefined, StorageError>
  /** Count one attempt if the challenge is live; the updated challenge, or undefined when no attempt is left. */
  readonly recordAttempt: (id: string, nowMs: number) => Effect.Effect<Challenge | undefined, StorageError>
  /** Consume a live challenge; false when it was already consumed (or is not live). */
  readonly consumeChallenge: (id: string, nowMs: number) => Effect.Effect<boolean, StorageError>

  readonly insertSession: (session: Session, refreshToken: RefreshToken) => Effect.Effect<void, StorageError>
  readonly findSession: (id: string) => Effect.Effect<Session | undefined, StorageError>
  /** The user's sessions that have not expired (revoked ones included), newest first. */
  readonly listSessions: (userId: string, nowMs: number) => Effect.Effect<ReadonlyArray<Session>, StorageError>
  /** Record activity (at most once a minute per session is written). */
  readonly touchSession: (id: string, nowMs: number) => Effect.Effect<void, StorageError>
  readonly revokeSessions: (input: RevokeInput) => Effect.Effect<RevokeResult, StorageError>

  readonly findRefreshToken: (tokenHash: string) => Effect.Effect<RefreshToken | undefined, StorageError>
  /**
   * Retire `currentId` (if still live) in favour of `next`, and extend the session to
   * `next.expiresAtMs`; false when `currentId` was already rotated or revoked.
   */
  readonly rotateRefreshToken: (currentId: string, next: RefreshToken, nowMs: number) => Effect.Effect<boolean, StorageError>
  /** Extend the session and its refresh token without rotating (rotate_refresh_token = false). */
  readonly extendRefreshToken: (id: string, expiresAtMs: number) => Effect.Effect<boolean, StorageError>

  /**
   * A sliding-window rate limit: allowed when fewer than `limit` hits of `key` were allowed in
   * (nowMs − windowMs, nowMs], and then recorded; refused hits are not recorded (flooding does not
   * extend a lock-out). Atomic per key: concurrent calls never allow more than `limit`.
   */
  readonly takeRateLimit: (key: string, nowMs: number, windowMs: number, limit: number) => Effect.Effect<RateLimitDecision, StorageError>

  readonly enqueueRevocation: (notice: RevocationNotice) => Effect.Effect<void, StorageError>
  /** Undelivered notices due at nowMs, oldest first. */
  readonly dueRevocations: (nowMs: number, limit: number) => Effect.Effect<ReadonlyArray<RevocationNotice>, StorageError>
  readonly markRevocationDelivered: (id: string, nowMs: number) => Effect.Effect<void, StorageError>
  readonly markRevocationFailed: (id: string, error: string, nextAttemptAtMs: number) => Effect.Effect<void, StorageError>

  /** Delete rate-limit logs last used, and challenges that expired, before `beforeMs`. */
  readonly prune: (beforeMs: number) => Effect.Effect<void, StorageError>
}

export class AuthStorage extends Context.Tag("@openagents/control-core/AuthStorage")<AuthStorage, AuthStorageService>() {}

// ---------------------------------------------------------------------------------------------
// L402 control plane

export interface PaywallRow {
  readonly id: string
  readonly ownerUserId: string
  readonly name: string
  readonly hostRegexp: string
  readonly pathRegexp: string
  readonly priceMsats: number
  readonly upstream: string
  readonly enabled: boolean
  /** Policy and route options: maxPerRequestMsats, allowedHosts, blockedHosts, quotaPerMinute, quotaPerDay, timeoutMs, priority, description. */
  readonly meta: Readonly<Record<string, unknown>>
  readonly lastReconcileStatus: string | undefined
  readonly lastReconcileError: string | undefined
  readonly lastReconciledAtMs: number | undefined
  /** When the reconcile whose outcome this is started: an outcome of an earlier one is not taken. */
  readonly lastReconcileStartedAtMs: number | undefined
  /** The diagnostics of the last reconcile that name this paywall (why it was left out). */
  readonly lastReconcileDiagnostics: ReadonlyArray<CompileDiagnostic>
  readonly createdAtMs: number
  readonly updatedAtMs: number
  /** Set when archived (soft delete). */
  readonly deletedAtMs: number | undefined
}

/** Derived: archived if deleted, else active if enabled, else paused. */
export const paywallStatus = (row: Pick<PaywallRow, "enabled" | "deletedAtMs">): PaywallStatus =>
  row.deletedAtMs !== undefined ? "archived" : row.enabled ? "active" : "paused"

/** One paywall's outcome of a reconcile, as a deployment intent records it. */
export interface ReconcileStatus {
  readonly paywallId: string
  readonly status: string
  readonly error: string | undefined
  readonly diagnostics: ReadonlyArray<CompileDiagnostic>
  readonly atMs: number
  /** When the reconcile started: a paywall holding the outcome of a later-started one keeps it. */
  readonly startedAtMs: number
}

export interface InvoiceOutcome {
  /** False when the update did not outrank the stored status nor fill an empty field. */
  readonly changed: boolean
  readonly invoice: Invoice
}

export interface SecurityState {
  readonly global: SecurityGlobal
  readonly ownerControls: ReadonlyArray<OwnerControl>
  readonly credentialRoles: ReadonlyArray<CredentialRoleState>
}

export interface L402StorageService {
  readonly insertPaywall: (row: PaywallRow) => Effect.Effect<void, StorageError>
  readonly findPaywall: (id: string) => Effect.Effect<PaywallRow | undefined, StorageError>
  readonly listPaywallsByOwner: (ownerUserId: string, includeArchived: boolean) => Effect.Effect<ReadonlyArray<PaywallRow>, StorageError>
  /** Every owner's paywalls with one of the derived statuses, oldest first. */
  readonly listPaywalls: (statuses: ReadonlyArray<PaywallStatus>) => Effect.Effect<ReadonlyArray<PaywallRow>, StorageError>
  /** Read-modify-write under a row lock; undefined when the paywall does not exist. */
  readonly updatePaywall: <E>(
    id: string,
    update: (row: PaywallRow) => Effect.Effect<PaywallRow, E>
  ) => Effect.Effect<PaywallRow | undefined, E | StorageError>

  /**
   * Insert or replace by deploymentId (createdAtMs of an existing row is kept) and, in the same
   * transaction, set the last reconcile status of each paywall in `reconciled` (unknown ids are
   * skipped): either all of it is written or none.
   */
  readonly upsertDeployment: (deployment: DeploymentIntent, reconciled?: ReadonlyArray<ReconcileStatus>) => Effect.Effect<DeploymentIntent, StorageError>
  /** Insert by eventId; an existing event is returned unchanged. */
  readonly insertGatewayEvent: (event: GatewayEvent) => Effect.Effect<{ readonly event: GatewayEvent; readonly existed: boolean }, StorageError>
  readonly listGatewayEvents: (filter: { readonly deploymentId?: string | undefined; readonly paywallId?: string | undefined }) => Effect.Effect<ReadonlyArray<GatewayEvent>, StorageError>

  readonly ingestInvoice: (input: InvoiceInput, nowMs: number) => Effect.Effect<InvoiceOutcome, ControlPlaneConflict | StorageError>
  readonly findInvoice: (invoiceId: string) => Effect.Effect<Invoice | undefined, StorageError>
  /**
   * Insert the settlement unless its id exists; when inserted and `invoice` is given, advance the
   * invoice in the same transaction. `existed` returns the stored settlement untouched.
   */
  readonly ingestSettlement: (
    settlement: Settlement,
    invoice: InvoiceInput | undefined,
    nowMs: number
  ) => Effect.Effect<
    { readonly existed: boolean; readonly settlement: Settlement; readonly invoice: Invoice | undefined },
    ControlPlaneConflict | StorageError
  >

  readonly securityState: Effect.Effect<SecurityState, StorageError>
  readonly setGlobal: (global: SecurityGlobal) => Effect.Effect<SecurityGlobal, StorageError>
  readonly setOwnerControl: (control: OwnerControl) => Effect.Effect<OwnerControl, StorageError>
  readonly findOwnerControl: (ownerId: string) => Effect.Effect<OwnerControl | undefined, StorageError>
  /** Read-modify-write of one credential role under a lock. */
  readonly updateCredentialRole: <E>(
    role: CredentialRole,
    update: (existing: CredentialRoleState | undefined) => Effect.Effect<CredentialRoleState, E>
  ) => Effect.Effect<CredentialRoleState, E | StorageError>
}

export class L402Storage extends Context.Tag("@openagents/control-core/L402Storage")<L402Storage, L402StorageService>() {}
