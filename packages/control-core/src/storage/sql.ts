// Control storage on Postgres through @effect/sql: the same SQL on real Postgres (@effect/sql-pg)
// and on embedded PGlite (@openagents/sql-pglite).
//
// Atomicity, statement by statement:
// - recordAttempt / consumeChallenge / rotateRefreshToken retire state with one conditional
//   `UPDATE … WHERE <still live> RETURNING`, so concurrent callers cannot both pass the check.
// - ingestInvoice locks the invoice row (`SELECT … FOR UPDATE`), applies `Invoices.advance` and
//   writes the result in the same transaction; a first insert races through
//   `INSERT … ON CONFLICT DO NOTHING` and the loser re-reads under the lock. So concurrent
//   lifecycle updates serialize per invoice and converge to the highest rank.
// - ingestSettlement inserts with `ON CONFLICT (settlement_id) DO NOTHING RETURNING`: exactly one
//   caller inserts (and advances the invoice in its transaction); the others see `existed`.
// Postgres, not PGlite, is where these are tested under real concurrency (PGlite runs one
// transaction at a time).
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { StorageError } from "../Errors.js"
import { advance, type InvoiceInput } from "../Invoices.js"
import type {
  CompileDiagnostic,
  CredentialRole,
  CredentialRoleState,
  DeploymentIntent,
  GatewayEvent,
  Invoice,
  OwnerControl,
  PaywallStatus,
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
  RevocationReason,
  Session,
  User
} from "../Storage.js"
import { AuthStorage, L402Storage, slideRateLimit } from "../Storage.js"
import { MIGRATIONS_TABLE, migrations } from "./migrations.js"

export { migrations, MIGRATIONS_TABLE } from "./migrations.js"

/** Run the control migrations (idempotent). */
export const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE })

type Row = Record<string, any>

const wrap = (operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.catchIf(effect, (e): e is Extract<E, SqlError> => e instanceof SqlError, (cause) => Effect.fail(new StorageError({ operation, cause }))) as Effect.Effect<
    A,
    Exclude<E, SqlError> | StorageError,
    R
  >

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v))
const str = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v))
const nul = <A>(v: A | undefined): A | null => (v === undefined ? null : v)
const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(v))
/** Only the keys whose value is defined (exact optional properties). */
const defined = <A extends Record<string, unknown>>(o: A): A => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as A

const toUser = (r: Row): User => ({
  id: r.id,
  email: r.email,
  name: r.name,
  provider: r.provider,
  providerUserId: str(r.provider_user_id),
  createdAtMs: Number(r.created_at_ms),
  updatedAtMs: Number(r.updated_at_ms)
})

const toChallenge = (r: Row): Challenge => ({
  id: r.id,
  email: r.email,
  provider: r.provider,
  providerRef: str(r.provider_ref),
  providerUserId: str(r.provider_user_id),
  verifier: str(r.verifier),
  attempts: Number(r.attempts),
  maxAttempts: Number(r.max_attempts),
  createdAtMs: Number(r.created_at_ms),
  expiresAtMs: Number(r.expires_at_ms),
  consumedAtMs: num(r.consumed_at_ms)
})

const toSession = (r: Row): Session => ({
  id: r.id,
  userId: r.user_id,
  deviceId: r.device_id,
  client: r.client,
  tokenName: r.token_name,
  kind: r.kind,
  createdAtMs: Number(r.created_at_ms),
  lastSeenAtMs: Number(r.last_seen_at_ms),
  expiresAtMs: Number(r.expires_at_ms),
  revokedAtMs: num(r.revoked_at_ms),
  revokedReason: str(r.revoked_reason) as RevocationReason | undefined
})

const toRefreshToken = (r: Row): RefreshToken => ({
  id: r.id,
  sessionId: r.session_id,
  tokenHash: String(r.token_hash).trim(),
  createdAtMs: Number(r.created_at_ms),
  expiresAtMs: Number(r.expires_at_ms),
  rotatedAtMs: num(r.rotated_at_ms),
  replacedBy: str(r.replaced_by),
  revokedAtMs: num(r.revoked_at_ms)
})

const toNotice = (r: Row): RevocationNotice => ({
  id: r.id,
  userId: str(r.user_id),
  sessionIds: r.session_ids,
  deviceIds: r.device_ids,
  reason: r.reason,
  createdAtMs: Number(r.created_at_ms),
  attempts: Number(r.attempts),
  nextAttemptAtMs: Number(r.next_attempt_at_ms),
  deliveredAtMs: num(r.delivered_at_ms),
  lastError: str(r.last_error)
})

const toPaywall = (r: Row): PaywallRow => ({
  id: r.id,
  ownerUserId: r.owner_user_id,
  name: r.name,
  hostRegexp: r.host_regexp,
  pathRegexp: r.path_regexp,
  priceMsats: Number(r.price_msats),
  upstream: r.upstream,
  enabled: r.enabled,
  meta: r.meta ?? {},
  lastReconcileStatus: str(r.last_reconcile_status),
  lastReconcileError: str(r.last_reconcile_error),
  lastReconciledAtMs: num(r.last_reconciled_at_ms),
  lastReconcileStartedAtMs: num(r.last_reconcile_started_at_ms),
  lastReconcileDiagnostics: (r.last_reconcile_diagnostics ?? []) as ReadonlyArray<CompileDiagnostic>,
  createdAtMs: Number(r.created_at_ms),
  updatedAtMs: Number(r.updated_at_ms),
  deletedAtMs: num(r.deleted_at_ms)
})

const toDeployment = (r: Row): DeploymentIntent =>
  defined({
    deploymentId: r.deployment_id,
    paywallId: str(r.paywall_id),
    ownerId: str(r.owner_id),
    configHash: r.config_hash,
    imageDigest: str(r.image_digest),
    status: r.status,
    diagnostics: (r.diagnostics ?? []) as ReadonlyArray<CompileDiagnostic>,
    appliedAtMs: num(r.applied_at_ms),
    rolledBackFrom: str(r.rolled_back_from),
    failureCode: str(r.failure_code),
    requestId: str(r.request_id),
    metadata: r.metadata ?? undefined,
    createdAtMs: Number(r.created_at_ms),
    updatedAtMs: Number(r.updated_at_ms),
    paywallIds: (r.paywall_ids ?? []) as ReadonlyArray<string>,
    reconcileStartedAtMs: num(r.reconcile_started_at_ms)
  }) as DeploymentIntent

const toEvent = (r: Row): GatewayEvent =>
  defined({
    eventId: r.event_id,
    paywallId: r.paywall_id,
    ownerId: r.owner_id,
    eventType: r.event_type,
    level: r.level,
    requestId: str(r.request_id),
    metadata: r.metadata ?? undefined,
    deploymentId: str(r.deployment_id),
    configHash: str(r.config_hash),
    executionPath: str(r.execution_path),
    createdAtMs: Number(r.created_at_ms)
  }) as GatewayEvent

const toInvoice = (r: Row): Invoice =>
  defined({
    invoiceId: r.invoice_id,
    paywallId: r.paywall_id,
    ownerId: r.owner_id,
    amountMsats: Number(r.amount_msats),
    status: r.status,
    paymentHash: str(r.payment_hash),
    paymentRequest: str(r.payment_request),
    paymentProofRef: str(r.payment_proof_ref),
    requestId: str(r.request_id),
    createdAtMs: Number(r.created_at_ms),
    updatedAtMs: Number(r.updated_at_ms),
    settledAtMs: num(r.settled_at_ms)
  }) as Invoice

const toSettlement = (r: Row): Settlement =>
  defined({
    settlementId: r.settlement_id,
    paywallId: r.paywall_id,
    ownerId: r.owner_id,
    invoiceId: str(r.invoice_id),
    amountMsats: Number(r.amount_msats),
    paymentProofRef: r.payment_proof_ref,
    requestId: str(r.request_id),
    metadata: r.metadata ?? undefined,
    createdAtMs: Number(r.created_at_ms)
  }) as Settlement

const toGlobal = (r: Row): SecurityGlobal =>
  defined({
    stateId: "global",
    globalPause: r.global_pause,
    denyReasonCode: str(r.deny_reason_code),
    denyReason: str(r.deny_reason),
    updatedBy: str(r.updated_by),
    updatedAtMs: Number(r.updated_at_ms)
  }) as SecurityGlobal

const toOwnerControl = (r: Row): OwnerControl =>
  defined({
    ownerId: r.owner_id,
    killSwitch: r.kill_switch,
    denyReasonCode: str(r.deny_reason_code),
    denyReason: str(r.deny_reason),
    updatedBy: str(r.updated_by),
    updatedAtMs: Number(r.updated_at_ms)
  }) as OwnerControl

const toRole = (r: Row): CredentialRoleState =>
  defined({
    role: r.role,
    status: r.status,
    version: Number(r.version),
    fingerprint: str(r.fingerprint),
    note: str(r.note),
    updatedAtMs: Number(r.updated_at_ms),
    lastRotatedAtMs: num(r.last_rotated_at_ms),
    revokedAtMs: num(r.revoked_at_ms)
  }) as CredentialRoleState

// ---------------------------------------------------------------------------------------------

export const makeAuth: Effect.Effect<AuthStorageService, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const service: AuthStorageService = {
    transaction: (effect) => wrap("transaction")(sql.withTransaction(effect)) as any,

    upsertUser: (input) =>
      wrap("upsert user")(sql.withTransaction(Effect.gen(function*() {
        const inserted = yield* sql<Row>`INSERT INTO control.users ${
          sql.insert({
            id: input.id,
            email: input.email,
            name: input.name,
            provider: input.provider,
            provider_user_id: nul(input.providerUserId),
            created_at_ms: input.nowMs,
            updated_at_ms: input.nowMs
          })
        } ON CONFLICT (email) DO NOTHING RETURNING *`
        if (inserted.length > 0) return { user: toUser(inserted[0]!), created: true }
        const [existing] = yield* sql<Row>`SELECT * FROM control.users WHERE email = ${input.email} FOR UPDATE`
        if (existing!.provider_user_id === null && input.providerUserId !== undefined) {
          const [updated] = yield* sql<Row>`UPDATE control.users SET provider_user_id = ${input.providerUserId},
            updated_at_ms = ${input.nowMs} WHERE id = ${existing!.id} RETURNING *`
          return { user: toUser(updated!), created: false }
        }
        return { user: toUser(existing!), created: false }
      }))),

    findUser: (id) => wrap("find user")(Effect.map(sql<Row>`SELECT * FROM control.users WHERE id = ${id}`, (rows) => rows[0] && toUser(rows[0]))),

    insertChallenge: (c) =>
      wrap("insert challenge")(sql`INSERT INTO control.auth_challenges ${
        sql.insert({
          id: c.id,
          email: c.email,
          provider: c.provider,
          provider_ref: nul(c.providerRef),
          provider_user_id: nul(c.providerUserId),
          verifier: nul(c.verifier),
          attempts: c.attempts,
          max_attempts: c.maxAttempts,
          created_at_ms: c.createdAtMs,
          expires_at_ms: c.expiresAtMs,
          consumed_at_ms: nul(c.consumedAtMs)
        })
      }`.pipe(Effect.asVoid)),

    findChallenge: (id) => wrap("find challenge")(Effect.map(sql<Row>`SELECT * FROM control.auth_challenges WHERE id = ${id}`, (rows) => rows[0] && toChallenge(rows[0]))),

    recordAttempt: (id, nowMs) =>
      wrap("record attempt")(Effect.map(
        sql<Row>`UPDATE control.auth_challenges SET attempts = attempts + 1
          WHERE id = ${id} AND consumed_at_ms IS NULL AND attempts < max_attempts AND expires_at_ms > ${nowMs}
          RETURNING *`,
        (rows) => rows[0] && toChallenge(rows[0])
      )),

    consumeChallenge: (id, nowMs) =>
      wrap("consume challenge")(Effect.map(
        sql<Row>`UPDATE control.auth_challenges SET consumed_at_ms = ${nowMs}
          WHERE id = ${id} AND consumed_at_ms IS NULL AND expires_at_ms > ${nowMs} RETURNING id`,
        (rows) => rows.length === 1
      )),

    insertSession: (s, t) =>
      wrap("insert session")(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO control.sessions ${
          sql.insert({
            id: s.id,
            user_id: s.userId,
            device_id: s.deviceId,
            client: s.client,
            token_name: s.tokenName,
            kind: s.kind,
            created_at_ms: s.createdAtMs,
            last_seen_at_ms: s.lastSeenAtMs,
            expires_at_ms: s.expiresAtMs,
            revoked_at_ms: nul(s.revokedAtMs),
            revoked_reason: nul(s.revokedReason)
          })
        }`
        yield* insertRefreshToken(t)
      }))),

    findSession: (id) => wrap("find session")(Effect.map(sql<Row>`SELECT * FROM control.sessions WHERE id = ${id}`, (rows) => rows[0] && toSession(rows[0]))),

    listSessions: (userId, nowMs) =>
      wrap("list sessions")(Effect.map(
        sql<Row>`SELECT * FROM control.sessions WHERE user_id = ${userId} AND expires_at_ms > ${nowMs}
          ORDER BY created_at_ms DESC, id`,
        (rows) => rows.map(toSession)
      )),

    touchSession: (id, nowMs) =>
      wrap("touch session")(sql`UPDATE control.sessions SET last_seen_at_ms = ${nowMs}
        WHERE id = ${id} AND last_seen_at_ms < ${nowMs - 60_000}`.pipe(Effect.asVoid)),

    revokeSessions: (input) =>
      wrap("revoke sessions")(sql.withTransaction(Effect.gen(function*() {
        const ids = input.sessionIds ?? []
        const devices = input.deviceIds ?? []
        if (ids.length === 0 && devices.length === 0) return { sessions: [], refreshTokenIds: [] }
        const match = ids.length > 0 && devices.length > 0
          ? sql`(id IN ${sql.in(ids)} OR device_id IN ${sql.in(devices)})`
          : ids.length > 0
          ? sql`id IN ${sql.in(ids)}`
          : sql`device_id IN ${sql.in(devices)}`
        const sessions = yield* sql<Row>`UPDATE control.sessions SET revoked_at_ms = ${input.nowMs}, revoked_reason = ${input.reason}
          WHERE user_id = ${input.userId} AND revoked_at_ms IS NULL AND ${match} RETURNING *`
        if (sessions.length === 0) return { sessions: [], refreshTokenIds: [] }
        const tokens = yield* sql<Row>`UPDATE control.refresh_tokens SET revoked_at_ms = ${input.nowMs}
          WHERE session_id IN ${sql.in(sessions.map((s) => s.id))} AND revoked_at_ms IS NULL AND rotated_at_ms IS NULL
          RETURNING id`
        return {
          sessions: sessions.map(toSession).sort((a, b) => (a.id < b.id ? -1 : 1)),
          refreshTokenIds: tokens.map((t) => String(t.id)).sort()
        }
      }))),

    findRefreshToken: (tokenHash) =>
      wrap("find refresh token")(Effect.map(sql<Row>`SELECT * FROM control.refresh_tokens WHERE token_hash = ${tokenHash}`, (rows) => rows[0] && toRefreshToken(rows[0]))),

    rotateRefreshToken: (currentId, next, nowMs) =>
      wrap("rotate refresh token")(sql.withTransaction(Effect.gen(function*() {
        const retired = yield* sql<Row>`UPDATE control.refresh_tokens SET rotated_at_ms = ${nowMs}, replaced_by = ${next.id}
          WHERE id = ${currentId} AND rotated_at_ms IS NULL AND revoked_at_ms IS NULL AND expires_at_ms > ${nowMs}
          RETURNING session_id`
        if (retired.length === 0) return false
        yield* insertRefreshToken(next)
        yield* sql`UPDATE control.sessions SET expires_at_ms = ${next.expiresAtMs}, last_seen_at_ms = ${nowMs}
          WHERE id = ${next.sessionId}`
        return true
      }))),

    extendRefreshToken: (id, expiresAtMs) =>
      wrap("extend refresh token")(sql.withTransaction(Effect.gen(function*() {
        const rows = yield* sql<Row>`UPDATE control.refresh_tokens SET expires_at_ms = ${expiresAtMs}
          WHERE id = ${id} AND rotated_at_ms IS NULL AND revoked_at_ms IS NULL RETURNING session_id`
        if (rows.length === 0) return false
        yield* sql`UPDATE control.sessions SET expires_at_ms = ${expiresAtMs} WHERE id = ${rows[0]!.session_id}`
        return true
      }))),

    takeRateLimit: (key, nowMs, windowMs, limit) =>
      // The key's row is the lock: concurrent hits of one key decide one after another.
      wrap("rate limit")(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO control.rate_limit_logs (key, hits, used_at_ms) VALUES (${key}, '[]'::jsonb, ${nowMs})
          ON CONFLICT (key) DO NOTHING`
        const rows = yield* sql<Row>`SELECT hits FROM control.rate_limit_logs WHERE key = ${key} FOR UPDATE`
        const stored = rows[0]?.hits
        const hits = (typeof stored === "string" ? JSON.parse(stored) : stored ?? []) as Array<number>
        const { keep, decision } = slideRateLimit(hits, nowMs, windowMs, limit)
        yield* sql`UPDATE control.rate_limit_logs SET hits = ${JSON.stringify(keep)}::jsonb, used_at_ms = ${nowMs} WHERE key = ${key}`
        return decision
      }))),

    enqueueRevocation: (n) =>
      wrap("enqueue revocation")(sql`INSERT INTO control.runtime_revocations ${
        sql.insert({
          id: n.id,
          user_id: nul(n.userId),
          session_ids: JSON.stringify(n.sessionIds),
          device_ids: JSON.stringify(n.deviceIds),
          reason: n.reason,
          created_at_ms: n.createdAtMs,
          attempts: n.attempts,
          next_attempt_at_ms: n.nextAttemptAtMs,
          delivered_at_ms: nul(n.deliveredAtMs),
          last_error: nul(n.lastError)
        })
      }`.pipe(Effect.asVoid)),

    dueRevocations: (nowMs, limit) =>
      wrap("due revocations")(Effect.map(
        sql<Row>`SELECT * FROM control.runtime_revocations WHERE delivered_at_ms IS NULL AND next_attempt_at_ms <= ${nowMs}
          ORDER BY created_at_ms, id LIMIT ${limit}`,
        (rows) => rows.map(toNotice)
      )),

    markRevocationDelivered: (id, nowMs) =>
      wrap("mark revocation delivered")(sql`UPDATE control.runtime_revocations SET delivered_at_ms = ${nowMs}, attempts = attempts + 1
        WHERE id = ${id} AND delivered_at_ms IS NULL`.pipe(Effect.asVoid)),

    markRevocationFailed: (id, error, nextAttemptAtMs) =>
      wrap("mark revocation failed")(sql`UPDATE control.runtime_revocations SET attempts = attempts + 1, last_error = ${error.slice(0, 2000)},
        next_attempt_at_ms = ${nextAttemptAtMs} WHERE id = ${id} AND delivered_at_ms IS NULL`.pipe(Effect.asVoid)),

    prune: (beforeMs) =>
      wrap("prune")(Effect.all([
        sql`DELETE FROM control.rate_limit_logs WHERE used_at_ms < ${beforeMs}`,
        sql`DELETE FROM control.auth_challenges WHERE expires_at_ms < ${beforeMs}`
      ], { discard: true }))
  }

  const insertRefreshToken = (t: RefreshToken) =>
    sql`INSERT INTO control.refresh_tokens ${
      sql.insert({
        id: t.id,
        session_id: t.sessionId,
        token_hash: t.tokenHash,
        created_at_ms: t.createdAtMs,
        expires_at_ms: t.expiresAtMs,
        rotated_at_ms: nul(t.rotatedAtMs),
        replaced_by: nul(t.replacedBy),
        revoked_at_ms: nul(t.revokedAtMs)
      })
    }`

  return service
})

// ---------------------------------------------------------------------------------------------

const statusFilter = (statuses: ReadonlyArray<PaywallStatus>) => ({
  archived: statuses.includes("archived"),
  active: statuses.includes("active"),
  paused: statuses.includes("paused")
})

export const makeL402: Effect.Effect<L402StorageService, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const selectInvoice = (invoiceId: string, lock: boolean) =>
    Effect.map(
      lock
        ? sql<Row>`SELECT * FROM control.l402_control_plane_invoices WHERE invoice_id = ${invoiceId} FOR UPDATE`
        : sql<Row>`SELECT * FROM control.l402_control_plane_invoices WHERE invoice_id = ${invoiceId}`,
      (rows) => rows[0] && toInvoice(rows[0])
    )

  // Inside a transaction: apply `advance` to the locked row (inserting it when absent).
  const ingestInvoiceTx = (input: InvoiceInput, nowMs: number) =>
    Effect.gen(function*() {
      let existing = yield* selectInvoice(input.invoiceId, true)
      if (existing === undefined) {
        const created = advance(undefined, input, nowMs)
        if (created instanceof ControlPlaneConflict) return yield* Effect.fail(created)
        const i = created.invoice
        const inserted = yield* sql<Row>`INSERT INTO control.l402_control_plane_invoices ${
          sql.insert({
            invoice_id: i.invoiceId,
            paywall_id: i.paywallId,
            owner_id: i.ownerId,
            amount_msats: i.amountMsats,
            status: i.status,
            payment_hash: nul(i.paymentHash),
            payment_request: nul(i.paymentRequest),
            payment_proof_ref: nul(i.paymentProofRef),
            request_id: nul(i.requestId),
            settled_at_ms: nul(i.settledAtMs),
            created_at_ms: i.createdAtMs,
            updated_at_ms: i.updatedAtMs
          })
        } ON CONFLICT (invoice_id) DO NOTHING RETURNING invoice_id`
        if (inserted.length === 1) return created
        // Another transaction inserted it first; continue under its row lock.
        existing = yield* selectInvoice(input.invoiceId, true)
      }
      const result = advance(existing, input, nowMs)
      if (result instanceof ControlPlaneConflict) return yield* Effect.fail(result)
      if (result.changed) {
        const i = result.invoice
        yield* sql`UPDATE control.l402_control_plane_invoices SET status = ${i.status},
          payment_hash = ${nul(i.paymentHash)}, payment_request = ${nul(i.paymentRequest)},
          payment_proof_ref = ${nul(i.paymentProofRef)}, request_id = ${nul(i.requestId)},
          settled_at_ms = ${nul(i.settledAtMs)}, updated_at_ms = ${i.updatedAtMs}
          WHERE invoice_id = ${i.invoiceId}`
      }
      return result
    })

  const service: L402StorageService = {
    insertPaywall: (p) =>
      wrap("insert paywall")(sql`INSERT INTO control.l402_paywalls ${
        sql.insert({
          id: p.id,
          owner_user_id: p.ownerUserId,
          name: p.name,
          host_regexp: p.hostRegexp,
          path_regexp: p.pathRegexp,
          price_msats: p.priceMsats,
          upstream: p.upstream,
          enabled: p.enabled,
          meta: JSON.stringify(p.meta),
          last_reconcile_status: nul(p.lastReconcileStatus),
          last_reconcile_error: nul(p.lastReconcileError),
          last_reconciled_at_ms: nul(p.lastReconciledAtMs),
          last_reconcile_started_at_ms: nul(p.lastReconcileStartedAtMs),
          last_reconcile_diagnostics: JSON.stringify(p.lastReconcileDiagnostics),
          created_at_ms: p.createdAtMs,
          updated_at_ms: p.updatedAtMs,
          deleted_at_ms: nul(p.deletedAtMs)
        })
      }`.pipe(Effect.asVoid)),

    findPaywall: (id) => wrap("find paywall")(Effect.map(sql<Row>`SELECT * FROM control.l402_paywalls WHERE id = ${id}`, (rows) => rows[0] && toPaywall(rows[0]))),

    listPaywallsByOwner: (ownerUserId, includeArchived) =>
      wrap("list paywalls")(Effect.map(
        includeArchived
          ? sql<Row>`SELECT * FROM control.l402_paywalls WHERE owner_user_id = ${ownerUserId} ORDER BY created_at_ms, id`
          : sql<Row>`SELECT * FROM control.l402_paywalls WHERE owner_user_id = ${ownerUserId} AND deleted_at_ms IS NULL ORDER BY created_at_ms, id`,
        (rows) => rows.map(toPaywall)
      )),

    listPaywalls: (statuses) => {
      const f = statusFilter(statuses)
      return wrap("list paywalls")(Effect.map(
        sql<Row>`SELECT * FROM control.l402_paywalls WHERE
          (${f.archived} AND deleted_at_ms IS NOT NULL)
          OR (${f.active} AND deleted_at_ms IS NULL AND enabled)
          OR (${f.paused} AND deleted_at_ms IS NULL AND NOT enabled)
          ORDER BY created_at_ms, id`,
        (rows) => rows.map(toPaywall)
      ))
    },

    updatePaywall: (id, update) =>
      wrap("update paywall")(sql.withTransaction(Effect.gen(function*() {
        const [row] = yield* sql<Row>`SELECT * FROM control.l402_paywalls WHERE id = ${id} FOR UPDATE`
        if (row === undefined) return undefined
        const p = yield* update(toPaywall(row))
        yield* sql`UPDATE control.l402_paywalls SET name = ${p.name}, host_regexp = ${p.hostRegexp},
          path_regexp = ${p.pathRegexp}, price_msats = ${p.priceMsats}, upstream = ${p.upstream},
          enabled = ${p.enabled}, meta = ${JSON.stringify(p.meta)}, updated_at_ms = ${p.updatedAtMs},
          deleted_at_ms = ${nul(p.deletedAtMs)}, last_reconcile_status = ${nul(p.lastReconcileStatus)},
          last_reconcile_error = ${nul(p.lastReconcileError)}, last_reconciled_at_ms = ${nul(p.lastReconciledAtMs)},
          last_reconcile_started_at_ms = ${nul(p.lastReconcileStartedAtMs)},
          last_reconcile_diagnostics = ${JSON.stringify(p.lastReconcileDiagnostics)}
          WHERE id = ${id}`
        return p
      }))),

    upsertDeployment: (d, reconciled = []) =>
      wrap("upsert deployment")(sql.withTransaction(Effect.gen(function*() {
        const rows = yield* sql<Row>`INSERT INTO control.l402_control_plane_deployments AS d ${
          sql.insert({
            deployment_id: d.deploymentId,
            paywall_id: nul(d.paywallId),
            owner_id: nul(d.ownerId),
            config_hash: d.configHash,
            image_digest: nul(d.imageDigest),
            status: d.status,
            diagnostics: JSON.stringify(d.diagnostics),
            metadata: json(d.metadata),
            request_id: nul(d.requestId),
            applied_at_ms: nul(d.appliedAtMs),
            rolled_back_from: nul(d.rolledBackFrom),
            failure_code: nul(d.failureCode),
            paywall_ids: JSON.stringify(d.paywallIds),
            reconcile_started_at_ms: nul(d.reconcileStartedAtMs),
            created_at_ms: d.createdAtMs,
            updated_at_ms: d.updatedAtMs
          })
        } ON CONFLICT (deployment_id) DO UPDATE SET paywall_id = EXCLUDED.paywall_id, owner_id = EXCLUDED.owner_id,
          config_hash = EXCLUDED.config_hash, image_digest = EXCLUDED.image_digest, status = EXCLUDED.status,
          diagnostics = EXCLUDED.diagnostics, metadata = EXCLUDED.metadata, request_id = EXCLUDED.request_id,
          applied_at_ms = EXCLUDED.applied_at_ms, rolled_back_from = EXCLUDED.rolled_back_from,
          failure_code = EXCLUDED.failure_code, paywall_ids = EXCLUDED.paywall_ids, updated_at_ms = EXCLUDED.updated_at_ms,
          reconcile_started_at_ms = EXCLUDED.reconcile_started_at_ms
        -- A late report of an older run does not replace a later run's record of a reused id.
        WHERE d.reconcile_started_at_ms IS NULL OR EXCLUDED.reconcile_started_at_ms IS NULL
          OR d.reconcile_started_at_ms <= EXCLUDED.reconcile_started_at_ms
        RETURNING *`
        const stored = rows[0] ?? (yield* sql<Row>`SELECT * FROM control.l402_control_plane_deployments WHERE deployment_id = ${d.deploymentId}`)[0]!
        if (reconciled.length > 0) {
          // Rows locked in id order (as any other multi-row writer must), then one statement for all.
          const ids = reconciled.map((r) => r.paywallId).sort()
          yield* sql`SELECT id FROM control.l402_paywalls WHERE id IN ${sql.in(ids)} ORDER BY id FOR UPDATE`
          const statuses = JSON.stringify(reconciled.map((r) => ({
            paywall_id: r.paywallId,
            status: r.status,
            error: r.error ?? null,
            diagnostics: r.diagnostics,
            at_ms: r.atMs,
            started_at_ms: r.startedAtMs
          })))
          // A paywall holding the outcome of a reconcile that started later keeps it.
          yield* sql`UPDATE control.l402_paywalls AS p SET last_reconcile_status = s.status, last_reconcile_error = s.error,
            last_reconcile_diagnostics = s.diagnostics, last_reconciled_at_ms = s.at_ms, last_reconcile_started_at_ms = s.started_at_ms
            FROM jsonb_to_recordset(${statuses}::jsonb) AS s(paywall_id text, status text, error text, diagnostics jsonb, at_ms bigint, started_at_ms bigint)
            WHERE p.id = s.paywall_id AND (p.last_reconcile_started_at_ms IS NULL OR p.last_reconcile_started_at_ms <= s.started_at_ms)`
        }
        return toDeployment(stored)
      }))),

    insertGatewayEvent: (e) =>
      wrap("insert gateway event")(Effect.gen(function*() {
        const inserted = yield* sql<Row>`INSERT INTO control.l402_control_plane_gateway_events ${
          sql.insert({
            event_id: e.eventId,
            paywall_id: e.paywallId,
            owner_id: e.ownerId,
            event_type: e.eventType,
            level: e.level,
            request_id: nul(e.requestId),
            metadata: json(e.metadata),
            deployment_id: nul(e.deploymentId),
            config_hash: nul(e.configHash),
            execution_path: nul(e.executionPath),
            created_at_ms: e.createdAtMs
          })
        } ON CONFLICT (event_id) DO NOTHING RETURNING *`
        if (inserted.length === 1) return { event: toEvent(inserted[0]!), existed: false }
        const [row] = yield* sql<Row>`SELECT * FROM control.l402_control_plane_gateway_events WHERE event_id = ${e.eventId}`
        return { event: toEvent(row!), existed: true }
      })),

    listGatewayEvents: (filter) =>
      wrap("list gateway events")(Effect.map(
        sql<Row>`SELECT * FROM control.l402_control_plane_gateway_events WHERE
          (${filter.deploymentId ?? null}::text IS NULL OR deployment_id = ${filter.deploymentId ?? null})
          AND (${filter.paywallId ?? null}::text IS NULL OR paywall_id = ${filter.paywallId ?? null})
          ORDER BY created_at_ms, event_id`,
        (rows) => rows.map(toEvent)
      )),

    ingestInvoice: (input, nowMs) => wrap("ingest invoice")(sql.withTransaction(ingestInvoiceTx(input, nowMs))),

    findInvoice: (invoiceId) => wrap("find invoice")(selectInvoice(invoiceId, false)),

    ingestSettlement: (s, invoice, nowMs) =>
      wrap("ingest settlement")(sql.withTransaction(Effect.gen(function*() {
        const inserted = yield* sql<Row>`INSERT INTO control.l402_control_plane_settlements ${
          sql.insert({
            settlement_id: s.settlementId,
            paywall_id: s.paywallId,
            owner_id: s.ownerId,
            invoice_id: nul(s.invoiceId),
            amount_msats: s.amountMsats,
            payment_proof_ref: s.paymentProofRef,
            request_id: nul(s.requestId),
            metadata: json(s.metadata),
            created_at_ms: s.createdAtMs
          })
        } ON CONFLICT (settlement_id) DO NOTHING RETURNING *`
        if (inserted.length === 1) {
          const advanced = invoice === undefined ? undefined : yield* ingestInvoiceTx(invoice, nowMs)
          return { existed: false, settlement: toSettlement(inserted[0]!), invoice: advanced?.invoice }
        }
        const [row] = yield* sql<Row>`SELECT * FROM control.l402_control_plane_settlements WHERE settlement_id = ${s.settlementId}`
        const stored = toSettlement(row!)
        const storedInvoice = stored.invoiceId === undefined ? undefined : yield* selectInvoice(stored.invoiceId, false)
        return { existed: true, settlement: stored, invoice: storedInvoice }
      }))),

    securityState: wrap("security state")(Effect.gen(function*() {
      const [global] = yield* sql<Row>`SELECT * FROM control.l402_control_plane_security_global WHERE state_id = 'global'`
      const owners = yield* sql<Row>`SELECT * FROM control.l402_control_plane_owner_controls ORDER BY owner_id`
      const roles = yield* sql<Row>`SELECT * FROM control.l402_control_plane_credential_roles ORDER BY role`
      return { global: toGlobal(global!), ownerControls: owners.map(toOwnerControl), credentialRoles: roles.map(toRole) }
    })),

    setGlobal: (g) =>
      wrap("set global pause")(Effect.map(
        sql<Row>`UPDATE control.l402_control_plane_security_global SET global_pause = ${g.globalPause},
          deny_reason_code = ${nul(g.denyReasonCode)}, deny_reason = ${nul(g.denyReason)},
          updated_by = ${nul(g.updatedBy)}, updated_at_ms = ${g.updatedAtMs} WHERE state_id = 'global' RETURNING *`,
        (rows) => toGlobal(rows[0]!)
      )),

    setOwnerControl: (c) =>
      wrap("set owner control")(Effect.map(
        sql<Row>`INSERT INTO control.l402_control_plane_owner_controls ${
          sql.insert({
            owner_id: c.ownerId,
            kill_switch: c.killSwitch,
            deny_reason_code: nul(c.denyReasonCode),
            deny_reason: nul(c.denyReason),
            updated_by: nul(c.updatedBy),
            updated_at_ms: c.updatedAtMs
          })
        } ON CONFLICT (owner_id) DO UPDATE SET kill_switch = EXCLUDED.kill_switch, deny_reason_code = EXCLUDED.deny_reason_code,
          deny_reason = EXCLUDED.deny_reason, updated_by = EXCLUDED.updated_by, updated_at_ms = EXCLUDED.updated_at_ms
        RETURNING *`,
        (rows) => toOwnerControl(rows[0]!)
      )),

    findOwnerControl: (ownerId) =>
      wrap("find owner control")(Effect.map(
        sql<Row>`SELECT * FROM control.l402_control_plane_owner_controls WHERE owner_id = ${ownerId}`,
        (rows) => rows[0] && toOwnerControl(rows[0])
      )),

    updateCredentialRole: <E>(role: CredentialRole, update: (existing: CredentialRoleState | undefined) => Effect.Effect<CredentialRoleState, E>) =>
      wrap("update credential role")(sql.withTransaction(Effect.gen(function*() {
        const write = (r: CredentialRoleState) =>
          sql<Row>`INSERT INTO control.l402_control_plane_credential_roles ${
            sql.insert({
              role: r.role,
              status: r.status,
              version: r.version,
              fingerprint: nul(r.fingerprint),
              note: nul(r.note),
              updated_at_ms: r.updatedAtMs,
              last_rotated_at_ms: nul(r.lastRotatedAtMs),
              revoked_at_ms: nul(r.revokedAtMs)
            })
          } ON CONFLICT (role) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version,
            fingerprint = EXCLUDED.fingerprint, note = EXCLUDED.note, updated_at_ms = EXCLUDED.updated_at_ms,
            last_rotated_at_ms = EXCLUDED.last_rotated_at_ms, revoked_at_ms = EXCLUDED.revoked_at_ms
          RETURNING *`
        // A transaction-scoped advisory lock serializes writers of one role, including the first
        // two, when there is no row yet to lock.
        yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`control.credential_role:${role}`}))`
        const [existing] = yield* sql<Row>`SELECT * FROM control.l402_control_plane_credential_roles WHERE role = ${role}`
        const next = yield* update(existing === undefined ? undefined : toRole(existing))
        const [row] = yield* write(next)
        return toRole(row!)
      })))
  }
  return service
})

/** Both storages over the SqlClient in context (Postgres or PGlite); runs the migrations first. */
export const layer: Layer.Layer<AuthStorage | L402Storage, SqlError | Migrator.MigrationError, SqlClient.SqlClient> = Layer.effectContext(
  Effect.gen(function*() {
    yield* migrate
    const auth = yield* makeAuth
    const l402 = yield* makeL402
    return Context.make(AuthStorage, auth).pipe(Context.add(L402Storage, l402))
  })
)
