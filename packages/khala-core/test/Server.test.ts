// The Khala server over real sockets on 127.0.0.1, on both transports.
import { UwsTransport, WsTransport } from "@openagents/khala-core"
import { TestClient } from "@openagents/khala-core/testing"
import { FrameKind, SyncErrorCode } from "@openagents/proto/sync/v1"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Harness, sleep, start, tokenFor } from "./support/harness.js"

const transports = [UwsTransport.transport, WsTransport.transport]

for (const transport of transports) {
  describe(`Khala server on ${transport.name}`, () => {
    let h: Harness
    beforeAll(async () => {
      h = await start({ transport, server: { pollIntervalMs: 200, tickMs: 50 } })
    })
    afterAll(() => h.dispose())

    it("welcomes a valid token, replays retained events, then streams live ones", async () => {
      const topic = "runtime.run_summaries:user:42"
      await h.publish(topic, [{ docKey: "run:1", docVersion: 1, payload: { status: "running" } }, { docKey: "run:2", docVersion: 1, payload: { status: "queued" } }])
      const client = await TestClient.connect(h.url)
      const welcome = await client.hello(await tokenFor("42"))
      expect(welcome.kind).toBe(FrameKind.WELCOME)
      expect(welcome.message.limits.maxBatchUpdates).toBe(200)
      expect(welcome.message.heartbeatIntervalMs).toBe(15000)
      const subscribed = await client.subscribe([topic])
      expect(subscribed.kind).toBe(FrameKind.SUBSCRIBED)
      await client.until(topic, 2n)
      const replay = await client.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.replayComplete)
      expect(replay.message.headWatermarks[0].watermark).toBe(2n)
      await h.publish(topic, [{ docKey: "run:1", docVersion: 2, payload: { status: "done" } }])
      await client.until(topic, 3n)
      expect(client.applied.get(topic)!.map((u) => [u.watermark, u.docKey, u.payload])).toEqual([
        [1n, "run:1", `{"status":"running"}`],
        [2n, "run:2", `{"status":"queued"}`],
        [3n, "run:1", `{"status":"done"}`]
      ])
      expect(client.gaps).toBe(0)
      await client.close()
    })

    it("resumes after a forced disconnect with exactly the missed events", async () => {
      const topic = "runtime.run_summaries:user:7"
      await h.publish(topic, [{ docKey: "a", docVersion: 1, payload: { n: 1 } }])
      const first = await TestClient.connect(h.url)
      await first.hello(await tokenFor("7"))
      await first.subscribe([topic])
      await first.until(topic, 1n)
      await first.terminate()
      for (let i = 2; i <= 4; i++) await h.publish(topic, [{ docKey: "a", docVersion: i, payload: { n: i } }])
      const second = await TestClient.connect(h.url)
      second.resumeFrom(first)
      await second.hello(await tokenFor("7"))
      await second.subscribe([topic])
      await second.until(topic, 4n)
      const received = second.frames.filter((f) => f.kind === FrameKind.UPDATE_BATCH).flatMap((f) => f.message.updates.map((u: any) => u.watermark))
      expect(received).toEqual([2n, 3n, 4n])
      expect(second.duplicates).toBe(0)
      await second.close()
    })

    it("refuses a subscription to another user's topic with forbidden_topic", async () => {
      const client = await TestClient.connect(h.url)
      await client.hello(await tokenFor("1"))
      const reply = await client.subscribe(["runtime.run_summaries:user:2"])
      expect(reply.kind).toBe(FrameKind.ERROR)
      expect(reply.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
      expect(reply.message.forbiddenTopic?.forbiddenTopics ?? reply.message.details?.value?.forbiddenTopics).toEqual(["runtime.run_summaries:user:2"])
      await h.publish("runtime.run_summaries:user:2", [{ docKey: "secret", docVersion: 1, payload: { secret: true } }])
      await sleep(100)
      expect(client.frames.filter((f) => f.kind === FrameKind.UPDATE_BATCH)).toEqual([])
      await client.close()
    })

    it("closes a connection that sends no hello in time", async () => {
      const quick = await start({ transport, server: { session: { helloTimeoutMs: 100 }, tickMs: 20 } })
      try {
        const client = await TestClient.connect(quick.url)
        const closed = await client.closed
        expect(closed.code).toBe(4003)
        expect(client.errors()[0].code).toBe(SyncErrorCode.UNAUTHORIZED)
      } finally {
        await quick.dispose()
      }
    })
  })
}
