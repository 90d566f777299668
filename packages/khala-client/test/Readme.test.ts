// The README quick start, run as written (with a test server, `ws` on Node 20, and a memory store).
import { createClient, type Document } from "@openagents/khala-client"
import { TestServer } from "@openagents/khala-core/testing"
import { expect, it } from "vitest"
import { until, WS } from "./support.js"

it("README quick start: subscribe, and render on every change", async () => {
  const server = await TestServer.start()
  try {
    const rendered: Array<Array<string>> = []
    const render = (docs: ReadonlyMap<string, Document>) => rendered.push([...docs.keys()])
    const client = createClient({
      url: server.url,
      tokenProvider: () => TestServer.token("42"),
      WebSocket: WS
    })
    client.subscribe("runtime.run_summaries:user:42")
    client.on((e) => e.type === "change" && render(client.documents(e.topic)))
    await server.publish("runtime.run_summaries:user:42", [{ docKey: "run:1", docVersion: 1, payload: { status: "running" } }])
    await until(() => rendered.length > 0)
    expect(rendered.at(-1)).toEqual(["run:1"])
    await client.close()
  } finally {
    await server.dispose()
  }
})
