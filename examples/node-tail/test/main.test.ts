// The CLI as its README runs it, against `npm start` (free ports, a temporary data directory): a
// signed-in user creates a demo worker (driven by the runtime), node-tail follows the worker's
// event topic into a file store, is stopped with SIGINT, misses a few seconds of events, and is
// started again: it says where it resumes and prints exactly the next event — nothing twice,
// nothing skipped.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { freePorts, post, root, signIn, start, type Supervisor, up } from "../../../test/support/supervisor.js"

interface Tail {
  readonly child: ChildProcess
  readonly lines: () => Array<{ docVersion: string; value: { seq: number; eventType: string } }>
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

const tail = (args: ReadonlyArray<string>): Tail => {
  const child = spawn(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", "examples/node-tail/src/main.ts", ...args], {
    cwd: root,
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  child.stdout!.on("data", (d) => (out += String(d)))
  child.stderr!.on("data", (d) => (err += String(d)))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, lines: () => out.split("\n").filter(Boolean).map((l) => JSON.parse(l)), stderr: () => err, exited }
}

const waitFor = async (what: string, t: Tail, f: () => boolean, timeoutMs = 60_000) => {
  for (const deadline = Date.now() + timeoutMs; !f(); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline || t.child.exitCode !== null) throw new Error(`waiting for ${what}:\n${t.stderr()}`)
  }
}

describe("examples/node-tail", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "oa-node-tail-"))
  const stateDir = mkdtempSync(join(tmpdir(), "oa-node-tail-state-"))
  let sup: Supervisor | undefined

  afterAll(async () => {
    if (sup !== undefined && sup.child.exitCode === null) {
      sup.child.kill("SIGINT")
      await sup.exited
    }
    rmSync(dataDir, { recursive: true, force: true })
    rmSync(stateDir, { recursive: true, force: true })
  })

  it("tails a worker's events into a file store and resumes exactly after the last one after a restart", async () => {
    const ports = await freePorts()
    sup = start(ports, dataDir)
    await up(sup)
    const control = `http://127.0.0.1:${ports.OA_START_CONTROL_PORT}`
    const runtime = `http://127.0.0.1:${ports.OA_START_RUNTIME_PORT}`
    const { token } = await signIn(sup, control, dataDir, "tail@example.com")
    const created = await post(`${runtime}/internal/v1/codex/workers`, { worker_id: "tail-demo", adapter: "demo" }, { authorization: `Bearer ${token}` })
    expect(created.status).toBe(202)

    const args = [
      "--topic", "runtime.codex_worker_events:worker:tail-demo",
      "--token", token,
      "--control", control,
      "--runtime", runtime,
      "--khala", `ws://127.0.0.1:${ports.OA_START_KHALA_PORT}/sync/v1/ws`,
      "--state", stateDir
    ]
    const first = tail(args)
    await waitFor("three events", first, () => first.lines().length >= 3)
    first.child.kill("SIGINT")
    expect(await first.exited).toBe(0)
    expect(first.stderr()).toContain("resuming runtime.codex_worker_events:worker:tail-demo after watermark 0")
    const seen = first.lines().map((l) => l.value.seq)
    expect(seen).toEqual(seen.map((_, i) => i + 1))
    expect(first.lines()[0]!.value.eventType).toBe("worker.started")
    const last = seen.at(-1)!

    // Events keep coming while the tail is down.
    await new Promise((r) => setTimeout(r, 2_500))
    const second = tail(args)
    await waitFor("more events", second, () => second.lines().length >= 3)
    second.child.kill("SIGINT")
    expect(await second.exited).toBe(0)
    expect(second.stderr()).toContain(`after watermark ${last}\n`)
    const resumed = second.lines().map((l) => l.value.seq)
    expect(resumed).toEqual(resumed.map((_, i) => last + 1 + i))
    expect(second.lines().map((l) => l.docVersion)).toEqual(resumed.map(String))
  }, 240_000)
})
