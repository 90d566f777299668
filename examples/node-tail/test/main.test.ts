// The CLI as its README runs it, against `npm start` (free ports, a temporary data directory): the
// README's commands, as written — a native sign-in, a demo worker (driven by the runtime), and
// `npm start -w examples/node-tail` following the worker's event topic into a file store, stopped
// with SIGINT, a few seconds of events missed, and started again: it says where it resumes and
// prints exactly the next event — nothing twice, nothing skipped.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type Background, expectShape, fill, shBackground, shellBlock, shJson } from "../../../test/support/docs.js"
import { signInCode, startSystem, type System } from "../../../test/support/supervisor.js"

interface Line {
  readonly docVersion: string
  readonly value: { seq: number; eventType: string }
}

/** The JSON lines the tail printed (npm's own banner lines are not JSON). */
const lines = (tail: Background): Array<Line> => tail.stdout().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))

const waitFor = async (what: string, tail: Background, f: () => boolean, timeoutMs = 60_000) => {
  for (const deadline = Date.now() + timeoutMs; !f(); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline || tail.child.exitCode !== null) throw new Error(`waiting for ${what}:\n${tail.output()}`)
  }
}

describe("examples/node-tail", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "oa-node-tail-state-"))
  let system: System | undefined

  afterAll(async () => {
    await system?.stop()
    rmSync(stateDir, { recursive: true, force: true })
  })

  it("tails a worker's events into a file store and resumes exactly after the last one after a restart", async () => {
    system = await startSystem("node-tail")
    const at = system.documentedPorts

    // 2. Sign in as a native client.
    const signIn = shellBlock("tail-sign-in")
    const sent = await shJson(fill(signIn.take(0).text, {}, at))
    const code = await signInCode(system.sup, system.dataDir, "you@example.com", sent.challengeId)
    const { token } = await shJson(fill(signIn.take(1).text, { "<code>": code, "<challengeId>": sent.challengeId }, at))
    expect(token).toMatch(/^ey/)
    signIn.ran()

    // 3. A demo worker.
    const worker = shellBlock("tail-worker")
    expectShape(`{"data": {"workerId": "my-demo", "status": "running", "latestSeq": …, "idempotentReplay": false}}`, await shJson(fill(worker.take(0).text, { "<token>": token }, at)))
    worker.ran()

    // 4. Tail it. The CLI's defaults are the default ports; this system's are passed as the
    // README's options, and the state goes to a temporary directory.
    const run = shellBlock("tail-run")
    const command = run.take(0)
    expect(command.text).toBe("npm start -w examples/node-tail -- --topic runtime.codex_worker_events:worker:my-demo --token <token>")
    const options = `--control ${system.url("OA_START_CONTROL_PORT")} --runtime ${system.url("OA_START_RUNTIME_PORT")} ` +
      `--khala ws://127.0.0.1:${system.ports.OA_START_KHALA_PORT}/sync/v1/ws --state ${stateDir}`
    const tail = () => shBackground(`${fill(command.text, { "<token>": token })} ${options}`)
    run.ran()

    const first = tail()
    await waitFor("three events", first, () => lines(first).length >= 3)
    expect(await first.stop("SIGINT")).toBe(0)
    // As the README shows it: where it resumes (stderr), then one JSON line per document.
    expect(first.stderr()).toContain(`${command.output[0]}\n`)
    expectShape(command.output[1]!, lines(first)[0])
    const seen = lines(first).map((l) => l.value.seq)
    expect(seen).toEqual(seen.map((_, i) => i + 1))
    expect(lines(first)[0]!.value.eventType).toBe("worker.started")
    const last = seen.at(-1)!

    // Events keep coming while the tail is down.
    await new Promise((r) => setTimeout(r, 2_500))
    const second = tail()
    await waitFor("more events", second, () => lines(second).length >= 3)
    expect(await second.stop("SIGINT")).toBe(0)
    expect(second.stderr()).toContain(`after watermark ${last}\n`)
    const resumed = lines(second).map((l) => l.value.seq)
    expect(resumed).toEqual(resumed.map((_, i) => last + 1 + i))
    expect(lines(second).map((l) => l.docVersion)).toEqual(resumed.map(String))
  }, 240_000)
})
