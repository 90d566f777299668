// The lnd-sim host as a process: config from the environment, one lnd REST port per node,
// macaroons written to the data directory, node ids that survive a restart, /healthz, /metrics,
// and a clear error for bad config.
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { freePort, type HostProcess, startHost, waitFor } from "../../../packages/lightning/test/process.js"

const running: Array<HostProcess> = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((h) => h.kill()))
})

describe("lnd-sim host", () => {
  it("serves each configured node's REST API with the macaroons it writes, keeps node ids across restarts", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "lnd-sim-"))
    const [p1, p2] = [await freePort(), await freePort()]
    const env = { LND_SIM_NODES: `alice:${p1},bob:${p2}`, LND_SIM_DATA_DIR: dataDir }
    const first = startHost("lnd-sim", env)
    running.push(first)
    expect((await waitFor(`http://127.0.0.1:${p1}/healthz`, first)).status).toBe(200)
    await waitFor(`http://127.0.0.1:${p2}/healthz`, first)
    const admin = readFileSync(join(dataDir, "alice", "admin.macaroon")).toString("hex")
    const info = await (await fetch(`http://127.0.0.1:${p1}/v1/getinfo`, { headers: { "Grpc-Metadata-macaroon": admin } })).json() as any
    expect(info.alias).toBe("alice")
    expect(info.identity_pubkey).toMatch(/^0[23][0-9a-f]{64}$/)
    const denied = await fetch(`http://127.0.0.1:${p2}/v1/getinfo`, { headers: { "Grpc-Metadata-macaroon": admin } })
    expect(denied.status).toBe(500)
    expect(((await denied.json()) as any).code).toBe(2)
    expect((await fetch(`http://127.0.0.1:${p1}/metrics`)).status).toBe(200)
    await first.stop()

    const second = startHost("lnd-sim", env)
    running.push(second)
    await waitFor(`http://127.0.0.1:${p1}/healthz`, second)
    const again = await (await fetch(`http://127.0.0.1:${p1}/v1/getinfo`, { headers: { "Grpc-Metadata-macaroon": admin } })).json() as any
    expect(again.identity_pubkey).toBe(info.identity_pubkey)
  })

  it("refuses bad configuration with a message naming the variable", async () => {
    const host = startHost("lnd-sim", { LND_SIM_NODES: "Alice:99999" })
    running.push(host)
    await new Promise<void>((resolve) => host.child.once("exit", () => resolve()))
    expect(host.child.exitCode).not.toBe(0)
    expect(host.output()).toMatch(/LND_SIM_NODES must be comma-separated alias:port pairs/)
  })
})
