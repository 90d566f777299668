import { createElement } from "react"
import TestRenderer, { act } from "react-test-renderer"
import { useTopic } from "@openagents/khala-client/react"
;(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true
import { type ClientEvent, createClient, memoryStore, type SyncStore } from "@openagents/khala-client"
import * as KhalaEffect from "@openagents/khala-client/effect"
import { SyncWire, WsTransport } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Fiber from "effect/Fiber"
import { createServer } from "node:net"
import { WebSocketServer } from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sleep, until, WS } from "./support.js"

let server: TestServer.TestServer
beforeAll(async () => {
  server = await TestServer.start({ transport: WsTransport.transport, server: { tickMs: 20, pollIntervalMs: 100 } })
})
afterAll(() => server.dispose())

// Failures after Welcome, clocks, stores and servers that misbehave: the client must keep its
// promises (nothing lost, no loop, no hang, nothing left unsettled) through each of them.
describe("khala-client under failures", () => {
  it("backs off (growing, and at least Retry-After) when every connection fails after Welcome: a snapshot fetch answering 503", async () => {
    const topic = "runtime.run_summaries:user:r1"
    await server.publish(topic, [{ docKey: "a", docVersion: 1, payload: {} }])
    const store = memoryStore()
    await store.apply(topic, { epoch: "other_epoch", watermark: 1n, upserts: [] })
    let fetches = 0
    const client = createClient({
      url: server.url, snapshotBaseUrl: server.httpUrl, tokenProvider: () => TestServer.token("r1"), WebSocket: WS, store,
      random: () => 0.99, backoff: { initialDelayMs: 50, maxDelayMs: 5000 },
      fetch: (async () => { fetches++; return new Response("busy", { status: 503, headers: { "retry-after": "5" } }) }) as any
    })
    client.subscribe(topic)
    await sleep(3000)
    await client.close()
    // The floor of Retry-After: 5 s: one fetch, then nothing for 3 s. (Growing backoff alone,
    // 49, 99, 198, 396, 792, 1584 ms, would allow ~7; resetting it at every Welcome allowed 55.)
    expect(fetches).toBe(1)
  })

  it("announces the documents it restored from the store, so the Effect stream shows them", async () => {
    const topic = "runtime.run_summaries:user:r2"
    await server.publish(topic, [{ docKey: "a", docVersion: 1, payload: { v: 1 } }])
    const store = memoryStore()
    const first = createClient({ url: server.url, tokenProvider: () => TestServer.token("r2"), WebSocket: WS, store: { load: store.load, apply: store.apply, clear: store.clear } })
    first.subscribe(topic)
    await first.live(topic)
    await first.close()
    // A store that loads slowly (IndexedDB on a busy device): the stream starts before the documents are in.
    const slow: SyncStore = { ...store, load: async (t) => (await sleep(100), store.load(t)) }
    const second = createClient({ url: server.url, tokenProvider: () => TestServer.token("r2"), WebSocket: WS, store: slow })
    const events: Array<ClientEvent> = []
    second.on((e) => events.push(e))
    const seen: Array<number> = []
    second.subscribe(topic)
    const fiber = Effect.runFork(KhalaEffect.documents(topic).pipe(Stream.runForEach((m) => Effect.sync(() => seen.push(m.size))), Effect.provideService(KhalaEffect.KhalaSync, second)))
    await second.live(topic)
    await sleep(300)
    await Effect.runPromise(Fiber.interrupt(fiber))
    await second.close()
    expect(seen.at(-1)).toBe(1)
    // Announced as restored, not as a change: nothing was applied, and an app that handles each
    // change as new updates (examples/node-tail) must not see the stored documents again.
    expect(events.filter((e) => e.type === "restored")).toEqual([{ type: "restored", topic, watermark: 1n, documents: 1 }])
    expect(events.filter((e) => e.type === "change")).toEqual([])
  })

  it("settles live(): rejects it when the server refuses the topic, when the client closes, and when the topic is unsubscribed", async () => {
    const topic = "runtime.run_summaries:user:someone_else"
    const client = createClient({ url: server.url, tokenProvider: () => TestServer.token("r3"), WebSocket: WS })
    const errs: Array<string> = []
    client.on((e) => e.type === "error" && errs.push(e.error.code))
    client.subscribe(topic)
    const outcome = await Promise.race([client.live(topic).then(() => "resolved", () => "rejected"), sleep(2000).then(() => "pending")])
    await client.close()
    const afterClose = await Promise.race([client.live(topic).then(() => "resolved", () => "rejected"), sleep(300).then(() => "pending")])
    expect(errs).toEqual(["forbidden_topic"])
    expect(outcome).toBe("rejected")
    expect(afterClose).toBe("rejected")
    // Pending when the client closes, and when the topic is dropped.
    const other = createClient({ url: server.url, tokenProvider: () => TestServer.token("r3"), WebSocket: WS, requestTimeoutMs: 60_000 })
    other.subscribe("runtime.notifications:user:r3")
    const beforeLive = other.live("runtime.notifications:user:r3")
    other.unsubscribe("runtime.notifications:user:r3")
    await expect(beforeLive).rejects.toMatchObject({ code: "not_subscribed" })
    other.subscribe("runtime.run_summaries:user:r3")
    const pending = other.live("runtime.run_summaries:user:r3").then(() => "resolved", (e) => e.code)
    await other.close()
    expect(["resolved", "closed"]).toContain(await pending)
    // The Effect API fails with the typed error instead of dying.
    const refused = createClient({ url: server.url, tokenProvider: () => TestServer.token("r3"), WebSocket: WS })
    const exit = await Effect.runPromiseExit(KhalaEffect.live(topic).pipe(Effect.provideService(KhalaEffect.KhalaSync, refused)))
    await refused.close()
    expect(exit._tag).toBe("Failure")
    expect(JSON.stringify(exit)).toContain("forbidden_topic")
  })

  it("syncs a topic whose stored record cannot be loaded from the start, without blocking the others or an unhandled rejection", async () => {
    const unhandled: Array<unknown> = []
    const onUnhandled = (e: unknown) => void unhandled.push(e)
    process.on("unhandledRejection", onUnhandled)
    const good = "runtime.run_summaries:user:r4"
    const bad = "runtime.notifications:user:r4"
    await server.publish(good, [{ docKey: "a", docVersion: 1, payload: {} }])
    const inner = memoryStore()
    // A corrupt record: it can be neither read nor updated until it is cleared.
    let corrupt = true
    const store: SyncStore = {
      load: async (t) => {
        if (t === bad && corrupt) throw new Error("corrupt record")
        return inner.load(t)
      },
      apply: async (t, change) => {
        if (t === bad && corrupt) throw new Error("corrupt record")
        return inner.apply(t, change)
      },
      clear: async (t) => {
        if (t === bad) corrupt = false
        return inner.clear(t)
      }
    }
    const client = createClient({ url: server.url, tokenProvider: () => TestServer.token("r4"), WebSocket: WS, store })
    await server.publish(bad, [{ docKey: "b", docVersion: 1, payload: {} }])
    const errors: Array<string> = []
    client.on((e) => e.type === "error" && errors.push(`${e.error.code} ${e.error.topics.join(",")}`))
    client.subscribe(bad)
    client.subscribe(good)
    const outcome = await Promise.race([Promise.all([client.live(good), client.live(bad)]).then(() => "live"), sleep(2000).then(() => "stuck")])
    const badDocs = [...client.documents(bad).keys()]
    await client.close()
    process.off("unhandledRejection", onUnhandled)
    expect(outcome).toBe("live")
    expect(badDocs).toEqual(["b"])
    expect(errors).toEqual([`store_failed ${bad}`])
    expect(unhandled).toEqual([])
  }, 10_000)

  it("keeps a bounded set of timers on a long healthy connection", async () => {
    const topic = "runtime.notifications:user:r5"
    const client = createClient({ url: server.url, tokenProvider: () => TestServer.token("r5"), WebSocket: WS })
    client.subscribe(topic)
    await client.live(topic)
    const n0 = (client as any).timers.size
    await sleep(4000)
    const n1 = (client as any).timers.size
    await client.close()
    expect(n1 - n0).toBeLessThan(3)
  }, 10_000)

  it("abandons a server that accepts the TCP connection but never answers the upgrade, and tries again", async () => {
    let connections = 0
    const tcp = createServer((s) => { connections++; s.on("error", () => {}) })
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", () => r()))
    const port = (tcp.address() as any).port
    const client = createClient({ url: `ws://127.0.0.1:${port}/sync/v1/ws`, tokenProvider: () => "t", WebSocket: WS, requestTimeoutMs: 300, silenceTimeoutMs: 300, backoff: { initialDelayMs: 10, maxDelayMs: 20 } })
    client.subscribe("runtime.notifications:user:x")
    await sleep(3000)
    const s = client.status
    await client.close()
    tcp.close()
    expect(connections).toBeGreaterThan(1)
    expect(s).not.toBe("connecting")
  }, 10_000)

  it("applies a batch of the previous connection under that connection's epoch, and resumes after it (a journal restore between)", async () => {
    const topic = "runtime.run_summaries:user:r8"
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => "khala.v1+proto" })
    await new Promise((r) => wss.once("listening", r))
    let n = 0
    const cursors: Array<unknown> = []
    const ev = (w: number, key: string, payload: string) => ({ topic, watermark: BigInt(w), docKey: key, docVersion: 1n, payload, payloadHash: null, payloadBytes: payload.length, insertedAt: new Date() })
    wss.on("connection", (ws) => {
      const epoch = ++n === 1 ? "A" : "B"
      ws.on("message", (data: Buffer) => {
        const f = SyncWire.decodeClientFrame(new Uint8Array(data), "binary") as any
        if (f.kind === "hello") ws.send(SyncWire.welcome("binary", { $typeName: "openagents.sync.v1.Welcome", connectionId: "c", grantedScopes: [], grantedTopics: [], heartbeatIntervalMs: 15000, idleTimeoutMs: 60000, journalEpoch: epoch, tokenExpiresAtMs: 0n, protocolVersion: "khala.ws.v1", schemaVersion: 1, serverTimeMs: BigInt(Date.now()) } as any) as any)
        if (f.kind === "subscribe") {
          cursors.push(f.subscribe.resumeAfter.map((c: any) => [c.watermark, c.epoch]))
          ws.send(SyncWire.subscribed("binary", { requestId: f.subscribe.requestId, topics: [topic] }) as any)
          ws.send(SyncWire.updateBatch("binary", topic, [ev(1, `doc_${epoch}`, `{"epoch":"${epoch}"}`)], true, 1n, epoch) as any)
          if (epoch === "A") setTimeout(() => ws.close(4005, "journal epoch changed"), 5)
        }
      })
    })
    const inner = memoryStore()
    const store: SyncStore = { ...inner, apply: async (t, c) => { await sleep(200); return inner.apply(t, c) } }
    const client = createClient({ url: `ws://127.0.0.1:${(wss.address() as any).port}/sync/v1/ws`, tokenProvider: () => "t", WebSocket: WS, store, backoff: { initialDelayMs: 1, maxDelayMs: 1 } })
    client.subscribe(topic)
    await until(() => n >= 2 && client.watermark(topic) === 1n)
    await sleep(500)
    const stored = await inner.load(topic)
    await client.close()
    wss.close()
    // A's document under A's epoch, and the resume cursor sent to B includes it (so a real server
    // answers epoch_mismatch and the client recovers by snapshot). Before: A's document was stored
    // under B's epoch, and B's own watermark-1 event dropped as a duplicate of it.
    expect(stored?.epoch).toBe("A")
    expect(stored?.documents.map((d) => d.payload)).toEqual(['{"epoch":"A"}'])
    expect(cursors[1]).toEqual([[1n, "A"]])
  })

  it("shows the documents restored from the store in useTopic, when the server has nothing newer", async () => {
    const topic = "runtime.run_summaries:user:r2b"
    await server.publish(topic, [{ docKey: "a", docVersion: 1, payload: { v: 1 } }])
    const inner = memoryStore()
    const first = createClient({ url: server.url, tokenProvider: () => TestServer.token("r2b"), WebSocket: WS, store: inner })
    first.subscribe(topic)
    await first.live(topic)
    await first.close()
    const store: SyncStore = { ...inner, load: (t) => inner.load(t) }
    const second = createClient({ url: server.url, tokenProvider: () => TestServer.token("r2b"), WebSocket: WS, store })
    const renders: Array<number> = []
    const View = () => { const docs = useTopic(second, topic); renders.push(docs.length); return createElement("span", null, String(docs.length)) }
    let r: any
    await act(async () => { r = TestRenderer.create(createElement(View)) })
    await second.live(topic)
    await act(async () => { await sleep(300) })
    const last = renders.at(-1)
    act(() => r.unmount())
    await second.close()
    expect(last).toBe(1)
  })

  it("refreshes by the server's clock: a device clock 400 s ahead (300 s tokens) does not refresh in a loop", async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => "khala.v1+proto" })
    await new Promise((r) => wss.once("listening", r))
    const skewedExpiry = () => BigInt(Date.now() + 300_000 - 400_000)
    let refreshes = 0
    wss.on("connection", (ws) => {
      ws.on("message", (data: Buffer) => {
        const f = SyncWire.decodeClientFrame(new Uint8Array(data), "binary") as any
        if (f.kind === "hello") ws.send(SyncWire.welcome("binary", { $typeName: "openagents.sync.v1.Welcome", connectionId: "c", grantedScopes: [], grantedTopics: [], heartbeatIntervalMs: 15000, idleTimeoutMs: 60000, journalEpoch: "A", tokenExpiresAtMs: skewedExpiry(), protocolVersion: "khala.ws.v1", schemaVersion: 1, serverTimeMs: BigInt(Date.now() - 400_000) } as any) as any)
        if (f.kind === "refresh_token") { refreshes++; ws.send(SyncWire.tokenRefreshed("binary", Number(skewedExpiry()), f.refresh.requestId) as any) }
      })
    })
    let provided = 0
    const client = createClient({ url: `ws://127.0.0.1:${(wss.address() as any).port}/sync/v1/ws`, tokenProvider: () => (provided++, "t"), WebSocket: WS })
    client.connect()
    await sleep(1000)
    await client.close()
    wss.close()
    expect(refreshes).toBe(0)
    expect(provided).toBe(1)
  })

  it("never refreshes in a loop when the server reports an expiry that has already passed", async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => "khala.v1+proto" })
    await new Promise((r) => wss.once("listening", r))
    const past = () => BigInt(Date.now() - 1_000)
    let refreshes = 0
    wss.on("connection", (ws) => {
      ws.on("message", (data: Buffer) => {
        const f = SyncWire.decodeClientFrame(new Uint8Array(data), "binary") as any
        // No server time: the client cannot correct its clock, and the expiry is always past.
        if (f.kind === "hello") ws.send(SyncWire.welcome("binary", { $typeName: "openagents.sync.v1.Welcome", connectionId: "c", grantedScopes: [], grantedTopics: [], heartbeatIntervalMs: 15000, idleTimeoutMs: 60000, journalEpoch: "A", tokenExpiresAtMs: past(), protocolVersion: "khala.ws.v1", schemaVersion: 1, serverTimeMs: 0n } as any) as any)
        if (f.kind === "refresh_token") { refreshes++; ws.send(SyncWire.tokenRefreshed("binary", Number(past()), f.refresh.requestId) as any) }
      })
    })
    const client = createClient({ url: `ws://127.0.0.1:${(wss.address() as any).port}/sync/v1/ws`, tokenProvider: () => "t", WebSocket: WS })
    client.connect()
    await sleep(1000)
    await client.close()
    wss.close()
    expect(refreshes).toBe(1)
  })

  it("gives up on a snapshot fetch that never answers, and recovers through a reconnect", async () => {
    const topic = "runtime.run_summaries:user:r10"
    await server.publish(topic, [{ docKey: "a", docVersion: 1, payload: {} }])
    const store = memoryStore()
    await store.apply(topic, { epoch: "other_epoch", watermark: 1n, upserts: [] })
    const client = createClient({ url: server.url, snapshotBaseUrl: server.httpUrl, tokenProvider: () => TestServer.token("r10"), WebSocket: WS, store,
      requestTimeoutMs: 500, snapshotTimeoutMs: 300, backoff: { initialDelayMs: 20, maxDelayMs: 50 },
      fetch: ((_url: string, init: RequestInit) => new Promise((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(new Error("aborted"))))) as any })
    const errs: Array<string> = []
    client.on((e) => e.type === "error" && errs.push(e.error.code))
    client.subscribe(topic)
    await sleep(3000)
    await client.close()
    // Each attempt times out and is reported; the client reconnects and tries again.
    expect(errs.filter((c) => c === "snapshot_failed").length).toBeGreaterThanOrEqual(2)
  })
})
