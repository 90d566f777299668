// The control plane in memory, with the upstream's write rules (UPSTREAM_SPEC §3.4): intents
// upserted by deploymentId, events stamped "evt_" + random hex, invoice status only moving up the
// rank open < canceled|expired < settled with set payment fields never overwritten and
// settledAtMs set once, settlements idempotent by settlementId (advancing their invoice first).
// For tests and development; production lightning-ops talks to control over HTTP or RPC.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type {
  ControlPlaneService,
  CredentialRoleState,
  DeploymentIntent,
  GatewayEvent,
  InvoiceLifecycle,
  InvoiceStatus,
  Paywall,
  SecurityState,
  Settlement
} from "../ControlPlane.js"
import { ControlPlane, ControlPlaneError, paymentProofRef } from "../ControlPlane.js"

export interface MemoryControlPlane extends ControlPlaneService {
  readonly setPaywalls: (paywalls: ReadonlyArray<Paywall>) => void
  readonly setGlobalPause: (active: boolean, reason?: string) => void
  readonly setOwnerKillSwitch: (ownerId: string, active: boolean) => void
  readonly setCredentialRole: (state: CredentialRoleState) => void
  /** Make the next calls of a function fail (tests of fail-closed behaviour). */
  readonly failNext: (functionName: string, times?: number) => void
  readonly intents: () => ReadonlyArray<DeploymentIntent>
  /** Every version of every intent, in write order. */
  readonly intentHistory: () => ReadonlyArray<DeploymentIntent>
  readonly events: () => ReadonlyArray<GatewayEvent & { readonly eventId: string }>
  readonly invoices: () => ReadonlyArray<InvoiceLifecycle>
  readonly settlements: () => ReadonlyArray<Settlement & { readonly paymentProofRef: string }>
}

const RANK: Record<InvoiceStatus, number> = { open: 0, canceled: 1, expired: 1, settled: 2 }

export const make = (initial: { readonly paywalls?: ReadonlyArray<Paywall>; readonly security?: SecurityState } = {}): MemoryControlPlane => {
  let paywalls: ReadonlyArray<Paywall> = initial.paywalls ?? []
  let security: SecurityState = initial.security ?? { global: { globalPause: false }, ownerControls: [], credentialRoles: [] }
  const intents = new Map<string, DeploymentIntent>()
  const history: Array<DeploymentIntent> = []
  const events: Array<GatewayEvent & { eventId: string }> = []
  const invoices = new Map<string, InvoiceLifecycle>()
  const settlements = new Map<string, Settlement & { paymentProofRef: string }>()
  const failures = new Map<string, number>()

  const guard = <A>(functionName: string, f: () => A) =>
    Effect.suspend(() => {
      const n = failures.get(functionName) ?? 0
      if (n > 0) {
        failures.set(functionName, n - 1)
        return Effect.fail(new ControlPlaneError({ code: "control_plane_unavailable", message: `${functionName} failed (scripted)`, functionName }))
      }
      try {
        return Effect.succeed(f())
      } catch (e) {
        return Effect.fail(new ControlPlaneError({ code: "invalid_arguments", message: e instanceof Error ? e.message : String(e), functionName }))
      }
    })

  const required = (value: unknown, field: string) => {
    if (value === undefined || value === null || value === "") throw new Error(`missing_${field}`)
  }

  const upsertInvoice = (input: InvoiceLifecycle) => {
    required(input.invoiceId, "invoice_id")
    const existing = invoices.get(input.invoiceId)
    if (existing === undefined) {
      const stored = { ...input, settledAtMs: input.status === "settled" ? input.settledAtMs ?? Date.now() : undefined }
      invoices.set(input.invoiceId, stored)
      return { changed: true, invoice: stored }
    }
    if (RANK[input.status] <= RANK[existing.status]) return { changed: false, invoice: existing }
    const merged: InvoiceLifecycle = {
      ...existing,
      status: input.status,
      paymentHash: existing.paymentHash ?? input.paymentHash,
      paymentRequest: existing.paymentRequest ?? input.paymentRequest,
      paymentProofRef: existing.paymentProofRef ?? input.paymentProofRef,
      requestId: existing.requestId ?? input.requestId,
      settledAtMs: existing.settledAtMs ?? (input.status === "settled" ? input.settledAtMs ?? Date.now() : undefined)
    }
    invoices.set(input.invoiceId, merged)
    return { changed: true, invoice: merged }
  }

  return {
    setPaywalls: (p) => void (paywalls = p),
    setGlobalPause: (active, reason) =>
      void (security = { ...security, global: { globalPause: active, denyReasonCode: active ? "global_pause_active" : null, denyReason: reason ?? null } }),
    setOwnerKillSwitch: (ownerId, active) =>
      void (security = {
        ...security,
        ownerControls: [...security.ownerControls.filter((o) => o.ownerId !== ownerId), { ownerId, killSwitch: active, denyReasonCode: active ? "owner_kill_switch_active" : null }]
      }),
    setCredentialRole: (role) => void (security = { ...security, credentialRoles: [...security.credentialRoles.filter((r) => r.role !== role.role), role] }),
    failNext: (functionName, times = 1) => void failures.set(functionName, times),
    intents: () => [...intents.values()],
    intentHistory: () => [...history],
    events: () => [...events],
    invoices: () => [...invoices.values()],
    settlements: () => [...settlements.values()],

    listPaywallsForCompile: (statuses = ["active", "paused"]) =>
      guard("lightning/ops:listPaywallControlPlaneState", () => paywalls.filter((p) => statuses.includes(p.status))),
    getSecurityState: guard("lightning/security:getControlPlaneSecurityState", () => security),
    recordDeploymentIntent: (intent) =>
      guard("lightning/ops:recordGatewayCompileIntent", () => {
        required(intent.configHash, "config_hash")
        required(intent.status, "status")
        const stored = { ...intents.get(intent.deploymentId), ...intent }
        intents.set(intent.deploymentId, stored)
        history.push(stored)
        return stored
      }),
    recordGatewayEvent: (event) =>
      guard("lightning/ops:recordGatewayDeploymentEvent", () => {
        for (const field of ["paywallId", "ownerId", "eventType", "level"] as const) required(event[field], field)
        const stored = { ...event, eventId: `evt_${crypto.randomUUID().replace(/-/g, "")}` }
        events.push(stored)
        return stored
      }),
    ingestInvoiceLifecycle: (invoice) => guard("lightning/settlements:ingestInvoiceLifecycle", () => upsertInvoice(invoice)),
    ingestSettlement: (settlement) =>
      guard("lightning/settlements:ingestSettlement", () => {
        required(settlement.settlementId, "settlement_id")
        if (settlement.paymentProofType !== "lightning_preimage") throw new Error("invalid_payment_proof_type")
        if (!/^[0-9a-fA-F]{64}$/.test(settlement.paymentProofValue)) throw new Error("invalid_preimage")
        const existing = settlements.get(settlement.settlementId)
        if (existing !== undefined) return { existed: true, paymentProofRef: existing.paymentProofRef }
        const ref = paymentProofRef(settlement.paymentProofValue)
        if (settlement.invoiceId !== undefined) {
          upsertInvoice({
            invoiceId: settlement.invoiceId,
            paywallId: settlement.paywallId,
            ownerId: settlement.ownerId,
            amountMsats: settlement.amountMsats,
            status: "settled",
            paymentProofRef: ref
          })
        }
        settlements.set(settlement.settlementId, { ...settlement, paymentProofValue: settlement.paymentProofValue.toLowerCase(), paymentProofRef: ref })
        return { existed: false, paymentProofRef: ref }
      })
  }
}

export const layer = (controlPlane: MemoryControlPlane = make()) => Layer.succeed(ControlPlane, controlPlane)
