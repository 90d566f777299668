// React hooks and the Effect API, against the real server.
import { createClient } from "@openagents/khala-client"
import * as KhalaEffect from "@openagents/khala-client/effect"
import { useDocument, useStatus, useTopic } from "@openagents/khala-client/react"
import { TestServer } from "@openagents/khala-core/testing"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createElement } from "react"
import TestRenderer, { act } from "react-test-renderer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { until, WS } from "./support.js"

let server: TestServer.TestServer
beforeAll(async () => {
  server = await TestServer.start({ server: { tickMs: 20 } })
})
afterAll(() => server.dispose())

;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true

describe("React bindings", () => {
  it("re-render with the topic's documents and the connection status as they change", async () => {
    const topic = "runtime.run_summaries:user:r1"
    await server.publish(topic, [{ docKey: "run:1", docVersion: 1, payload: { status: "queued" } }])
    const client = createClient({ url: server.url, tokenProvider: () => TestServer.token("r1"), WebSocket: WS })
    const renders: Array<string> = []
    const View = () => {
      const docs = useTopic<{ status: string }>(client, topic)
      const one = useDocument<{ status: string }>(client, topic, "run:1")
      const status = useStatus(client)
      const text = `${status}|${docs.map((d) => `${d.docKey}=${d.value?.status}`).join(",")}|${one?.value?.status ?? "-"}`
      renders.push(text)
      return createElement("span", null, text)
    }
    let renderer: TestRenderer.ReactTestRenderer
    await act(async () => {
      renderer = TestRenderer.create(createElement(View))
    })
    await until(() => renders.at(-1) === "connected|run:1=queued|queued")
    await act(async () => {
      await server.publish(topic, [{ docKey: "run:1", docVersion: 2, payload: { status: "done" } }, { docKey: "run:2", docVersion: 1, payload: { status: "queued" } }])
      await until(() => client.watermark(topic) === 3n)
    })
    expect(renders.at(-1)).toBe("connected|run:1=done,run:2=queued|done")
    await act(async () => renderer!.unmount())
    await client.close()
  })
})

describe("Effect API", () => {
  it("streams a topic's documents and the status from a scoped client", async () => {
    const topic = "runtime.notifications:user:e1"
    await server.publish(topic, [{ docKey: "n1", docVersion: 1, payload: { text: "hi" } }])
    const program = Effect.gen(function*() {
      yield* KhalaEffect.live(topic)
      const fiber = yield* KhalaEffect.documents<{ text: string }>(topic).pipe(
        Stream.filter((docs) => docs.size === 2),
        Stream.take(1),
        Stream.runCollect,
        Effect.fork
      )
      yield* Effect.promise(() => server.publish(topic, [{ docKey: "n2", docVersion: 1, payload: { text: "there" } }]))
      const [docs] = Chunk.toReadonlyArray(yield* fiber.await.pipe(Effect.flatten))
      const status = yield* KhalaEffect.status.pipe(Stream.take(1), Stream.runCollect)
      return { texts: [...docs!.values()].map((d) => d.value?.text).sort(), status: Chunk.toReadonlyArray(status) }
    }).pipe(Effect.provide(KhalaEffect.layer({ url: server.url, tokenProvider: () => TestServer.token("e1"), WebSocket: WS })))
    const result = await Effect.runPromise(Effect.scoped(program))
    expect(result).toEqual({ texts: ["hi", "there"], status: ["connected"] })
  })
})
