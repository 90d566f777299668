// The reconcile state machine against the reference gateway over real HTTP (LND simulator for
// invoices and payments, an upstream server, the in-memory control plane): applied, unchanged,
// compile failure, security gates, and every rollback path. Then the end to end through the
// reconciled gateway: buyer → 402 → wallet executor → simulator → preimage → gateway → upstream.
import { describe, expect, it } from "@effect/vitest"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import {
  Bolt11, Compiler, ControlPlane, Gateway, GatewayOps, L402, L402Buyer, LightningOps, LndRest, LndSimulator, MemoryControlPlane, MemoryLedger, Reconciler, WalletExecutor, WalletExecutorHttp
} from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { serve } from "./support.js"

const OPS = Redacted.make("ops-token-0123456789abcdef")
const EXEC = "exec-token-0123456789abcdef"

const paywall = (id: string, ownerId: string, upstream: string, path: string, priceMsats = 21_000): ControlPlane.Paywall => ({
  paywallId: id,
  ownerId,
  name: id,
  status: "active",
  createdAtMs: 0,
  updatedAtMs: 0,
  policy: { paywallId: id, ownerId, pricingMode: "fixed", fixedAmountMsats: priceMsats, killSwitch: false },
  routes: [{ routeId: `route_${id}`, hostPattern: "127.0.0.1", pathPattern: path, upstreamUrl: upstream, protocol: "http", timeoutMs: 5_000 }]
})

const world = Effect.gen(function*() {
  const network = yield* LndSimulator.makeNetwork()
  const walletNode = network.addNode({ alias: "wallet", balanceMsat: 5_000_000n })
  const gatewayNode = network.addNode({ alias: "gateway", balanceMsat: 0n })
  const lnd = (node: LndSimulator.SimNode, macaroon: string) =>
    Effect.map(serve(LndSimulator.router(node)), (url) => LndRest.layer({ baseUrl: url, macaroon: Redacted.make(macaroon) }).pipe(Layer.provide(NodeHttpClient.layer)))
  const walletLnd = yield* lnd(walletNode, walletNode.macaroons.admin)
  const gatewayLnd = yield* lnd(gatewayNode, gatewayNode.macaroons.invoice)

  let upstreamFails = false
  const upstream = Effect.map(HttpServerRequest.HttpServerRequest, (r) =>
    upstreamFails
      ? HttpServerResponse.text("broken", { status: 500 })
      : HttpServerResponse.unsafeJson({ upstream: true, url: r.url, paywall: r.headers["x-oa-paywall-id"] }))
  const upstreamUrl = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("*", upstream)))

  const gatewayContext = yield* Layer.build(Layer.mergeAll(gatewayLnd, L402.derivedSecrets(Redacted.make(new TextEncoder().encode("gateway root secret"))), NodeHttpClient.layer))
  const gateway = yield* Gateway.make({ opsToken: OPS, imageDigest: "sha256:reference" }).pipe(Effect.provide(gatewayContext))
  let healthy = true
  const app = HttpRouter.concat(
    HttpRouter.empty.pipe(HttpRouter.get("/healthz", Effect.sync(() => HttpServerResponse.text(healthy ? "ok" : "down", { status: healthy ? 200 : 503 })))),
    gateway.router
  ).pipe(Effect.provide(gatewayContext))
  const gatewayUrl = yield* serve(app)

  const cp = MemoryControlPlane.make({ paywalls: [paywall("pw_a", "owner_1", upstreamUrl, "/paid/a")] })
  const payer = yield* L402Buyer.lndPayer({ feeLimitMsats: 1_000n }).pipe(Layer.build, Effect.provide(walletLnd), Effect.map((c) => c.unsafeMap.get(L402Buyer.InvoicePayer.key) as L402Buyer.InvoicePayerService))
  const opsLayer = GatewayOps.layerHttp({ baseUrl: gatewayUrl, opsToken: OPS }).pipe(Layer.provide(NodeHttpClient.layer))
  const run = (options: Reconciler.ReconcileOptions = {}, ops: Layer.Layer<GatewayOps.GatewayOps> = opsLayer) =>
    Reconciler.reconcile({ proxyPayer: payer, ...options }).pipe(Effect.provide(Layer.merge(MemoryControlPlane.layer(cp), ops)))
  return {
    cp, gateway, gatewayUrl, upstreamUrl, walletNode, gatewayNode, walletLnd, run, opsLayer,
    setUpstreamFails: (v: boolean) => void (upstreamFails = v),
    setHealthy: (v: boolean) => void (healthy = v)
  }
})

/** A GatewayOps that behaves like `base` except for the overridden operations. */
const scripted = (base: Layer.Layer<GatewayOps.GatewayOps>, override: Partial<GatewayOps.GatewayOpsService>) =>
  Layer.effect(GatewayOps.GatewayOps, Effect.map(GatewayOps.GatewayOps, (real) => ({ ...real, ...override }))).pipe(Layer.provide(base))

const failing = (operation: string) => Effect.fail(new GatewayOps.GatewayOpsError({ operation, message: `${operation} refused (scripted)` }))

describe("reconciler", () => {
  it.scopedLive("applies: pending → deploy → health → 402 challenge → paid proxy → applied, with events; a rerun is unchanged and pays nothing unless forced", () =>
    Effect.gen(function*() {
      const { cp, gateway, run, walletNode } = yield* world
      const outcome = yield* run({ requestId: "run-1" })
      expect(outcome).toMatchObject({ status: "applied", deploymentId: "dep_reconcile_run-1", routes: 1, unchanged: false })
      expect(cp.intentHistory().map((i) => i.status)).toEqual(["pending", "applied"])
      expect(cp.intents()[0]).toMatchObject({ imageDigest: "sha256:reference", configHash: outcome.configHash })
      expect(cp.events().map((e) => e.eventType)).toEqual(["gateway_reconcile_health_ok", "gateway_reconcile_challenge_ok", "gateway_reconcile_proxy_ok"])
      expect(cp.events()[0]).toMatchObject({ deploymentId: "dep_reconcile_run-1", configHash: outcome.configHash, executionPath: "hosted-node", paywallId: "pw_a" })
      expect((yield* gateway.current)?.configHash).toBe(outcome.configHash)
      expect(walletNode.sendAttempts).toBe(1) // the smoke payment of the proxy probe
      expect(outcome.proxyProbe).toBe("passed")
      const again = yield* run({ requestId: "run-2" })
      expect(again).toMatchObject({ status: "applied", unchanged: true, configHash: outcome.configHash, proxyProbe: "skipped" })
      expect(walletNode.sendAttempts).toBe(1) // the unchanged table is not paid for again
      expect(cp.intents().find((i) => i.deploymentId === "dep_reconcile_run-2")?.metadata).toMatchObject({ unchanged: true, proxyProbe: "skipped" })
      // An operator's rerun, or a table whose paid probe has not passed (lightning-ops' memory), pays once more.
      expect(yield* run({ requestId: "run-3", forcePaidProbe: true })).toMatchObject({ status: "applied", unchanged: true, proxyProbe: "passed" })
      expect(walletNode.sendAttempts).toBe(2)
      expect(yield* run({ requestId: "run-4", paidProbePassed: (hash) => hash !== outcome.configHash })).toMatchObject({ proxyProbe: "passed" })
      expect(walletNode.sendAttempts).toBe(3)
      expect(yield* run({ requestId: "run-5", paidProbePassed: (hash) => hash === outcome.configHash })).toMatchObject({ proxyProbe: "skipped" })
      expect(walletNode.sendAttempts).toBe(3)
    }))

  it.scopedLive("a paywall that does not compile is left out (its own failed intent, with paywallId and failureCode); so is the one that gives way in a route conflict between owners, and the others still deploy", () =>
    Effect.gen(function*() {
      const { cp, gateway, gatewayUrl, run, upstreamUrl } = yield* world
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), paywall("pw_bad", "owner_2", upstreamUrl, "/x", 1_500)])
      const outcome = yield* run({ requestId: "isolated" })
      expect(outcome).toMatchObject({ status: "applied", routes: 1, diagnostics: [expect.objectContaining({ code: "price_not_whole_sats", paywallId: "pw_bad" })] })
      expect((yield* gateway.current)?.routes.map((r) => r.paywallId)).toEqual(["pw_a"])
      const left = cp.intents().find((i) => i.paywallId === "pw_bad")!
      // Every intent of one run carries the run's start time (control orders outcomes by it).
      const started = new Set(cp.intentHistory().map((i) => i.reconcileStartedAtMs))
      expect(started.size).toBe(1)
      expect([...started][0]).toEqual(expect.any(Number))
      expect(left).toMatchObject({ status: "failed", failureCode: "compile_validation_failed", ownerId: "owner_2", deploymentId: expect.stringMatching(/^dep_paywall_[0-9a-f]{24}$/) })
      expect((left.diagnostics as Array<{ code: string }>).map((d) => d.code)).toEqual(["price_not_whole_sats"])
      // A rerun updates the same record (stable id while the paywall is unchanged).
      yield* run({ requestId: "isolated-2" })
      expect(cp.intents().filter((i) => i.paywallId === "pw_bad")).toHaveLength(1)

      // Another owner claims pw_a's live route, while a third owner changes their own paywall:
      // the newcomer is left out, pw_a keeps its route, the third owner's change deploys.
      const status = (path: string) => Effect.map(GatewayOps.GatewayOps.pipe(Effect.flatMap((g) => g.probe(path, { host: "127.0.0.1" }))), (r) => r.status)
        .pipe(Effect.provide(GatewayOps.layerHttp({ baseUrl: gatewayUrl, opsToken: OPS }).pipe(Layer.provide(NodeHttpClient.layer))))
      cp.setPaywalls([
        { ...paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), createdAtMs: 50 },
        { ...paywall("pw_squat", "owner_2", upstreamUrl, "/paid/a"), createdAtMs: 10 }, // older, but not deployed
        paywall("pw_c", "owner_3", upstreamUrl, "/paid/c")
      ])
      const conflict = yield* run({ requestId: "dup" })
      expect(conflict).toMatchObject({ status: "applied", routes: 2, deploymentId: "dep_reconcile_dup" })
      expect((yield* gateway.current)?.routes.map((r) => r.paywallId)).toEqual(["pw_a", "pw_c"])
      expect(yield* status("/paid/c")).toBe(402)
      const squat = cp.intents().find((i) => i.paywallId === "pw_squat")!
      expect(squat).toMatchObject({ status: "failed", failureCode: "compile_validation_failed", ownerId: "owner_2" })
      expect(squat.diagnostics).toEqual([expect.objectContaining({ code: "duplicate_route", paywallId: "pw_squat", relatedPaywallId: "pw_a", message: expect.stringMatching(/it is deployed/) })])
      // The deployment's intent names every paywall it serves, not only the first.
      expect(cp.intents().find((i) => i.deploymentId === "dep_reconcile_dup")).toMatchObject({ status: "applied", paywallId: "pw_a", paywallIds: ["pw_a", "pw_c"] })
    }))

  it.scopedLive("security gates fail closed on the live gateway: the global pause deploys the empty table, a kill switch removes that owner's routes; an unreadable state denies", () =>
    Effect.gen(function*() {
      const { cp, gateway, gatewayUrl, run, upstreamUrl } = yield* world
      const status = (path: string) => Effect.map(GatewayOps.GatewayOps.pipe(Effect.flatMap((g) => g.probe(path, { host: "127.0.0.1" }))), (r) => r.status)
      const probe = (path: string) => status(path).pipe(Effect.provide(GatewayOps.layerHttp({ baseUrl: gatewayUrl, opsToken: OPS }).pipe(Layer.provide(NodeHttpClient.layer))))
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b")])
      expect(yield* run()).toMatchObject({ status: "applied", routes: 2 })
      expect(yield* probe("/paid/a")).toBe(402)

      cp.setGlobalPause(true, "incident")
      const paused = yield* run({ requestId: "paused" })
      expect(paused).toMatchObject({ status: "denied", denyReason: "global_pause_active", deploymentId: "dep_denied_paused", routes: 0 })
      expect((yield* gateway.current)?.routes).toEqual([])
      expect(yield* probe("/paid/a")).toBe(404)
      expect(yield* probe("/paid/b")).toBe(404)
      expect(cp.intents().find((i) => i.deploymentId === "dep_denied_paused")).toMatchObject({
        status: "applied",
        configHash: paused.configHash,
        metadata: expect.objectContaining({ denied: true, denyReasonCode: "global_pause_active" })
      })

      cp.setGlobalPause(false)
      cp.failNext("lightning/security:getControlPlaneSecurityState")
      expect(yield* run()).toMatchObject({ status: "denied", denyReason: "security_state_unavailable" })
      expect((yield* gateway.current)?.routes).toEqual([])

      cp.setOwnerKillSwitch("owner_2", true)
      expect(yield* run()).toMatchObject({ status: "applied", routes: 1 })
      expect((yield* gateway.current)?.routes.map((r) => r.paywallId)).toEqual(["pw_a"])
      expect(yield* probe("/paid/a")).toBe(402)
      expect(yield* probe("/paid/b")).toBe(404)
      expect(cp.intents().find((i) => i.paywallId === "pw_b")).toMatchObject({
        status: "failed", failureCode: "security_denied", ownerId: "owner_2", metadata: expect.objectContaining({ denyReasonCode: "owner_kill_switch_active" })
      })
      cp.setOwnerKillSwitch("owner_1", true)
      expect(yield* run()).toMatchObject({ status: "applied", routes: 0 })
      expect(yield* probe("/paid/a")).toBe(404)
    }))

  it.scopedLive("rolls back to the previous deployment when a probe fails after a deploy", () =>
    Effect.gen(function*() {
      const { cp, gateway, run, setUpstreamFails, upstreamUrl } = yield* world
      const first = yield* run({ requestId: "good" })
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a", 42_000)])
      setUpstreamFails(true)
      const outcome = yield* run({ requestId: "bad-upstream" })
      expect(outcome).toMatchObject({ status: "rolled_back", failureCode: "proxy_check_failed", deploymentId: "dep_reconcile_bad-upstream" })
      expect((yield* gateway.current)?.configHash).toBe(first.configHash)
      const intent = cp.intents().find((i) => i.deploymentId === "dep_reconcile_bad-upstream")!
      expect(intent).toMatchObject({ status: "rolled_back", rolledBackFrom: "dep_reconcile_bad-upstream" })
      expect(intent.metadata).toMatchObject({ progress: { healthOk: true, challengeOk: true, proxyOk: false }, rollback: { to: "dep_reconcile_good" } })
      expect(cp.events().at(-1)?.eventType).toBe("gateway_reconcile_rolled_back")
    }))

  it.scopedLive("fails without a rollback when there was nothing before (health check), and when the active lookup fails", () =>
    Effect.gen(function*() {
      const { cp, opsLayer, run, setHealthy } = yield* world
      setHealthy(false)
      expect(yield* run({ requestId: "h" })).toMatchObject({ status: "failed", failureCode: "health_check_failed" })
      expect(cp.events().at(-1)?.eventType).toBe("gateway_reconcile_failed_health_check_failed")
      setHealthy(true)
      expect(yield* run({ requestId: "l" }, scripted(opsLayer, { activeDeployment: failing("active_lookup") }))).toMatchObject({
        status: "failed",
        failureCode: "active_lookup_failed"
      })
    }))

  it.scopedLive("deploy refused → rolled back to the previous one; rollback refused → rollback_failed", () =>
    Effect.gen(function*() {
      const { cp, opsLayer, run, upstreamUrl } = yield* world
      yield* run({ requestId: "base" })
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a", 50_000)])
      expect(yield* run({ requestId: "d" }, scripted(opsLayer, { deploy: () => failing("deploy") }))).toMatchObject({ status: "failed", failureCode: "deploy_apply_failed" })
      const noRollback = scripted(opsLayer, { rollback: () => failing("rollback"), probe: (url, headers) => url === "/healthz" ? Effect.succeed({ status: 503, headers: {} }) : Effect.succeed({ status: 200, headers: headers ?? {} }) })
      expect(yield* run({ requestId: "r" }, noRollback)).toMatchObject({ status: "failed", failureCode: "rollback_failed" })
      expect(cp.intents().find((i) => i.deploymentId === "dep_reconcile_r")?.metadata).toMatchObject({ failure: { code: "rollback_failed", cause: "health_check_failed" } })
      expect(Reconciler.failurePlan({ deployed: true, previous: null })).toBe("fail")
      expect(Reconciler.failurePlan({ deployed: false, previous: { deploymentId: "x", configHash: "y" } })).toBe("fail")
    }))

  it.scopedLive("owner killed + another owner's deployment fails health: rolled back to the previous table WITHOUT the killed owner's routes (recompiled); the global pause still blocks everything", () =>
    Effect.gen(function*() {
      const { cp, gateway, gatewayUrl, run, setHealthy, upstreamUrl } = yield* world
      const probe = (path: string) =>
        GatewayOps.GatewayOps.pipe(Effect.flatMap((g) => g.probe(path, { host: "127.0.0.1" })), Effect.provide(GatewayOps.layerHttp({ baseUrl: gatewayUrl, opsToken: OPS }).pipe(Layer.provide(NodeHttpClient.layer))))
      const priceAt = (path: string) =>
        Effect.flatMap(probe(path), (r) => {
          expect(r.status).toBe(402)
          return Effect.map(Effect.flatMap(L402.parseChallenge(r.headers["www-authenticate"] ?? ""), (c) => Bolt11.decode(c.invoice)), (i) => i.amountMsats)
        })
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b")])
      const both = yield* run({ requestId: "both" })
      expect(both).toMatchObject({ status: "applied", routes: 2 })

      // Owner 1 is killed; owner 2 reprices; the new table (owner 2 only) fails its health check.
      cp.setOwnerKillSwitch("owner_1", true)
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b", 42_000)])
      setHealthy(false)
      const outcome = yield* run({ requestId: "b-fails" })
      expect(outcome).toMatchObject({
        status: "rolled_back",
        failureCode: "health_check_failed",
        rollback: { deploymentId: "dep_rollback_b-fails", withheldOwnerIds: ["owner_1"] }
      })
      const current = (yield* gateway.current)!
      // The previous table, recompiled without owner 1: a new deployment, a new configHash.
      expect(current).toMatchObject({ deploymentId: "dep_rollback_b-fails", configHash: outcome.rollback!.configHash })
      expect(current.configHash).not.toBe(both.configHash)
      expect(current.routes.map((r) => [r.paywallId, r.priceMsats])).toEqual([["pw_b", 21_000]])
      const expected = Compiler.compile([paywall("pw_b", "owner_2", upstreamUrl, "/paid/b")])
      expect(current.configHash).toBe(expected.configHash)
      // Through the real gateway: owner 1's route is not served; owner 2's OLD route is.
      setHealthy(true)
      expect((yield* probe("/paid/a")).status).toBe(404)
      expect(yield* priceAt("/paid/b")).toBe(21_000n)
      const intent = cp.intents().find((i) => i.deploymentId === "dep_reconcile_b-fails")!
      expect(intent).toMatchObject({ status: "rolled_back", failureCode: "health_check_failed", paywallIds: ["pw_b"] })
      expect(intent.metadata).toMatchObject({
        rollback: { to: "dep_reconcile_both", configHash: both.configHash, filtered: { deploymentId: "dep_rollback_b-fails", configHash: current.configHash, routes: 1, withheldRoutes: 1, withheldOwnerIds: ["owner_1"] } }
      })
      expect(cp.events().at(-1)).toMatchObject({ eventType: "gateway_reconcile_rolled_back", paywallId: "pw_b" })
      expect(cp.intents().find((i) => i.paywallId === "pw_a" && i.deploymentId.startsWith("dep_paywall_"))).toMatchObject({ status: "failed", failureCode: "security_denied" })

      // The next healthy run deploys owner 2's new price; owner 1 stays out.
      expect(yield* run({ requestId: "healthy" })).toMatchObject({ status: "applied", routes: 1 })
      expect(yield* priceAt("/paid/b")).toBe(42_000n)
      expect((yield* probe("/paid/a")).status).toBe(404)

      // The global pause: the empty table is deployed; its failed health check rolls nothing back.
      cp.setGlobalPause(true, "incident")
      setHealthy(false)
      expect(yield* run({ requestId: "paused" })).toMatchObject({ status: "failed", failureCode: "health_check_failed", deploymentId: "dep_denied_paused" })
      setHealthy(true)
      expect((yield* gateway.current)?.routes).toEqual([])
      expect((yield* probe("/paid/a")).status).toBe(404)
      expect((yield* probe("/paid/b")).status).toBe(404)
    }))

  it.scopedLive("a rollback is decided by the security state at rollback time: a pause or a kill switch set during the run withholds or filters it", () =>
    Effect.gen(function*() {
      const { cp, gateway, opsLayer, run, upstreamUrl } = yield* world
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b")])
      const both = yield* run({ requestId: "both" })
      // The health check fails, and meanwhile an operator acts.
      const failingHealth = (during: () => void) =>
        scripted(opsLayer, {
          probe: (url, headers) =>
            url === "/healthz"
              ? Effect.sync(() => {
                during()
                return { status: 503, headers: {} }
              })
              : Effect.flatMap(GatewayOps.GatewayOps, (g) => g.probe(url, headers)).pipe(Effect.provide(opsLayer))
        })
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a", 30_000), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b")])
      const paused = yield* run({ requestId: "pause-during" }, failingHealth(() => cp.setGlobalPause(true)))
      expect(paused).toMatchObject({ status: "failed", failureCode: "health_check_failed" })
      expect(cp.intents().find((i) => i.deploymentId === "dep_reconcile_pause-during")?.metadata).toMatchObject({ failure: { rollbackWithheld: "the global pause is on" } })
      // Nothing went back: the gateway keeps the table this run deployed (the next run drains it).
      expect((yield* gateway.current)?.deploymentId).toBe("dep_reconcile_pause-during")
      cp.setGlobalPause(false)

      expect(yield* run({ requestId: "both-again" }, opsLayer)).toMatchObject({ status: "applied", routes: 2 })
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b", 30_000)])
      const killed = yield* run({ requestId: "kill-during" }, failingHealth(() => cp.setOwnerKillSwitch("owner_1", true)))
      expect(killed).toMatchObject({ status: "rolled_back", rollback: { deploymentId: "dep_rollback_kill-during", withheldOwnerIds: ["owner_1"] } })
      expect((yield* gateway.current)?.routes.map((r) => [r.paywallId, r.priceMsats])).toEqual([["pw_b", 21_000]])
      expect(both.configHash).toBeDefined()
    }))

  it.scopedLive("fails closed when the previous table is unknown: with an owner killed and a gateway that does not report its table, nothing is rolled back", () =>
    Effect.gen(function*() {
      const { cp, gateway, opsLayer, run, setHealthy, upstreamUrl } = yield* world
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a"), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b")])
      expect(yield* run({ requestId: "both" })).toMatchObject({ status: "applied", routes: 2 })
      const tableless = scripted(opsLayer, {
        activeDeployment: Effect.flatMap(GatewayOps.GatewayOps, (g) => g.activeDeployment).pipe(
          Effect.provide(opsLayer),
          Effect.map((d) => d === null ? null : { deploymentId: d.deploymentId, configHash: d.configHash })
        )
      })
      cp.setOwnerKillSwitch("owner_2", true)
      setHealthy(false)
      const outcome = yield* run({ requestId: "killed" }, tableless)
      expect(outcome).toMatchObject({ status: "failed", failureCode: "health_check_failed" })
      expect((yield* gateway.current)?.routes.map((r) => r.paywallId)).toEqual(["pw_a"])
      expect(cp.intents().find((i) => i.deploymentId === "dep_reconcile_killed")).toMatchObject({
        status: "failed", failureCode: "health_check_failed", metadata: expect.objectContaining({ failure: expect.objectContaining({ rollbackWithheld: expect.stringMatching(/previous table is not known/) }) })
      })
      // A forged table (not the one its configHash names) is not relied on either.
      const forged = scripted(opsLayer, {
        activeDeployment: Effect.flatMap(GatewayOps.GatewayOps, (g) => g.activeDeployment).pipe(
          Effect.provide(opsLayer),
          Effect.map((d) => d === null ? null : { ...d, routes: [] })
        )
      })
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a", 50_000), paywall("pw_b", "owner_2", upstreamUrl, "/paid/b")])
      expect(yield* run({ requestId: "forged" }, forged)).toMatchObject({ status: "failed", failureCode: "health_check_failed" })
      expect((yield* gateway.current)?.deploymentId).toBe("dep_reconcile_forged")
    }))

  it.scopedLive("the gateway restores only the deployment the reconciler decided on: another previous deployment is a 409", () =>
    Effect.gen(function*() {
      const { cp, gateway, opsLayer, run, upstreamUrl } = yield* world
      yield* run({ requestId: "one" })
      cp.setPaywalls([paywall("pw_a", "owner_1", upstreamUrl, "/paid/a", 30_000)])
      yield* run({ requestId: "two" })
      const refused = yield* Effect.flip(Effect.flatMap(GatewayOps.GatewayOps, (g) => g.rollback({ requestId: "r", deploymentId: "dep_reconcile_other" })).pipe(Effect.provide(opsLayer)))
      expect(refused).toMatchObject({ status: 409, message: expect.stringMatching(/rollback_target_mismatch/) })
      expect((yield* gateway.current)?.deploymentId).toBe("dep_reconcile_two")
      const restored = yield* Effect.flatMap(GatewayOps.GatewayOps, (g) => g.rollback({ requestId: "r", deploymentId: "dep_reconcile_one" })).pipe(Effect.provide(opsLayer))
      expect(restored.deploymentId).toBe("dep_reconcile_one")
    }))
})

describe("end to end through the reconciled reference gateway", () => {
  it.scopedLive("buyer → 402 → wallet executor pays through the simulator → preimage → gateway verifies → upstream 200", () =>
    Effect.gen(function*() {
      const { gatewayNode, gatewayUrl, run, walletLnd, walletNode } = yield* world
      expect((yield* run({ requestId: "e2e" })).status).toBe("applied")
      const executor = yield* Layer.build(
        WalletExecutor.layer({ ...WalletExecutor.defaults, allowedHosts: ["127.0.0.1"], reconcileIntervalMs: 3_600_000 }).pipe(Layer.provide(Layer.merge(walletLnd, MemoryLedger.layer)))
      )
      const executorUrl = yield* serve(WalletExecutorHttp.router(Redacted.make(EXEC)).pipe(Effect.provide(executor)))
      const buyer = yield* L402Buyer.make().pipe(Effect.provide(Layer.mergeAll(
        L402Buyer.walletExecutorPayer({ baseUrl: executorUrl, token: Redacted.make(EXEC) }),
        L402Buyer.memoryCache
      ).pipe(Layer.provideMerge(NodeHttpClient.layer))))
      const before = walletNode.sendAttempts
      const { response, result } = yield* buyer.fetch(HttpClientRequest.get(`${gatewayUrl}/paid/a?q=1`))
      expect(response.status).toBe(200)
      expect(yield* response.json).toMatchObject({ upstream: true, url: "/paid/a?q=1", paywall: "pw_a" })
      expect(result).toMatchObject({ paid: true, amountMsats: 21_000n })
      expect(walletNode.sendAttempts).toBe(before + 1)
      expect(gatewayNode.invoices().filter((i) => i.state === "SETTLED").length).toBeGreaterThanOrEqual(2)
    }).pipe(Effect.provide(NodeHttpClient.layer)))
})

describe("ledger ingest (lightning-ops → control)", () => {
  const invoice = (n: number): ControlPlane.InvoiceLifecycle => ({ invoiceId: `inv_${n}`, paywallId: "pw_a", ownerId: "owner_1", amountMsats: 21_000, status: "open", paymentHash: `${n}` })
  const settlement = (n: number): ControlPlane.Settlement => ({
    settlementId: `set_${n}`, invoiceId: `inv_${n}`, paywallId: "pw_a", ownerId: "owner_1", amountMsats: 21_000, paymentProofType: "lightning_preimage", paymentProofValue: "ab".repeat(32)
  })
  const fakeGateway = (entries: Array<Gateway.LedgerEntry>, acks: Array<number>) =>
    Layer.succeed(GatewayOps.GatewayOps, {
      activeDeployment: Effect.succeed(null),
      deploy: () => Effect.die("unused"),
      rollback: () => Effect.die("unused"),
      probe: () => Effect.die("unused"),
      readLedger: (after, limit = 100) => Effect.sync(() => {
        const page = entries.filter((e) => e.seq > after).slice(0, limit)
        return { entries: page, next: page.at(-1)?.seq ?? after }
      }),
      ackLedger: (through) => Effect.sync(() => {
        acks.push(through)
        entries.splice(0, entries.length, ...entries.filter((e) => e.seq > through))
      })
    })

  it.effect("writes invoices then settlements in order and acknowledges them; a conflict is skipped, an outage stops (the rest is retried next run)", () =>
    Effect.gen(function*() {
      const cp = MemoryControlPlane.make()
      let outage = true
      const control = Layer.succeed(ControlPlane.ControlPlane, {
        ...cp,
        ingestSettlement: (s) =>
          s.settlementId === "set_1"
            ? Effect.fail(new ControlPlane.ControlPlaneError({ code: "conflict", message: "recorded with different content", functionName: "lightning/settlements:ingestSettlement" }))
            : s.settlementId === "set_2" && outage
            ? Effect.fail(new ControlPlane.ControlPlaneError({ code: "control_plane_unavailable", message: "503", functionName: "lightning/settlements:ingestSettlement" }))
            : cp.ingestSettlement(s)
      })
      const entries: Array<Gateway.LedgerEntry> = [
        { seq: 1, invoice: invoice(1) }, { seq: 2, settlement: settlement(1) }, { seq: 3, invoice: invoice(2) }, { seq: 4, settlement: settlement(2) }
      ]
      const acks: Array<number> = []
      const ports = Layer.merge(control, fakeGateway(entries, acks))
      const first = yield* LightningOps.ingestLedger({ pageSize: 10 }).pipe(Effect.provide(ports))
      expect(first).toMatchObject({ ingested: 2, rejected: 1, stopped: expect.stringMatching(/^control_plane_unavailable/) })
      expect(acks).toEqual([3])
      expect(entries.map((e) => e.seq)).toEqual([4])
      outage = false
      expect(yield* LightningOps.ingestLedger({ pageSize: 10 }).pipe(Effect.provide(ports))).toEqual({ ingested: 1, rejected: 0 })
      expect(acks).toEqual([3, 4])
      expect(cp.invoices().map((i) => [i.invoiceId, i.status])).toEqual([["inv_1", "open"], ["inv_2", "settled"]])
      expect(cp.settlements().map((s) => s.settlementId)).toEqual(["set_2"])
    }))
})
