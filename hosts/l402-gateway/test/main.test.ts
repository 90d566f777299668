// The l402-gateway host as a process: config validation, /healthz, /metrics, the ops API's bearer
// auth, no route served before a deployment, and deployments kept across a restart.
import { Effect } from "effect"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Compiler, LndSimulator } from "@openagents/lightning"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { freePort, type HostProcess, startHost, waitFor } from "../../../packages/lightning/test/process.js"
import { serve } from "../../../packages/lightning/test/support.js"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"

const running: Array<HostProcess> = []
const scopes: Array<Scope.CloseableScope> = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((h) => h.kill()))
  for (const s of scopes.splice(0)) await Effect.runPromise(Scope.close(s, Exit.void))
})

describe("l402-gateway host", () => {
  it("starts, answers /healthz and /metrics, guards /ops with the ops token, serves nothing before a deploy", async () => {
    const scope = Effect.runSync(Scope.make())
    scopes.push(scope)
    const { node, url } = await Effect.runPromise(Effect.gen(function*() {
      const network = yield* LndSimulator.makeNetwork()
      const node = network.addNode({ alias: "gw" })
      return { node, url: yield* serve(LndSimulator.router(node)) }
    }).pipe(Scope.extend(scope)))
    const port = await freePort()
    const host = startHost("l402-gateway", {
      L402_GATEWAY_PORT: String(port),
      L402_GATEWAY_OPS_TOKEN: "ops-token-0123456789abcdef",
      L402_GATEWAY_ROOT_SECRET: "root-secret-0123456789abcdef0123456789",
      LND_REST_URL: url,
      LND_MACAROON_HEX: node.macaroons.invoice
    })
    running.push(host)
    expect((await waitFor(`http://127.0.0.1:${port}/healthz`, host)).status).toBe(200)
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200)
    expect((await fetch(`http://127.0.0.1:${port}/ops/deployment`)).status).toBe(401)
    const deployment = await fetch(`http://127.0.0.1:${port}/ops/deployment`, { headers: { authorization: "Bearer ops-token-0123456789abcdef" } })
    expect(await deployment.json()).toEqual({ deployment: null })
    expect((await fetch(`http://127.0.0.1:${port}/paid/anything`)).status).toBe(404)
  })

  it("refuses a short root secret, naming the variable", async () => {
    const host = startHost("l402-gateway", { L402_GATEWAY_OPS_TOKEN: "ops-token-0123456789abcdef", L402_GATEWAY_ROOT_SECRET: "short" })
    running.push(host)
    await new Promise<void>((resolve) => host.child.once("exit", () => resolve()))
    expect(host.child.exitCode).not.toBe(0)
    expect(host.output()).toMatch(/L402_GATEWAY_ROOT_SECRET must be at least 32 characters/)
  })

  it("with L402_GATEWAY_STATE_PATH and L402_GATEWAY_LEDGER_PATH, a restarted gateway serves its last deployment again and keeps its unacknowledged sales ledger; a tampered deployment file is ignored", async () => {
    const scope = Effect.runSync(Scope.make())
    scopes.push(scope)
    const { node, upstream, url } = await Effect.runPromise(Effect.gen(function*() {
      const network = yield* LndSimulator.makeNetwork()
      const node = network.addNode({ alias: "gw" })
      const upstream = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("*", Effect.succeed(HttpServerResponse.text("paid")))))
      return { node, upstream, url: yield* serve(LndSimulator.router(node)) }
    }).pipe(Scope.extend(scope)))
    const stateDir = mkdtempSync(join(tmpdir(), "l402-gateway-"))
    const statePath = join(stateDir, "state.json")
    const ledgerPath = join(stateDir, "ledger", "ledger.jsonl")
    const ops = { authorization: "Bearer ops-token-0123456789abcdef" }
    const start = async () => {
      const port = await freePort()
      const host = startHost("l402-gateway", {
        L402_GATEWAY_PORT: String(port),
        L402_GATEWAY_OPS_TOKEN: "ops-token-0123456789abcdef",
        L402_GATEWAY_ROOT_SECRET: "root-secret-0123456789abcdef0123456789",
        L402_GATEWAY_STATE_PATH: statePath,
        L402_GATEWAY_LEDGER_PATH: ledgerPath,
        LND_REST_URL: url,
        LND_MACAROON_HEX: node.macaroons.invoice
      })
      running.push(host)
      await waitFor(`http://127.0.0.1:${port}/healthz`, host)
      return { host, base: `http://127.0.0.1:${port}` }
    }
    const compiled = Compiler.compile([{
      paywallId: "pw_1", ownerId: "owner_1", name: "p", status: "active", createdAtMs: 0, updatedAtMs: 0,
      policy: { paywallId: "pw_1", ownerId: "owner_1", pricingMode: "fixed", fixedAmountMsats: 21_000, killSwitch: false },
      routes: [{ routeId: "r1", hostPattern: "*", pathPattern: "/paid/*", upstreamUrl: upstream, protocol: "http" }]
    }])
    expect(compiled.routes).toHaveLength(1)
    const first = await start()
    const deployed = await fetch(`${first.base}/ops/deploy`, {
      method: "POST",
      headers: { ...ops, "content-type": "application/json" },
      body: JSON.stringify({ requestId: "r", deploymentId: "dep_1", configHash: compiled.configHash, apertureYaml: compiled.apertureYaml, routes: compiled.routes })
    })
    expect(deployed.status).toBe(200)
    expect((await fetch(`${first.base}/paid/x`)).status).toBe(402)
    await first.host.kill()

    const second = await start()
    expect(await (await fetch(`${second.base}/ops/deployment`, { headers: ops })).json()).toMatchObject({ deployment: { deploymentId: "dep_1", configHash: compiled.configHash } })
    expect((await fetch(`${second.base}/paid/x`)).status).toBe(402)
    // The ledger survived the restart: the first run's invoice (seq 1), then this run's (seq 2);
    // an acknowledgement is durable too.
    const ledger = async (base: string) => ((await (await fetch(`${base}/ops/ledger`, { headers: ops })).json()) as { entries: Array<{ seq: number; invoice?: { status: string } }> }).entries
    expect((await ledger(second.base)).map((e) => [e.seq, e.invoice?.status])).toEqual([[1, "open"], [2, "open"]])
    const ack = await fetch(`${second.base}/ops/ledger/ack`, { method: "POST", headers: { ...ops, "content-type": "application/json" }, body: JSON.stringify({ through: 1 }) })
    expect(ack.status).toBe(200)
    await second.host.kill()
    const again = await start()
    expect((await ledger(again.base)).map((e) => e.seq)).toEqual([2])
    await again.host.kill()

    // A stored table that is not what its configHash names is never served.
    writeFileSync(statePath, readFileSync(statePath, "utf8").replace("/paid/", "/free/"))
    const third = await start()
    expect(await (await fetch(`${third.base}/ops/deployment`, { headers: ops })).json()).toEqual({ deployment: null })
    expect((await fetch(`${third.base}/paid/x`)).status).toBe(404)
    expect(third.host.output()).toMatch(/ignoring the stored deployments/)
  }, 60_000)
})
