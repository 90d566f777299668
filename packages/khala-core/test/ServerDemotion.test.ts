// Demotion of a slow live subscriber to paced catch-up, at the moment it happens: the subscriber
// resumes from `lastPublished`, so everything published before the demotion must really reach its
// socket. On uWS a publish waits in the topic tree until the turn ends, and leaving the channel
// before then discarded it: the client got a gap (found by review; failed before the fix).
import { TestClient } from "@openagents/khala-core/testing"
import { FrameKind, SlowConsumerAction, SyncErrorCode } from "@openagents/proto/sync/v1"
import { describe, expect, it } from "vitest"
import { UwsTransport, WsTransport } from "../src/index.js"
import { sleep, start, tokenFor } from "./support/harness.js"
import { steppedClock } from "./support/steppedClock.js"

/** The server's tick; no other loop of the server sleeps this long, so only the tick is stepped. */
const TICK_MS = 7_777

for (const transport of [UwsTransport.transport, WsTransport.transport]) {
  describe(`slow-consumer demotion on ${transport.name}`, () => {
    it("a subscriber demoted in the same turn as a live publish still receives that event, and the rest without a gap", async () => {
      const ticks = steppedClock(TICK_MS)
      const h = await start({
        transport,
        clock: ticks.clock,
        server: {
          tickMs: TICK_MS,
          maxBackpressureBytes: 512 * 1024 * 1024,
          slowConsumer: { softLimitBytes: 64 * 1024, resumeBelowBytes: 32 * 1024, maxStrikes: 100 }
        }
      })
      try {
        const topic = "runtime.run_summaries:user:u1"
        const c = await TestClient.connect(h.url)
        await c.hello(await tokenFor("u1"))
        await c.subscribe([topic])
        await c.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.replayComplete)
        expect(ticks.waiting()).toBeGreaterThan(0) // the tick waits for the test
        // The client stops reading: the kernel's buffers fill, then the server's.
        const raw = (c.socket as unknown as { _socket: { pause: () => void; resume: () => void } })._socket
        raw.pause()
        const big = "x".repeat(200 * 1024)
        let head = 0
        for (let i = 0; i < 40; i++) {
          await h.publish(topic, Array.from({ length: 8 }, (_, j) => ({ docKey: `d${head + j}`, docVersion: 1, payload: { big } })))
          head += 8
          await sleep(5)
        }
        await sleep(100)
        ticks.step() // the first sweep sees the buffer over the soft limit
        await sleep(50)
        // One macrotask: a small live publish (uWS holds it in its topic tree until the turn ends),
        // then the sweep that sees the buffer still over the limit and demotes.
        await new Promise<void>((resolve) =>
          setTimeout(() => {
            void h.publish(topic, [{ docKey: "victim", docVersion: 1, payload: { small: true } }]).then(() => {
              ticks.step()
              resolve()
            })
          }, 0))
        const victim = BigInt(++head)
        await sleep(100)
        raw.resume()
        await c.until(topic, victim, 20_000)
        // Paced catch-up ends, the subscriber is live again and keeps receiving.
        await h.publish(topic, [{ docKey: "after", docVersion: 1, payload: {} }])
        await c.until(topic, victim + 1n, 20_000)
        const throttled = c.errors().filter((e) => e.code === SyncErrorCode.SLOW_CONSUMER)
        expect(throttled.map((e) => (e.details.value as { action: number }).action)).toContain(SlowConsumerAction.THROTTLE)
        expect(c.gaps).toBe(0)
        expect(c.applied.get(topic)!.map((u) => u.watermark)).toEqual(Array.from({ length: head + 1 }, (_, i) => BigInt(i + 1)))
        await c.close()
      } finally {
        await h.dispose()
      }
    }, 60_000)
  })
}
