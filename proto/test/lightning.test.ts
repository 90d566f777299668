import * as Contract from "../src/lightning/contract.js"
import { create, equals, fromBinary, fromJson, fromJsonString, toBinary, toJson, toJsonString } from "@bufbuild/protobuf"
import { StructSchema } from "@bufbuild/protobuf/wkt"
import {
  CompileDiagnosticCode,
  CompileDiagnosticSeverity,
  ControlPlaneSecurityStateResponseSchema,
  ControlPlaneSnapshotResponseSchema,
  CredentialRole,
  CredentialRoleStatus,
  DeploymentIntentStatus,
  DeploymentIntentWriteResponseSchema,
  GatewayEventLevel,
  GatewayEventRecordSchema,
  GatewayEventWriteResponseSchema,
  InvoiceLifecycleStatus,
  L402CacheStatus,
  L402FetchResultSchema,
  PayBolt11RequestSchema,
  PayBolt11ResponseSchema,
  PaymentProofType,
  PaywallStatus,
  PricingMode,
  ReconcileFailureCode,
  RouteProtocol,
  SecurityDenyReasonCode,
  SettlementIngestRequestSchema,
  SettlementWriteResponseSchema,
  BitcoinNetwork,
  WalletErrorCode,
  WalletExecutorLifecycle,
  WalletExecutorMode,
  WalletExecutorStatusResponseSchema
} from "@openagents/proto/lightning/v1"
import { describe, expect, it } from "vitest"

const MAX_U64 = 18446744073709551615n
const BEYOND_2_53 = 9007199254740993n // 2^53 + 1: not representable as a JS number
const T0 = 1771544821250n

const snapshot = create(ControlPlaneSnapshotResponseSchema, {
  ok: true,
  paywalls: [
    {
      paywallId: "pw_1",
      ownerId: "owner_42",
      name: "Premium signal",
      description: "EP212 demo",
      status: PaywallStatus.ACTIVE,
      requestId: "req_1",
      metadata: { timeoutMs: 6000, tags: ["demo"] },
      createdAtMs: T0,
      updatedAtMs: T0 + 1n,
      policy: {
        paywallId: "pw_1",
        ownerId: "owner_42",
        pricingMode: PricingMode.FIXED,
        fixedAmountMsats: MAX_U64,
        maxPerRequestMsats: BEYOND_2_53,
        allowedHosts: ["l402.openagents.com"],
        blockedHosts: ["evil.example"],
        quotaPerMinute: 60,
        quotaPerDay: 1000,
        killSwitch: false,
        createdAtMs: T0,
        updatedAtMs: T0
      },
      routes: [
        {
          routeId: "route_pw_1",
          paywallId: "pw_1",
          ownerId: "owner_42",
          hostPattern: "l402.openagents.com",
          pathPattern: "/ep212/premium-signal",
          upstreamUrl: "https://upstream.internal/premium",
          protocol: RouteProtocol.HTTPS,
          timeoutMs: 6000,
          priority: 10,
          createdAtMs: T0,
          updatedAtMs: T0
        }
      ],
      lastReconcileStatus: "applied",
      lastReconciledAtMs: T0 + 5n
    }
  ]
})

describe("openagents.lightning.v1 paywall control plane", () => {
  it("round-trips a paywall snapshot through binary, keeping uint64 msats beyond 2^53", () => {
    const back = fromBinary(ControlPlaneSnapshotResponseSchema, toBinary(ControlPlaneSnapshotResponseSchema, snapshot))
    expect(equals(ControlPlaneSnapshotResponseSchema, snapshot, back)).toBe(true)
    const policy = back.paywalls[0]!.policy!
    expect(policy.fixedAmountMsats).toBe(MAX_U64)
    expect(policy.maxPerRequestMsats).toBe(BEYOND_2_53)
    expect(policy.quotaPerMinute).toBe(60)
    expect(back.paywalls[0]!.routes[0]!.protocol).toBe(RouteProtocol.HTTPS)
    expect(back.paywalls[0]!.metadata).toEqual({ timeoutMs: 6000, tags: ["demo"] })
  })

  it("uses the control-plane JSON names, with uint64 msats and int64 times as decimal strings", () => {
    const json = toJson(ControlPlaneSnapshotResponseSchema, snapshot)
    const paywall = json.paywalls![0]!
    expect(paywall.policy!.fixedAmountMsats).toBe("18446744073709551615")
    expect(paywall.policy!.maxPerRequestMsats).toBe("9007199254740993")
    expect(paywall.policy!.pricingMode).toBe("PRICING_MODE_FIXED")
    expect(paywall.createdAtMs).toBe("1771544821250")
    expect(paywall.routes![0]!.upstreamUrl).toBe("https://upstream.internal/premium")
    expect(paywall.routes![0]!.hostPattern).toBe("l402.openagents.com")
    expect(Object.keys(paywall.policy!)).toContain("fixedAmountMsats")
    expect(toJsonString(ControlPlaneSnapshotResponseSchema, snapshot)).toContain(`"fixedAmountMsats":"18446744073709551615"`)
    expect(equals(ControlPlaneSnapshotResponseSchema, snapshot, fromJson(ControlPlaneSnapshotResponseSchema, json))).toBe(true)
  })

  it("reads the upstream listPaywallControlPlaneState body, where amounts are JSON numbers", () => {
    const parsed = fromJson(ControlPlaneSnapshotResponseSchema, {
      ok: true,
      paywalls: [
        {
          paywallId: "pw_2",
          ownerId: "owner_7",
          name: "Signal",
          status: "PAYWALL_STATUS_PAUSED",
          createdAtMs: 1771544821250,
          updatedAtMs: 1771544821250,
          policy: { paywallId: "pw_2", ownerId: "owner_7", pricingMode: "PRICING_MODE_FIXED", fixedAmountMsats: 70000, killSwitch: false },
          routes: [{ routeId: "route_pw_2", hostPattern: "*", pathPattern: "/*", upstreamUrl: "http://up", protocol: "ROUTE_PROTOCOL_HTTP", timeoutMs: 6000, priority: 10 }]
        }
      ]
    })
    expect(parsed.paywalls[0]!.status).toBe(PaywallStatus.PAUSED)
    expect(parsed.paywalls[0]!.policy!.fixedAmountMsats).toBe(70000n)
    expect(parsed.paywalls[0]!.policy!.maxPerRequestMsats).toBeUndefined()
    expect(parsed.paywalls[0]!.createdAtMs).toBe(T0)
  })

  it("round-trips a rolled-back deployment intent with its diagnostics and failure code", () => {
    const written = create(DeploymentIntentWriteResponseSchema, {
      ok: true,
      deployment: {
        deploymentId: "dep_reconcile_req_9",
        paywallId: "pw_1",
        ownerId: "owner_42",
        configHash: "cfg_" + "e".repeat(64),
        imageDigest: "sha256:" + "f".repeat(64),
        status: DeploymentIntentStatus.ROLLED_BACK,
        diagnostics: [
          {
            code: CompileDiagnosticCode.FIRST_MATCH_SHADOWED,
            severity: CompileDiagnosticSeverity.ERROR,
            message: "route is shadowed",
            paywallId: "pw_1",
            routeId: "route_b",
            relatedRouteId: "route_a",
            details: { priority: 10 }
          }
        ],
        appliedAtMs: T0,
        rolledBackFrom: "dep_reconcile_req_8",
        createdAtMs: T0,
        updatedAtMs: T0 + 9n,
        requestId: "req_9",
        failureCode: ReconcileFailureCode.PROXY_CHECK_FAILED,
        metadata: { executionPath: "hosted-node", progress: { healthOk: true, challengeOk: true, proxyOk: false } }
      }
    })
    const back = fromBinary(DeploymentIntentWriteResponseSchema, toBinary(DeploymentIntentWriteResponseSchema, written))
    expect(equals(DeploymentIntentWriteResponseSchema, written, back)).toBe(true)
    expect(back.deployment!.diagnostics[0]!.relatedRouteId).toBe("route_a")
    const json = toJson(DeploymentIntentWriteResponseSchema, written)
    expect(json.deployment!.status).toBe("DEPLOYMENT_INTENT_STATUS_ROLLED_BACK")
    expect(json.deployment!.failureCode).toBe("RECONCILE_FAILURE_CODE_PROXY_CHECK_FAILED")
    expect(json.deployment!.diagnostics![0]!.code).toBe("COMPILE_DIAGNOSTIC_CODE_FIRST_MATCH_SHADOWED")
    expect(json.deployment!.metadata).toEqual({ executionPath: "hosted-node", progress: { healthOk: true, challengeOk: true, proxyOk: false } })
    expect(equals(DeploymentIntentWriteResponseSchema, written, fromJson(DeploymentIntentWriteResponseSchema, json))).toBe(true)
  })

  it("keeps the deployment correlation on gateway events", () => {
    const written = create(GatewayEventWriteResponseSchema, {
      ok: true,
      event: {
        eventId: "evt_0190a1b2c3d4",
        paywallId: "pw_1",
        ownerId: "owner_42",
        eventType: "gateway_reconcile_health_ok",
        level: GatewayEventLevel.INFO,
        requestId: "req_9",
        metadata: { status: 200 },
        createdAtMs: T0,
        deploymentId: "dep_reconcile_req_9",
        configHash: "cfg_abc",
        executionPath: "hosted-node"
      }
    })
    const back = fromBinary(GatewayEventWriteResponseSchema, toBinary(GatewayEventWriteResponseSchema, written))
    expect(equals(GatewayEventWriteResponseSchema, written, back)).toBe(true)
    expect(back.event!.deploymentId).toBe("dep_reconcile_req_9")
    const json = toJson(GatewayEventWriteResponseSchema, written)
    expect(json.event).toMatchObject({ deploymentId: "dep_reconcile_req_9", configHash: "cfg_abc", executionPath: "hosted-node", level: "GATEWAY_EVENT_LEVEL_INFO" })
    expect(equals(GatewayEventWriteResponseSchema, written, fromJson(GatewayEventWriteResponseSchema, json))).toBe(true)
    // Free-form metadata is a google.protobuf.Struct on the wire (a plain JSON object in TS).
    expect(GatewayEventRecordSchema.field.metadata!.message?.typeName).toBe(StructSchema.typeName)
  })

  it("enumerates every compile diagnostic and reconcile failure code of the upstream compiler", () => {
    const diagnostics = [
      "invalid_pricing_mode",
      "missing_pricing",
      "invalid_route_pattern",
      "missing_route_protocol",
      "invalid_upstream_url",
      "no_compilable_routes",
      "duplicate_route",
      "ambiguous_route",
      "first_match_shadowed"
    ]
    for (const code of diagnostics) expect(CompileDiagnosticCode[code.toUpperCase() as keyof typeof CompileDiagnosticCode]).toBeGreaterThan(0)
    const failures = [
      "compile_validation_failed",
      "active_lookup_failed",
      "deploy_apply_failed",
      "health_check_failed",
      "challenge_check_failed",
      "proxy_check_failed",
      "rollback_failed"
    ]
    for (const code of failures) expect(ReconcileFailureCode[code.toUpperCase() as keyof typeof ReconcileFailureCode]).toBeGreaterThan(0)
  })
})

describe("openagents.lightning.v1 invoices, settlements and security", () => {
  it("round-trips a settlement write with its settled invoice", () => {
    const written = create(SettlementWriteResponseSchema, {
      ok: true,
      existed: false,
      settlement: {
        settlementId: "set_1",
        paywallId: "pw_1",
        ownerId: "owner_42",
        invoiceId: "inv_1",
        amountMsats: MAX_U64,
        paymentProofRef: "lightning_preimage:" + "ab".repeat(12),
        requestId: "req_1",
        metadata: { taskId: "task_1" },
        createdAtMs: T0
      },
      invoice: {
        invoiceId: "inv_1",
        paywallId: "pw_1",
        ownerId: "owner_42",
        amountMsats: MAX_U64,
        status: InvoiceLifecycleStatus.SETTLED,
        paymentHash: "cd".repeat(32),
        paymentRequest: "lnbc1...",
        paymentProofRef: "lightning_preimage:" + "ab".repeat(12),
        requestId: "req_1",
        createdAtMs: T0,
        updatedAtMs: T0 + 1n,
        settledAtMs: T0 + 1n
      }
    })
    const back = fromBinary(SettlementWriteResponseSchema, toBinary(SettlementWriteResponseSchema, written))
    expect(equals(SettlementWriteResponseSchema, written, back)).toBe(true)
    expect(back.invoice!.settledAtMs).toBe(T0 + 1n)
    const json = toJson(SettlementWriteResponseSchema, written)
    expect(json.settlement!.amountMsats).toBe("18446744073709551615")
    expect(json.invoice!.status).toBe("INVOICE_LIFECYCLE_STATUS_SETTLED")
    expect(equals(SettlementWriteResponseSchema, written, fromJson(SettlementWriteResponseSchema, json))).toBe(true)

    const ingest = create(SettlementIngestRequestSchema, {
      settlementId: "set_1",
      paywallId: "pw_1",
      ownerId: "owner_42",
      amountMsats: 70000n,
      paymentProofType: PaymentProofType.LIGHTNING_PREIMAGE,
      paymentProofValue: "ab".repeat(32),
      occurredAtMs: T0
    })
    expect(toJson(SettlementIngestRequestSchema, ingest).paymentProofType).toBe("PAYMENT_PROOF_TYPE_LIGHTNING_PREIMAGE")
    expect(equals(SettlementIngestRequestSchema, ingest, fromBinary(SettlementIngestRequestSchema, toBinary(SettlementIngestRequestSchema, ingest)))).toBe(true)
  })

  it("round-trips the security state", () => {
    const state = create(ControlPlaneSecurityStateResponseSchema, {
      ok: true,
      global: {
        stateId: "global",
        globalPause: true,
        denyReasonCode: SecurityDenyReasonCode.GLOBAL_PAUSE_ACTIVE,
        denyReason: "incident",
        updatedBy: "ops",
        updatedAtMs: T0
      },
      ownerControls: [{ ownerId: "owner_42", killSwitch: true, denyReasonCode: SecurityDenyReasonCode.OWNER_KILL_SWITCH_ACTIVE, updatedAtMs: T0 }],
      credentialRoles: [
        { role: CredentialRole.OPERATOR_ADMIN, status: CredentialRoleStatus.ROTATING, version: 3, fingerprint: "fp_1", note: "rotation", updatedAtMs: T0, lastRotatedAtMs: T0 },
        { role: CredentialRole.SETTLEMENT_READ, status: CredentialRoleStatus.REVOKED, version: 1, updatedAtMs: T0, revokedAtMs: T0 }
      ]
    })
    const back = fromBinary(ControlPlaneSecurityStateResponseSchema, toBinary(ControlPlaneSecurityStateResponseSchema, state))
    expect(equals(ControlPlaneSecurityStateResponseSchema, state, back)).toBe(true)
    expect(back.credentialRoles[1]!.fingerprint).toBeUndefined()
    const json = toJson(ControlPlaneSecurityStateResponseSchema, state)
    expect(json.global!.denyReasonCode).toBe("SECURITY_DENY_REASON_CODE_GLOBAL_PAUSE_ACTIVE")
    expect(json.credentialRoles![0]!.role).toBe("CREDENTIAL_ROLE_OPERATOR_ADMIN")
    expect(json.credentialRoles![0]!.status).toBe("CREDENTIAL_ROLE_STATUS_ROTATING")
    expect(equals(ControlPlaneSecurityStateResponseSchema, state, fromJsonString(ControlPlaneSecurityStateResponseSchema, toJsonString(ControlPlaneSecurityStateResponseSchema, state)))).toBe(true)
  })
})

describe("openagents.lightning.v1 wallet executor and L402 buyer", () => {
  it("reads the upstream pay-bolt11 body and keeps the fee limit separate from the max amount", () => {
    const request = fromJson(PayBolt11RequestSchema, {
      requestId: "pay_1",
      payment: { invoice: "lnbc700n1...", maxAmountMsats: 100000, host: "l402.openagents.com", maxFeeMsats: "2000" }
    })
    expect(request.requestId).toBe("pay_1")
    expect(request.payment!.maxAmountMsats).toBe(100000n)
    expect(request.payment!.maxFeeMsats).toBe(2000n)
    const huge = create(PayBolt11RequestSchema, { requestId: "pay_2", payment: { invoice: "lnbc...", maxAmountMsats: MAX_U64, host: "h" } })
    const back = fromBinary(PayBolt11RequestSchema, toBinary(PayBolt11RequestSchema, huge))
    expect(equals(PayBolt11RequestSchema, huge, back)).toBe(true)
    expect(back.payment!.maxAmountMsats).toBe(MAX_U64)
    expect(back.payment!.maxFeeMsats).toBeUndefined()
    expect(toJson(PayBolt11RequestSchema, huge)).toEqual({ requestId: "pay_2", payment: { invoice: "lnbc...", maxAmountMsats: "18446744073709551615", host: "h" } })
  })

  it("round-trips a paid result (marked as an idempotent replay) and a policy error", () => {
    const paid = create(PayBolt11ResponseSchema, {
      ok: true,
      requestId: "pay_1",
      outcome: {
        case: "result",
        value: {
          requestId: "pay_1",
          walletId: "wallet_main",
          payment: { paymentId: "spark_pay_1", amountMsats: MAX_U64, preimageHex: "ab".repeat(32), paidAtMs: T0, feeMsats: 1000n, paymentHash: "cd".repeat(32) },
          quotedAmountMsats: MAX_U64,
          windowSpendMsatsAfterPayment: BEYOND_2_53,
          idempotentReplay: true
        }
      }
    })
    const back = fromBinary(PayBolt11ResponseSchema, toBinary(PayBolt11ResponseSchema, paid))
    expect(equals(PayBolt11ResponseSchema, paid, back)).toBe(true)
    expect(back.outcome.case === "result" && back.outcome.value.idempotentReplay).toBe(true)
    const json = toJson(PayBolt11ResponseSchema, paid)
    expect(json.result!.idempotentReplay).toBe(true)
    expect(json.result!.payment!.amountMsats).toBe("18446744073709551615")
    expect(json.result!.windowSpendMsatsAfterPayment).toBe("9007199254740993")
    expect(json.result!.payment!.feeMsats).toBe("1000")
    expect(json.result!.payment!.paymentHash).toBe("cd".repeat(32))
    expect(equals(PayBolt11ResponseSchema, paid, fromJson(PayBolt11ResponseSchema, json))).toBe(true)

    const denied = create(PayBolt11ResponseSchema, {
      ok: false,
      outcome: {
        case: "error",
        value: {
          requestId: "pay_3",
          code: WalletErrorCode.WINDOW_CAP_EXCEEDED,
          message: "window cap exceeded",
          details: { host: "l402.openagents.com", quotedAmountMsats: 250000n, windowSpendMsats: 900000n, windowCapMsats: 1000000n }
        }
      }
    })
    const deniedJson = toJson(PayBolt11ResponseSchema, denied)
    expect(deniedJson.error!.code).toBe("WALLET_ERROR_CODE_WINDOW_CAP_EXCEEDED")
    expect(deniedJson.error!.details).toEqual({ host: "l402.openagents.com", quotedAmountMsats: "250000", windowSpendMsats: "900000", windowCapMsats: "1000000" })
    expect(equals(PayBolt11ResponseSchema, denied, fromJson(PayBolt11ResponseSchema, deniedJson))).toBe(true)
    expect(equals(PayBolt11ResponseSchema, denied, fromBinary(PayBolt11ResponseSchema, toBinary(PayBolt11ResponseSchema, denied)))).toBe(true)
  })

  it("covers every wallet executor error code", () => {
    const codes = [
      "invalid_request",
      "host_not_allowed",
      "request_cap_exceeded",
      "quoted_amount_exceeds_cap",
      "window_cap_exceeded",
      "payment_pending",
      "api_key_missing",
      "mnemonic_missing",
      "mnemonic_invalid",
      "connect_failed",
      "prepare_failed",
      "send_failed",
      "payment_failed",
      "payment_missing_preimage",
      "unsupported_payment_method",
      "config_error",
      "secret_error",
      "internal_error",
      "idempotency_conflict",
      "duplicate_payment",
      "invoice_malformed",
      "invoice_signature_invalid",
      "invoice_missing_payment_secret",
      "invoice_unknown_required_feature",
      "invoice_network_mismatch",
      "invoice_expired",
      "invoice_amount_missing"
    ]
    for (const code of codes) expect(WalletErrorCode[code.toUpperCase() as keyof typeof WalletErrorCode]).toBeGreaterThan(0)
  })

  it("round-trips the executor status", () => {
    const status = create(WalletExecutorStatusResponseSchema, {
      ok: true,
      requestId: "req_s",
      status: {
        walletId: "wallet_main",
        mode: WalletExecutorMode.LND_REST,
        lifecycle: WalletExecutorLifecycle.CONNECTED,
        network: BitcoinNetwork.MAINNET,
        identityPubkey: "02" + "ab".repeat(32),
        balanceSats: 21000n,
        macaroonConfigured: true,
        ready: true,
        allowedHostCount: 2,
        requestCapMsats: 200000n,
        windowCapMsats: 1000000n,
        windowMs: 300000n,
        recentPaymentsCount: 4,
        lastPaymentId: "spark_pay_1",
        lastPaymentAtMs: T0,
        lastErrorCode: WalletErrorCode.PAYMENT_PENDING,
        lastErrorMessage: "timed out",
        updatedAtMs: T0,
        windowSpendMsats: BEYOND_2_53,
        pendingPaymentsCount: 1
      }
    })
    const back = fromBinary(WalletExecutorStatusResponseSchema, toBinary(WalletExecutorStatusResponseSchema, status))
    expect(equals(WalletExecutorStatusResponseSchema, status, back)).toBe(true)
    const json = toJson(WalletExecutorStatusResponseSchema, status)
    expect(json.status!.lifecycle).toBe("WALLET_EXECUTOR_LIFECYCLE_CONNECTED")
    expect(json.status!.requestCapMsats).toBe("200000")
    expect(json.status!.windowSpendMsats).toBe("9007199254740993")
    expect(json.status!.pendingPaymentsCount).toBe(1)
    expect(equals(WalletExecutorStatusResponseSchema, status, fromJson(WalletExecutorStatusResponseSchema, json))).toBe(true)
  })

  it("round-trips an L402 fetch result", () => {
    const result = create(L402FetchResultSchema, {
      statusCode: 200,
      cacheStatus: L402CacheStatus.MISS,
      fromCache: false,
      paid: true,
      amountMsats: MAX_U64,
      paymentId: "spark_pay_1",
      proofReference: "preimage:" + "ab".repeat(8)
    })
    const back = fromBinary(L402FetchResultSchema, toBinary(L402FetchResultSchema, result))
    expect(equals(L402FetchResultSchema, result, back)).toBe(true)
    expect(back.amountMsats).toBe(MAX_U64)
    expect(toJson(L402FetchResultSchema, result)).toEqual({
      statusCode: 200,
      cacheStatus: "L402_CACHE_STATUS_MISS",
      paid: true,
      amountMsats: "18446744073709551615",
      paymentId: "spark_pay_1",
      proofReference: "preimage:abababababababab"
    })
    const cached = create(L402FetchResultSchema, { statusCode: 200, cacheStatus: L402CacheStatus.HIT, fromCache: true, proofReference: "none" })
    expect(equals(L402FetchResultSchema, cached, fromJson(L402FetchResultSchema, toJson(L402FetchResultSchema, cached)))).toBe(true)
    expect(cached.amountMsats).toBeUndefined()
  })
})

describe("route-pattern grammar (contract.ts: control validates with it, the compiler compiles with it)", () => {
  it("accepts host names, *.suffix, * and ports; refuses regexes and junk", () => {
    for (const host of ["l402.example.com", "127.0.0.1", "L402.Example.COM", "*.example.com", "*", "api.example.com:8443"]) {
      expect(Contract.hostPatternProblem(host), host).toBeUndefined()
    }
    for (const host of ["^l402\\.example\\.com$", "l402\\.example\\.com", ".*", "bad host!", "a.*.com", "", "x".repeat(256)]) {
      expect(Contract.hostPatternProblem(host), host).toBeDefined()
    }
  })

  it("accepts exact, prefix, catch-all and RE2 paths; refuses lookaround, backreferences and broken regexes", () => {
    for (const path of ["/", "/*", "/a/b", "/a/*", "premium", "^/premium$", "/items/[0-9]+", "/x.*"]) {
      expect(Contract.pathPatternProblem(path), path).toBeUndefined()
    }
    for (const path of ["/(?=a)b", "/(?<!a)b", "/(a)\\1", "/[", "/a b", "", "^premium"]) {
      expect(Contract.pathPatternProblem(path), path).toBeDefined()
    }
    expect(Contract.pathKindOf("/a/*")).toBe("prefix")
    expect(Contract.normalisePathPattern("premium")).toBe("/premium")
    const anchored = Contract.normalisePathPattern("^/premium$")
    expect(Contract.pathRegexpOf(anchored, Contract.pathKindOf(anchored))).toBe("^(?:/premium)$")
  })
})
