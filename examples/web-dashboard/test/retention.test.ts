// The dashboard's bound on its event topics (src/retention.ts: the client's `keepNewest` option),
// with the real client, a Khala test server and IndexedDB (fake-indexeddb in Node; no browser
// needed): a long event stream leaves at most 2 × KEPT_EVENTS documents in memory and in the
// store, the newest ones, with the watermark of the last event; a page reloaded from it resumes
// exactly after that watermark; summaries are never trimmed.
import { createClient, indexedDbStore, type SyncStore } from "@openagents/khala-client"
import { TopicAuthorizer } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import * as Effect from "effect/Effect"
import { IDBFactory } from "fake-indexeddb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { KEPT_EVENTS, keepNewest } from "../src/retention.js"

const EVENTS = "runtime.codex_worker_events:worker:w1"
const SUMMARIES = "runtime.codex_worker_summaries:user:u1"
const keep = KEPT_EVENTS
/** Events published: past two trims. */
const N = 4 * KEPT_EVENTS + 50

const until = async (what: string, f: () => boolean) => {
  for (const deadline = Date.now() + 10_000; !f(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
}

describe("web-dashboard retention", () => {
  let server: TestServer.TestServer
  const saved = (globalThis as { indexedDB?: unknown }).indexedDB

  beforeAll(async () => {
    ;(globalThis as { indexedDB?: unknown }).indexedDB = new IDBFactory()
    // Worker w1 belongs to user u1 (the runtime's ownership check, as the dashboard meets it).
    server = await TestServer.start({ authorizer: TopicAuthorizer.layerWithOwners((_, id) => Effect.succeed(id === "w1" ? "u1" : undefined)) })
  })
  afterAll(async () => {
    await server.dispose()
    ;(globalThis as { indexedDB?: unknown }).indexedDB = saved
  })

  const page = (store: SyncStore) => createClient({ url: server.url, tokenProvider: () => TestServer.token("u1"), WebSocket, store, keepNewest })
  const store = () => indexedDbStore({ name: "dashboard-retention" })
  const event = (seq: number) => ({ docKey: `runtime/codex_worker_event:w1:${seq}`, docVersion: seq, payload: { seq, eventType: "worker.output" } })

  it("keeps the newest events of an event topic in IndexedDB, and a reload resumes after the last one", async () => {
    const first = page(store())
    first.subscribe(EVENTS)
    first.subscribe(SUMMARIES)
    await first.live(EVENTS)
    // One event per append, as a worker produces them; and a summary document per append.
    for (let seq = 1; seq <= N; seq++) {
      await server.publish(EVENTS, [event(seq)])
      await server.publish(SUMMARIES, [{ docKey: `summary:${seq}`, docVersion: 1, payload: { seq } }])
    }
    await until(`${N} events applied`, () => first.watermark(EVENTS) === BigInt(N) && first.watermark(SUMMARIES) === BigInt(N))
    expect(first.documents(EVENTS).size).toBeLessThanOrEqual(2 * keep)
    await first.close()

    const stored = (await indexedDbStore({ name: "dashboard-retention" }).load(EVENTS))!
    expect(stored.watermark).toBe(BigInt(N))
    expect(stored.documents.length).toBeLessThanOrEqual(2 * keep)
    expect(stored.documents.length).toBeGreaterThanOrEqual(keep)
    const seqs = stored.documents.map((d) => Number(d.docVersion)).sort((a, b) => a - b)
    expect(seqs).toEqual(seqs.map((_, i) => N + 1 - seqs.length + i)) // the newest, without a hole
    expect((await indexedDbStore({ name: "dashboard-retention" }).load(SUMMARIES))!.documents.length).toBe(N)

    // A reload: the restored events, then exactly the next one.
    const second = page(store())
    second.subscribe(EVENTS)
    await second.live(EVENTS)
    expect(second.documents(EVENTS).size).toBe(stored.documents.length)
    await server.publish(EVENTS, [event(N + 1)])
    await until("the next event", () => second.watermark(EVENTS) === BigInt(N + 1))
    expect([...second.documents(EVENTS).keys()].at(-1)).toBe(`runtime/codex_worker_event:w1:${N + 1}`)
    await second.close()
  })
})
