// The lightning-ops contract on its own: the entry point loads without control's server code,
// every operation is reachable through the upstream JSON function names, and inputs accept the
// upstream JSON (nulls for absent optional fields).
import * as LightningOpsRpc from "@openagents/control-core/lightning-ops-rpc"
import * as Schema from "effect/Schema"
import { describe, expect, it } from "vitest"

describe("LightningOpsRpc contract", () => {
  it("maps every operation of the group to exactly one upstream function name", () => {
    const tags = [...LightningOpsRpc.LightningOpsRpcs.requests.keys()].sort()
    const mapped = [...Object.values(LightningOpsRpc.FUNCTION_NAMES.query), ...Object.values(LightningOpsRpc.FUNCTION_NAMES.mutation)].sort()
    expect(mapped).toEqual(tags)
    expect(tags).toHaveLength(11)
  })

  it("requires the operations secret middleware on every operation", () => {
    for (const rpc of LightningOpsRpc.LightningOpsRpcs.requests.values()) {
      expect([...rpc.middlewares]).toContain(LightningOpsRpc.OpsAuthentication)
    }
  })

  it("decodes upstream JSON with nulls for absent optionals", () => {
    const decoded = Schema.decodeUnknownSync(LightningOpsRpc.InvoiceLifecyclePayload)({
      invoiceId: "inv_1",
      paywallId: "pw_1",
      ownerId: "owner_1",
      amountMsats: 70000,
      status: "open",
      paymentHash: null,
      paymentRequest: "lnbcrt1...",
      requestId: null
    })
    expect(decoded).toEqual({ invoiceId: "inv_1", paywallId: "pw_1", ownerId: "owner_1", amountMsats: 70000, status: "open", paymentRequest: "lnbcrt1..." })
    expect(() => Schema.decodeUnknownSync(LightningOpsRpc.InvoiceLifecyclePayload)({ ...decoded, status: "paid" })).toThrow()
    expect(() => Schema.decodeUnknownSync(LightningOpsRpc.InvoiceLifecyclePayload)({ ...decoded, amountMsats: 1.5 })).toThrow()
  })
})
