// The example as its README starts it (`npm start -w examples/embedded-runtime`, PORT=0 and
// KHALA_PORT=0 for free ports): a user signs in with the app, subscribes with
// @openagents/khala-client to their worker summaries, creates a task through the app's own route
// (the app creates the worker in process), and sees it arrive over Khala; the embedded runtime
// API serves the same worker to the app's bearer token and refuses a forged one; SIGTERM stops it.
import { createClient, memoryStore } from "@openagents/khala-client"
import { afterAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { type Background, shBackground, shellBlock } from "../../../test/support/docs.js"
import { post } from "../../../test/support/supervisor.js"

describe("examples/embedded-runtime", () => {
  let example: Background | undefined

  afterAll(() => example?.stop("SIGKILL"))

  it("serves its own routes, the runtime API and Khala from one process on in-memory PGlite", async () => {
    const block = shellBlock("embedded-runtime")
    const command = block.take(0)
    example = shBackground(command.text, { env: { PORT: "0", KHALA_PORT: "0" } })
    block.ran()
    // It says where it listens, as the README shows (with the ports it was given).
    const said = new RegExp(`^${command.output[0]!.replace(/[.()]/g, "\\$&").replace(/:44\d\d/g, ":\\d+")}$`, "m")
    for (const deadline = Date.now() + 60_000; !said.test(example.stdout()); await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() > deadline || example.child.exitCode !== null) throw new Error(`the example did not start:\n${example.output()}`)
    }
    const [, base, khalaUrl] = /embedded runtime on (http:\S+) \(Khala (ws:\S+)\)/.exec(example.stdout())!

    expect(await (await fetch(base!)).json()).toEqual({ app: "tasks", embeds: ["runtime-core", "khala-core"] })
    const session = await post(`${base}/app/sign-in`, { user: "ada" })
    expect(session.status).toBe(200)

    const client = createClient({
      url: khalaUrl!,
      snapshotBaseUrl: base!,
      WebSocket,
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
        // Each commit's state arrives live (the worker's creation, then its first output): wait for the second.
        const doc = [...client.documents<any>(topic).values()].find((d) => d.value?.worker_id === task.body.workerId && d.value?.latest_seq === 2)
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
    expect(await example.stop("SIGTERM")).toBe(0)
  }, 120_000)
})
