// The invoice lifecycle as a pure function, shared by every storage adapter (which applies it
// under a row lock), so monotonicity is decided in one place:
//
// - status only moves up the rank open(0) < canceled|expired(1) < settled(2); an update of equal
//   or lower rank changes no status (between canceled and expired, the first one recorded wins);
// - paymentHash, paymentRequest, paymentProofRef and requestId are filled when empty and never
//   overwritten;
// - settledAtMs is set once, on the transition to settled;
// - an invoice id names one invoice: a later update for another paywall, owner or amount is a
//   conflict, never a silent rewrite.
import type { Invoice, InvoiceLifecyclePayload, InvoiceStatus } from "./LightningOpsRpc.js"
import { ControlPlaneConflict } from "./LightningOpsRpc.js"

/**
 * One state of one invoice: the ingest payload, i.e. openagents.lightning.v1.InvoiceLifecycleIngestRequest
 * (the one definition lightning-ops sends; test/ProtoContract.test.ts holds the schema to it).
 */
export type InvoiceInput = InvoiceLifecyclePayload

export const rank = (status: InvoiceStatus): number => (status === "open" ? 0 : status === "settled" ? 2 : 1)

const fillable = ["paymentHash", "paymentRequest", "paymentProofRef", "requestId"] as const

const withOptional = <K extends string>(key: K, value: string | number | undefined) =>
  value === undefined ? {} : ({ [key]: value } as { [P in K]: string | number })

/** The invoice after `input`, and whether it changed; a ControlPlaneConflict for a mismatched identity. */
export const advance = (
  existing: Invoice | undefined,
  input: InvoiceInput,
  nowMs: number
): { readonly changed: boolean; readonly invoice: Invoice } | ControlPlaneConflict => {
  if (existing === undefined) {
    const invoice: Invoice = {
      invoiceId: input.invoiceId,
      paywallId: input.paywallId,
      ownerId: input.ownerId,
      amountMsats: input.amountMsats,
      status: input.status,
      ...withOptional("paymentHash", input.paymentHash),
      ...withOptional("paymentRequest", input.paymentRequest),
      ...withOptional("paymentProofRef", input.paymentProofRef),
      ...withOptional("requestId", input.requestId),
      createdAtMs: nowMs,
      updatedAtMs: nowMs,
      ...(input.status === "settled" ? { settledAtMs: input.settledAtMs ?? nowMs } : {})
    } as Invoice
    return { changed: true, invoice }
  }
  if (existing.paywallId !== input.paywallId || existing.ownerId !== input.ownerId || existing.amountMsats !== input.amountMsats) {
    return new ControlPlaneConflict({
      id: input.invoiceId,
      message: `invoice ${input.invoiceId} is recorded for paywall ${existing.paywallId}, owner ${existing.ownerId}, ${existing.amountMsats} msats`
    })
  }
  const next: Record<string, unknown> = { ...existing }
  let changed = false
  if (rank(input.status) > rank(existing.status)) {
    next["status"] = input.status
    changed = true
    if (input.status === "settled" && existing.settledAtMs === undefined) next["settledAtMs"] = input.settledAtMs ?? nowMs
  }
  for (const field of fillable) {
    if (existing[field] === undefined && input[field] !== undefined) {
      next[field] = input[field]
      changed = true
    }
  }
  if (!changed) return { changed: false, invoice: existing }
  next["updatedAtMs"] = Math.max(nowMs, existing.updatedAtMs)
  return { changed: true, invoice: next as unknown as Invoice }
}
