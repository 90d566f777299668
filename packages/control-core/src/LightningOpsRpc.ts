// The contract between control and lightning-ops: the internal API through which lightning-ops
// reads the L402 control-plane state and records what it did (UPSTREAM_SPEC §3.4). Schemas and
// the RpcGroup only — no storage, no handlers — so lightning-ops can build its client from this
// module (`@openagents/control-core/lightning-ops-rpc`) without pulling in control's SQL.
//
// Wire: @effect/rpc over HTTP, ndjson serialization, at RPC_PATH. Every call carries the
// operations secret in the OPS_SECRET_HEADER header; the server fails closed (OpsSecretUnconfigured)
// when its own secret is unset or shorter than MIN_OPS_SECRET_LENGTH. The same operations are
// also served as the upstream JSON route (`POST /api/internal/lightning-ops/control-plane/query`
// and `.../mutation` with `{functionName, args}` and `args.secret`); FUNCTION_NAMES maps the
// upstream function names onto the tags below.
//
// Field names are the upstream control-plane JSON (lowerCamelCase), enum values its lower-case
// strings; times are Unix milliseconds (`*AtMs`), amounts millisatoshis (`*Msats`), both JSON
// numbers. Semantics the server guarantees:
// - ingestInvoiceLifecycle is monotonic: status only moves up the rank open(0) <
//   canceled|expired(1) < settled(2); set payment fields are never overwritten; settledAtMs is
//   set once. Concurrent calls converge to the highest-ranked status.
// - ingestSettlement is idempotent by settlementId: a replay with the same content answers
//   `existed: true`; a replay with different content is a ControlPlaneConflict.
// - recordGatewayCompileIntent upserts by deploymentId and, unless pending, sets the reconcile
//   status of every paywall it names (paywallId, paywallIds) in the same transaction;
//   recordGatewayDeploymentEvent persists the
//   deployment correlation (deploymentId, configHash, executionPath), which upstream dropped.
import * as Headers from "@effect/platform/Headers"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcMiddleware from "@effect/rpc/RpcMiddleware"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/** Where control serves the RPC group (HTTP protocol, ndjson). */
export const RPC_PATH = "/api/internal/lightning-ops/rpc" as const
/** The header that carries the operations secret on RPC calls. */
export const OPS_SECRET_HEADER = "x-oa-ops-secret" as const
/** Secrets shorter than this are refused by the server (it fails closed); shared with lightning-ops. */
export { MIN_OPS_SECRET_LENGTH } from "@openagents/proto/lightning/v1"

// ---------------------------------------------------------------------------------------------
// Scalars

const opt = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })
/** Inputs accept `null` for an absent optional field (the upstream PHP JSON sends nulls). */
const optIn = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true, nullable: true })

export const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(180))
export const TimestampMs = Schema.Number.pipe(Schema.int(), Schema.nonNegative(), Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER))
export const Msats = Schema.Number.pipe(Schema.int(), Schema.nonNegative(), Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER))
export const Metadata = Schema.Record({ key: Schema.String, value: Schema.Unknown })
/** "owner_<user_id>". */
export const OwnerId = Id

export const PaywallStatus = Schema.Literal("active", "paused", "archived")
export type PaywallStatus = typeof PaywallStatus.Type
export const RouteProtocol = Schema.Literal("http", "https")
export const DeploymentStatus = Schema.Literal("pending", "applied", "failed", "rolled_back")
export type DeploymentStatus = typeof DeploymentStatus.Type
/** Why a reconcile failed (openagents.lightning.v1.ReconcileFailureCode). Stored as given. */
export const KNOWN_FAILURE_CODES = [
  "compile_validation_failed",
  "active_lookup_failed",
  "deploy_apply_failed",
  "health_check_failed",
  "challenge_check_failed",
  "proxy_check_failed",
  "rollback_failed",
  "security_denied"
] as const
export const ReconcileFailureCode = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)).annotations({
  description: `A reconcile failure code, e.g. ${KNOWN_FAILURE_CODES.join(", ")}`
})
export const GatewayEventLevel = Schema.Literal("info", "warn", "error")
export const InvoiceStatus = Schema.Literal("open", "canceled", "expired", "settled")
export type InvoiceStatus = typeof InvoiceStatus.Type
export const PaymentProofType = Schema.Literal("lightning_preimage")
export const SecurityDenyReasonCode = Schema.Literal("global_pause_active", "owner_kill_switch_active")
export const CredentialRole = Schema.Literal("gateway_invoice", "settlement_read", "operator_admin")
export type CredentialRole = typeof CredentialRole.Type
export const CredentialRoleStatus = Schema.Literal("active", "rotating", "revoked")
/** The compiler's diagnostic codes (openagents.lightning.v1.CompileDiagnosticCode). Stored as given: the compiler may add codes. */
export const KNOWN_DIAGNOSTIC_CODES = [
  "invalid_pricing_mode",
  "missing_pricing",
  "price_not_whole_sats",
  "invalid_route_pattern",
  "invalid_upstream_url",
  "missing_route_protocol",
  "duplicate_route",
  "ambiguous_route",
  "first_match_shadowed",
  "no_compilable_routes"
] as const
export const CompileDiagnosticCode = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(120)).annotations({
  description: `A compile diagnostic code, e.g. ${KNOWN_DIAGNOSTIC_CODES.join(", ")}`
})

// ---------------------------------------------------------------------------------------------
// Records (what the server answers)

export const PaywallPolicy = Schema.Struct({
  paywallId: Id,
  ownerId: OwnerId,
  pricingMode: Schema.Literal("fixed"),
  fixedAmountMsats: Msats,
  maxPerRequestMsats: opt(Msats),
  allowedHosts: opt(Schema.Array(Schema.String)),
  blockedHosts: opt(Schema.Array(Schema.String)),
  quotaPerMinute: opt(Schema.Int),
  quotaPerDay: opt(Schema.Int),
  /** The owner's kill switch, as recorded in the security controls. */
  killSwitch: Schema.Boolean,
  createdAtMs: TimestampMs,
  updatedAtMs: TimestampMs
})
export type PaywallPolicy = typeof PaywallPolicy.Type

export const PaywallRoute = Schema.Struct({
  /** "route_<paywallId>". */
  routeId: Id,
  paywallId: Id,
  ownerId: OwnerId,
  hostPattern: Schema.String,
  pathPattern: Schema.String,
  upstreamUrl: Schema.String,
  /** The scheme of upstreamUrl. */
  protocol: RouteProtocol,
  timeoutMs: Schema.Int,
  priority: Schema.Int,
  createdAtMs: TimestampMs,
  updatedAtMs: TimestampMs
})
export type PaywallRoute = typeof PaywallRoute.Type

export const CompileDiagnostic = Schema.Struct({
  code: CompileDiagnosticCode,
  severity: Schema.Literal("error", "warn"),
  message: Schema.String,
  paywallId: optIn(Schema.String),
  routeId: optIn(Schema.String),
  relatedRouteId: optIn(Schema.String),
  details: optIn(Metadata),
  /** The paywall of relatedRouteId: the one that keeps the route in a conflict. */
  relatedPaywallId: optIn(Schema.String)
})
export type CompileDiagnostic = typeof CompileDiagnostic.Type

export const Paywall = Schema.Struct({
  paywallId: Id,
  ownerId: OwnerId,
  name: Schema.String,
  description: opt(Schema.String),
  status: PaywallStatus,
  requestId: opt(Schema.String),
  metadata: opt(Metadata),
  createdAtMs: TimestampMs,
  updatedAtMs: TimestampMs,
  policy: PaywallPolicy,
  routes: Schema.Array(PaywallRoute),
  lastReconcileStatus: opt(Schema.String),
  lastReconcileError: opt(Schema.String),
  lastReconciledAtMs: opt(TimestampMs),
  /** The diagnostics of the last reconcile that name this paywall (why it was left out); absent when none. */
  lastReconcileDiagnostics: opt(Schema.Array(CompileDiagnostic))
})
export type Paywall = typeof Paywall.Type

export const DeploymentIntent = Schema.Struct({
  deploymentId: Id,
  paywallId: opt(Schema.String),
  ownerId: opt(Schema.String),
  configHash: Schema.String,
  imageDigest: opt(Schema.String),
  status: DeploymentStatus,
  diagnostics: Schema.Array(CompileDiagnostic),
  appliedAtMs: opt(TimestampMs),
  rolledBackFrom: opt(Schema.String),
  failureCode: opt(ReconcileFailureCode),
  requestId: opt(Schema.String),
  metadata: opt(Metadata),
  createdAtMs: TimestampMs,
  updatedAtMs: TimestampMs,
  /** Every paywall the deployment serves (paywallId, the first route's, among them); empty for one paywall's own intent. */
  paywallIds: Schema.Array(Schema.String),
  /** When the reconcile that wrote the intent started, as control ordered it (see RecordCompileIntentPayload). */
  reconcileStartedAtMs: opt(TimestampMs)
})
export type DeploymentIntent = typeof DeploymentIntent.Type

export const GatewayEvent = Schema.Struct({
  /** "evt_" + uuid7 hex. */
  eventId: Id,
  paywallId: Schema.String,
  ownerId: Schema.String,
  eventType: Schema.String,
  level: GatewayEventLevel,
  requestId: opt(Schema.String),
  metadata: opt(Metadata),
  deploymentId: opt(Schema.String),
  configHash: opt(Schema.String),
  executionPath: opt(Schema.String),
  createdAtMs: TimestampMs
})
export type GatewayEvent = typeof GatewayEvent.Type

export const Invoice = Schema.Struct({
  invoiceId: Id,
  paywallId: Schema.String,
  ownerId: Schema.String,
  amountMsats: Msats,
  status: InvoiceStatus,
  paymentHash: opt(Schema.String),
  paymentRequest: opt(Schema.String),
  /** "lightning_preimage:<first 24 hex chars of the preimage>". */
  paymentProofRef: opt(Schema.String),
  requestId: opt(Schema.String),
  createdAtMs: TimestampMs,
  updatedAtMs: TimestampMs,
  settledAtMs: opt(TimestampMs)
})
export type Invoice = typeof Invoice.Type

export const Settlement = Schema.Struct({
  settlementId: Id,
  paywallId: Schema.String,
  ownerId: Schema.String,
  invoiceId: opt(Schema.String),
  amountMsats: Msats,
  paymentProofRef: Schema.String,
  requestId: opt(Schema.String),
  metadata: opt(Metadata),
  createdAtMs: TimestampMs
})
export type Settlement = typeof Settlement.Type

export const SecurityGlobal = Schema.Struct({
  stateId: Schema.Literal("global"),
  globalPause: Schema.Boolean,
  denyReasonCode: opt(SecurityDenyReasonCode),
  denyReason: opt(Schema.String),
  updatedBy: opt(Schema.String),
  updatedAtMs: TimestampMs
})
export type SecurityGlobal = typeof SecurityGlobal.Type

export const OwnerControl = Schema.Struct({
  ownerId: OwnerId,
  killSwitch: Schema.Boolean,
  denyReasonCode: opt(SecurityDenyReasonCode),
  denyReason: opt(Schema.String),
  updatedBy: opt(Schema.String),
  updatedAtMs: TimestampMs
})
export type OwnerControl = typeof OwnerControl.Type

export const CredentialRoleState = Schema.Struct({
  role: CredentialRole,
  status: CredentialRoleStatus,
  /** 1 when the role is first recorded; + 1 per rotation. */
  version: Schema.Int,
  /** Fingerprint of the current credential, never the credential itself. */
  fingerprint: opt(Schema.String),
  note: opt(Schema.String),
  updatedAtMs: TimestampMs,
  lastRotatedAtMs: opt(TimestampMs),
  revokedAtMs: opt(TimestampMs)
})
export type CredentialRoleState = typeof CredentialRoleState.Type

// ---------------------------------------------------------------------------------------------
// Errors. Each has a stable `code` (the upstream code where there is one) and an HTTP status
// for the JSON route.

export class OpsSecretUnconfigured extends Schema.TaggedError<OpsSecretUnconfigured>()(
  "OpsSecretUnconfigured",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {
  readonly code = "ops_secret_unconfigured" as const
}

export class InvalidOpsSecret extends Schema.TaggedError<InvalidOpsSecret>()(
  "InvalidOpsSecret",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {
  readonly code = "invalid_ops_secret" as const
}

/** Arguments that pass the schema but not the semantics; `message` is the upstream code (`missing_<field>`, `invalid_preimage`, ...). */
export class InvalidArguments extends Schema.TaggedError<InvalidArguments>()(
  "InvalidArguments",
  { message: Schema.String, field: opt(Schema.String) },
  HttpApiSchema.annotations({ status: 422 })
) {
  readonly code = "invalid_arguments" as const
}

/** An idempotency key or an immutable identity reused with different content. */
export class ControlPlaneConflict extends Schema.TaggedError<ControlPlaneConflict>()(
  "ControlPlaneConflict",
  { message: Schema.String, id: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {
  readonly code = "conflict" as const
}

/** The control plane's storage failed; the call had no effect and may be retried. */
export class ControlPlaneUnavailable extends Schema.TaggedError<ControlPlaneUnavailable>()(
  "ControlPlaneUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {
  readonly code = "control_plane_unavailable" as const
}

export const OpsAuthError = Schema.Union(OpsSecretUnconfigured, InvalidOpsSecret)
export type OpsAuthError = typeof OpsAuthError.Type
export const WriteError = Schema.Union(InvalidArguments, ControlPlaneConflict, ControlPlaneUnavailable)
export type WriteError = typeof WriteError.Type

// ---------------------------------------------------------------------------------------------
// Authentication: every RPC of the group requires the operations secret.

export class OpsAuthentication extends RpcMiddleware.Tag<OpsAuthentication>()("@openagents/control-core/OpsAuthentication", {
  failure: OpsAuthError,
  requiredForClient: true
}) {}

/** Client side: attach the operations secret to every call. */
export const layerClientAuthentication = (secret: Redacted.Redacted<string>) =>
  RpcMiddleware.layerClient(OpsAuthentication, ({ request }) =>
    Effect.succeed({ ...request, headers: Headers.set(request.headers, OPS_SECRET_HEADER, Redacted.value(secret)) }))

// ---------------------------------------------------------------------------------------------
// Payloads

export const ListPaywallsPayload = Schema.Struct({
  /** Default ["active", "paused"]. */
  statuses: optIn(Schema.Array(PaywallStatus))
})

export const RecordCompileIntentPayload = Schema.Struct({
  /** Upsert key; a uuid7-based id is generated when absent. */
  deploymentId: optIn(Id),
  paywallId: optIn(Schema.String),
  ownerId: optIn(Schema.String),
  configHash: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255)),
  imageDigest: optIn(Schema.String),
  status: DeploymentStatus,
  diagnostics: optIn(Schema.Array(CompileDiagnostic)),
  appliedAtMs: optIn(TimestampMs),
  rolledBackFrom: optIn(Schema.String),
  failureCode: optIn(ReconcileFailureCode),
  requestId: optIn(Schema.String),
  metadata: optIn(Metadata),
  /**
   * Every paywall whose routes the deployment serves. A non-pending intent's status, failureCode
   * and diagnostics become the last reconcile status of each of them (and of paywallId), in the
   * same transaction as the intent.
   */
  paywallIds: optIn(Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(180))).pipe(Schema.maxItems(10_000))),
  /**
   * When the reconcile started (the writer's clock; clamped to control's time). A paywall keeps the
   * outcome of a reconcile that started later: a late report of an older reconcile does not
   * replace it. Absent: the time control receives the intent.
   */
  reconcileStartedAtMs: optIn(TimestampMs)
})
export type RecordCompileIntentPayload = typeof RecordCompileIntentPayload.Type

export const RecordGatewayEventPayload = Schema.Struct({
  /** Idempotency key; generated ("evt_" + uuid7 hex) when absent. */
  eventId: optIn(Id),
  paywallId: Id,
  ownerId: Id,
  eventType: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(120)),
  level: GatewayEventLevel,
  requestId: optIn(Schema.String),
  metadata: optIn(Metadata),
  deploymentId: optIn(Schema.String),
  configHash: optIn(Schema.String),
  executionPath: optIn(Schema.String)
})
export type RecordGatewayEventPayload = typeof RecordGatewayEventPayload.Type

export const InvoiceLifecyclePayload = Schema.Struct({
  invoiceId: Id,
  paywallId: Id,
  ownerId: Id,
  amountMsats: Msats,
  status: InvoiceStatus,
  paymentHash: optIn(Schema.String),
  paymentRequest: optIn(Schema.String),
  paymentProofRef: optIn(Schema.String),
  requestId: optIn(Schema.String),
  /** When the invoice settled; defaults to the time of ingest. Only the first settle counts. */
  settledAtMs: optIn(TimestampMs)
})
export type InvoiceLifecyclePayload = typeof InvoiceLifecyclePayload.Type

export const SettlementPayload = Schema.Struct({
  settlementId: Id,
  paywallId: Id,
  ownerId: Id,
  /** When set, the invoice is first advanced to settled (created if unknown). */
  invoiceId: optIn(Id),
  amountMsats: Msats,
  paymentProofType: Schema.String,
  /** Hex preimage; normalized to lower case. */
  paymentProofValue: Schema.String,
  requestId: optIn(Schema.String),
  metadata: optIn(Metadata),
  occurredAtMs: optIn(TimestampMs)
})
export type SettlementPayload = typeof SettlementPayload.Type

export const SetGlobalPausePayload = Schema.Struct({
  active: Schema.Boolean,
  reason: optIn(Schema.String.pipe(Schema.maxLength(500))),
  updatedBy: optIn(Schema.String.pipe(Schema.maxLength(120)))
})
export type SetGlobalPausePayload = typeof SetGlobalPausePayload.Type

export const SetOwnerKillSwitchPayload = Schema.Struct({
  ownerId: Id,
  active: Schema.Boolean,
  reason: optIn(Schema.String.pipe(Schema.maxLength(500))),
  updatedBy: optIn(Schema.String.pipe(Schema.maxLength(120)))
})
export type SetOwnerKillSwitchPayload = typeof SetOwnerKillSwitchPayload.Type

export const CredentialRolePayload = Schema.Struct({
  role: CredentialRole,
  fingerprint: optIn(Schema.String.pipe(Schema.maxLength(255))),
  note: optIn(Schema.String.pipe(Schema.maxLength(500)))
})
export type CredentialRolePayload = typeof CredentialRolePayload.Type

// ---------------------------------------------------------------------------------------------
// Answers

export const SnapshotResponse = Schema.Struct({ ok: Schema.Literal(true), paywalls: Schema.Array(Paywall) })
export type SnapshotResponse = typeof SnapshotResponse.Type
export const SecurityStateResponse = Schema.Struct({
  ok: Schema.Literal(true),
  global: SecurityGlobal,
  ownerControls: Schema.Array(OwnerControl),
  credentialRoles: Schema.Array(CredentialRoleState)
})
export type SecurityStateResponse = typeof SecurityStateResponse.Type
export const DeploymentWriteResponse = Schema.Struct({ ok: Schema.Literal(true), deployment: DeploymentIntent })
export type DeploymentWriteResponse = typeof DeploymentWriteResponse.Type
export const GatewayEventWriteResponse = Schema.Struct({ ok: Schema.Literal(true), event: GatewayEvent })
export type GatewayEventWriteResponse = typeof GatewayEventWriteResponse.Type
export const InvoiceWriteResponse = Schema.Struct({ ok: Schema.Literal(true), changed: Schema.Boolean, invoice: Invoice })
export type InvoiceWriteResponse = typeof InvoiceWriteResponse.Type
export const SettlementWriteResponse = Schema.Struct({
  ok: Schema.Literal(true),
  existed: Schema.Boolean,
  settlement: Settlement,
  invoice: opt(Invoice)
})
export type SettlementWriteResponse = typeof SettlementWriteResponse.Type
export const GlobalWriteResponse = Schema.Struct({ ok: Schema.Literal(true), global: SecurityGlobal })
export type GlobalWriteResponse = typeof GlobalWriteResponse.Type
export const OwnerControlWriteResponse = Schema.Struct({ ok: Schema.Literal(true), ownerControl: OwnerControl })
export type OwnerControlWriteResponse = typeof OwnerControlWriteResponse.Type
export const CredentialRoleWriteResponse = Schema.Struct({ ok: Schema.Literal(true), role: CredentialRoleState })
export type CredentialRoleWriteResponse = typeof CredentialRoleWriteResponse.Type

// ---------------------------------------------------------------------------------------------
// The group

export class LightningOpsRpcs extends RpcGroup.make(
  Rpc.make("listPaywallControlPlaneState", { payload: ListPaywallsPayload, success: SnapshotResponse, error: ControlPlaneUnavailable }),
  Rpc.make("getControlPlaneSecurityState", { success: SecurityStateResponse, error: ControlPlaneUnavailable }),
  Rpc.make("recordGatewayCompileIntent", { payload: RecordCompileIntentPayload, success: DeploymentWriteResponse, error: WriteError }),
  Rpc.make("recordGatewayDeploymentEvent", { payload: RecordGatewayEventPayload, success: GatewayEventWriteResponse, error: WriteError }),
  Rpc.make("ingestInvoiceLifecycle", { payload: InvoiceLifecyclePayload, success: InvoiceWriteResponse, error: WriteError }),
  Rpc.make("ingestSettlement", { payload: SettlementPayload, success: SettlementWriteResponse, error: WriteError }),
  Rpc.make("setGlobalPause", { payload: SetGlobalPausePayload, success: GlobalWriteResponse, error: WriteError }),
  Rpc.make("setOwnerKillSwitch", { payload: SetOwnerKillSwitchPayload, success: OwnerControlWriteResponse, error: WriteError }),
  Rpc.make("rotateCredentialRole", { payload: CredentialRolePayload, success: CredentialRoleWriteResponse, error: WriteError }),
  Rpc.make("activateCredentialRole", { payload: CredentialRolePayload, success: CredentialRoleWriteResponse, error: WriteError }),
  Rpc.make("revokeCredentialRole", { payload: CredentialRolePayload, success: CredentialRoleWriteResponse, error: WriteError })
).middleware(OpsAuthentication) {}

export type OperationTag = "listPaywallControlPlaneState" | "getControlPlaneSecurityState" | "recordGatewayCompileIntent" | "recordGatewayDeploymentEvent" | "ingestInvoiceLifecycle" | "ingestSettlement" | "setGlobalPause" | "setOwnerKillSwitch" | "rotateCredentialRole" | "activateCredentialRole" | "revokeCredentialRole"

/** The upstream JSON route's function names, by route kind, and the operation each one runs. */
export const FUNCTION_NAMES: {
  readonly query: Readonly<Record<string, OperationTag>>
  readonly mutation: Readonly<Record<string, OperationTag>>
} = {
  query: {
    "lightning/ops:listPaywallControlPlaneState": "listPaywallControlPlaneState",
    "lightning/security:getControlPlaneSecurityState": "getControlPlaneSecurityState"
  },
  mutation: {
    "lightning/ops:recordGatewayCompileIntent": "recordGatewayCompileIntent",
    "lightning/ops:recordGatewayDeploymentEvent": "recordGatewayDeploymentEvent",
    "lightning/settlements:ingestInvoiceLifecycle": "ingestInvoiceLifecycle",
    "lightning/settlements:ingestSettlement": "ingestSettlement",
    "lightning/security:setGlobalPause": "setGlobalPause",
    "lightning/security:setOwnerKillSwitch": "setOwnerKillSwitch",
    "lightning/security:rotateCredentialRole": "rotateCredentialRole",
    "lightning/security:activateCredentialRole": "activateCredentialRole",
    "lightning/security:revokeCredentialRole": "revokeCredentialRole"
  }
}

/**
 * The client protocol: HTTP to `baseUrl + RPC_PATH`, ndjson, with the operations secret.
 * Needs an `HttpClient` (FetchHttpClient.layer or NodeHttpClient).
 *
 *   const client = yield* RpcClient.make(LightningOpsRpcs)
 *   yield* client.ingestSettlement({ ... })
 *   // provided with LightningOpsRpc.layerClient({ baseUrl, secret }) + FetchHttpClient.layer
 */
export const layerClient = (options: { readonly baseUrl: string; readonly secret: Redacted.Redacted<string> }) =>
  Layer.merge(
    RpcClient.layerProtocolHttp({ url: `${options.baseUrl.replace(/\/+$/, "")}${RPC_PATH}` }).pipe(Layer.provide(RpcSerialization.layerNdjson)),
    layerClientAuthentication(options.secret)
  )
