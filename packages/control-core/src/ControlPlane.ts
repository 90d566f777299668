// The L402 control plane (UPSTREAM_SPEC §3.3, §3.4): owners manage their paywalls; lightning-ops
// reads the compiled view (listPaywallControlPlaneState, getControlPlaneSecurityState) and
// records what it did (deployment intents, gateway events, invoices, settlements, security
// controls). The rules live here; storage applies them atomically; http/paywalls.ts and
// LightningOps.ts (RPC and the upstream JSON route) only translate.
//
// Ownership: a paywall belongs to the user who created it; every user operation on another
// user's paywall is 403 forbidden. An archived paywall is read-only (409 conflict).
// lightning-ops addresses owners as `owner_<user id>`.
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { hostPatternProblem, pathPatternProblem } from "@openagents/proto/lightning/v1"
import { Conflict, Forbidden, InvalidRequest, NotFound, StorageError } from "./Errors.js"
import { randomId, uuid7Hex } from "./internal/crypto.js"
import type { InvoiceInput } from "./Invoices.js"
import {
  ControlPlaneConflict,
  ControlPlaneUnavailable,
  type CredentialRolePayload,
  type CredentialRoleState,
  type CredentialRoleWriteResponse,
  type DeploymentWriteResponse,
  type GatewayEventWriteResponse,
  type GlobalWriteResponse,
  InvalidArguments,
  type InvoiceLifecyclePayload,
  type InvoiceWriteResponse,
  type OwnerControlWriteResponse,
  type Paywall,
  type PaywallStatus,
  type RecordCompileIntentPayload,
  type RecordGatewayEventPayload,
  type SecurityStateResponse,
  type SetGlobalPausePayload,
  type SetOwnerKillSwitchPayload,
  type SettlementPayload,
  type SettlementWriteResponse,
  type SnapshotResponse
} from "./LightningOpsRpc.js"
import { L402Storage, paywallStatus, type PaywallRow, type ReconcileStatus } from "./Storage.js"

export const ownerIdOf = (userId: string) => `owner_${userId}`
export const DEFAULT_ROUTE_TIMEOUT_MS = 6000
export const DEFAULT_ROUTE_PRIORITY = 10

// ---------------------------------------------------------------------------------------------
// User-facing paywalls

export interface PaywallInput {
  readonly name?: string | undefined
  readonly hostRegexp?: string | undefined
  readonly pathRegexp?: string | undefined
  readonly priceMsats?: number | undefined
  readonly upstream?: string | undefined
  readonly enabled?: boolean | undefined
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
}

type FieldErrors = Record<string, Array<string>>

const check = (errors: FieldErrors, field: string, ok: boolean, message: string) => {
  if (!ok) (errors[field] ??= []).push(message)
}


const isHttpUrl = (value: string) => {
  try {
    const u = new URL(value)
    return u.protocol === "http:" || u.protocol === "https:"
  } catch {
    return false
  }
}

const nonNegativeInt = (u: unknown) => typeof u === "number" && Number.isSafeInteger(u) && u >= 0
const stringList = (u: unknown) => Array.isArray(u) && u.every((x) => typeof x === "string" && x.length > 0 && x.length <= 255)

/** Validate the fields present in `input` (all required when `creating`). */
export const validatePaywall = (input: PaywallInput, creating: boolean): InvalidRequest | undefined => {
  const errors: FieldErrors = {}
  const present = <K extends keyof PaywallInput>(k: K) => input[k] !== undefined || creating
  if (present("name")) check(errors, "name", typeof input.name === "string" && input.name.trim().length > 0 && input.name.length <= 120, "The name must be 1..120 characters.")
  // Route patterns (not free regexes): the grammar lightning-ops compiles, from the shared contract.
  if (present("hostRegexp")) {
    const problem = typeof input.hostRegexp === "string" ? hostPatternProblem(input.hostRegexp) : "must be a string"
    check(errors, "hostRegexp", problem === undefined, `The host pattern ${problem ?? ""}.`)
  }
  if (present("pathRegexp")) {
    const problem = typeof input.pathRegexp === "string" ? pathPatternProblem(input.pathRegexp) : "must be a string"
    check(errors, "pathRegexp", problem === undefined, `The path pattern ${problem ?? ""}.`)
  }
  if (present("priceMsats")) check(errors, "priceMsats", nonNegativeInt(input.priceMsats) && input.priceMsats! > 0, "The price must be a positive whole number of millisatoshis.")
  if (present("upstream")) check(errors, "upstream", typeof input.upstream === "string" && input.upstream.length <= 2048 && isHttpUrl(input.upstream), "The upstream must be an http(s) URL of at most 2048 characters.")
  const meta = input.metadata
  if (meta !== undefined) {
    for (const key of ["maxPerRequestMsats", "quotaPerMinute", "quotaPerDay", "timeoutMs", "priority"] as const) {
      if (meta[key] !== undefined) check(errors, `metadata.${key}`, nonNegativeInt(meta[key]), `metadata.${key} must be a non-negative integer.`)
    }
    for (const key of ["allowedHosts", "blockedHosts"] as const) {
      if (meta[key] !== undefined) check(errors, `metadata.${key}`, stringList(meta[key]), `metadata.${key} must be a list of host names.`)
    }
    if (meta["description"] !== undefined) check(errors, "metadata.description", typeof meta["description"] === "string", "metadata.description must be a string.")
    check(errors, "metadata", JSON.stringify(meta).length <= 16_384, "metadata must be at most 16 KiB of JSON.")
  }
  return Object.keys(errors).length === 0 ? undefined : new InvalidRequest({ message: "The paywall is invalid.", errors })
}

/** The lightning-ops view of a paywall (`killSwitch`: the owner's kill switch). */
export const toControlPlanePaywall = (row: PaywallRow, killSwitch: boolean): Paywall => {
  const ownerId = ownerIdOf(row.ownerUserId)
  const meta = row.meta
  const num = (k: string) => (nonNegativeInt(meta[k]) ? { [k]: meta[k] as number } : {})
  const list = (k: string) => (stringList(meta[k]) ? { [k]: meta[k] as ReadonlyArray<string> } : {})
  const protocol = row.upstream.toLowerCase().startsWith("https:") ? "https" as const : "http" as const
  return {
    paywallId: row.id,
    ownerId,
    name: row.name,
    ...(typeof meta["description"] === "string" ? { description: meta["description"] } : {}),
    status: paywallStatus(row),
    ...(Object.keys(meta).length > 0 ? { metadata: meta } : {}),
    createdAtMs: row.createdAtMs,
    updatedAtMs: row.updatedAtMs,
    policy: {
      paywallId: row.id,
      ownerId,
      pricingMode: "fixed",
      fixedAmountMsats: row.priceMsats,
      ...num("maxPerRequestMsats"),
      ...list("allowedHosts"),
      ...list("blockedHosts"),
      ...num("quotaPerMinute"),
      ...num("quotaPerDay"),
      killSwitch,
      createdAtMs: row.createdAtMs,
      updatedAtMs: row.updatedAtMs
    },
    routes: [{
      routeId: `route_${row.id}`,
      paywallId: row.id,
      ownerId,
      hostPattern: row.hostRegexp,
      pathPattern: row.pathRegexp,
      upstreamUrl: row.upstream,
      protocol,
      timeoutMs: nonNegativeInt(meta["timeoutMs"]) ? meta["timeoutMs"] as number : DEFAULT_ROUTE_TIMEOUT_MS,
      priority: nonNegativeInt(meta["priority"]) ? meta["priority"] as number : DEFAULT_ROUTE_PRIORITY,
      createdAtMs: row.createdAtMs,
      updatedAtMs: row.updatedAtMs
    }],
    ...(row.lastReconcileStatus !== undefined ? { lastReconcileStatus: row.lastReconcileStatus } : {}),
    ...(row.lastReconcileError !== undefined ? { lastReconcileError: row.lastReconcileError } : {}),
    ...(row.lastReconciledAtMs !== undefined ? { lastReconciledAtMs: row.lastReconciledAtMs } : {}),
    ...(row.lastReconcileDiagnostics.length > 0 ? { lastReconcileDiagnostics: row.lastReconcileDiagnostics } : {})
  } as Paywall
}

// ---------------------------------------------------------------------------------------------
// Credential roles: rotate -> rotating (version + 1), activate -> active, revoke -> revoked
// (fingerprint cleared). A role is recorded on first use with version 1.

export const rotateRole = (existing: CredentialRoleState | undefined, input: CredentialRolePayload, nowMs: number): CredentialRoleState =>
  ({
    role: input.role,
    status: "rotating",
    version: existing === undefined ? 1 : existing.version + 1,
    ...withDefined("fingerprint", input.fingerprint ?? (existing?.status === "revoked" ? undefined : existing?.fingerprint)),
    ...withDefined("note", input.note ?? existing?.note),
    updatedAtMs: nowMs,
    lastRotatedAtMs: nowMs
  }) as CredentialRoleState

export const activateRole = (existing: CredentialRoleState | undefined, input: CredentialRolePayload, nowMs: number): CredentialRoleState | InvalidArguments => {
  const fingerprint = input.fingerprint ?? (existing?.status === "revoked" ? undefined : existing?.fingerprint)
  if (fingerprint === undefined) return new InvalidArguments({ message: "missing_fingerprint", field: "fingerprint" })
  return {
    role: input.role,
    status: "active",
    version: existing?.version ?? 1,
    fingerprint,
    ...withDefined("note", input.note ?? existing?.note),
    updatedAtMs: nowMs,
    ...withDefined("lastRotatedAtMs", existing?.lastRotatedAtMs)
  } as CredentialRoleState
}

export const revokeRole = (existing: CredentialRoleState | undefined, input: CredentialRolePayload, nowMs: number): CredentialRoleState =>
  ({
    role: input.role,
    status: "revoked",
    version: existing?.version ?? 1,
    ...withDefined("note", input.note ?? existing?.note),
    updatedAtMs: nowMs,
    ...withDefined("lastRotatedAtMs", existing?.lastRotatedAtMs),
    revokedAtMs: nowMs
  }) as CredentialRoleState

const withDefined = <K extends string>(key: K, value: unknown) => (value === undefined ? {} : { [key]: value })

// ---------------------------------------------------------------------------------------------

export const PREIMAGE = /^[0-9a-f]{64}$/

export interface ControlPlaneService {
  readonly createPaywall: (userId: string, input: PaywallInput) => Effect.Effect<PaywallRow, InvalidRequest | StorageError>
  readonly listPaywalls: (userId: string, includeArchived: boolean) => Effect.Effect<ReadonlyArray<PaywallRow>, StorageError>
  readonly getPaywall: (userId: string, paywallId: string) => Effect.Effect<PaywallRow, NotFound | Forbidden | StorageError>
  readonly updatePaywall: (userId: string, paywallId: string, input: PaywallInput) => Effect.Effect<PaywallRow, NotFound | Forbidden | Conflict | InvalidRequest | StorageError>
  readonly setPaywallEnabled: (userId: string, paywallId: string, enabled: boolean) => Effect.Effect<PaywallRow, NotFound | Forbidden | Conflict | StorageError>
  readonly archivePaywall: (userId: string, paywallId: string) => Effect.Effect<PaywallRow, NotFound | Forbidden | StorageError>

  // lightning-ops (the LightningOpsRpc contract)
  readonly listPaywallControlPlaneState: (statuses: ReadonlyArray<PaywallStatus> | undefined) => Effect.Effect<SnapshotResponse, ControlPlaneUnavailable>
  readonly getControlPlaneSecurityState: Effect.Effect<SecurityStateResponse, ControlPlaneUnavailable>
  readonly recordGatewayCompileIntent: (p: RecordCompileIntentPayload) => Effect.Effect<DeploymentWriteResponse, ControlPlaneUnavailable>
  readonly recordGatewayDeploymentEvent: (p: RecordGatewayEventPayload) => Effect.Effect<GatewayEventWriteResponse, ControlPlaneUnavailable>
  readonly ingestInvoiceLifecycle: (p: InvoiceLifecyclePayload) => Effect.Effect<InvoiceWriteResponse, ControlPlaneConflict | ControlPlaneUnavailable>
  readonly ingestSettlement: (p: SettlementPayload) => Effect.Effect<SettlementWriteResponse, InvalidArguments | ControlPlaneConflict | ControlPlaneUnavailable>
  readonly setGlobalPause: (p: SetGlobalPausePayload) => Effect.Effect<GlobalWriteResponse, ControlPlaneUnavailable>
  readonly setOwnerKillSwitch: (p: SetOwnerKillSwitchPayload) => Effect.Effect<OwnerControlWriteResponse, ControlPlaneUnavailable>
  readonly rotateCredentialRole: (p: CredentialRolePayload) => Effect.Effect<CredentialRoleWriteResponse, ControlPlaneUnavailable>
  readonly activateCredentialRole: (p: CredentialRolePayload) => Effect.Effect<CredentialRoleWriteResponse, InvalidArguments | ControlPlaneUnavailable>
  readonly revokeCredentialRole: (p: CredentialRolePayload) => Effect.Effect<CredentialRoleWriteResponse, ControlPlaneUnavailable>
}

export class ControlPlane extends Context.Tag("@openagents/control-core/ControlPlane")<ControlPlane, ControlPlaneService>() {}

/** Storage failures of ops calls are ControlPlaneUnavailable (logged; the call had no effect). */
const unavailable = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, StorageError> | ControlPlaneUnavailable, R> =>
  Effect.catchIf(
    effect,
    (e): e is Extract<E, StorageError> => e instanceof StorageError,
    (e) => Effect.zipRight(Effect.logError(e.message), Effect.fail(new ControlPlaneUnavailable({ message: "control-plane storage is unavailable" })))
  ) as any

export const make = Effect.gen(function*() {
  const storage = yield* L402Storage

  const owned = (userId: string, paywallId: string) =>
    Effect.gen(function*() {
      const row = yield* storage.findPaywall(paywallId)
      if (row === undefined) return yield* new NotFound({ message: "no such paywall" })
      if (row.ownerUserId !== userId) return yield* new Forbidden({ message: "the paywall belongs to another owner" })
      return row
    })

  const mutate = <E>(userId: string, paywallId: string, change: (row: PaywallRow, nowMs: number) => Effect.Effect<PaywallRow, E>) =>
    Effect.gen(function*() {
      yield* owned(userId, paywallId)
      const now = yield* Clock.currentTimeMillis
      const updated = yield* storage.updatePaywall<E | Forbidden>(paywallId, (row) =>
        row.ownerUserId !== userId ? Effect.fail(new Forbidden({ message: "the paywall belongs to another owner" })) : change(row, now))
      if (updated === undefined) return yield* new NotFound({ message: "no such paywall" })
      return updated
    })

  const notArchived = (row: PaywallRow) =>
    row.deletedAtMs !== undefined ? Effect.fail(new Conflict({ message: "the paywall is archived" })) : Effect.succeed(row)

  const service: ControlPlaneService = {
    createPaywall: (userId, input) =>
      Effect.gen(function*() {
        const invalid = validatePaywall(input, true)
        if (invalid !== undefined) return yield* invalid
        const now = yield* Clock.currentTimeMillis
        const row: PaywallRow = {
          id: randomId("pw"),
          ownerUserId: userId,
          name: input.name!.trim(),
          hostRegexp: input.hostRegexp!,
          pathRegexp: input.pathRegexp!,
          priceMsats: input.priceMsats!,
          upstream: input.upstream!,
          enabled: input.enabled ?? true,
          meta: input.metadata ?? {},
          lastReconcileStatus: undefined,
          lastReconcileError: undefined,
          lastReconciledAtMs: undefined,
          lastReconcileStartedAtMs: undefined,
          lastReconcileDiagnostics: [],
          createdAtMs: now,
          updatedAtMs: now,
          deletedAtMs: undefined
        }
        yield* storage.insertPaywall(row)
        return row
      }),

    listPaywalls: (userId, includeArchived) => storage.listPaywallsByOwner(userId, includeArchived),

    getPaywall: owned,

    updatePaywall: (userId, paywallId, input) =>
      Effect.gen(function*() {
        const invalid = validatePaywall(input, false)
        if (invalid !== undefined) return yield* invalid
        return yield* mutate(userId, paywallId, (row, now) =>
          Effect.map(notArchived(row), (r): PaywallRow => ({
            ...r,
            ...(input.name !== undefined ? { name: input.name.trim() } : {}),
            ...(input.hostRegexp !== undefined ? { hostRegexp: input.hostRegexp } : {}),
            ...(input.pathRegexp !== undefined ? { pathRegexp: input.pathRegexp } : {}),
            ...(input.priceMsats !== undefined ? { priceMsats: input.priceMsats } : {}),
            ...(input.upstream !== undefined ? { upstream: input.upstream } : {}),
            ...(input.enabled !== undefined ? { enabled: input.enabled } : {}),
            ...(input.metadata !== undefined ? { meta: input.metadata } : {}),
            updatedAtMs: now
          })))
      }),

    setPaywallEnabled: (userId, paywallId, enabled) =>
      mutate(userId, paywallId, (row, now) => Effect.map(notArchived(row), (r) => (r.enabled === enabled ? r : { ...r, enabled, updatedAtMs: now }))),

    archivePaywall: (userId, paywallId) =>
      mutate(userId, paywallId, (row, now) => Effect.succeed(row.deletedAtMs !== undefined ? row : { ...row, deletedAtMs: now, updatedAtMs: now })),

    listPaywallControlPlaneState: (statuses) =>
      unavailable(Effect.gen(function*() {
        const rows = yield* storage.listPaywalls(statuses ?? ["active", "paused"])
        const { ownerControls } = yield* storage.securityState
        const killed = new Set(ownerControls.filter((c) => c.killSwitch).map((c) => c.ownerId))
        return { ok: true as const, paywalls: rows.map((r) => toControlPlanePaywall(r, killed.has(ownerIdOf(r.ownerUserId)))) }
      })),

    getControlPlaneSecurityState: unavailable(Effect.map(storage.securityState, (s) => ({ ok: true as const, ...s }))),

    recordGatewayCompileIntent: (p) =>
      unavailable(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const diagnostics = p.diagnostics ?? []
        // Every paywall the intent names gets its outcome (a deployment serves many owners'
        // paywalls; each owner sees it), with the diagnostics that name that paywall. A pending
        // intent changes no status: it is not an outcome.
        const paywallIds = [...new Set([...(p.paywallId !== undefined ? [p.paywallId] : []), ...(p.paywallIds ?? [])])]
        // Outcomes are ordered by when their reconcile started, clamped to our clock: a writer
        // whose clock runs ahead cannot pin a paywall's status into the future.
        const startedAtMs = Math.min(p.reconcileStartedAtMs ?? now, now)
        const reconciled: ReadonlyArray<ReconcileStatus> = p.status === "pending" ? [] : paywallIds.map((paywallId) => ({
          paywallId,
          status: p.status,
          error: p.failureCode,
          diagnostics: diagnostics.filter((d) => d.paywallId === paywallId),
          atMs: now,
          startedAtMs
        }))
        const deployment = yield* storage.upsertDeployment({
          deploymentId: p.deploymentId ?? `dep_${uuid7Hex(now)}`,
          ...withDefined("paywallId", p.paywallId),
          ...withDefined("ownerId", p.ownerId),
          configHash: p.configHash,
          ...withDefined("imageDigest", p.imageDigest),
          status: p.status,
          diagnostics,
          ...withDefined("appliedAtMs", p.appliedAtMs),
          ...withDefined("rolledBackFrom", p.rolledBackFrom),
          ...withDefined("failureCode", p.failureCode),
          ...withDefined("requestId", p.requestId),
          ...withDefined("metadata", p.metadata),
          paywallIds: p.paywallIds ?? [],
          reconcileStartedAtMs: startedAtMs,
          createdAtMs: now,
          updatedAtMs: now
        } as Parameters<typeof storage.upsertDeployment>[0], reconciled)
        return { ok: true as const, deployment }
      })),

    recordGatewayDeploymentEvent: (p) =>
      unavailable(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const { event } = yield* storage.insertGatewayEvent({
          eventId: p.eventId ?? `evt_${uuid7Hex(now)}`,
          paywallId: p.paywallId,
          ownerId: p.ownerId,
          eventType: p.eventType,
          level: p.level,
          ...withDefined("requestId", p.requestId),
          ...withDefined("metadata", p.metadata),
          ...withDefined("deploymentId", p.deploymentId),
          ...withDefined("configHash", p.configHash),
          ...withDefined("executionPath", p.executionPath),
          createdAtMs: now
        } as Parameters<typeof storage.insertGatewayEvent>[0])
        return { ok: true as const, event }
      })),

    ingestInvoiceLifecycle: (p) =>
      unavailable(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const { changed, invoice } = yield* storage.ingestInvoice(p, now)
        return { ok: true as const, changed, invoice }
      })),

    ingestSettlement: (p) =>
      unavailable(Effect.gen(function*() {
        if (p.paymentProofType !== "lightning_preimage") return yield* new InvalidArguments({ message: "invalid_payment_proof_type", field: "paymentProofType" })
        const preimage = p.paymentProofValue.trim().toLowerCase()
        if (!PREIMAGE.test(preimage)) return yield* new InvalidArguments({ message: "invalid_preimage", field: "paymentProofValue" })
        const paymentProofRef = `lightning_preimage:${preimage.slice(0, 24)}`
        const now = yield* Clock.currentTimeMillis
        const settlement = {
          settlementId: p.settlementId,
          paywallId: p.paywallId,
          ownerId: p.ownerId,
          ...withDefined("invoiceId", p.invoiceId),
          amountMsats: p.amountMsats,
          paymentProofRef,
          ...withDefined("requestId", p.requestId),
          ...withDefined("metadata", p.metadata),
          createdAtMs: now
        } as Parameters<typeof storage.ingestSettlement>[0]
        const invoice: InvoiceInput | undefined = p.invoiceId === undefined ? undefined : {
          invoiceId: p.invoiceId,
          paywallId: p.paywallId,
          ownerId: p.ownerId,
          amountMsats: p.amountMsats,
          status: "settled",
          paymentProofRef,
          ...withDefined("requestId", p.requestId),
          ...withDefined("settledAtMs", p.occurredAtMs)
        }
        const result = yield* storage.ingestSettlement(settlement, invoice, now)
        const stored = result.settlement
        if (
          result.existed &&
          (stored.paywallId !== settlement.paywallId || stored.ownerId !== settlement.ownerId || stored.invoiceId !== settlement.invoiceId ||
            stored.amountMsats !== settlement.amountMsats || stored.paymentProofRef !== settlement.paymentProofRef)
        ) {
          return yield* new ControlPlaneConflict({ id: p.settlementId, message: `settlement ${p.settlementId} was recorded with different content` })
        }
        return { ok: true as const, existed: result.existed, settlement: stored, ...withDefined("invoice", result.invoice) } as SettlementWriteResponse
      })),

    setGlobalPause: (p) =>
      unavailable(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const global = yield* storage.setGlobal({
          stateId: "global",
          globalPause: p.active,
          ...(p.active ? { denyReasonCode: "global_pause_active" as const } : {}),
          ...(p.active ? withDefined("denyReason", p.reason) : {}),
          ...withDefined("updatedBy", p.updatedBy),
          updatedAtMs: now
        })
        return { ok: true as const, global }
      })),

    setOwnerKillSwitch: (p) =>
      unavailable(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const ownerControl = yield* storage.setOwnerControl({
          ownerId: p.ownerId,
          killSwitch: p.active,
          ...(p.active ? { denyReasonCode: "owner_kill_switch_active" as const } : {}),
          ...(p.active ? withDefined("denyReason", p.reason) : {}),
          ...withDefined("updatedBy", p.updatedBy),
          updatedAtMs: now
        })
        return { ok: true as const, ownerControl }
      })),

    rotateCredentialRole: (p) =>
      unavailable(Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(storage.updateCredentialRole(p.role, (existing) => Effect.succeed(rotateRole(existing, p, now))), (role) => ({ ok: true as const, role })))),

    activateCredentialRole: (p) =>
      unavailable(Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(
          storage.updateCredentialRole(p.role, (existing) => {
            const next = activateRole(existing, p, now)
            return next instanceof InvalidArguments ? Effect.fail(next) : Effect.succeed(next)
          }),
          (role) => ({ ok: true as const, role })
        ))),

    revokeCredentialRole: (p) =>
      unavailable(Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.map(storage.updateCredentialRole(p.role, (existing) => Effect.succeed(revokeRole(existing, p, now))), (role) => ({ ok: true as const, role }))))
  }
  return service
})

export const layer: Layer.Layer<ControlPlane, never, L402Storage> = Layer.effect(ControlPlane, make)
