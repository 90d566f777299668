// The l402-gateway host as a process: config validation, /healthz, /metrics, the ops API's bearer
// auth, and no route served before a deployment.
import { Effect } from "effect"
import { LndSimulator } from "@openagents/lightning"
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
})
