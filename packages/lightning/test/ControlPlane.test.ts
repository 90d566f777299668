// The control-plane port: the in-memory rules (monotonic invoices, idempotent settlements) and the
// HTTP adapter against the upstream JSON wire, served over real HTTP.
import { describe, expect, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { type ControlPlane, HttpControlPlane, MemoryControlPlane } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { serve } from "./support.js"

const SECRET = Redacted.make("ops-secret-0123456789abcdef")
const paywall: ControlPlane.Paywall = {
  paywallId: "pw_1",
  ownerId: "owner_1",
  name: "p",
  status: "active",
  createdAtMs: 1,
  updatedAtMs: 2,
  policy: { paywallId: "pw_1", ownerId: "owner_1", pricingMode: "fixed", fixedAmountMsats: 1000, killSwitch: false },
  routes: [{ routeId: "route_pw_1", hostPattern: "a.test", pathPattern: "/x", upstreamUrl: "http://u", protocol: "http" }]
}

describe("control plane over the upstream HTTP wire", () => {
  it.scopedLive("queries and mutations round-trip through the HTTP adapter with the upstream write rules", () =>
    Effect.gen(function*() {
      const memory = MemoryControlPlane.make({ paywalls: [paywall, { ...paywall, paywallId: "pw_2", status: "archived" }] })
      const url = yield* serve(HttpControlPlane.router(memory, SECRET))
      const cp = yield* HttpControlPlane.make({ baseUrl: url, secret: SECRET })
      expect((yield* cp.listPaywallsForCompile()).map((p) => p.paywallId)).toEqual(["pw_1"])
      expect((yield* cp.getSecurityState).global.globalPause).toBe(false)
      yield* cp.recordDeploymentIntent({ deploymentId: "dep_1", configHash: "cfg_x", status: "pending" })
      yield* cp.recordDeploymentIntent({ deploymentId: "dep_1", configHash: "cfg_x", status: "applied", appliedAtMs: 5 })
      expect(memory.intents()).toEqual([expect.objectContaining({ deploymentId: "dep_1", status: "applied", appliedAtMs: 5 })])
      const event = yield* cp.recordGatewayEvent({ paywallId: "pw_1", ownerId: "owner_1", eventType: "gateway_reconcile_health_ok", level: "info", deploymentId: "dep_1", configHash: "cfg_x", executionPath: "hosted-node" })
      expect(event.eventId).toMatch(/^evt_[0-9a-f]{32}$/)
      expect(memory.events()[0]).toMatchObject({ deploymentId: "dep_1", configHash: "cfg_x", executionPath: "hosted-node" })

      const invoice = { invoiceId: "inv_1", paywallId: "pw_1", ownerId: "owner_1", amountMsats: 1000 }
      expect((yield* cp.ingestInvoiceLifecycle({ ...invoice, status: "open", paymentHash: "aa" })).changed).toBe(true)
      expect((yield* cp.ingestInvoiceLifecycle({ ...invoice, status: "settled", paymentHash: "bb", settledAtMs: 10 })).changed).toBe(true)
      expect((yield* cp.ingestInvoiceLifecycle({ ...invoice, status: "expired" })).changed).toBe(false)
      expect(memory.invoices()[0]).toMatchObject({ status: "settled", paymentHash: "aa", settledAtMs: 10 })

      const settlement = { settlementId: "set_1", paywallId: "pw_1", ownerId: "owner_1", invoiceId: "inv_2", amountMsats: 1000, paymentProofType: "lightning_preimage" as const, paymentProofValue: "AB".repeat(32) }
      expect(yield* cp.ingestSettlement(settlement)).toEqual({ existed: false, paymentProofRef: `lightning_preimage:${"ab".repeat(12)}` })
      expect((yield* cp.ingestSettlement(settlement)).existed).toBe(true)
      expect(memory.invoices().find((i) => i.invoiceId === "inv_2")?.status).toBe("settled")
      const invalid = yield* Effect.flip(cp.ingestSettlement({ ...settlement, settlementId: "set_2", paymentProofValue: "xyz" }))
      expect([invalid.code, invalid.message]).toEqual(["invalid_arguments", "invalid_preimage"])
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("refuses a wrong secret (401), an unconfigured one (500) and unknown functions (404)", () =>
    Effect.gen(function*() {
      const memory = MemoryControlPlane.make()
      const url = yield* serve(HttpControlPlane.router(memory, SECRET))
      const wrong = yield* HttpControlPlane.make({ baseUrl: url, secret: Redacted.make("nope") })
      expect((yield* Effect.flip(wrong.getSecurityState)).code).toBe("invalid_ops_secret")
      const unconfigured = yield* HttpControlPlane.make({ baseUrl: yield* serve(HttpControlPlane.router(memory, undefined)), secret: SECRET })
      expect((yield* Effect.flip(unconfigured.getSecurityState)).code).toBe("ops_secret_unconfigured")
      const http = yield* HttpClient.HttpClient
      const res = yield* http.execute(HttpClientRequest.post(`${url}${HttpControlPlane.QUERY_PATH}`).pipe(
        HttpClientRequest.bodyUnsafeJson({ functionName: "lightning/ops:dropTables", args: { secret: Redacted.value(SECRET) } })
      ))
      expect(res.status).toBe(404)
      expect(((yield* res.json) as any).error.code).toBe("unsupported_function")
      const down = yield* HttpControlPlane.make({ baseUrl: "http://127.0.0.1:1", secret: SECRET })
      expect((yield* Effect.flip(down.getSecurityState)).code).toBe("control_plane_unavailable")
    }).pipe(Effect.provide(NodeHttpClient.layer)))
})

describe("proto conversions", () => {
  it("reads a proto paywall as compiler input and writes diagnostics as proto", async () => {
    const { create, toJson } = await import("@bufbuild/protobuf")
    const v1 = await import("@openagents/proto/lightning/v1")
    const { Compiler, ControlPlaneProto } = await import("@openagents/lightning")
    const proto = create(v1.ControlPlanePaywallSchema, {
      paywallId: "pw_1",
      ownerId: "owner_1",
      name: "p",
      status: v1.PaywallStatus.ACTIVE,
      policy: { paywallId: "pw_1", ownerId: "owner_1", pricingMode: v1.PricingMode.FIXED, fixedAmountMsats: 21_000n },
      routes: [{ routeId: "r1", hostPattern: "a.test", pathPattern: "/x", upstreamUrl: "http://u.test", protocol: v1.RouteProtocol.HTTP, timeoutMs: 6000 }]
    })
    const paywall = ControlPlaneProto.paywallFromProto(proto)
    expect(paywall).toMatchObject({ status: "active", policy: { pricingMode: "fixed", fixedAmountMsats: 21_000 }, routes: [{ protocol: "http", timeoutMs: 6000 }] })
    expect(Compiler.compile([paywall]).excluded).toEqual([])
    const failed = Compiler.compile([{ ...paywall, policy: { ...paywall.policy, fixedAmountMsats: 1 } }])
    const diagnostics = failed.diagnostics.map(ControlPlaneProto.diagnosticToProto)
    expect(diagnostics.map((d) => toJson(v1.CompileDiagnosticSchema, d))).toEqual([
      { code: "COMPILE_DIAGNOSTIC_CODE_PRICE_NOT_WHOLE_SATS", severity: "COMPILE_DIAGNOSTIC_SEVERITY_ERROR", message: "1 msat is not a whole number of satoshis", paywallId: "pw_1" },
      { code: "COMPILE_DIAGNOSTIC_CODE_NO_COMPILABLE_ROUTES", severity: "COMPILE_DIAGNOSTIC_SEVERITY_WARN", message: "no active paywall has a compilable route: the gateway sells nothing" }
    ])
    expect(() => ControlPlaneProto.paywallFromProto({ ...proto, policy: { ...proto.policy!, fixedAmountMsats: 2n ** 60n } })).toThrow(/beyond 2\^53/)
  })
})
