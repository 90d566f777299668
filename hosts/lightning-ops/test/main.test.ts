// lightning-ops as a process, across processes: the l402-gateway host (its own process, billing
// through a simulated node), `lightning-ops --once` compiling paywalls from a file (mock control
// plane) and reconciling the gateway, paying the smoke challenge through a wallet executor; then a
// buyer pays its way through the gateway process to the upstream. And the loop mode's /healthz.
import { describe, expect, it } from "@effect/vitest"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { HttpControlPlane, L402Buyer, LndRest, LndSimulator, MemoryControlPlane, MemoryLedger, WalletExecutor, WalletExecutorHttp } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort, type HostProcess, startHost, waitFor } from "../../../packages/lightning/test/process.js"
import { serve } from "../../../packages/lightning/test/support.js"

const OPS = "ops-token-0123456789abcdef"
const EXEC = "exec-token-0123456789abcdef"
/** The role credentials lightning-ops refuses to start without. */
const CREDS = {
  OA_LIGHTNING_OPS_CRED_GATEWAY_INVOICE: "cred-gateway-invoice-0123456789",
  OA_LIGHTNING_OPS_CRED_SETTLEMENT_READ: "cred-settlement-read-0123456789",
  OA_LIGHTNING_OPS_CRED_OPERATOR_ADMIN: "cred-operator-admin-0123456789"
}

const host = (name: string, env: Record<string, string>, args: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(Effect.sync(() => startHost(name, env, args)), (h: HostProcess) => Effect.promise(() => h.kill()))

const exited = (h: HostProcess) =>
  Effect.promise(() =>
    h.child.exitCode !== null ? Promise.resolve(h.child.exitCode) : new Promise<number | null>((resolve) => h.child.once("exit", (code) => resolve(code)))
  )

describe("lightning-ops host", () => {
  it.scopedLive("--once reconciles the gateway process; a buyer then pays through it to the upstream", () =>
    Effect.gen(function*() {
      const network = yield* LndSimulator.makeNetwork()
      const walletNode = network.addNode({ alias: "wallet", balanceMsat: 5_000_000n })
      const gatewayNode = network.addNode({ alias: "gateway" })
      const walletLnd = LndRest.layer({ baseUrl: yield* serve(LndSimulator.router(walletNode)), macaroon: Redacted.make(walletNode.macaroons.admin) }).pipe(
        Layer.provide(NodeHttpClient.layer)
      )
      const gatewayLndUrl = yield* serve(LndSimulator.router(gatewayNode))
      const upstreamUrl = yield* serve(HttpRouter.empty.pipe(HttpRouter.get("/paid/signal", Effect.succeed(HttpServerResponse.unsafeJson({ signal: "buy" })))))
      const executor = yield* Layer.build(
        WalletExecutor.layer({ ...WalletExecutor.defaults, allowedHosts: ["127.0.0.1"], reconcileIntervalMs: 3_600_000 }).pipe(Layer.provide(Layer.merge(walletLnd, MemoryLedger.layer)))
      )
      const executorUrl = yield* serve(WalletExecutorHttp.router(Redacted.make(EXEC)).pipe(Effect.provide(executor)))

      const gatewayPort = yield* Effect.promise(freePort)
      const gateway = yield* host("l402-gateway", {
        L402_GATEWAY_PORT: String(gatewayPort),
        L402_GATEWAY_OPS_TOKEN: OPS,
        L402_GATEWAY_ROOT_SECRET: "root-secret-0123456789abcdef0123456789",
        LND_REST_URL: gatewayLndUrl,
        LND_MACAROON_HEX: gatewayNode.macaroons.invoice
      })
      const gatewayUrl = `http://127.0.0.1:${gatewayPort}`
      yield* Effect.promise(() => waitFor(`${gatewayUrl}/healthz`, gateway))

      const dir = mkdtempSync(join(tmpdir(), "lightning-ops-"))
      const paywallsPath = join(dir, "paywalls.json")
      writeFileSync(paywallsPath, JSON.stringify({
        paywalls: [{
          paywallId: "pw_signal",
          ownerId: "owner_7",
          name: "Signal",
          status: "active",
          policy: { paywallId: "pw_signal", ownerId: "owner_7", pricingMode: "fixed", fixedAmountMsats: 70_000 },
          routes: [{ routeId: "route_signal", hostPattern: "127.0.0.1", pathPattern: "/paid/signal", upstreamUrl, protocol: "http" }]
        }]
      }))
      const opsEnv = {
        OA_LIGHTNING_OPS_CONTROL_PLANE_MODE: "mock",
        OA_LIGHTNING_OPS_MOCK_PAYWALLS_PATH: paywallsPath,
        OA_LIGHTNING_OPS_GATEWAY_BASE_URL: gatewayUrl,
        OA_LIGHTNING_OPS_GATEWAY_OPS_TOKEN: OPS,
        ...CREDS,
        OA_LIGHTNING_OPS_WALLET_EXECUTOR_URL: executorUrl,
        OA_LIGHTNING_OPS_WALLET_EXECUTOR_TOKEN: EXEC
      }
      const once = yield* host("lightning-ops", opsEnv, ["--once"])
      const code = yield* exited(once)
      expect(code, once.output()).toBe(0)
      const output = once.output()
      expect(output).toMatch(/reconcile req_[0-9a-f]+: applied/)

      const deployment = (yield* Effect.promise(() => fetch(`${gatewayUrl}/ops/deployment`, { headers: { authorization: `Bearer ${OPS}` } }).then((r) => r.json()))) as any
      expect(deployment.deployment.configHash).toMatch(/^cfg_[0-9a-f]{64}$/)

      const buyer = yield* L402Buyer.make().pipe(Effect.provide(Layer.mergeAll(
        L402Buyer.walletExecutorPayer({ baseUrl: executorUrl, token: Redacted.make(EXEC) }),
        L402Buyer.memoryCache
      ).pipe(Layer.provideMerge(NodeHttpClient.layer))))
      const { response, result } = yield* buyer.fetch(HttpClientRequest.get(`${gatewayUrl}/paid/signal`))
      expect(response.status).toBe(200)
      expect(yield* response.json).toEqual({ signal: "buy" })
      expect(result).toMatchObject({ paid: true, amountMsats: 70_000n })
      expect(walletNode.sendAttempts).toBe(2) // the smoke probe, then the buyer
    }), 120_000)

  it.scopedLive("loop mode serves /healthz and /metrics; bad config exits naming the variable", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const loop = yield* host("lightning-ops", {
        OA_LIGHTNING_OPS_CONTROL_PLANE_MODE: "mock",
        OA_LIGHTNING_OPS_GATEWAY_BASE_URL: "http://127.0.0.1:1",
        OA_LIGHTNING_OPS_GATEWAY_OPS_TOKEN: OPS,
        ...CREDS,
        OA_LIGHTNING_OPS_PORT: String(port)
      })
      expect((yield* Effect.promise(() => waitFor(`http://127.0.0.1:${port}/metrics`, loop))).status).toBe(200)
      // No paywalls and no gateway: the reconcile fails (a failed intent, not a crash); health reports it.
      const bad = yield* host("lightning-ops", { OA_LIGHTNING_OPS_CONTROL_PLANE_MODE: "api", OA_LIGHTNING_OPS_GATEWAY_BASE_URL: "x" })
      expect(yield* exited(bad)).not.toBe(0)
      expect(bad.output()).toMatch(/OA_LIGHTNING_OPS_API_BASE_URL/)
    }), 60_000)

  it.scopedLive("control refusing the operations secret is control_unauthorized on /healthz (503); a secret shorter than control's minimum is a config error", () =>
    Effect.gen(function*() {
      // Control's wire, answering as control does: 401 invalid_ops_secret for any other secret.
      const controlUrl = yield* serve(HttpControlPlane.router(MemoryControlPlane.make(), Redacted.make("the-real-control-secret-0123456789abcdef")))
      const port = yield* Effect.promise(freePort)
      const env = {
        OA_LIGHTNING_OPS_CONTROL_PLANE_MODE: "api",
        OA_LIGHTNING_OPS_API_BASE_URL: controlUrl,
        OA_LIGHTNING_OPS_GATEWAY_BASE_URL: "http://127.0.0.1:1",
        OA_LIGHTNING_OPS_GATEWAY_OPS_TOKEN: OPS,
        ...CREDS,
        OA_LIGHTNING_OPS_PORT: String(port)
      }
      const wrong = yield* host("lightning-ops", { ...env, OA_LIGHTNING_OPS_SECRET: "a-wrong-but-long-enough-secret-0123456789" })
      yield* Effect.promise(() => waitFor(`http://127.0.0.1:${port}/metrics`, wrong))
      let health: { status: number; body: string } = { status: 0, body: "" }
      for (let i = 0; i < 50 && health.status !== 503; i++) {
        health = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/healthz`).then(async (r) => ({ status: r.status, body: await r.text() })))
        if (health.status !== 503) yield* Effect.sleep("100 millis")
      }
      expect(health.status, wrong.output()).toBe(503)
      expect(health.body).toMatch(/controlPlane/)
      expect(health.body).toMatch(/control_unauthorized/)

      const short = yield* host("lightning-ops", { ...env, OA_LIGHTNING_OPS_PORT: String(yield* Effect.promise(freePort)), OA_LIGHTNING_OPS_SECRET: "only-16-chars-xx" })
      expect(yield* exited(short)).not.toBe(0)
      expect(short.output()).toMatch(/OA_LIGHTNING_OPS_SECRET must be at least 32 characters/)

      // Role credentials fail closed: a missing or weak one is a config error naming it.
      const { OA_LIGHTNING_OPS_CRED_SETTLEMENT_READ: _missing, ...withoutOne } = env
      const missing = yield* host("lightning-ops", { ...withoutOne, OA_LIGHTNING_OPS_SECRET: "a-wrong-but-long-enough-secret-0123456789" })
      expect(yield* exited(missing)).not.toBe(0)
      expect(missing.output()).toMatch(/OA_LIGHTNING_OPS_CRED_SETTLEMENT_READ/)
      const spaced = yield* host("lightning-ops", { ...env, OA_LIGHTNING_OPS_SECRET: "a-wrong-but-long-enough-secret-0123456789", OA_LIGHTNING_OPS_CRED_OPERATOR_ADMIN: "has a space in it 0123456789" })
      expect(yield* exited(spaced)).not.toBe(0)
      expect(spaced.output()).toMatch(/OA_LIGHTNING_OPS_CRED_OPERATOR_ADMIN must be at least 16 characters without whitespace/)
    }), 60_000)
})
