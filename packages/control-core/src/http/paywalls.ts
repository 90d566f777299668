// HTTP handlers of the owner-facing paywall API (create, list, read, update, pause, resume,
// archive); ownership and validation are ControlPlane's.
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { ControlApi, type PaywallView } from "../Api.js"
import { CurrentPrincipal } from "../Auth.js"
import { ControlPlane, ownerIdOf } from "../ControlPlane.js"
import { paywallStatus, type PaywallRow } from "../Storage.js"
import { iso, orInternal } from "./common.js"

export const paywallView = (row: PaywallRow): PaywallView => ({
  id: row.id,
  ownerId: ownerIdOf(row.ownerUserId),
  name: row.name,
  hostRegexp: row.hostRegexp,
  pathRegexp: row.pathRegexp,
  priceMsats: row.priceMsats,
  upstream: row.upstream,
  enabled: row.enabled,
  status: paywallStatus(row),
  metadata: row.meta,
  createdAt: iso(row.createdAtMs),
  updatedAt: iso(row.updatedAtMs),
  ...(row.deletedAtMs !== undefined ? { archivedAt: iso(row.deletedAtMs) } : {}),
  ...(row.lastReconcileStatus !== undefined ? { lastReconcileStatus: row.lastReconcileStatus } : {}),
  ...(row.lastReconcileError !== undefined ? { lastReconcileError: row.lastReconcileError } : {}),
  ...(row.lastReconciledAtMs !== undefined ? { lastReconciledAt: iso(row.lastReconciledAtMs) } : {}),
  // The owner's own view of why: code, message and the route (the other paywall of a conflict
  // stays with the operators, in the deployment intent).
  ...(row.lastReconcileDiagnostics.length > 0
    ? {
      lastReconcileDiagnostics: row.lastReconcileDiagnostics.map((d) => ({
        code: d.code,
        severity: d.severity,
        message: d.message,
        ...(d.routeId !== undefined ? { routeId: d.routeId } : {})
      }))
    }
    : {})
})

const one = <E, R>(effect: Effect.Effect<PaywallRow, E, R>) => orInternal(Effect.map(effect, (row) => ({ data: paywallView(row) })))

export const PaywallHandlers = HttpApiBuilder.group(ControlApi, "paywalls", (handlers) =>
  Effect.gen(function*() {
    const plane = yield* ControlPlane
    const userId = Effect.map(CurrentPrincipal, (p) => p.userId)
    return handlers
      .handle("create", ({ payload }) => one(Effect.flatMap(userId, (u) => plane.createPaywall(u, payload))))
      .handle("list", ({ urlParams }) =>
        orInternal(Effect.flatMap(userId, (u) =>
          Effect.map(
            plane.listPaywalls(u, urlParams.include_archived === "true" || urlParams.include_archived === "1"),
            (rows) => ({ data: rows.map(paywallView) })
          ))))
      .handle("get", ({ path }) => one(Effect.flatMap(userId, (u) => plane.getPaywall(u, path.paywallId))))
      .handle("update", ({ path, payload }) => one(Effect.flatMap(userId, (u) => plane.updatePaywall(u, path.paywallId, payload))))
      .handle("pause", ({ path }) => one(Effect.flatMap(userId, (u) => plane.setPaywallEnabled(u, path.paywallId, false))))
      .handle("resume", ({ path }) => one(Effect.flatMap(userId, (u) => plane.setPaywallEnabled(u, path.paywallId, true))))
      .handle("archive", ({ path }) => one(Effect.flatMap(userId, (u) => plane.archivePaywall(u, path.paywallId))))
  }))
