// The control plane as lightning-ops sees it: the port through which the reconciler reads paywall
// policy and security state and records deployment intents, gateway events, invoices and
// settlements. The control plane (control-core) owns that state; Lightning never touches its
// tables. Adapters: `controlPlane/memory.ts` (tests, development) and `controlPlane/http.ts`
// (the upstream internal JSON API, UPSTREAM_SPEC §3.4).
//
// The domain types are Effect Schemas of the upstream JSON (lowerCamelCase, msat amounts as
// numbers, times as Unix ms), the same shapes the proto contracts in
// openagents/lightning/v1/control_plane.proto describe.
import { sha256 } from "@noble/hashes/sha2"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { toHex, utf8 } from "./internal/bytes.js"

export const PaywallStatus = Schema.Literal("active", "paused", "archived")
export type PaywallStatus = typeof PaywallStatus.Type

export const PaywallPolicy = Schema.Struct({
  paywallId: Schema.String,
  ownerId: Schema.String,
  pricingMode: Schema.String,
  fixedAmountMsats: Schema.Number,
  maxPerRequestMsats: Schema.optional(Schema.Number),
  allowedHosts: Schema.optional(Schema.Array(Schema.String)),
  blockedHosts: Schema.optional(Schema.Array(Schema.String)),
  quotaPerMinute: Schema.optional(Schema.Number),
  quotaPerDay: Schema.optional(Schema.Number),
  killSwitch: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
export type PaywallPolicy = typeof PaywallPolicy.Type

export const PaywallRoute = Schema.Struct({
  routeId: Schema.String,
  hostPattern: Schema.String,
  pathPattern: Schema.String,
  upstreamUrl: Schema.String,
  /** "http" | "https"; missing is a compile diagnostic. */
  protocol: Schema.optional(Schema.String),
  timeoutMs: Schema.optional(Schema.Number),
  priority: Schema.optional(Schema.Number)
})
export type PaywallRoute = typeof PaywallRoute.Type

export const Paywall = Schema.Struct({
  paywallId: Schema.String,
  ownerId: Schema.String,
  name: Schema.String,
  status: PaywallStatus,
  createdAtMs: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  updatedAtMs: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  policy: PaywallPolicy,
  routes: Schema.Array(PaywallRoute)
})
export type Paywall = typeof Paywall.Type

export const SecurityGlobal = Schema.Struct({
  globalPause: Schema.Boolean,
  denyReasonCode: Schema.optional(Schema.NullOr(Schema.String)),
  denyReason: Schema.optional(Schema.NullOr(Schema.String)),
  updatedBy: Schema.optional(Schema.NullOr(Schema.String)),
  updatedAtMs: Schema.optional(Schema.NullOr(Schema.Number))
})

export const OwnerControl = Schema.Struct({
  ownerId: Schema.String,
  killSwitch: Schema.Boolean,
  denyReasonCode: Schema.optional(Schema.NullOr(Schema.String)),
  denyReason: Schema.optional(Schema.NullOr(Schema.String)),
  updatedAtMs: Schema.optional(Schema.NullOr(Schema.Number))
})

export const CredentialRole = Schema.Literal("gateway_invoice", "settlement_read", "operator_admin")
export type CredentialRole = typeof CredentialRole.Type

/** A role credential as control records it (never the credential: its fingerprint). */
export const CredentialRoleState = Schema.Struct({
  role: CredentialRole,
  status: Schema.Literal("active", "rotating", "revoked"),
  version: Schema.optional(Schema.Number),
  fingerprint: Schema.optional(Schema.NullOr(Schema.String))
})
export type CredentialRoleState = typeof CredentialRoleState.Type

export const SecurityState = Schema.Struct({
  global: SecurityGlobal,
  ownerControls: Schema.Array(OwnerControl),
  credentialRoles: Schema.optionalWith(Schema.Array(CredentialRoleState), { default: () => [] })
})
export type SecurityState = typeof SecurityState.Type

export type DeploymentStatus = "pending" | "applied" | "failed" | "rolled_back"

/** openagents.lightning.v1.ReconcileFailureCode, as its lower-case upstream string. */
export type ReconcileFailureCode =
  | "compile_validation_failed"
  | "active_lookup_failed"
  | "deploy_apply_failed"
  | "health_check_failed"
  | "challenge_check_failed"
  | "proxy_check_failed"
  | "rollback_failed"
  | "security_denied"

export interface DeploymentIntent {
  readonly deploymentId: string
  readonly configHash: string
  readonly status: DeploymentStatus
  /** For failed and rolled_back intents: why (control shows it as the paywall's lastReconcileError). */
  readonly failureCode?: ReconcileFailureCode | undefined
  readonly paywallId?: string | undefined
  readonly ownerId?: string | undefined
  readonly imageDigest?: string | undefined
  readonly diagnostics?: ReadonlyArray<unknown> | undefined
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  readonly requestId?: string | undefined
  readonly appliedAtMs?: number | undefined
  readonly rolledBackFrom?: string | undefined
  /**
   * Every paywall the deployment serves (paywallId, the first route's, among them). Control records a
   * non-pending intent's outcome as the reconcile status of each, so every owner sees it.
   */
  readonly paywallIds?: ReadonlyArray<string> | undefined
  /**
   * When the reconcile started, before it read control's state. Control orders outcomes by it: a
   * paywall keeps the status of the reconcile that started last, however late an older one reports.
   */
  readonly reconcileStartedAtMs?: number | undefined
}

export type EventLevel = "info" | "warn" | "error"

export interface GatewayEvent {
  readonly paywallId: string
  readonly ownerId: string
  readonly eventType: string
  readonly level: EventLevel
  readonly requestId?: string | undefined
  readonly deploymentId?: string | undefined
  readonly configHash?: string | undefined
  readonly executionPath?: string | undefined
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
}

export const InvoiceStatus = Schema.Literal("open", "settled", "canceled", "expired")
export type InvoiceStatus = typeof InvoiceStatus.Type

/**
 * One state of one invoice the gateway issued for a paywall: the JSON of
 * openagents.lightning.v1.InvoiceLifecycleIngestRequest, the single definition control's ingest
 * payload also follows (test/ProtoContract.test.ts holds this schema to the proto message).
 */
export const InvoiceLifecycle = Schema.Struct({
  invoiceId: Schema.String,
  paywallId: Schema.String,
  ownerId: Schema.String,
  amountMsats: Schema.Number,
  status: InvoiceStatus,
  paymentHash: Schema.optional(Schema.String),
  paymentRequest: Schema.optional(Schema.String),
  paymentProofRef: Schema.optional(Schema.String),
  requestId: Schema.optional(Schema.String),
  settledAtMs: Schema.optional(Schema.Number)
})
export type InvoiceLifecycle = typeof InvoiceLifecycle.Type

export const Settlement = Schema.Struct({
  settlementId: Schema.String,
  paywallId: Schema.String,
  ownerId: Schema.String,
  invoiceId: Schema.optional(Schema.String),
  amountMsats: Schema.Number,
  paymentProofType: Schema.Literal("lightning_preimage"),
  /** Hex preimage (normalised to lower case). */
  paymentProofValue: Schema.String,
  requestId: Schema.optional(Schema.String),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})
export type Settlement = typeof Settlement.Type

export type ControlPlaneErrorCode =
  | "ops_secret_unconfigured"
  | "invalid_ops_secret"
  | "unsupported_function"
  | "invalid_arguments"
  /** An idempotency key or immutable identity reused with other content (control's 409). */
  | "conflict"
  | "control_plane_unavailable"
  | "bad_response"

/** Control refused the operations secret (ours is wrong, or control has none): an operator must act. */
export const isUnauthorized = (error: ControlPlaneError): boolean => error.code === "invalid_ops_secret" || error.code === "ops_secret_unconfigured"

export class ControlPlaneError extends Data.TaggedError("ControlPlaneError")<{
  readonly code: ControlPlaneErrorCode
  readonly message: string
  readonly functionName: string
}> {}

export interface ControlPlaneService {
  /** `lightning/ops:listPaywallControlPlaneState` (statuses default to active and paused). */
  readonly listPaywallsForCompile: (statuses?: ReadonlyArray<PaywallStatus>) => Effect.Effect<ReadonlyArray<Paywall>, ControlPlaneError>
  /** `lightning/security:getControlPlaneSecurityState`. */
  readonly getSecurityState: Effect.Effect<SecurityState, ControlPlaneError>
  /** `lightning/ops:recordGatewayCompileIntent` (upsert by deploymentId). */
  readonly recordDeploymentIntent: (intent: DeploymentIntent) => Effect.Effect<DeploymentIntent, ControlPlaneError>
  /** `lightning/ops:recordGatewayDeploymentEvent`. */
  readonly recordGatewayEvent: (event: GatewayEvent) => Effect.Effect<GatewayEvent & { readonly eventId: string }, ControlPlaneError>
  /** `lightning/settlements:ingestInvoiceLifecycle`. */
  readonly ingestInvoiceLifecycle: (invoice: InvoiceLifecycle) => Effect.Effect<{ readonly changed: boolean; readonly invoice: InvoiceLifecycle }, ControlPlaneError>
  /** `lightning/settlements:ingestSettlement` (idempotent by settlementId). */
  readonly ingestSettlement: (settlement: Settlement) => Effect.Effect<{ readonly existed: boolean; readonly paymentProofRef: string }, ControlPlaneError>
}

export class ControlPlane extends Context.Tag("@openagents/lightning/ControlPlane")<ControlPlane, ControlPlaneService>() {}

/** `lightning_preimage:<first 24 hex chars>`, the stored proof reference of a settlement. */
export const paymentProofRef = (preimageHex: string): string => `lightning_preimage:${preimageHex.toLowerCase().slice(0, 24)}`

/**
 * The fingerprint control records for a role credential (`rotate/activateCredentialRole`
 * `fingerprint`): "sha256:" + hex SHA-256 of the credential. lightning-ops compares its own
 * credentials' fingerprints with control's; the credential itself never leaves the process.
 */
export const credentialFingerprint = (credential: string): string => `sha256:${toHex(sha256(utf8(credential)))}`
