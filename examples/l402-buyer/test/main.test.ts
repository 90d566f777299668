// The example as its README runs it, the README's commands as written: `npm start` (on free ports
// and a temporary data directory), a signed-in user creates a paywall in control whose upstream is
// control's own /docs page, lightning-ops deploys it to the gateway, then
// `npm start --workspace examples/l402-buyer` pays the route through the wallet executor (its token
// read from the dev secrets) and reuses the credential on the second request.
import { spawn } from "node:child_process"
import { afterAll, describe, expect, it } from "vitest"
import { expectShape, fill, sh, shellBlock, shJson } from "../../../test/support/docs.js"
import { root, signInCode, startSystem, type System } from "../../../test/support/supervisor.js"

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
  let system: System | undefined

  afterAll(() => system?.stop())

  it("pays a paid route of the running system through the wallet executor, then reuses the credential", async () => {
    // Reconcile every second instead of every minute, so the paywall is deployed quickly.
    system = await startSystem("l402-buyer", { OA_LIGHTNING_OPS_RECONCILE_INTERVAL_MS: "1000" })
    const at = system.documentedPorts
    const control = system.url("OA_START_CONTROL_PORT")
    const gateway = system.url("OA_START_GATEWAY_PORT")

    // 2. Sign in.
    const signIn = shellBlock("l402-sign-in")
    const sent = await shJson(fill(signIn.take(0).text, {}, at))
    const code = await signInCode(system.sup, system.dataDir, "seller@example.com", sent.challengeId)
    const { token } = await shJson(fill(signIn.take(1).text, { "<code>": code, "<challengeId>": sent.challengeId }, at))
    signIn.ran()

    // 3. The paywall: 2 sat for the gateway's /docs, proxied to control.
    const paywall = shellBlock("l402-paywall")
    const created = await shJson(fill(paywall.take(0).text, { "<token>": token }, at))
    expectShape(`{"data": {"id": "pw_…", "name": "docs", "hostRegexp": "127.0.0.1", "pathRegexp": "/docs", "priceMsats": 2000, "upstream": "${control}", "status": "active", …}}`, created)
    paywall.ran()

    // Deployed and proven by lightning-ops (it paid the smoke challenge itself).
    const deadline = Date.now() + 60_000
    for (;;) {
      const current = await (await fetch(`${control}/api/l402/paywalls/${created.data.id}`, { headers: { authorization: `Bearer ${token}` } })).json() as any
      if (current.data.lastReconcileStatus === "applied") break
      if (Date.now() > deadline) throw new Error(`not deployed: ${JSON.stringify(current)}\n${system.sup.output()}`)
      await new Promise((r) => setTimeout(r, 250))
    }
    expect((await fetch(`${gateway}/docs`)).status).toBe(402)

    // 4. Pay it, with the settings of the README's table pointing at this system.
    const pay = shellBlock("l402-pay")
    const command = pay.take(0)
    const run = await sh(fill(command.text, {}, at), {
      env: { WALLET_EXECUTOR_URL: system.url("OA_START_WALLET_EXECUTOR_PORT"), OA_START_DATA_DIR: system.dataDir }
    })
    expect(run.code, run.stderr).toBe(0)
    const [first, second] = run.stdout.split("\n").filter((l) => l.startsWith("{")).map((line) => JSON.parse(line))
    expectShape(command.output[0]!, first)
    expectShape(command.output[1]!, second)
    expect(first.proof).toMatch(/^preimage:[0-9a-f]{16}$/)
    expect(first.contentType).toContain("text/html")
    pay.ran()

    // Without a URL it says how to run it.
    const usage = await runExample([], { OA_START_DATA_DIR: system.dataDir })
    expect(usage.code).not.toBe(0)
    expect(usage.stdout + usage.stderr).toContain("usage: npm start --workspace examples/l402-buyer -- <paid URL>")
  }, 240_000)
})
