// `npm start` (scripts/start.mjs) as a user runs it, on free ports and a temporary data directory:
// every service becomes ready, a user signs in with the code from the dev outbox and gets a sync
// token signed with the shared development key, the Lightning hosts answer, Ctrl-C stops
// everything with exit 0, and a second start reuses the state (same user, same access-token keys).
// Also the refusals: a port in use (nothing written or started), a service that is not ready in
// time, and a child that dies (the rest are stopped, exit 1).
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TestClient } from "@openagents/khala-core/testing"
import { FrameKind } from "@openagents/proto/sync/v1"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { documented, expectShape, fill, shBackground, shellBlock, shJson } from "./support/docs.js"
import { freePorts, hs256Valid, type Ports, portIsFree, post, root, signIn, signInCode, start, type Supervisor, up } from "./support/supervisor.js"

const runtimeExists = existsSync(join(root, "hosts/runtime/src/main.ts"))

/** The docs' default ports (control 4200, runtime 4100, dashboard 4300) → this run's. */
const documentedPorts = (ports: Ports): Record<number, number> => ({
  4200: ports.OA_START_CONTROL_PORT,
  4100: ports.OA_START_RUNTIME_PORT,
  4300: ports.OA_START_DASHBOARD_PORT
})

/**
 * docs/GETTING_STARTED.md's curl commands, as written (ports and `<placeholders>` filled in):
 * sign in and get a sync token, create a demo worker and follow its stream, restart the runtime.
 */
const gettingStarted = async (sup: Supervisor, ports: Ports, dataDir: string) => {
  const at = documentedPorts(ports)
  const signInBlock = shellBlock("sign-in")
  const [email, verify, syncToken] = [0, 1, 2].map((i) => signInBlock.take(i))
  const sent = await shJson(fill(email!.text, {}, at))
  expectShape(email!.output[0]!, sent)
  const code = await signInCode(sup, dataDir, "you@example.com", sent.challengeId)
  const verified = await shJson(fill(verify!.text, { "<code>": code, "<challengeId>": sent.challengeId }, at))
  expectShape(verify!.output[0]!, verified)
  const minted = await shJson(fill(syncToken!.text, { "<access token>": verified.token }, at))
  expectShape(syncToken!.output[0]!, minted)
  signInBlock.ran()

  const worker = shellBlock("demo-worker")
  const created = await shJson(fill(worker.take(0).text, { "<access token>": verified.token }, at))
  // docs/runtime/API.md: new → 202 {data: {workerId, status, latestSeq, idempotentReplay: false}}
  expectShape(`{"data": {"workerId": "…", "status": "running", "latestSeq": …, "idempotentReplay": false}}`, created)
  // The stream runs until its tail time: read a few events, then stop it.
  const stream = shBackground(fill(worker.take(1).text, { "<access token>": verified.token, "<workerId>": created.data.workerId }, at))
  const events = () => [...stream.stdout().matchAll(/^id: (\d+)\nevent: codex\.worker\.event\ndata: (.*)$/gm)].map((m) => ({ id: Number(m[1]), data: JSON.parse(m[2]!) }))
  for (const deadline = Date.now() + 20_000; events().length < 3; await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline) throw new Error(`no demo worker events on the stream:\n${stream.output()}`)
  }
  await stream.stop()
  expect(events().map((e) => e.id)).toEqual(events().map((_, i) => i + 1))
  expect(events()[0]!.data).toMatchObject({ workerId: created.data.workerId, seq: 1, eventType: "worker.started" })
  expect(events()[1]!.data.eventType).toMatch(/^worker\.(output|heartbeat)$/)
  worker.ran()

  const restart = shellBlock("restart")
  const command = restart.take(0)
  expectShape(documented(command.output[0]!), await shJson(fill(command.text, {}, at)))
  expect((await fetch(`http://127.0.0.1:${ports.OA_START_RUNTIME_PORT}/healthz`)).status).toBe(200)
  restart.ran()
}

describe("npm start", () => {
  let dataDir: string
  let ports: Ports
  let sup: Supervisor | undefined
  let firstSession: { userId: string; token: string } | undefined

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "oa-start-"))
    ports = await freePorts()
  })

  afterAll(async () => {
    if (sup !== undefined && sup.child.exitCode === null) {
      sup.child.kill("SIGINT")
      await sup.exited
    }
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("starts every service, signs a user in, mints a sync token, and stops cleanly on SIGINT", async () => {
    sup = start(ports, dataDir)
    await up(sup)
    const control = `http://127.0.0.1:${ports.OA_START_CONTROL_PORT}`
    if (runtimeExists) expect((await fetch(`http://127.0.0.1:${ports.OA_START_RUNTIME_PORT}/healthz`)).status).toBe(200)
    else expect(sup.output()).toMatch(/runtime: .*hosts\/runtime\/src\/main\.ts does not exist yet/)

    const secretsFile = join(dataDir, "dev-secrets.json")
    expect(statSync(secretsFile).mode & 0o777).toBe(0o600)
    const secrets = JSON.parse(readFileSync(secretsFile, "utf8"))

    const session = await signIn(sup, control, dataDir, "ada@example.com")
    const minted = await post(`${control}/api/sync/token`, {}, { authorization: `Bearer ${session.token}` })
    expect(minted.status).toBe(200)
    // Signed with the shared key the runtime is given too.
    expect(hs256Valid(minted.body.data.token, secrets.syncTokenKey.secret)).toBe(true)
    expect(hs256Valid(minted.body.data.token, "another-key-another-key-another-key")).toBe(false)

    for (const name of ["OA_START_GATEWAY_PORT", "OA_START_WALLET_EXECUTOR_PORT", "OA_START_LND_WALLET_PORT", "OA_START_LND_GATEWAY_PORT"] as const) {
      const health = await fetch(`http://127.0.0.1:${ports[name]}/healthz`)
      expect(health.status, name).toBe(200)
    }
    const ops = await fetch(`http://127.0.0.1:${ports.OA_START_LIGHTNING_OPS_PORT}/healthz`)
    expect((await ops.json() as { service: string }).service).toBe("lightning-ops")
    // The executor only answers its own token, from the dev secrets.
    const status = await fetch(`http://127.0.0.1:${ports.OA_START_WALLET_EXECUTOR_PORT}/status`, { headers: { authorization: `Bearer ${secrets.walletExecutorToken}` } })
    expect(status.status).toBe(200)

    sup.child.kill("SIGINT")
    expect(await sup.exited).toBe(0)
    expect(sup.output()).toMatch(/stopped\n/)
    for (const p of Object.values(ports)) expect(await portIsFree(p), `port ${p}`).toBe(true)
    firstSession = session
  }, 240_000)

  it("reuses the state on a second start, and stops the rest when a child dies", async () => {
    const first = firstSession!
    sup = start(ports, dataDir)
    await up(sup)
    const control = `http://127.0.0.1:${ports.OA_START_CONTROL_PORT}`
    // The access token from before the restart still verifies (persisted signing key, same user).
    const me = await fetch(`${control}/api/auth/me`, { headers: { authorization: `Bearer ${first.token}` } })
    expect(me.status).toBe(200)
    const again = await signIn(sup, control, dataDir, "ada@example.com")
    expect(again.userId).toBe(first.userId)

    if (runtimeExists) {
      // The planes together: control's access token verifies at the runtime (JWKS fetched from
      // control), control's proxy reaches the runtime with the signed internal header, control's
      // sync token opens a Khala subscription, and signing out reaches the runtime through
      // control's revocation outbox.
      const runtime = `http://127.0.0.1:${ports.OA_START_RUNTIME_PORT}`
      const auth = { authorization: `Bearer ${again.token}` }
      expect((await post(`${runtime}/internal/v1/codex/workers`, { worker_id: "start-test-worker" }, auth)).status).toBe(202)
      const proxied = await fetch(`${control}/api/runtime/codex/workers`, { headers: auth })
      expect(proxied.status).toBe(200)
      expect(((await proxied.json()) as { data: Array<{ worker_id: string }> }).data.map((w) => w.worker_id)).toContain("start-test-worker")
      const workerScope = await post(`${control}/api/sync/token`, { scopes: ["runtime.codex_worker_summaries", "runtime.codex_worker_events"] }, auth)
      expect(workerScope.status).toBe(200)
      const client = await TestClient.connect(`ws://127.0.0.1:${ports.OA_START_KHALA_PORT}/sync/v1/ws`)
      await client.hello(workerScope.body.data.token)
      const subscribed = await client.subscribe([`runtime.codex_worker_summaries:user:${again.userId}`, "runtime.codex_worker_events:worker:start-test-worker"], "s")
      expect([subscribed.kind, subscribed.kind === FrameKind.SUBSCRIBED ? "" : JSON.stringify(subscribed.message, (_, v) => typeof v === "bigint" ? String(v) : v)]).toEqual([FrameKind.SUBSCRIBED, ""])
      client.close()
      expect((await post(`${control}/api/auth/logout`, {}, auth)).status).toBe(200)
      let refused: string | undefined
      for (const deadline = Date.now() + 30_000; refused === undefined && Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
        const r = await fetch(`${runtime}/internal/v1/codex/workers`, { headers: auth })
        if (r.status === 401) refused = ((await r.json()) as { error: { details: { reason: string } } }).error.details.reason
      }
      expect(refused).toBe("session_revoked")
    }

    if (runtimeExists) await gettingStarted(sup, ports, dataDir)

    const gatewayPid = Number(sup.output().match(/starting l402-gateway \(pid (\d+)\)/)?.[1])
    expect(gatewayPid).toBeGreaterThan(0)
    process.kill(gatewayPid, "SIGKILL")
    expect(await sup.exited).toBe(1)
    expect(sup.output()).toMatch(/l402-gateway exited unexpectedly \(SIGKILL\); stopping the others/)
    expect(sup.output()).toMatch(/--- last lines of l402-gateway ---/)
    for (const p of Object.values(ports)) expect(await portIsFree(p), `port ${p}`).toBe(true)
  }, 240_000)
})

describe("npm start refusals", () => {
  it("names the service, the port and the variable when a port is in use, before writing or starting anything", async () => {
    const ports = await freePorts()
    const dataDir = join(mkdtempSync(join(tmpdir(), "oa-start-busy-")), "data")
    const blocker: Server = createServer()
    await new Promise<void>((resolve) => blocker.listen(ports.OA_START_GATEWAY_PORT, "127.0.0.1", resolve))
    try {
      const sup = start(ports, dataDir)
      expect(await sup.exited).toBe(1)
      expect(sup.output()).toContain(`l402-gateway: 127.0.0.1:${ports.OA_START_GATEWAY_PORT} is already in use — set OA_START_GATEWAY_PORT to another port`)
      expect(sup.output()).not.toMatch(/starting /)
      expect(existsSync(dataDir)).toBe(false)
    } finally {
      blocker.close()
    }
  }, 60_000)

  it("stops everything with the tail of the log when a service is not ready in time", async () => {
    const ports = await freePorts()
    const dataDir = mkdtempSync(join(tmpdir(), "oa-start-slow-"))
    try {
      const sup = start(ports, dataDir, { OA_START_READY_TIMEOUT_MS: "1000" })
      expect(await sup.exited).toBe(1)
      expect(sup.output()).toMatch(/(lnd-sim|control) did not become ready within 1 s \(waiting for http:\/\/127\.0\.0\.1:\d+\/healthz; OA_START_READY_TIMEOUT_MS raises the limit\)/)
      expect(sup.output()).toMatch(/--- last lines of (lnd-sim|control) ---/)
      for (const p of Object.values(ports)) expect(await portIsFree(p), `port ${p}`).toBe(true)
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 60_000)
})
