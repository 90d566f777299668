// The client over a transport that drops, duplicates, delays (reorders) frames and disconnects
// at random: whatever happens, what it applies is gap-free and duplicate-free, and when the
// network calms down its documents equal the server's read model.
import { createClient, memoryStore, type WebSocketLike } from "@openagents/khala-client"
import { WsTransport } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import fc from "fast-check"
import WebSocket from "ws"
import { afterAll, beforeAll, expect, it } from "vitest"
import { docsOf, head, readModel, recording, sleep, until } from "./support.js"

interface Chaos {
  drop: number
  duplicate: number
  delay: number
  kill: number
  random: () => number
}

/** A WebSocket whose incoming frames suffer `chaos`. */
const chaoticSocket = (chaos: Chaos) =>
  class ChaosSocket implements WebSocketLike {
    readonly inner: WebSocket
    onopen: WebSocketLike["onopen"] = null
    onmessage: WebSocketLike["onmessage"] = null
    onclose: WebSocketLike["onclose"] = null
    onerror: WebSocketLike["onerror"] = null
    constructor(url: string, protocols: Array<string>) {
      this.inner = new WebSocket(url, protocols)
      this.inner.binaryType = "arraybuffer"
      this.inner.onopen = (e) => this.onopen?.(e)
      this.inner.onclose = (e) => this.onclose?.({ code: e.code, reason: e.reason })
      this.inner.onerror = (e) => this.onerror?.(e)
      this.inner.onmessage = (e) => {
        const r = chaos.random()
        const deliver = () => this.onmessage?.({ data: e.data })
        if (r < chaos.kill) return this.inner.terminate()
        if (r < chaos.kill + chaos.drop) return
        if (r < chaos.kill + chaos.drop + chaos.duplicate) {
          deliver()
          return deliver()
        }
        if (r < chaos.kill + chaos.drop + chaos.duplicate + chaos.delay) return void setTimeout(deliver, Math.floor(chaos.random() * 40))
        deliver()
      }
    }
    get binaryType() {
      return this.inner.binaryType
    }
    set binaryType(_: string) {}
    get readyState() {
      return this.inner.readyState
    }
    send(data: Uint8Array) {
      if (this.inner.readyState === WebSocket.OPEN) this.inner.send(data)
    }
    close(code?: number, reason?: string) {
      this.inner.close(code, reason)
    }
  }

let server: TestServer.TestServer
beforeAll(async () => {
  server = await TestServer.start({ transport: WsTransport.transport, server: { tickMs: 20, pollIntervalMs: 50, session: { heartbeatIntervalMs: 100 } } })
})
afterAll(() => server.dispose())

let run = 0
it("property: over a lossy, duplicating, reordering, disconnecting transport the applied stream is gap-free and duplicate-free, and converges", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 20, max: 70 }),
      fc.record({ drop: fc.double({ min: 0, max: 0.08 }), duplicate: fc.double({ min: 0, max: 0.1 }), delay: fc.double({ min: 0, max: 0.2 }), kill: fc.double({ min: 0, max: 0.03 }) }),
      async (seed, events, p) => {
        let state = seed
        const random = () => ((state = (state * 48271) % 2147483647) / 2147483647)
        const chaos: Chaos = { ...p, random }
        const topic = `runtime.notifications:user:chaos${run++}`
        const { applies, store } = recording(memoryStore())
        const client = createClient({
          url: server.url,
          snapshotBaseUrl: server.httpUrl,
          tokenProvider: () => TestServer.token(topic.split(":")[2]!),
          WebSocket: chaoticSocket(chaos),
          store,
          backoff: { initialDelayMs: 5, maxDelayMs: 40 },
          requestTimeoutMs: 300,
          silenceTimeoutMs: 600
        })
        client.subscribe(topic)
        for (let i = 1; i <= events; i++) {
          await server.publish(topic, [{ docKey: `e${i}`, docVersion: 1, payload: { i } }])
          if (i % 5 === 0) await sleep(3)
        }
        // The network calms down; the client must converge by itself.
        chaos.drop = chaos.duplicate = chaos.delay = chaos.kill = 0
        const target = await head(server, topic)
        await until(() => client.watermark(topic) === target, 20_000, `convergence to ${target}`)
        expect(docsOf(client, topic)).toEqual(await readModel(server, topic))
        const watermarks = applies.map((a) => a.change.watermark)
        for (let i = 1; i < watermarks.length; i++) expect(watermarks[i]! > watermarks[i - 1]!).toBe(true)
        await client.close()
      }
    ),
    { numRuns: 15 }
  )
}, 180_000)
