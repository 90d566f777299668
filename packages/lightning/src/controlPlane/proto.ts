// Explicit conversions between the control-plane domain types (Effect Schema, upstream JSON
// shapes) and the proto contracts of openagents.lightning.v1 — for adapters that speak protobuf or
// @effect/rpc with proto payloads. Amounts are uint64 (bigint) in proto and numbers in the domain:
// a value beyond 2^53 is refused rather than rounded.
import { create } from "@bufbuild/protobuf"
import type { CompileDiagnostic as ProtoDiagnostic, ControlPlanePaywall } from "@openagents/proto/lightning/v1"
import {
  CompileDiagnosticCode,
  CompileDiagnosticSchema,
  CompileDiagnosticSeverity,
  PaywallStatus as ProtoPaywallStatus,
  PricingMode,
  RouteProtocol
} from "@openagents/proto/lightning/v1"
import type { Diagnostic } from "../Compiler.js"
import type { Paywall, PaywallStatus } from "../ControlPlane.js"

const safe = (value: bigint, field: string): number => {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${field} ${value} is beyond 2^53`)
  return Number(value)
}

const statusOf: Record<number, PaywallStatus | undefined> = {
  [ProtoPaywallStatus.ACTIVE]: "active",
  [ProtoPaywallStatus.PAUSED]: "paused",
  [ProtoPaywallStatus.ARCHIVED]: "archived"
}

/** A proto paywall as the compiler's input. Unknown enum values stay visible (and fail to compile). */
export const paywallFromProto = (p: ControlPlanePaywall): Paywall => {
  const status = statusOf[p.status]
  if (status === undefined) throw new RangeError(`paywall ${p.paywallId} has no status`)
  const policy = p.policy
  return {
    paywallId: p.paywallId,
    ownerId: p.ownerId,
    name: p.name,
    status,
    createdAtMs: safe(p.createdAtMs, "createdAtMs"),
    updatedAtMs: safe(p.updatedAtMs, "updatedAtMs"),
    policy: {
      paywallId: policy?.paywallId ?? p.paywallId,
      ownerId: policy?.ownerId ?? p.ownerId,
      pricingMode: policy?.pricingMode === PricingMode.FIXED ? "fixed" : `unknown_${policy?.pricingMode ?? 0}`,
      fixedAmountMsats: safe(policy?.fixedAmountMsats ?? 0n, "fixedAmountMsats"),
      ...(policy?.maxPerRequestMsats !== undefined ? { maxPerRequestMsats: safe(policy.maxPerRequestMsats, "maxPerRequestMsats") } : {}),
      allowedHosts: policy?.allowedHosts ?? [],
      blockedHosts: policy?.blockedHosts ?? [],
      ...(policy?.quotaPerMinute !== undefined ? { quotaPerMinute: policy.quotaPerMinute } : {}),
      ...(policy?.quotaPerDay !== undefined ? { quotaPerDay: policy.quotaPerDay } : {}),
      killSwitch: policy?.killSwitch ?? false
    },
    routes: p.routes.map((r) => ({
      routeId: r.routeId,
      hostPattern: r.hostPattern,
      pathPattern: r.pathPattern,
      upstreamUrl: r.upstreamUrl,
      ...(r.protocol === RouteProtocol.HTTP ? { protocol: "http" } : r.protocol === RouteProtocol.HTTPS ? { protocol: "https" } : {}),
      ...(r.timeoutMs !== 0 ? { timeoutMs: r.timeoutMs } : {}),
      ...(r.priority !== 0 ? { priority: r.priority } : {})
    }))
  }
}

const codeOf: Record<Diagnostic["code"], CompileDiagnosticCode> = {
  invalid_pricing_mode: CompileDiagnosticCode.INVALID_PRICING_MODE,
  missing_pricing: CompileDiagnosticCode.MISSING_PRICING,
  price_not_whole_sats: CompileDiagnosticCode.PRICE_NOT_WHOLE_SATS,
  invalid_route_pattern: CompileDiagnosticCode.INVALID_ROUTE_PATTERN,
  invalid_upstream_url: CompileDiagnosticCode.INVALID_UPSTREAM_URL,
  missing_route_protocol: CompileDiagnosticCode.MISSING_ROUTE_PROTOCOL,
  duplicate_route: CompileDiagnosticCode.DUPLICATE_ROUTE,
  ambiguous_route: CompileDiagnosticCode.AMBIGUOUS_ROUTE,
  first_match_shadowed: CompileDiagnosticCode.FIRST_MATCH_SHADOWED,
  no_compilable_routes: CompileDiagnosticCode.NO_COMPILABLE_ROUTES
}

export const diagnosticToProto = (d: Diagnostic): ProtoDiagnostic =>
  create(CompileDiagnosticSchema, {
    code: codeOf[d.code],
    severity: d.severity === "warn" ? CompileDiagnosticSeverity.WARN : CompileDiagnosticSeverity.ERROR,
    message: d.message,
    ...(d.paywallId !== undefined ? { paywallId: d.paywallId } : {}),
    ...(d.routeId !== undefined ? { routeId: d.routeId } : {}),
    ...(d.relatedRouteId !== undefined ? { relatedRouteId: d.relatedRouteId } : {}),
    ...(d.relatedPaywallId !== undefined ? { relatedPaywallId: d.relatedPaywallId } : {})
  })
