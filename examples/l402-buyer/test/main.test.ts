// The example as its README runs it: `npm start` (on free ports and a temporary data directory),
// a signed-in user creates a paywall in control whose upstream is control's own /docs page,
// lightning-ops deploys it to the gateway, then the example pays the route through the wallet
// executor (its token read from the dev secrets) and reuses the credential on the second request.
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { freePorts, post, root, signIn, start, type Supervisor, up } from "../../../test/support/supervisor.js"

const runExample = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", "examples/l402-buyer/src/main.ts", ...args], {
      cwd: root,
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += String(d)))
    child.stderr.on("data", (d) => (stderr += String(d)))
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
  })

describe("examples/l402-buyer", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "oa-l402-buyer-"))
  let sup: Supervisor | undefined

  afterAll(async () => {
    if (sup !== undefined && sup.child.exitCode === null) {
      sup.child.kill("SIGINT")
      await sup.exited
    }
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("pays a paid route of the running system through the wallet executor, then reuses the credential", async () => {
    const ports = await freePorts()
    // Reconcile every second instead of every minute, so the paywall is deployed quickly.
    sup = start(ports, dataDir, { OA_LIGHTNING_OPS_RECONCILE_INTERVAL_MS: "1000" })
    await up(sup)
    const control = `http://127.0.0.1:${ports.OA_START_CONTROL_PORT}`
    const gateway = `http://127.0.0.1:${ports.OA_START_GATEWAY_PORT}`

    const { token } = await signIn(sup, control, dataDir, "seller@example.com")
    const created = await post(`${control}/api/l402/paywalls`, {
      name: "docs",
      hostRegexp: "127.0.0.1",
      pathRegexp: "/docs",
      priceMsats: 2000,
      upstream: control
    }, { authorization: `Bearer ${token}` })
    expect(created.status).toBe(201)

    // Deployed and proven by lightning-ops (it paid the smoke challenge itself).
    const deadline = Date.now() + 60_000
    for (;;) {
      const paywall = await (await fetch(`${control}/api/l402/paywalls/${created.body.data.id}`, { headers: { authorization: `Bearer ${token}` } })).json() as any
      if (paywall.data.lastReconcileStatus === "applied") break
      if (Date.now() > deadline) throw new Error(`not deployed: ${JSON.stringify(paywall)}\n${sup.output()}`)
      await new Promise((r) => setTimeout(r, 250))
    }
    expect((await fetch(`${gateway}/docs`)).status).toBe(402)

    const run = await runExample([`${gateway}/docs`], {
      WALLET_EXECUTOR_URL: `http://127.0.0.1:${ports.OA_START_WALLET_EXECUTOR_PORT}`,
      OA_START_DATA_DIR: dataDir
    })
    expect(run.code, run.stderr).toBe(0)
    const [first, second] = run.stdout.trim().split("\n").map((line) => JSON.parse(line))
    expect(first).toMatchObject({ attempt: 1, status: 200, paid: true, fromCache: false, amountMsats: "2000" })
    expect(first.proof).toMatch(/^preimage:[0-9a-f]{16}$/)
    expect(first.contentType).toContain("text/html")
    expect(second).toMatchObject({ attempt: 2, status: 200, paid: false, fromCache: true })

    // Without a URL it says how to run it.
    const usage = await runExample([], { OA_START_DATA_DIR: dataDir })
    expect(usage.code).not.toBe(0)
    expect(usage.stdout + usage.stderr).toContain("usage: npm start --workspace examples/l402-buyer -- <paid URL>")
  }, 240_000)
})
