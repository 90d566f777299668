// What a connection holds. The session counts the topics it holds against the per-connection
// limit, and the server streams the topics in its subscriptions: the two must be the same set at
// every step. A refused re-subscribe of held topics, and an unsubscribe while a subscribe was in
// flight, once made them differ — topics kept streaming without counting, past the limit and
// after the client was told they were stale or gone (found by review; each test here failed
// before its fix).
import { TestClient } from "@openagents/khala-core/testing"
import { FrameKind, SyncErrorCode } from "@openagents/proto/sync/v1"
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { UwsTransport, WsTransport } from "../src/index.js"
import * as TopicAuthorizer from "../src/TopicAuthorizer.js"
import { sleep, start, tokenFor } from "./support/harness.js"

const worker = (i: number) => `runtime.codex_worker_events:worker:w${i}`

/** The topics the server streams to `c`: the remaining list of an unsubscribe of nothing. */
const held = async (c: TestClient, requestId: string) => {
  c.send("unsubscribe", { topics: [], requestId })
  const answer = await c.next((f) => f.kind === FrameKind.UNSUBSCRIBED && f.message.requestId === requestId)
  return [...(answer.message.topics as Array<string>)].sort()
}

const answerTo = (c: TestClient, requestId: string) =>
  c.next((f) => (f.kind === FrameKind.SUBSCRIBED || f.kind === FrameKind.ERROR) && f.message.requestId === requestId)

for (const transport of [UwsTransport.transport, WsTransport.transport]) {
  describe(`subscriptions held on ${transport.name}`, () => {
    it("a re-subscribe refused as stale ends the held topics it names, so no more than the limit ever streams", async () => {
      const authorizer = TopicAuthorizer.layerWithOwners(() => Effect.succeed("u1"))
      const h = await start({ transport, authorizer, server: { session: { maxTopicsPerConnection: 2, maxSubscribesPerSecond: 100 } } })
      try {
        const c = await TestClient.connect(h.url)
        await c.hello(await tokenFor("u1"))
        for (let round = 0; round < 5; round++) {
          const a = worker(round * 2), b = worker(round * 2 + 1)
          expect((await c.subscribe([a, b], `s${round}`)).kind).toBe(FrameKind.SUBSCRIBED)
          // The held topics again, with cursors of another journal epoch: stale.
          c.send("subscribe", { topics: [a, b], resumeAfter: [{ topic: a, watermark: 0n, epoch: "ep_other" }, { topic: b, watermark: 0n, epoch: "ep_other" }], requestId: `x${round}` })
          expect((await answerTo(c, `x${round}`)).message.code).toBe(SyncErrorCode.STALE_CURSOR)
          expect(await held(c, `h${round}`)).toEqual([])
        }
        for (let i = 0; i < 10; i++) await h.append(worker(i), [{ docKey: "d", docVersion: 1, payload: { i } }])
        await sleep(300)
        expect([...c.applied.keys()]).toEqual([])
        // The slots are free, and the limit holds.
        expect((await c.subscribe([worker(20), worker(21)], "fresh")).kind).toBe(FrameKind.SUBSCRIBED)
        const over = await c.subscribe([worker(22)], "over")
        expect(over.message.code).toBe(SyncErrorCode.BAD_SUBSCRIPTION)
        expect(await held(c, "end")).toEqual([worker(20), worker(21)].sort())
        await c.close()
      } finally {
        await h.dispose()
      }
    })

    it("a re-subscribe refused as forbidden ends the held topic, which streams no more", async () => {
      let owner = "u1"
      const authorizer = TopicAuthorizer.layerWithOwners(() => Effect.sync(() => owner))
      const h = await start({ transport, authorizer })
      try {
        const c = await TestClient.connect(h.url)
        await c.hello(await tokenFor("u1"))
        expect((await c.subscribe([worker(1), worker(2)], "s1")).kind).toBe(FrameKind.SUBSCRIBED)
        owner = "u2" // the workers changed hands
        const refused = await c.subscribe([worker(1)], "s2")
        expect(refused.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
        expect(await held(c, "h")).toEqual([worker(2)])
        await h.append(worker(1), [{ docKey: "secret", docVersion: 1, payload: {} }])
        await h.append(worker(2), [{ docKey: "d", docVersion: 1, payload: {} }])
        await c.until(worker(2), 1n, 5000)
        await sleep(200)
        expect(c.applied.get(worker(1))).toBeUndefined()
        await c.close()
      } finally {
        await h.dispose()
      }
    })

    it("a re-subscribe refused as a bad request leaves the held topics streaming and their slots taken", async () => {
      const authorizer = TopicAuthorizer.layerWithOwners(() => Effect.succeed("u1"))
      // Room for the held topics and the invalid one, so the request reaches the server.
      const h = await start({ transport, authorizer, server: { session: { maxTopicsPerConnection: 3, maxSubscribesPerSecond: 100 } } })
      try {
        const c = await TestClient.connect(h.url)
        await c.hello(await tokenFor("u1"))
        expect((await c.subscribe([worker(1), worker(2)], "s1")).kind).toBe(FrameKind.SUBSCRIBED)
        const bad = await c.subscribe([worker(1), worker(2), "not a topic"], "s2")
        expect(bad.message.code).toBe(SyncErrorCode.BAD_SUBSCRIPTION)
        expect(bad.message.message).toContain("invalid topics")
        expect(await held(c, "h1")).toEqual([worker(1), worker(2)])
        const over = await c.subscribe([worker(3), worker(4)], "s3")
        expect(over.message.code).toBe(SyncErrorCode.BAD_SUBSCRIPTION)
        for (let i = 1; i <= 4; i++) await h.append(worker(i), [{ docKey: "d", docVersion: 1, payload: { i } }])
        await c.until(worker(1), 1n, 5000)
        await c.until(worker(2), 1n, 5000)
        await sleep(200)
        expect([...c.applied.keys()].sort()).toEqual([worker(1), worker(2)])
        await c.close()
      } finally {
        await h.dispose()
      }
    })

    it("a topic unsubscribed while its subscribe is in flight is never installed, and does not count against the limit", async () => {
      const authorizer = TopicAuthorizer.layerWithOwners(() => Effect.as(Effect.sleep("100 millis"), "u1"))
      const h = await start({ transport, authorizer, server: { session: { maxTopicsPerConnection: 1 } } })
      try {
        const c = await TestClient.connect(h.url)
        await c.hello(await tokenFor("u1"))
        c.send("subscribe", { topics: [worker(1)], resumeAfter: [], requestId: "s1" })
        c.send("unsubscribe", { topics: [worker(1)], requestId: "u1" })
        const unsubscribed = await c.next((f) => f.kind === FrameKind.UNSUBSCRIBED && f.message.requestId === "u1")
        expect(unsubscribed.message.topics).toEqual([])
        // The subscribe is answered, without the topic it no longer wants.
        const subscribed = await answerTo(c, "s1")
        expect(subscribed.kind).toBe(FrameKind.SUBSCRIBED)
        expect(subscribed.message.topics).toEqual([])
        expect(await held(c, "h1")).toEqual([])
        expect((await c.subscribe([worker(2)], "s2")).kind).toBe(FrameKind.SUBSCRIBED)
        expect((await c.subscribe([worker(3)], "s3")).message.code).toBe(SyncErrorCode.BAD_SUBSCRIPTION)
        expect(await held(c, "h2")).toEqual([worker(2)])
        await h.append(worker(1), [{ docKey: "d", docVersion: 1, payload: {} }])
        await h.append(worker(2), [{ docKey: "d", docVersion: 1, payload: {} }])
        await c.until(worker(2), 1n, 5000)
        await sleep(200)
        expect(c.applied.get(worker(1))).toBeUndefined()
        await c.close()
      } finally {
        await h.dispose()
      }
    })
  })
}
