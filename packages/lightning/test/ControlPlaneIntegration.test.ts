// Cross-plane integration: lightning-ops records its work through the REAL control plane. A real
// control server (@openagents/control-core, development mode, local identity provider, operations
// secret) runs on 127.0.0.1 beside the reference gateway, the LND simulator, the wallet executor
// and an upstream. A user signs in and creates a paywall through control's user API; lightning-ops
// (configured from its environment variables, as the host is) reconciles with the HttpControlPlane
// adapter over control's upstream JSON route — HTTP only, no shared SQL. Control's state is then
// read back through control's own APIs: the user API (the paywall's lastReconcileStatus), the
// internal JSON route (snapshot, security state), control's answers to each lightning-ops call,
// and control's L402Storage service (the gateway events: control has no HTTP read of them).
//
// Cases, on every control storage (memory; PGlite; Postgres when TEST_DATABASE_URL is set):
// applied end to end, with the gateway's sales ingested (and replayed) into control; the global
// pause and an owner kill switch stop the live gateway selling; route patterns validated by
// control and isolated by the compiler; role credentials checked against control's; a wrong
// operations secret.
import { describe, expect, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { ControlHost, ControlServer, LocalIdentity, MemoryStorage, SqlStorage, Storage } from "@openagents/control-core"
import {
  Compiler,
  ControlPlane,
  Gateway,
  GatewayOps,
  HttpControlPlane,
  L402,
  L402Buyer,
  LightningOps,
  LndRest,
  LndSimulator,
  MemoryLedger,
  WalletExecutor,
  WalletExecutorHttp
} from "@openagents/lightning"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import { serve } from "./support.js"

/** Control's OA_LIGHTNING_OPS_SECRET (≥ 32 characters, else control refuses every call). */
const OPS_SECRET = "control-ops-secret-0123456789abcdef-integration"
const GATEWAY_OPS_TOKEN = "gateway-ops-token-0123456789abcdef"
const EXECUTOR_TOKEN = "executor-token-0123456789abcdef"
const CREDS = { gateway_invoice: "cred-gateway-invoice-0123456789", settlement_read: "cred-settlement-read-0123456789", operator_admin: "cred-operator-admin-0123456789" }
const PRICE_MSATS = 21_000
const PAID_PATH = "/premium/signal"

// ---------------------------------------------------------------------------------------------
// HTTP helpers (absolute URLs, plain JSON)

interface Answer {
  readonly status: number
  readonly body: any
}

const request = (method: "GET" | "POST" | "PATCH", url: string, options: { readonly body?: unknown; readonly headers?: Record<string, string> } = {}) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    let req = HttpClientRequest.make(method)(url).pipe(HttpClientRequest.setHeaders(options.headers ?? {}))
    if (options.body !== undefined) req = HttpClientRequest.bodyUnsafeJson(req, options.body)
    const response = yield* http.execute(req)
    const text = yield* response.text
    let body: unknown = text
    try {
      body = text === "" ? undefined : JSON.parse(text)
    } catch {
      // not JSON
    }
    const answer: Answer = { status: response.status, body }
    return answer
  }).pipe(Effect.scoped, Effect.orDie)

// ---------------------------------------------------------------------------------------------
// Control: the real server on 127.0.0.1:<ephemeral>, development configuration

type ControlStorage = Layer.Layer<Storage.AuthStorage | Storage.L402Storage, unknown>

const startControl = (storage: ControlStorage) =>
  Effect.gen(function*() {
    const services = ControlHost.services(ControlHost.developmentConfig({ opsSecret: Redacted.make(OPS_SECRET) }), storage)
    const server = ControlServer.layer({ disableLogger: true }).pipe(
      Layer.provide(services),
      Layer.provideMerge(services),
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
    const context = yield* Layer.build(server)
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("control is not on TCP")
    const url = `http://127.0.0.1:${address.port}`
    const outbox = Context.get(context, LocalIdentity.LocalOutbox)

    /** Sign a new user in with the local identity provider; their bearer headers. */
    const signIn = Effect.gen(function*() {
      const email = `owner_${randomBytes(6).toString("hex")}@example.com`
      const sent = yield* request("POST", `${url}/api/auth/email`, { body: { email } })
      expect(sent.status).toBe(200)
      const message = yield* outbox.latest(email)
      const verified = yield* request("POST", `${url}/api/auth/verify`, {
        body: { code: message!.code, challenge_id: sent.body.challengeId },
        headers: { "x-client": "autopilot-desktop" }
      })
      expect(verified.status).toBe(200)
      return { authorization: `Bearer ${verified.body.token as string}` }
    })

    /** Control's internal JSON route (lightning-ops' wire), with control's secret. */
    const internal = (kind: "query" | "mutation", functionName: string, args: Record<string, unknown> = {}) =>
      request("POST", `${url}/api/internal/lightning-ops/control-plane/${kind}`, { body: { functionName, args: { ...args, secret: OPS_SECRET } } })

    return { url, signIn, internal, storage: Context.get(context, Storage.L402Storage) }
  })

// ---------------------------------------------------------------------------------------------
// Lightning: simulated nodes, an upstream, the reference gateway, the wallet executor

const startLightning = Effect.gen(function*() {
  const network = yield* LndSimulator.makeNetwork()
  const walletNode = network.addNode({ alias: "wallet", balanceMsat: 5_000_000n })
  const gatewayNode = network.addNode({ alias: "gateway", balanceMsat: 0n })
  const lnd = (node: LndSimulator.SimNode, macaroon: string) =>
    Effect.map(serve(LndSimulator.router(node)), (url) => LndRest.layer({ baseUrl: url, macaroon: Redacted.make(macaroon) }).pipe(Layer.provide(NodeHttpClient.layer)))
  const walletLnd = yield* lnd(walletNode, walletNode.macaroons.admin)
  // The gateway holds only an invoice macaroon: it can bill, never pay.
  const gatewayLnd = yield* lnd(gatewayNode, gatewayNode.macaroons.invoice)

  const upstreamHits: Array<{ readonly url: string; readonly paywallId: string | undefined }> = []
  const upstreamUrl = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("*", Effect.map(HttpServerRequest.HttpServerRequest, (r) => {
    upstreamHits.push({ url: r.url, paywallId: r.headers["x-oa-paywall-id"] })
    return HttpServerResponse.text("paid content")
  }))))

  const gatewayContext = yield* Layer.build(Layer.mergeAll(gatewayLnd, L402.derivedSecrets(Redacted.make(new Uint8Array(randomBytes(32)))), NodeHttpClient.layer))
  const gateway = yield* Gateway.make({ opsToken: Redacted.make(GATEWAY_OPS_TOKEN), imageDigest: "sha256:reference" }).pipe(Effect.provide(gatewayContext))
  const gatewayUrl = yield* serve(HttpRouter.concat(
    HttpRouter.empty.pipe(HttpRouter.get("/healthz", Effect.succeed(HttpServerResponse.text("ok")))),
    gateway.router
  ).pipe(Effect.provide(gatewayContext)))

  const executor = yield* Layer.build(
    WalletExecutor.layer({ ...WalletExecutor.defaults, allowedHosts: ["127.0.0.1"], reconcileIntervalMs: 3_600_000 }).pipe(Layer.provide(Layer.merge(walletLnd, MemoryLedger.layer)))
  )
  const executorUrl = yield* serve(WalletExecutorHttp.router(Redacted.make(EXECUTOR_TOKEN)).pipe(Effect.provide(executor)))

  /** A buyer paying through the wallet executor. */
  const buyer = L402Buyer.make().pipe(Effect.provide(Layer.mergeAll(
    L402Buyer.walletExecutorPayer({ baseUrl: executorUrl, token: Redacted.make(EXECUTOR_TOKEN) }),
    L402Buyer.memoryCache
  ).pipe(Layer.provideMerge(NodeHttpClient.layer))))

  return { walletNode, gateway, gatewayUrl, executorUrl, upstreamUrl, upstreamHits, buyer }
})

// ---------------------------------------------------------------------------------------------
// lightning-ops: configured from its environment, the HTTP control-plane adapter pointed at
// control. The port is observed (never replaced): every call, control's answer or its error.

interface PortCall {
  readonly operation: keyof ControlPlane.ControlPlaneService
  readonly input: unknown
  readonly answer?: any
  readonly error?: ControlPlane.ControlPlaneError
}

const observed = (port: ControlPlane.ControlPlaneService) => {
  const calls: Array<PortCall> = []
  const tap = <A>(operation: PortCall["operation"], input: unknown, effect: Effect.Effect<A, ControlPlane.ControlPlaneError>) =>
    effect.pipe(
      Effect.tap((answer) => void calls.push({ operation, input, answer })),
      Effect.tapError((error) => Effect.sync(() => void calls.push({ operation, input, error })))
    )
  const service: ControlPlane.ControlPlaneService = {
    listPaywallsForCompile: (statuses) => tap("listPaywallsForCompile", statuses, port.listPaywallsForCompile(statuses)),
    getSecurityState: Effect.suspend(() => tap("getSecurityState", undefined, port.getSecurityState)),
    recordDeploymentIntent: (intent) => tap("recordDeploymentIntent", intent, port.recordDeploymentIntent(intent)),
    recordGatewayEvent: (event) => tap("recordGatewayEvent", event, port.recordGatewayEvent(event)),
    ingestInvoiceLifecycle: (invoice) => tap("ingestInvoiceLifecycle", invoice, port.ingestInvoiceLifecycle(invoice)),
    ingestSettlement: (settlement) => tap("ingestSettlement", settlement, port.ingestSettlement(settlement))
  }
  return { calls, service }
}

const reconcile = (env: { readonly controlUrl: string; readonly secret: string; readonly gatewayUrl: string; readonly executorUrl: string; readonly ack: boolean }) =>
  Effect.gen(function*() {
    const cfg = yield* LightningOps.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
      ["OA_LIGHTNING_OPS_CONTROL_PLANE_MODE", "api"],
      ["OA_LIGHTNING_OPS_API_BASE_URL", env.controlUrl],
      ["OA_LIGHTNING_OPS_SECRET", env.secret],
      ["OA_LIGHTNING_OPS_GATEWAY_BASE_URL", env.gatewayUrl],
      ["OA_LIGHTNING_OPS_GATEWAY_OPS_TOKEN", GATEWAY_OPS_TOKEN],
      ["OA_LIGHTNING_OPS_CRED_GATEWAY_INVOICE", CREDS.gateway_invoice],
      ["OA_LIGHTNING_OPS_CRED_SETTLEMENT_READ", CREDS.settlement_read],
      ["OA_LIGHTNING_OPS_CRED_OPERATOR_ADMIN", CREDS.operator_admin],
      ["OA_LIGHTNING_OPS_WALLET_EXECUTOR_URL", env.executorUrl],
      ["OA_LIGHTNING_OPS_WALLET_EXECUTOR_TOKEN", EXECUTOR_TOKEN]
    ]))))
    if (cfg.controlPlane.mode !== "api") return yield* Effect.dieMessage("expected the api control-plane mode")
    const port = observed(yield* HttpControlPlane.make({ baseUrl: cfg.controlPlane.baseUrl, secret: cfg.controlPlane.secret }))
    const gatewayOps = GatewayOps.layerHttp({ baseUrl: cfg.gateway.baseUrl, opsToken: cfg.gateway.opsToken })
    // Without acknowledgements the gateway keeps its ledger: the next run sends it again (a replay).
    const noAck = Layer.effect(GatewayOps.GatewayOps, Effect.map(GatewayOps.GatewayOps, (real) => ({ ...real, ackLedger: () => Effect.void }))).pipe(Layer.provide(gatewayOps))
    const ports = Layer.mergeAll(
      Layer.succeed(ControlPlane.ControlPlane, port.service),
      env.ack ? gatewayOps : noAck,
      LightningOps.stateLayer
    ).pipe(Layer.provideMerge(NodeHttpClient.layer))
    const { health, outcome } = yield* Effect.gen(function*() {
      const outcome = yield* LightningOps.runOnce(cfg)
      const status = yield* Effect.flatMap(LightningOps.OpsState, Ref.get)
      const checks = LightningOps.healthChecks(status)
      return {
        outcome,
        health: { reconciler: yield* Effect.either(checks.reconciler), controlPlane: yield* Effect.either(checks.controlPlane), credentials: yield* Effect.either(checks.credentials) }
      }
    }).pipe(Effect.provide(ports))
    return { outcome, health, calls: port.calls, port: port.service }
  }).pipe(Effect.provide(NodeHttpClient.layer))

// ---------------------------------------------------------------------------------------------

const EVENT_TYPES = ["gateway_reconcile_health_ok", "gateway_reconcile_challenge_ok", "gateway_reconcile_proxy_ok"]

/** Both planes, and one owner's enabled paywall in control pointing at the upstream. */
const world = (storage: ControlStorage) =>
  Effect.gen(function*() {
    const lightning = yield* startLightning
    const control = yield* startControl(storage)
    const auth = yield* control.signIn
    const created = yield* request("POST", `${control.url}/api/l402/paywalls`, {
      headers: auth,
      body: { name: "integration signal", hostRegexp: "127.0.0.1", pathRegexp: PAID_PATH, priceMsats: PRICE_MSATS, upstream: lightning.upstreamUrl, metadata: { timeoutMs: 5_000 } }
    })
    expect(created.status).toBe(201)
    const paywall = created.body.data as { readonly id: string; readonly ownerId: string; readonly status: string; readonly enabled: boolean }
    expect(paywall).toMatchObject({ status: "active", enabled: true, ownerId: expect.stringMatching(/^owner_usr_/) })
    /** The paywall as its owner sees it through control's user API. */
    const ownerView = Effect.map(request("GET", `${control.url}/api/l402/paywalls/${paywall.id}`, { headers: auth }), (r) => r.body.data)
    const run = (secret = OPS_SECRET, ack = true) => reconcile({ controlUrl: control.url, secret, gatewayUrl: lightning.gatewayUrl, executorUrl: lightning.executorUrl, ack })
    return { lightning, control, paywall, auth, ownerView, run }
  })

/** The test's HTTP client; logs from warnings up (the local provider logs every sign-in code). */
const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(NodeHttpClient.layer), Logger.withMinimumLogLevel(LogLevel.Warning))

const storages: ReadonlyArray<readonly [string, ControlStorage]> = [
  ["memory", MemoryStorage.layer],
  ...SqlTesting.engines().map((engine) => [engine.name, SqlStorage.layer.pipe(Layer.provide(engine.layer))] as const)
]

for (const [storageName, storage] of storages) {
  describe(`lightning-ops ↔ control over HTTP (control storage: ${storageName})`, () => {
    it.scopedLive("reconciles a paywall created through control: snapshot read, intent applied with the compiled configHash, events recorded, paid request reaches the upstream", () =>
      Effect.gen(function*() {
        const { control, lightning, ownerView, paywall, run } = yield* world(storage)
        expect((yield* ownerView).lastReconcileStatus).toBeUndefined()

        const { calls, outcome } = yield* run()
        expect(outcome).toMatchObject({ status: "applied", routes: 1, unchanged: false, deploymentId: `dep_reconcile_${outcome.requestId}` })
        // Every call went to control and control accepted it (event failures are only logged).
        expect(calls.filter((c) => c.error !== undefined)).toEqual([])
        expect(calls.map((c) => c.operation)).toEqual([
          "getSecurityState", "listPaywallsForCompile", "recordDeploymentIntent",
          "recordGatewayEvent", "recordGatewayEvent", "recordGatewayEvent", "recordDeploymentIntent",
          // the gateway's ledger: the smoke probe's invoice, then its settlement
          "ingestInvoiceLifecycle", "ingestSettlement"
        ])

        // The snapshot lightning-ops read is control's paywall, as control compiles it for ops.
        const listed = calls.find((c) => c.operation === "listPaywallsForCompile")!.answer as ReadonlyArray<ControlPlane.Paywall>
        expect(listed).toEqual([expect.objectContaining({
          paywallId: paywall.id,
          ownerId: paywall.ownerId,
          status: "active",
          policy: expect.objectContaining({ paywallId: paywall.id, ownerId: paywall.ownerId, pricingMode: "fixed", fixedAmountMsats: PRICE_MSATS, killSwitch: false }),
          routes: [expect.objectContaining({ routeId: `route_${paywall.id}`, hostPattern: "127.0.0.1", pathPattern: PAID_PATH, upstreamUrl: lightning.upstreamUrl, protocol: "http", timeoutMs: 5_000 })]
        })])
        const compiled = Compiler.compile(listed)
        expect(compiled.excluded).toEqual([])
        expect(outcome.configHash).toBe(compiled.configHash)
        expect((yield* lightning.gateway.current)?.configHash).toBe(compiled.configHash)

        // The deployment intent, as control stored it: pending, then applied under the same id.
        const intents = calls.filter((c) => c.operation === "recordDeploymentIntent").map((c) => c.answer)
        expect(intents.map((d) => [d.deploymentId, d.status, d.configHash])).toEqual([
          [outcome.deploymentId, "pending", compiled.configHash],
          [outcome.deploymentId, "applied", compiled.configHash]
        ])
        // Control keeps the run's start (read before the run read control's state) with each intent.
        expect(intents[1].reconcileStartedAtMs).toBe(intents[0].reconcileStartedAtMs)
        expect(intents[0].reconcileStartedAtMs).toBeLessThanOrEqual(intents[0].createdAtMs)
        expect(intents[1]).toMatchObject({
          paywallId: paywall.id,
          ownerId: paywall.ownerId,
          imageDigest: "sha256:reference",
          appliedAtMs: expect.any(Number),
          requestId: outcome.requestId,
          createdAtMs: intents[0].createdAtMs,
          metadata: { executionPath: "hosted-node", progress: { healthOk: true, challengeOk: true, proxyOk: true }, unchanged: false }
        })
        // ... and as the owner and lightning-ops see the paywall afterwards.
        expect(yield* ownerView).toMatchObject({ lastReconcileStatus: "applied", lastReconciledAt: expect.any(String) })
        const snapshot = yield* control.internal("query", "lightning/ops:listPaywallControlPlaneState")
        expect(snapshot.status).toBe(200)
        expect(snapshot.body.paywalls).toEqual([expect.objectContaining({ paywallId: paywall.id, lastReconcileStatus: "applied", lastReconciledAtMs: intents[1].updatedAtMs })])

        // The gateway events, as control persisted them, with their deployment correlation.
        const events = yield* control.storage.listGatewayEvents({ deploymentId: outcome.deploymentId })
        expect(events.map((e) => e.eventType)).toEqual(EVENT_TYPES)
        for (const event of events) {
          expect(event).toMatchObject({
            eventId: expect.stringMatching(/^evt_[0-9a-f]{32}$/),
            paywallId: paywall.id,
            ownerId: paywall.ownerId,
            level: "info",
            requestId: outcome.requestId,
            deploymentId: outcome.deploymentId,
            configHash: compiled.configHash,
            executionPath: "hosted-node"
          })
        }
        expect(events.map((e) => e.eventId)).toEqual(calls.filter((c) => c.operation === "recordGatewayEvent").map((c) => c.answer.eventId))
        expect(yield* control.storage.listGatewayEvents({})).toHaveLength(3)

        // The reconciled gateway sells the upstream: 402 → wallet executor pays → 200 from upstream.
        expect(lightning.walletNode.sendAttempts).toBe(1) // the proxy probe's smoke payment
        const buyer = yield* lightning.buyer
        const { response, result } = yield* buyer.fetch(HttpClientRequest.get(`${lightning.gatewayUrl}${PAID_PATH}?q=1`))
        expect(response.status).toBe(200)
        expect(yield* response.text).toBe("paid content")
        expect(result).toMatchObject({ paid: true, amountMsats: BigInt(PRICE_MSATS) })
        expect(lightning.walletNode.sendAttempts).toBe(2)
        expect(lightning.upstreamHits.at(-1)).toEqual({ url: `${PAID_PATH}?q=1`, paywallId: paywall.id })

        // The sales reach control: every invoice the gateway issued, settled with its proof.
        const invoicesIn = (cs: ReadonlyArray<PortCall>) => cs.filter((c) => c.operation === "ingestInvoiceLifecycle")
        const settlementsIn = (cs: ReadonlyArray<PortCall>) => cs.filter((c) => c.operation === "ingestSettlement")
        // This run's ledger is not acknowledged: the next run sends it again (a replay).
        const second = yield* run(OPS_SECRET, false)
        expect(second.outcome).toMatchObject({ status: "applied", unchanged: true })
        expect(second.calls.filter((c) => c.error !== undefined)).toEqual([])
        // The buyer's invoice and settlement, then the second smoke probe's.
        expect(invoicesIn(second.calls)).toHaveLength(2)
        expect(settlementsIn(second.calls)).toHaveLength(2)
        for (const call of [...settlementsIn(calls), ...settlementsIn(second.calls)]) {
          const settlement = call.input as ControlPlane.Settlement
          const hash = settlement.settlementId.replace(/^set_/, "")
          expect(settlement).toMatchObject({ invoiceId: `inv_${hash}`, paywallId: paywall.id, ownerId: paywall.ownerId, amountMsats: PRICE_MSATS, paymentProofType: "lightning_preimage" })
          expect(call.answer).toEqual({ existed: false, paymentProofRef: `lightning_preimage:${settlement.paymentProofValue.slice(0, 24)}` })
          const stored = yield* control.storage.findInvoice(`inv_${hash}`)
          expect(stored).toMatchObject({
            paywallId: paywall.id,
            ownerId: paywall.ownerId,
            amountMsats: PRICE_MSATS,
            status: "settled",
            paymentHash: hash,
            paymentRequest: expect.stringMatching(/^lnbcrt/),
            paymentProofRef: call.answer.paymentProofRef,
            settledAtMs: expect.any(Number)
          })
        }
        const replayed = yield* run()
        const replays = settlementsIn(replayed.calls)
        // The unacknowledged two again (control already has them), then the third probe's.
        expect(replays.map((c) => c.answer.existed)).toEqual([true, true, false])
        expect(invoicesIn(replayed.calls).map((c) => c.answer.changed)).toEqual([false, false, true])
        const settledBefore = yield* control.storage.findInvoice((replays[0]!.input as ControlPlane.Settlement).invoiceId!)
        expect(settledBefore?.status).toBe("settled")
        // Nothing left in the gateway's ledger once control has it.
        expect(yield* lightning.gateway.ledger).toEqual([])

        // Control's 409 (an id reused with other content) is a conflict, not a bad response.
        const reused = { ...(replays[0]!.input as ControlPlane.Settlement), amountMsats: PRICE_MSATS + 1_000 }
        const conflict = yield* Effect.flip(replayed.port.ingestSettlement(reused))
        expect(conflict).toMatchObject({ _tag: "ControlPlaneError", code: "conflict" })
      }).pipe(quiet))

    it.scopedLive("a deployment serving several owners: EVERY owner sees its outcome (applied, then rolled back) on their own paywall", () =>
      Effect.gen(function*() {
        const { auth, control, lightning, ownerView, paywall, run } = yield* world(storage)
        // A second owner, a second paywall (probed after the first: its path sorts later).
        const other = yield* control.signIn
        const created = yield* request("POST", `${control.url}/api/l402/paywalls`, {
          headers: other,
          body: { name: "second owner", hostRegexp: "127.0.0.1", pathRegexp: "/zz/other", priceMsats: 2 * PRICE_MSATS, upstream: lightning.upstreamUrl }
        })
        expect(created.status).toBe(201)
        const otherView = Effect.map(request("GET", `${control.url}/api/l402/paywalls/${created.body.data.id}`, { headers: other }), (r) => r.body.data)

        const applied = yield* run()
        expect(applied.outcome).toMatchObject({ status: "applied", routes: 2 })
        const intent = applied.calls.filter((c) => c.operation === "recordDeploymentIntent").at(-1)!.answer
        expect(intent).toMatchObject({ status: "applied", deploymentId: applied.outcome.deploymentId, paywallIds: [paywall.id, created.body.data.id].sort() })
        expect(yield* ownerView).toMatchObject({ lastReconcileStatus: "applied" })
        expect(yield* otherView).toMatchObject({ lastReconcileStatus: "applied", lastReconciledAt: expect.any(String) })
        const snapshot = yield* control.internal("query", "lightning/ops:listPaywallControlPlaneState")
        expect(snapshot.body.paywalls.map((p: any) => p.lastReconcileStatus)).toEqual(["applied", "applied"])

        // The first owner points their paywall at a dead upstream: the proxy probe fails and the
        // gateway is rolled back; both owners' paywalls were in that deployment, both see it.
        const dead = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("*", Effect.succeed(HttpServerResponse.text("down", { status: 503 })))))
        expect((yield* request("PATCH", `${control.url}/api/l402/paywalls/${paywall.id}`, { headers: auth, body: { upstream: dead } })).status).toBe(200)
        const rolled = yield* run()
        expect(rolled.outcome).toMatchObject({ status: "rolled_back", failureCode: "proxy_check_failed" })
        expect((yield* lightning.gateway.current)?.configHash).toBe(applied.outcome.configHash)
        expect(yield* ownerView).toMatchObject({ lastReconcileStatus: "rolled_back", lastReconcileError: "proxy_check_failed" })
        expect(yield* otherView).toMatchObject({ lastReconcileStatus: "rolled_back", lastReconcileError: "proxy_check_failed" })
      }).pipe(quiet))

    it.scopedLive("a route conflict between owners: the newcomer's paywall is left out and its owner sees why through control; the deployed owner keeps selling, the others still deploy", () =>
      Effect.gen(function*() {
        const { control, lightning, ownerView, paywall, run } = yield* world(storage)
        expect((yield* run()).outcome).toMatchObject({ status: "applied", routes: 1 })
        const ownerOf = (auth: Record<string, string>, id: string) => Effect.map(request("GET", `${control.url}/api/l402/paywalls/${id}`, { headers: auth }), (r) => r.body.data)
        const create = (auth: Record<string, string>, pathRegexp: string) =>
          Effect.map(request("POST", `${control.url}/api/l402/paywalls`, {
            headers: auth,
            body: { name: "another owner", hostRegexp: "127.0.0.1", pathRegexp, priceMsats: PRICE_MSATS, upstream: lightning.upstreamUrl }
          }), (r) => {
            expect(r.status).toBe(201)
            return r.body.data as { readonly id: string }
          })
        // A second owner claims the first owner's live route; a third owner adds an unrelated one.
        const squatter = yield* control.signIn
        const squat = yield* create(squatter, PAID_PATH)
        const third = yield* control.signIn
        const unrelated = yield* create(third, "/third/route")

        const { calls, outcome } = yield* run()
        expect(outcome).toMatchObject({ status: "applied", routes: 2 })
        expect((yield* lightning.gateway.current)!.routes.map((r) => r.paywallId).sort()).toEqual([paywall.id, unrelated.id].sort())
        // The squatter's own record, as control stored it, and what its owner reads.
        const left = calls.filter((c) => c.operation === "recordDeploymentIntent").map((c) => c.answer).find((d) => d.paywallId === squat.id)
        expect(left).toMatchObject({
          status: "failed",
          failureCode: "compile_validation_failed",
          diagnostics: [expect.objectContaining({ code: "duplicate_route", paywallId: squat.id, relatedPaywallId: paywall.id })]
        })
        const seen = yield* ownerOf(squatter, squat.id)
        expect(seen).toMatchObject({
          lastReconcileStatus: "failed",
          lastReconcileError: "compile_validation_failed",
          lastReconcileDiagnostics: [{ code: "duplicate_route", severity: "error", routeId: `route_${squat.id}`, message: expect.stringMatching(/another owner's paywall.*it is deployed/) }]
        })
        expect(JSON.stringify(seen)).not.toContain(paywall.id)
        expect(yield* ownerView).toMatchObject({ lastReconcileStatus: "applied" })
        expect((yield* ownerView).lastReconcileDiagnostics).toBeUndefined()
        expect(yield* ownerOf(third, unrelated.id)).toMatchObject({ lastReconcileStatus: "applied" })
        // The live route is still the first owner's: a paid request reaches the upstream for it.
        const buyer = yield* lightning.buyer
        const { response } = yield* buyer.fetch(HttpClientRequest.get(`${lightning.gatewayUrl}${PAID_PATH}`))
        expect(response.status).toBe(200)
        expect(lightning.upstreamHits.at(-1)).toEqual({ url: PAID_PATH, paywallId: paywall.id })

        // The squatter moves elsewhere: compiled at the next run, and the diagnostics are gone.
        expect((yield* request("PATCH", `${control.url}/api/l402/paywalls/${squat.id}`, { headers: squatter, body: { pathRegexp: "/squatter/own" } })).status).toBe(200)
        expect((yield* run()).outcome).toMatchObject({ status: "applied", routes: 3 })
        const moved = yield* ownerOf(squatter, squat.id)
        expect(moved).toMatchObject({ lastReconcileStatus: "applied" })
        expect(moved.lastReconcileDiagnostics).toBeUndefined()
      }).pipe(quiet))

    it.scopedLive("fails closed on the live gateway: the global pause deploys the empty table (recorded), an owner kill switch compiles that owner out and control shows why", () =>
      Effect.gen(function*() {
        const { control, lightning, ownerView, paywall, run } = yield* world(storage)
        const sold = yield* run()
        expect(sold.outcome).toMatchObject({ status: "applied", routes: 1 })
        const direct = () => request("GET", `${lightning.gatewayUrl}${PAID_PATH}`)
        expect((yield* direct()).status).toBe(402)
        const hitsBefore = lightning.upstreamHits.length

        const paused = yield* control.internal("mutation", "lightning/security:setGlobalPause", { active: true, reason: "incident drill", updatedBy: "integration-test" })
        expect(paused.body).toMatchObject({ ok: true, global: { globalPause: true, denyReasonCode: "global_pause_active" } })
        const denied = yield* run()
        expect(denied.outcome).toMatchObject({ status: "denied", denyReason: "global_pause_active", deploymentId: `dep_denied_${denied.outcome.requestId}`, routes: 0 })
        // The gate, then the drain: no paywall was read, the empty table was deployed and recorded;
        // then the ledger: the (unpaid) invoice of the 402 above, recorded open.
        expect(denied.calls.map((c) => c.operation)).toEqual(["getSecurityState", "recordDeploymentIntent", "recordDeploymentIntent", "ingestInvoiceLifecycle"])
        expect(denied.calls[3]!.answer).toMatchObject({ changed: true, invoice: { status: "open", paywallId: paywall.id, amountMsats: PRICE_MSATS } })
        expect(denied.calls[0]!.answer.global).toMatchObject({ globalPause: true, denyReasonCode: "global_pause_active", denyReason: "incident drill" })
        expect(denied.calls[2]!.answer).toMatchObject({
          deploymentId: denied.outcome.deploymentId,
          status: "applied",
          configHash: denied.outcome.configHash,
          requestId: denied.outcome.requestId,
          metadata: { denied: true, denyReasonCode: "global_pause_active", executionPath: "hosted-node" }
        })
        expect((yield* lightning.gateway.current)?.routes).toEqual([])
        // The live gateway stopped selling: no challenge, no invoice, the upstream is not reached.
        expect((yield* direct()).status).toBe(404)
        expect(lightning.upstreamHits).toHaveLength(hitsBefore)

        // Lift the pause; kill the owner instead: control marks the policy, the compiler leaves it out.
        yield* control.internal("mutation", "lightning/security:setGlobalPause", { active: false })
        expect((yield* run()).outcome).toMatchObject({ status: "applied", routes: 1 })
        expect((yield* direct()).status).toBe(402)
        const killed = yield* control.internal("mutation", "lightning/security:setOwnerKillSwitch", { ownerId: paywall.ownerId, active: true, reason: "abuse" })
        expect(killed.body).toMatchObject({ ok: true, ownerControl: { ownerId: paywall.ownerId, killSwitch: true, denyReasonCode: "owner_kill_switch_active" } })
        const hitsBeforeKill = lightning.upstreamHits.length
        const refused = yield* run()
        expect(refused.outcome).toMatchObject({ status: "applied", routes: 0 })
        expect(refused.calls[1]!.answer).toEqual([expect.objectContaining({ paywallId: paywall.id, policy: expect.objectContaining({ killSwitch: true }) })])
        // The paywall's own record: failed, security_denied, with its paywallId — the owner sees why.
        const left = refused.calls.filter((c) => c.operation === "recordDeploymentIntent").map((c) => c.answer).find((d) => d.paywallId === paywall.id)
        expect(left).toMatchObject({ status: "failed", failureCode: "security_denied", ownerId: paywall.ownerId, deploymentId: expect.stringMatching(/^dep_paywall_/), metadata: { denyReasonCode: "owner_kill_switch_active" } })
        expect(yield* ownerView).toMatchObject({ lastReconcileStatus: "failed", lastReconcileError: "security_denied" })
        expect((yield* lightning.gateway.current)?.routes).toEqual([])
        expect((yield* direct()).status).toBe(404)
        expect(lightning.upstreamHits).toHaveLength(hitsBeforeKill)
      }).pipe(quiet))

    it.scopedLive("route patterns: control refuses a regex host when it is written; a stored one is left out of the compile (its own diagnostic) while other paywalls still deploy", () =>
      Effect.gen(function*() {
        const { auth, control, lightning, paywall, run } = yield* world(storage)
        const create = (body: Record<string, unknown>) =>
          request("POST", `${control.url}/api/l402/paywalls`, {
            headers: auth,
            body: { name: "regex", priceMsats: PRICE_MSATS, upstream: lightning.upstreamUrl, ...body }
          })
        const regex = yield* create({ hostRegexp: "^l402\\.example\\.com$", pathRegexp: "/premium" })
        expect(regex.status).toBe(422)
        expect(JSON.stringify(regex.body)).toMatch(/hostRegexp/)
        expect((yield* create({ hostRegexp: "*.example.com", pathRegexp: "/(?=x)y" })).status).toBe(422)
        expect((yield* create({ hostRegexp: "*.example.com", pathRegexp: "/premium/*" })).status).toBe(201)

        // A row written before control validated patterns (as control's old docs showed).
        const legacy = {
          ...(yield* control.storage.findPaywall(paywall.id))!,
          id: "pw_legacy_regex",
          hostRegexp: "^l402\\.example\\.com$",
          pathRegexp: "^/premium$"
        }
        yield* control.storage.insertPaywall(legacy)
        const { calls, outcome } = yield* run()
        expect(outcome).toMatchObject({ status: "applied", routes: 2 })
        const served = (yield* lightning.gateway.current)!.routes.map((r) => r.paywallId)
        expect(served).toHaveLength(2)
        expect(served).toContain(paywall.id)
        expect(served).not.toContain("pw_legacy_regex")
        const left = calls.filter((c) => c.operation === "recordDeploymentIntent").map((c) => c.answer).find((d) => d.paywallId === "pw_legacy_regex")
        expect(left).toMatchObject({
          status: "failed",
          failureCode: "compile_validation_failed",
          diagnostics: [expect.objectContaining({ code: "invalid_route_pattern", severity: "error", paywallId: "pw_legacy_regex" })]
        })
        expect((yield* control.storage.findPaywall("pw_legacy_regex"))).toMatchObject({ lastReconcileStatus: "failed", lastReconcileError: "compile_validation_failed" })
      }).pipe(quiet))

    it.scopedLive("role credentials: control's credential roles gate the reconcile — our fingerprint applies, another one or a revoked role denies (health reports it)", () =>
      Effect.gen(function*() {
        const { control, lightning, run } = yield* world(storage)
        const role = (fn: string, args: Record<string, unknown>) => control.internal("mutation", `lightning/security:${fn}`, args)
        for (const [name, credential] of Object.entries(CREDS)) {
          expect((yield* role("rotateCredentialRole", { role: name, fingerprint: ControlPlane.credentialFingerprint(credential) })).status).toBe(200)
          expect((yield* role("activateCredentialRole", { role: name })).body).toMatchObject({ ok: true, role: { role: name, status: "active" } })
        }
        expect((yield* run()).outcome).toMatchObject({ status: "applied", routes: 1 })

        // Control records another credential for a role (rotated elsewhere): we are not it.
        yield* role("rotateCredentialRole", { role: "settlement_read", fingerprint: ControlPlane.credentialFingerprint("someone-else-0123456789abcdef") })
        const mismatch = yield* run()
        expect(mismatch.outcome).toMatchObject({ status: "denied", denyReason: "credential_role_mismatch", deploymentId: undefined })
        expect(mismatch.calls.map((c) => c.operation)).toEqual(["getSecurityState"])
        expect(mismatch.health.credentials).toMatchObject({ _tag: "Left", left: { message: expect.stringMatching(/^credential_role_mismatch/) } })

        yield* role("rotateCredentialRole", { role: "settlement_read", fingerprint: ControlPlane.credentialFingerprint(CREDS.settlement_read) })
        expect((yield* run()).outcome).toMatchObject({ status: "applied" })
        yield* role("revokeCredentialRole", { role: "operator_admin" })
        const revoked = yield* run()
        expect(revoked.outcome).toMatchObject({ status: "denied", denyReason: "credential_role_revoked" })
        expect(revoked.health.credentials._tag).toBe("Left")
        // The gateway keeps its deployment: a credential problem stops lightning-ops, not sales.
        expect((yield* lightning.gateway.current)?.routes).toHaveLength(1)
      }).pipe(quiet))

    it.scopedLive("a wrong operations secret: control answers invalid_ops_secret, the reconcile is denied as control_unauthorized, health reports it, nothing is recorded", () =>
      Effect.gen(function*() {
        const { control, lightning, ownerView, run } = yield* world(storage)
        const { calls, health, outcome } = yield* run("not-the-ops-secret-0123456789abcdef-integration")
        // Not "unavailable": control refused our secret, and an operator has to fix it.
        expect(outcome).toMatchObject({ status: "denied", denyReason: "control_unauthorized", deploymentId: undefined, routes: 0 })
        expect(health.controlPlane).toMatchObject({ _tag: "Left", left: { message: expect.stringMatching(/^control_unauthorized: /) } })
        expect(health.reconciler._tag).toBe("Right")
        // ... which is control's documented refusal of the secret (LIGHTNING_OPS.md: 401 invalid_ops_secret).
        expect(calls).toHaveLength(1)
        expect(calls[0]).toMatchObject({ operation: "getSecurityState" })
        expect(calls[0]!.error).toMatchObject({ _tag: "ControlPlaneError", code: "invalid_ops_secret", functionName: HttpControlPlane.FUNCTIONS.securityState })
        const raw = yield* request("POST", `${control.url}${HttpControlPlane.QUERY_PATH}`, {
          body: { functionName: HttpControlPlane.FUNCTIONS.securityState, args: { secret: "not-the-ops-secret-0123456789abcdef-integration" } }
        })
        expect(raw).toEqual({ status: 401, body: { ok: false, error: { code: "invalid_ops_secret", message: "invalid lightning-ops secret" } } })

        // Nothing recorded in control, nothing deployed.
        expect(yield* control.storage.listGatewayEvents({})).toEqual([])
        expect((yield* ownerView).lastReconcileStatus).toBeUndefined()
        const snapshot = yield* control.internal("query", "lightning/ops:listPaywallControlPlaneState")
        expect(snapshot.body.paywalls.map((p: any) => p.lastReconcileStatus)).toEqual([undefined])
        expect(yield* lightning.gateway.current).toBeUndefined()
        expect(lightning.walletNode.sendAttempts).toBe(0)
      }).pipe(quiet))
  })
}
