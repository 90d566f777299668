// lightning-ops as a process, across processes: docs/lightning/RUNBOOK.md's development sequence
// as written (lnd-sim, the l402-gateway billing through it, a wallet executor paying from it, then
// `lightning-ops --once` compiling paywalls from a file and reconciling the gateway, paying the
// smoke challenge through the executor), on free ports with `$PWD` a temporary directory; then a
// buyer pays its way through the gateway process to the upstream. And the loop mode's /healthz,
// and the refusals of a bad configuration.
import { describe, expect, it } from "@effect/vitest"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { HttpControlPlane, L402Buyer, MemoryControlPlane } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fill, sh, shBackground, shellBlock } from "../../../test/support/docs.js"
import { freePort, type HostProcess, startHost, waitFor } from "../../../packages/lightning/test/process.js"
import { serve } from "../../../packages/lightning/test/support.js"

const OPS = "ops-token-0123456789abcdef"
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

/** Poll a background command's health URL. */
const ready = async (url: string, what: { child: { exitCode: number | null }; output: () => string }) => {
  for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 100))) {
    if (what.child.exitCode !== null) throw new Error(`exited (${what.child.exitCode}):\n${what.output()}`)
    const status = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status, () => 0)
    if (status === 200) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${url}:\n${what.output()}`)
  }
}

describe("lightning-ops host", () => {
  it.scopedLive("the RUNBOOK's development sequence reconciles the gateway; a buyer then pays through it to the upstream", () =>
    Effect.gen(function*() {
      const upstreamUrl = yield* serve(HttpRouter.empty.pipe(HttpRouter.get("/paid/signal", Effect.succeed(HttpServerResponse.unsafeJson({ signal: "buy" })))))
      const pwd = mkdtempSync(join(tmpdir(), "lightning-dev-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(pwd, { recursive: true, force: true })))
      writeFileSync(join(pwd, "paywalls.json"), JSON.stringify({
        paywalls: [{
          paywallId: "pw_signal",
          ownerId: "owner_7",
          name: "Signal",
          status: "active",
          policy: { paywallId: "pw_signal", ownerId: "owner_7", pricingMode: "fixed", fixedAmountMsats: 70_000 },
          routes: [{ routeId: "route_signal", hostPattern: "127.0.0.1", pathPattern: "/paid/signal", upstreamUrl, protocol: "http" }]
        }]
      }))

      // The documented ports → free ones; the hosts' default ports set to them.
      const [lndWallet, lndGateway, gateway, executor] = yield* Effect.promise(() => Promise.all([freePort(), freePort(), freePort(), freePort()]))
      const values = { "$PWD": pwd, "10080": String(lndWallet), "10081": String(lndGateway) }
      const ports = { 8081: gateway, 8788: executor }
      const env = { L402_GATEWAY_PORT: String(gateway), OA_LIGHTNING_WALLET_EXECUTOR_PORT: String(executor) }
      const health = [`http://127.0.0.1:${lndWallet}/healthz`, `http://127.0.0.1:${gateway}/healthz`, `http://127.0.0.1:${executor}/healthz`]

      const runbook = shellBlock("lightning-dev")
      const services = runbook.commands.filter((c) => c.background)
      expect(services.length).toBe(3)
      for (const [i, url] of health.entries()) {
        const service = shBackground(fill(runbook.take(i).text, values, ports), { env })
        yield* Effect.addFinalizer(() => Effect.promise(() => service.stop()))
        yield* Effect.promise(() => ready(url!, service))
      }
      const once = runbook.take(3)
      expect(once.background).toBe(false)
      const ran = yield* Effect.promise(() => sh(fill(once.text, values, ports), { env, timeoutMs: 120_000 }))
      expect(ran.code, ran.stdout + ran.stderr).toBe(0)
      // "its log says: reconcile req_…: applied"
      const said = /reconcile req_…: applied/.exec(once.output.join("\n"))![0]
      expect(ran.stdout + ran.stderr).toMatch(new RegExp(said.replace("…", "[0-9a-f]+")))
      runbook.ran()

      const deployment = (yield* Effect.promise(() => fetch(`http://127.0.0.1:${gateway}/ops/deployment`, { headers: { authorization: "Bearer dev-ops-token-0123456789" } }).then((r) => r.json()))) as any
      expect(deployment.deployment.configHash).toMatch(/^cfg_[0-9a-f]{64}$/)

      const buyer = yield* L402Buyer.make().pipe(Effect.provide(Layer.mergeAll(
        L402Buyer.walletExecutorPayer({ baseUrl: `http://127.0.0.1:${executor}`, token: Redacted.make("dev-exec-token-0123456789") }),
        L402Buyer.memoryCache
      ).pipe(Layer.provideMerge(NodeHttpClient.layer))))
      const { response, result } = yield* buyer.fetch(HttpClientRequest.get(`http://127.0.0.1:${gateway}/paid/signal`))
      expect(response.status).toBe(200)
      expect(yield* response.json).toEqual({ signal: "buy" })
      expect(result).toMatchObject({ paid: true, amountMsats: 70_000n })
      // Two payments from the wallet node: the smoke probe, then the buyer.
      const status = (yield* Effect.promise(() => fetch(`http://127.0.0.1:${executor}/status`, { headers: { authorization: "Bearer dev-exec-token-0123456789" } }).then((r) => r.json()))) as any
      expect(JSON.stringify(status)).toMatch(/"pendingPaymentsCount":0,"recentPaymentsCount":2,/)
    }), 180_000)

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
