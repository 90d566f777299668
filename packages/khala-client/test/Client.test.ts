// The client against the real Khala server over real sockets.
import { type ClientEvent, createClient, memoryStore } from "@openagents/khala-client"
import { fileStore, removeStore } from "@openagents/khala-client/node"
import { Errors, MemoryStorage, Storage, WsTransport } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { WebSocketServer } from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { clientFor, docsOf, head, readModel, recording, sleep, until, WS } from "./support.js"

describe("khala-client against the server", () => {
  let server: TestServer.TestServer
  beforeAll(async () => {
    server = await TestServer.start({ server: { tickMs: 20, pollIntervalMs: 100 } })
  })
  afterAll(() => server.dispose())

  it("replays, goes live, and keeps documents by key with the newest version", async () => {
    const topic = "runtime.run_summaries:user:c1"
    await server.publish(topic, [{ docKey: "run:1", docVersion: 1, payload: { status: "queued" } }])
    const client = clientFor(server, "c1")
    const statuses: Array<string> = []
    client.on((e) => e.type === "status" && statuses.push(e.status))
    client.subscribe(topic)
    await client.live(topic)
    expect(client.documents(topic).get("run:1")?.value).toEqual({ status: "queued" })
    await server.publish(topic, [{ docKey: "run:1", docVersion: 2, payload: { status: "running" } }, { docKey: "run:2", docVersion: 1, payload: { status: "queued" } }])
    await until(() => client.watermark(topic) === 3n)
    expect(docsOf(client, topic)).toEqual(await readModel(server, topic))
    expect(statuses).toEqual(["connecting", "connected"])
    await client.close()
    expect(client.status).toBe("closed")
  })

  it("retries a subscribe the server could not serve (its storage failed under it) on the same connection, and goes live", async () => {
    // Positions fail on the second and third call after arming: the resume check passes, the
    // hub's activation of the topic fails, then the first retry's resume check fails too.
    let calls = -1
    const flaky = Layer.effect(Storage.KhalaStorage, Effect.map(MemoryStorage.make, (s) => ({
      ...s,
      positions: (topics: ReadonlyArray<string>) =>
        calls >= 0 && ++calls >= 2 && calls <= 3
          ? Effect.fail(new Errors.JournalStorageError({ operation: "positions", cause: "transient" }))
          : s.positions(topics)
    })))
    const local = await TestServer.start({ transport: WsTransport.transport, storage: flaky, server: { tickMs: 20, pollIntervalMs: 100 } })
    try {
      const topic = "runtime.run_summaries:user:c9"
      await local.publish(topic, [{ docKey: "run:1", docVersion: 1, payload: { status: "queued" } }])
      const client = createClient({ url: local.url, tokenProvider: () => TestServer.token("c9"), WebSocket: WS, store: memoryStore() })
      const events: Array<ClientEvent> = []
      client.on((e) => void events.push(e))
      calls = 0
      client.subscribe(topic)
      await client.live(topic)
      expect(client.documents(topic).get("run:1")?.value).toEqual({ status: "queued" })
      expect(events.filter((e) => e.type === "error").map((e) => (e as any).error.code)).toEqual(["internal", "internal"])
      expect(events.filter((e) => e.type === "status").map((e) => (e as any).status)).toEqual(["connecting", "connected"])
      await local.publish(topic, [{ docKey: "run:1", docVersion: 2, payload: { status: "running" } }])
      await until(() => client.watermark(topic) === 2n)
      await client.close()
    } finally {
      await local.dispose()
    }
  })

  it("converges to the read model exactly, applying nothing twice, when the server is killed mid-stream and restarted", async () => {
    // The ws transport restarts on the same port at once (uWS waits out TIME_WAIT: see Transport.ts).
    const local = await TestServer.start({ transport: WsTransport.transport, server: { tickMs: 20, pollIntervalMs: 100 } })
    let current = local
    try {
      const topic = "runtime.run_summaries:user:c2"
      const { applies, store } = recording(memoryStore())
      const client = createClient({ url: local.url, snapshotBaseUrl: local.httpUrl, tokenProvider: () => TestServer.token("c2"), WebSocket: WS, store, backoff: { initialDelayMs: 20, maxDelayMs: 100 } })
      client.subscribe(topic)
      await client.live(topic)
      const writer = (async () => {
        for (let i = 0; i < 60; i++) {
          await current.publish(topic, [{ docKey: `d${i % 9}`, docVersion: i + 1, payload: { i } }]).catch(() => undefined)
          if (i === 25) current = await current.restart()
          await sleep(2)
        }
      })()
      await writer
      const h = await head(current, topic)
      await until(() => client.watermark(topic) === h, 15_000, "client caught up after restart")
      expect(docsOf(client, topic)).toEqual(await readModel(current, topic))
      const watermarks = applies.map((a) => a.change.watermark)
      for (let i = 1; i < watermarks.length; i++) expect(watermarks[i]! > watermarks[i - 1]!).toBe(true)
      await client.close()
    } finally {
      await current.dispose()
    }
  })

  it("keeps its file store across a process restart and resumes without skipping, even after a crash between receive and persist", async () => {
    const dir = mkdtempSync(join(tmpdir(), "khala-client-"))
    try {
      const topic = "runtime.notifications:user:c3"
      for (let i = 1; i <= 5; i++) await server.publish(topic, [{ docKey: `n${i}`, docVersion: 1, payload: { i } }])
      // Session 1 applies and persists; then "crashes" on the next apply (the store never writes).
      let crashed = false
      const disk = fileStore({ directory: dir })
      const crashing = { ...disk, apply: async (t: string, c: any) => (crashed ? new Promise<void>(() => {}) : disk.apply(t, c)) }
      const first = createClient({ url: server.url, tokenProvider: () => TestServer.token("c3"), WebSocket: WS, store: crashing })
      first.subscribe(topic)
      await until(() => first.watermark(topic) === 5n)
      crashed = true
      for (let i = 6; i <= 8; i++) await server.publish(topic, [{ docKey: `n${i}`, docVersion: 1, payload: { i } }])
      await sleep(200)
      expect(first.watermark(topic)).toBe(5n) // received 6..8, never persisted
      // A crashed process does not close: abandon it (its socket is dropped with the test).
      void first.close()
      // Session 2: a new process, the same directory.
      const reopened = fileStore({ directory: dir })
      expect((await reopened.load(topic))?.watermark).toBe(5n)
      for (let i = 9; i <= 10; i++) await server.publish(topic, [{ docKey: `n${i}`, docVersion: 1, payload: { i } }])
      const second = createClient({ url: server.url, tokenProvider: () => TestServer.token("c3"), WebSocket: WS, store: reopened })
      second.subscribe(topic)
      await until(() => second.watermark(topic) === 10n)
      expect(docsOf(second, topic)).toEqual(await readModel(server, topic))
      await second.close()
      expect((await fileStore({ directory: dir }).load(topic))?.watermark).toBe(10n)
    } finally {
      removeStore(dir)
    }
  })

  it("recovers from a stale cursor by snapshot, by itself, and reports resynced", async () => {
    const topic = "runtime.run_summaries:user:c4"
    const store = memoryStore()
    await store.apply(topic, { epoch: "ep_from_a_restored_backup", watermark: 3n, upserts: [{ docKey: "ghost", docVersion: 1n, payload: `{"old":true}` }] })
    await server.publish(topic, [{ docKey: "real", docVersion: 1, payload: { fresh: true } }])
    const client = clientFor(server, "c4", { store })
    const events: Array<ClientEvent> = []
    client.on((e) => events.push(e))
    client.subscribe(topic)
    await until(() => events.some((e) => e.type === "resynced"))
    await client.live(topic)
    expect(events.find((e) => e.type === "resynced")).toMatchObject({ topic, via: "snapshot", gap: false })
    expect(docsOf(client, topic)).toEqual(await readModel(server, topic))
    expect(events.filter((e) => e.type === "error")).toEqual([])
    await server.publish(topic, [{ docKey: "real", docVersion: 2, payload: { fresh: "er" } }])
    await until(() => client.documents(topic).get("real")?.docVersion === 2n)
    await client.close()
  })

  it("refreshes its token on the open socket and stays connected past the first token's expiry", async () => {
    const topic = "runtime.notifications:user:c5"
    let issued = 0
    const client = createClient({ url: server.url, tokenProvider: () => (issued++, TestServer.token("c5", {}, 2)), WebSocket: WS })
    let reconnects = 0
    client.on((e) => e.type === "status" && e.status === "reconnecting" && reconnects++)
    client.subscribe(topic)
    await client.live(topic)
    await sleep(3500)
    await server.publish(topic, [{ docKey: "after", docVersion: 1, payload: {} }])
    await until(() => client.documents(topic).has("after"))
    expect(reconnects).toBe(0)
    expect(issued).toBeGreaterThanOrEqual(2)
    await client.close()
  })

  it("reports reauth_required once and does not retry", async () => {
    const topic = "runtime.notifications:user:c6"
    const client = clientFor(server, "c6")
    const events: Array<ClientEvent> = []
    client.on((e) => events.push(e))
    client.subscribe(topic)
    await client.live(topic)
    await server.run(server.server.revoke({ sessionIds: ["sess_c6"], deviceIds: [], reason: "user_requested" }))
    await until(() => client.status === "closed")
    await sleep(300)
    expect(events.filter((e) => e.type === "reauth_required").length).toBe(1)
    expect(events.filter((e) => e.type === "status" && e.status === "reconnecting")).toEqual([])
  })

  it("waits out retry_after_ms when the server cannot check revocation, then connects", async () => {
    let failures = 2
    const attempts: Array<number> = []
    const gated = await TestServer.start({
      transport: WsTransport.transport,
      server: {
        sessionRevoked: () => Effect.suspend(() => {
          attempts.push(Date.now())
          return failures-- > 0 ? Effect.fail(new Error("database unreachable")) : Effect.succeed(false)
        })
      }
    })
    try {
      const topic = "runtime.notifications:user:c7"
      const client = createClient({ url: gated.url, tokenProvider: () => TestServer.token("c7"), WebSocket: WS, backoff: { initialDelayMs: 10, maxDelayMs: 50 } })
      const events: Array<ClientEvent> = []
      client.on((e) => events.push(e))
      client.subscribe(topic)
      await client.live(topic)
      expect(attempts.length).toBe(3)
      // The backoff alone would retry within 50 ms; the server asked for 1,000.
      for (let i = 1; i < attempts.length; i++) expect(attempts[i]! - attempts[i - 1]!).toBeGreaterThanOrEqual(900)
      expect(events.filter((e) => e.type === "error").length).toBe(2)
      await client.close()
    } finally {
      await gated.dispose()
    }
  })

  it("keeps only a topic's newest documents in memory and in the store when asked, and resumes without refetching the rest", async () => {
    const topic = "runtime.notifications:user:c9"
    const store = memoryStore()
    const keepNewest = (t: string) => (t === topic ? 5 : undefined)
    // Versions out of key order: the newest by doc_version are e20..e24.
    for (let i = 0; i < 25; i++) await server.publish(topic, [{ docKey: `e${(i * 7) % 25}`, docVersion: 100 + i, payload: { i } }])
    const first = clientFor(server, "c9", { store, keepNewest })
    first.subscribe(topic)
    await first.live(topic)
    const newest = Array.from({ length: 5 }, (_, j) => `e${((20 + j) * 7) % 25}`).sort()
    const held = [...first.documents(topic).keys()].sort()
    expect(held.length).toBeGreaterThanOrEqual(5)
    expect(held.length).toBeLessThanOrEqual(10)
    for (const key of newest) expect(held).toContain(key)
    for (let i = 25; i < 40; i++) await server.publish(topic, [{ docKey: `n${i}`, docVersion: 100 + i, payload: { i } }])
    await until(() => first.watermark(topic) === 40n)
    expect(first.documents(topic).size).toBeLessThanOrEqual(10)
    await first.close()
    const stored = (await store.load(topic))!
    expect(stored.watermark).toBe(40n)
    expect(stored.documents.length).toBeLessThanOrEqual(10)
    expect(stored.documents.map((d) => d.docKey)).toEqual(expect.arrayContaining(["n35", "n36", "n37", "n38", "n39"]))
    // A new client on the same store resumes at 40: nothing trimmed comes back.
    const { applies, store: watched } = recording(store)
    const second = clientFor(server, "c9", { store: watched, keepNewest })
    second.subscribe(topic)
    await second.live(topic)
    await server.publish(topic, [{ docKey: "n40", docVersion: 140, payload: { i: 40 } }])
    await until(() => second.watermark(topic) === 41n)
    expect(applies.flatMap((a) => a.change.upserts.map((d) => d.docKey)).filter((k) => k.startsWith("e"))).toEqual([])
    await second.close()
  })

  it("reports upgrade_required from a gated server and stops", async () => {
    const gated = await TestServer.start({ server: { session: { gate: { protocolVersion: "khala.ws.v1", minClientBuildId: "20300101T000000Z", maxClientBuildId: "", minSchemaVersion: 1, maxSchemaVersion: 1 } } } })
    try {
      const client = createClient({ url: gated.url, tokenProvider: () => TestServer.token("c7"), WebSocket: WS, client: { buildId: "20261124T000000Z" } })
      const events: Array<ClientEvent> = []
      client.on((e) => events.push(e))
      client.subscribe("runtime.notifications:user:c7")
      await until(() => client.status === "closed")
      expect(events.find((e) => e.type === "upgrade_required")).toMatchObject({ details: { minClientBuildId: "20300101T000000Z" } })
    } finally {
      await gated.dispose()
    }
  })

  it("abandons a server that stops answering while its socket stays open, and reconnects", async () => {
    let connections = 0
    const silent = new WebSocketServer({ host: "127.0.0.1", port: 0 })
    await new Promise((r) => silent.once("listening", r))
    silent.on("connection", () => {
      connections++ // accepts, then never says anything
    })
    try {
      const port = (silent.address() as { port: number }).port
      const client = createClient({ url: `ws://127.0.0.1:${port}/sync/v1/ws`, tokenProvider: () => "t", WebSocket: WS, silenceTimeoutMs: 300, backoff: { initialDelayMs: 10, maxDelayMs: 20 } })
      const errors: Array<string> = []
      client.on((e) => e.type === "error" && errors.push(e.error.code))
      client.subscribe("runtime.notifications:user:x")
      await until(() => connections >= 2, 5000, "a second connection attempt")
      expect(errors).toContain("server_silent")
      await client.close()
    } finally {
      silent.close()
    }
  })
})
