// Races between a subscribe in flight and what happens meanwhile: the storage failing under it, a
// token refresh narrowing the grants, a transaction that rolls back. Each of these once lost or
// leaked events (found by review; every test here failed on the code before its fix).
import { TestClient } from "@openagents/khala-core/testing"
import { FrameKind, SyncErrorCode } from "@openagents/proto/sync/v1"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { describe, expect, it } from "vitest"
import { WsTransport } from "../src/index.js"
import { JournalStorageError } from "../src/Errors.js"
import { Publisher } from "../src/Publisher.js"
import { KhalaStorage } from "../src/Storage.js"
import * as MemoryStorage from "../src/storage/memory.js"
import * as TopicAuthorizer from "../src/TopicAuthorizer.js"
import { sleep, start, tokenFor } from "./support/harness.js"

/** Memory storage whose `positions` fails on the calls `failOn` picks (a transient storage error). */
const flakyPositions = (failOn: (call: number) => boolean) => {
  let calls = 0
  const layer = Layer.effect(KhalaStorage, Effect.map(MemoryStorage.make, (s) => ({
    ...s,
    positions: (topics: ReadonlyArray<string>) =>
      failOn(++calls)
        ? Effect.zipRight(Effect.sleep("5 millis"), Effect.fail(new JournalStorageError({ operation: "positions", cause: "transient" })))
        : s.positions(topics)
  })))
  return { layer, reset: () => void (calls = 0) }
}

describe("khala server races", () => {
  it("a subscribe whose topic position cannot be read is refused with a retry, and leaves no hold on the topic that could later cut off another connection", async () => {
    // Call 1 is the resume check, call 2 the hub's activation of the topic: that one fails once.
    const flaky = flakyPositions((call) => call === 2)
    const h = await start({ transport: WsTransport.transport, storage: flaky.layer, server: { pollIntervalMs: 100, tickMs: 50 } })
    try {
      const topic = "runtime.run_summaries:user:u5"
      const token = await tokenFor("u5")
      const a = await TestClient.connect(h.url)
      await a.hello(token)
      flaky.reset()
      const refused = await a.subscribe([topic], "a")
      expect(refused.kind).toBe(FrameKind.ERROR)
      expect(refused.message).toMatchObject({ code: SyncErrorCode.INTERNAL, requestId: "a", retryAfterMs: 1000 })

      const b = await TestClient.connect(h.url)
      await b.hello(token)
      expect((await b.subscribe([topic], "b")).kind).toBe(FrameKind.SUBSCRIBED)
      await b.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.replayComplete)
      await h.publish(topic, [{ docKey: "x", docVersion: 1, payload: {} }])
      await b.until(topic, 1n, 2000)
      // A retries and is served; then it leaves. B must keep receiving.
      expect((await a.subscribe([topic], "a2")).kind).toBe(FrameKind.SUBSCRIBED)
      await a.close()
      await sleep(100)
      await h.publish(topic, [{ docKey: "y", docVersion: 2, payload: {} }])
      await b.until(topic, 2n, 2000)
      expect(b.lastApplied.get(topic)).toBe(2n)
      await b.close()
    } finally {
      await h.dispose()
    }
  })

  it("a token refresh that narrows the scopes while a subscribe awaits its ownership lookup refuses that subscribe", async () => {
    const authorizer = TopicAuthorizer.layerWithOwners((_p, _id) => Effect.as(Effect.sleep("150 millis"), "u1"))
    const h = await start({ transport: WsTransport.transport, authorizer })
    try {
      const topic = "runtime.codex_worker_events:worker:w1"
      const c = await TestClient.connect(h.url)
      await c.hello(await tokenFor("u1"))
      const narrowed = await tokenFor("u1", { oa_sync_scopes: ["runtime.run_summaries"] })
      c.send("subscribe", { topics: [topic], resumeAfter: [], requestId: "s1" })
      await sleep(20)
      c.send("refresh_token", { token: narrowed, requestId: "rt" })
      await c.next((f) => f.kind === FrameKind.TOKEN_REFRESHED)
      const answer = await c.next((f) => (f.kind === FrameKind.SUBSCRIBED || f.kind === FrameKind.ERROR) && f.message.requestId === "s1")
      expect(answer.kind).toBe(FrameKind.ERROR)
      expect(answer.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
      await h.append(topic, [{ docKey: "e1", docVersion: 1, payload: { secret: true } }])
      await sleep(300)
      expect(c.applied.get(topic) ?? []).toEqual([])
      await c.close()
    } finally {
      await h.dispose()
    }
  })

  it("memory storage: a transaction's writes are not visible (nor delivered) until it commits, and a rollback un-publishes nothing", async () => {
    const h = await start({ transport: WsTransport.transport, server: { pollIntervalMs: 50, tickMs: 50 } })
    try {
      const topic = "runtime.run_summaries:user:u3"
      const c = await TestClient.connect(h.url)
      await c.hello(await tokenFor("u3"))
      await c.subscribe([topic])
      await h.run(Effect.flatMap(Publisher, (p) =>
        p.transaction(Effect.gen(function*() {
          yield* p.publish(topic, [{ docKey: "phantom", docVersion: 1, payload: { rolledBack: true } }])
          // Long enough for the hub's head poll to look.
          yield* Effect.sleep("300 millis")
          return yield* Effect.fail("abort")
        })))).catch(() => undefined)
      await h.publish(topic, [{ docKey: "real", docVersion: 1, payload: { committed: true } }])
      await c.until(topic, 1n, 2000)
      await sleep(200)
      expect(c.applied.get(topic)?.map((u) => u.docKey)).toEqual(["real"])
      await c.close()
    } finally {
      await h.dispose()
    }
  })

  it("a revocation announced while the hello's revocation lookup runs still cuts the connection", async () => {
    const h = await start({
      transport: WsTransport.transport,
      server: { sessionRevoked: () => Effect.as(Effect.sleep("150 millis"), false) }
    })
    try {
      const c = await TestClient.connect(h.url)
      const welcome = c.hello(await tokenFor("hr", { oa_session_id: "sess_racing" }))
      await sleep(50) // the lookup is running: the connection has no principal yet
      await Effect.runPromise(h.server.revoke({ sessionIds: ["sess_racing"], deviceIds: [], reason: "user_requested" }))
      await welcome.catch(() => undefined)
      const closed = await Promise.race([c.closed, sleep(3000).then(() => ({ code: 0, reason: "still open after 3 s" }))])
      expect([closed.code, closed.reason]).toEqual([4501, expect.stringContaining("reauth_required")])
    } finally {
      await h.dispose()
    }
  })

  it("the snapshot endpoint refuses a revoked session — announced on the open server or only in the durable record — and fails closed when the record is unreachable", async () => {
    let down = false
    const h = await start({
      transport: WsTransport.transport,
      server: { sessionRevoked: (id) => (down ? Effect.fail(new Error("database unreachable")) : Effect.succeed(id === "sess_durable")) }
    })
    try {
      const topic = "runtime.run_summaries:user:rv"
      await h.publish(topic, [{ docKey: "x", docVersion: 1, payload: { secret: 1 } }])
      const snapshot = (token: string) => fetch(`${h.httpUrl}/sync/v1/snapshot/${encodeURIComponent(topic)}`, { headers: { authorization: `Bearer ${token}` } })
      const live = await tokenFor("rv", { oa_session_id: "sess_live" })
      expect((await snapshot(live)).status).toBe(200)
      await Effect.runPromise(h.server.revoke({ sessionIds: ["sess_live"], deviceIds: [], reason: "user_requested" }))
      const announced = await snapshot(live)
      expect(announced.status).toBe(401)
      expect(((await announced.json()) as any).error.code).toBe("reauth_required")
      const durable = await snapshot(await tokenFor("rv", { oa_session_id: "sess_durable" }))
      expect(durable.status).toBe(401)
      // A device revocation reaches every session of the device.
      const device = await tokenFor("rv", { oa_session_id: "sess_other", oa_device_id: "dev_lost" })
      expect((await snapshot(device)).status).toBe(200)
      await Effect.runPromise(h.server.revoke({ sessionIds: [], deviceIds: ["dev_lost"], reason: "device_replaced" }))
      expect((await snapshot(device)).status).toBe(401)
      // Revoked for one user: that user's tokens on the device are refused, another user's on the same id are not.
      const mine = await tokenFor("rv", { oa_session_id: "sess_mine", oa_device_id: "dev_shared" })
      const theirs = await tokenFor("rw", { oa_session_id: "sess_theirs", oa_device_id: "dev_shared" })
      await Effect.runPromise(h.server.revoke({ sessionIds: [], deviceIds: ["dev_shared"], userId: "rv", reason: "user_requested" }))
      expect((await snapshot(mine)).status).toBe(401)
      const other = await fetch(`${h.httpUrl}/sync/v1/snapshot/${encodeURIComponent("runtime.run_summaries:user:rw")}`, { headers: { authorization: `Bearer ${theirs}` } })
      expect(other.status).toBe(200)
      down = true
      const unknown = await snapshot(await tokenFor("rv", { oa_session_id: "sess_fine" }))
      expect(unknown.status).toBe(503)
      expect(unknown.headers.get("retry-after")).toBe("1")
      expect(((await unknown.json()) as any).error.code).toBe("revocation_check_unavailable")
    } finally {
      await h.dispose()
    }
  })
})
