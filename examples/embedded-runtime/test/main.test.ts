// The example as a process (PORT=0, KHALA_PORT=0): a user signs in with the app, subscribes with
// @openagents/khala-client to their worker summaries, creates a task through the app's own route
// (the app creates the worker in process), and sees it arrive over Khala; the embedded runtime
// API serves the same worker to the app's bearer token and refuses a forged one; SIGTERM stops it.
import { createClient, memoryStore, type WebSocketConstructor } from "@openagents/khala-client"
import { type ChildProcess, spawn } from "node:child_process"
import { afterAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { root } from "../../../test/support/supervisor.js"

const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })
  return { status: response.status, body: (await response.json()) as any }
}

describe("examples/embedded-runtime", () => {
  let child: ChildProcess | undefined

  afterAll(() => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL")
  })

  it("serves its own routes, the runtime API and Khala from one process on in-memory PGlite", async () => {
    child = spawn(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", "examples/embedded-runtime/src/main.ts"], {
      cwd: root,
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", PORT: "0", KHALA_PORT: "0", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout!.on("data", (d) => (output += String(d)))
    child.stderr!.on("data", (d) => (output += String(d)))
    const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)))
    let urls: RegExpMatchArray | null = null
    for (const deadline = Date.now() + 60_000; urls === null; await new Promise((r) => setTimeout(r, 100))) {
      urls = /embedded runtime on (http:\S+) \(Khala (ws:\S+)\)/.exec(output)
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the example did not start:\n${output}`)
    }
    const [, base, khalaUrl] = urls

    expect(await (await fetch(base!)).json()).toEqual({ app: "tasks", embeds: ["runtime-core", "khala-core"] })
    const session = await post(`${base}/app/sign-in`, { user: "ada" })
    expect(session.status).toBe(200)

    const client = createClient({
      url: khalaUrl!,
      snapshotBaseUrl: base!,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      store: memoryStore(),
      tokenProvider: async () => (await post(`${base}/app/sign-in`, { user: "ada" })).body.syncToken
    })
    const topic = "runtime.codex_worker_summaries:user:ada"
    client.subscribe(topic)
    await client.live(topic)

    const task = await post(`${base}/app/tasks`, { title: "write the docs" }, { authorization: `Bearer ${session.body.accessToken}` })
    expect([task.status, task.body.seq]).toEqual([201, 2])
    const arrived = await new Promise<any>((resolve) => {
      const check = () => {
        const doc = [...client.documents<any>(topic).values()].find((d) => d.value?.worker_id === task.body.workerId)
        if (doc !== undefined) resolve(doc.value)
      }
      client.on((e) => e.type === "change" && check())
      check()
    })
    expect(arrived).toMatchObject({ status: "running", adapter: "tasks", metadata: { title: "write the docs" }, latest_event_type: "worker.output", latest_seq: 2 })

    // The embedded runtime API knows the worker, for the app's token only.
    const listed = await fetch(`${base}/internal/v1/codex/workers`, { headers: { authorization: `Bearer ${session.body.accessToken}` } })
    expect(((await listed.json()) as any).data.map((w: any) => w.worker_id)).toEqual([task.body.workerId])
    const [h, p] = (session.body.accessToken as string).split(".")
    const forged = await post(`${base}/app/tasks`, { title: "x" }, { authorization: `Bearer ${h}.${p}.${"A".repeat(86)}` })
    expect(forged.status).toBe(401)

    await client.close()
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
  }, 120_000)
})
