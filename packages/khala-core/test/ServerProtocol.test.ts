// Protocol rules of the Khala server: auth, token lifetime, revocation, heartbeats, gates,
// limits, bad input, staleness, the JSON subprotocol, slow consumers, snapshots and metrics.
import { fromBinary } from "@bufbuild/protobuf"
import { Journal, Notifier, Retention, SyncToken, Topic, UwsTransport, WsTransport } from "@openagents/khala-core"
import { TestClient } from "@openagents/khala-core/testing"
import { Prometheus } from "@openagents/host-kit"
import { FrameKind, SnapshotResponseSchema, StaleReason, SyncErrorCode } from "@openagents/proto/sync/v1"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import WebSocket from "ws"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Harness, KEY, sleep, start, tokenFor } from "./support/harness.js"

describe("Khala server protocol", () => {
  let h: Harness
  beforeAll(async () => {
    h = await start({
      transport: UwsTransport.transport,
      server: {
        tickMs: 20,
        pollIntervalMs: 100,
        session: { heartbeatIntervalMs: 150, idleTimeoutMs: 2_000, maxTopicsPerConnection: 3, maxSubscribesPerSecond: 4 },
        maxInboundFrameBytes: 4096
      }
    })
  })
  afterAll(() => h.dispose())

  const refusedWith = async (token: string) => {
    const client = await TestClient.connect(h.url)
    const reply = await client.hello(token)
    const closed = await client.closed
    return { code: reply.message.code, reason: reply.message.details?.value?.reason, close: closed.code }
  }

  it("refuses expired, not-yet-valid, forged, unknown-kid, wrong-audience and alg:none tokens with their codes", async () => {
    const now = Math.floor(Date.now() / 1000)
    const good = await tokenFor("9")
    const [header, payload] = good.split(".")
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url")
    const forged = await Effect.runPromise(SyncToken.signHmac(JSON.parse(Buffer.from(payload!, "base64url").toString()), { kid: KEY.kid, secret: Redacted.make("f".repeat(40)) }))
    const cases = [
      [await tokenFor("9", { iat: now - 1000, exp: now - 600 }), SyncErrorCode.TOKEN_EXPIRED, 10, 4002],
      [await tokenFor("9", { iat: now + 600, nbf: now + 600, exp: now + 900 }), SyncErrorCode.UNAUTHORIZED, 11, 4500],
      [forged, SyncErrorCode.UNAUTHORIZED, 8, 4500],
      [await Effect.runPromise(SyncToken.signHmac(JSON.parse(Buffer.from(payload!, "base64url").toString()), { kid: "other", secret: KEY.secret })), SyncErrorCode.UNAUTHORIZED, 7, 4500],
      [await tokenFor("9", { aud: "someone-else" }), SyncErrorCode.UNAUTHORIZED, 12, 4500],
      [`${b64({ alg: "none", kid: KEY.kid })}.${payload}.${good.split(".")[2]}`, SyncErrorCode.UNAUTHORIZED, 5, 4500],
      ["", SyncErrorCode.UNAUTHORIZED, 1, 4500]
    ] as const
    void header
    for (const [token, code, reason, close] of cases) {
      expect(await refusedWith(token)).toEqual({ code, reason, close })
    }
  })

  it("cuts off a revoked session with reauth_required and refuses it on reconnect", async () => {
    const client = await TestClient.connect(h.url)
    await client.hello(await tokenFor("33", { oa_session_id: "sess_revoked" }))
    await client.subscribe(["runtime.run_summaries:user:33"])
    await h.run(h.server.revoke({ sessionIds: ["sess_revoked"], deviceIds: [], reason: "user_requested" }))
    const closed = await client.closed
    expect(closed.code).toBe(4501)
    expect(client.errors().at(-1)!.code).toBe(SyncErrorCode.REAUTH_REQUIRED)
    const again = await TestClient.connect(h.url)
    await again.hello(await tokenFor("33", { oa_session_id: "sess_revoked" }))
    expect((await again.closed).code).toBe(4501)
    // Another session of the same user is unaffected.
    const other = await TestClient.connect(h.url)
    expect((await other.hello(await tokenFor("33", { oa_session_id: "sess_ok" }))).kind).toBe(FrameKind.WELCOME)
    await other.close()
  })

  it("consults the durable revocation record at hello and refresh, and fails closed (retryably) when it cannot", async () => {
    let down = false
    const durable = await start({
      transport: WsTransport.transport,
      server: {
        sessionRevoked: (sessionId) =>
          down ? Effect.fail(new Error("database unreachable")) : Effect.succeed(sessionId === "sess_durably_revoked")
      }
    })
    try {
      const revoked = await TestClient.connect(durable.url)
      await revoked.hello(await tokenFor("34", { oa_session_id: "sess_durably_revoked" }))
      expect((await revoked.closed).code).toBe(4501)
      expect(revoked.errors().at(-1)!.code).toBe(SyncErrorCode.REAUTH_REQUIRED)
      const live = await TestClient.connect(durable.url)
      expect((await live.hello(await tokenFor("34", { oa_session_id: "sess_fine" }))).kind).toBe(FrameKind.WELCOME)
      down = true
      const refused = await TestClient.connect(durable.url)
      await refused.hello(await tokenFor("34", { oa_session_id: "sess_fine" }))
      expect((await refused.closed).code).toBe(4005)
      expect(refused.errors().at(-1)).toMatchObject({ code: SyncErrorCode.INTERNAL, retryAfterMs: 1000 })
      // A refresh on an open connection is checked too.
      live.send("refresh_token", { token: await tokenFor("34", { oa_session_id: "sess_fine" }), requestId: "rt-down" })
      expect((await live.closed).code).toBe(4005)
      expect(live.errors().at(-1)).toMatchObject({ code: SyncErrorCode.INTERNAL, requestId: "rt-down" })
      down = false
      const back = await TestClient.connect(durable.url)
      expect((await back.hello(await tokenFor("34", { oa_session_id: "sess_fine" }))).kind).toBe(FrameKind.WELCOME)
      await back.close()
    } finally {
      await durable.dispose()
    }
  })

  it("closes a live connection when its token expires, and keeps one alive that refreshes in time", async () => {
    const now = Math.floor(Date.now() / 1000)
    const expiring = await TestClient.connect(h.url)
    await expiring.hello(await tokenFor("41", { iat: now - 60, exp: now + 1 }))
    const refreshing = await TestClient.connect(h.url)
    await refreshing.hello(await tokenFor("41", { iat: now - 60, exp: now + 1 }))
    refreshing.send("refresh_token", { token: await tokenFor("41"), requestId: "rt1" })
    const refreshed = await refreshing.next((f) => f.kind === FrameKind.TOKEN_REFRESHED)
    expect(refreshed.message.requestId).toBe("rt1")
    expect((await expiring.closed).code).toBe(4002)
    expect(expiring.errors().at(-1)!.code).toBe(SyncErrorCode.TOKEN_EXPIRED)
    await sleep(300)
    expect(refreshing.socket.readyState).toBe(WebSocket.OPEN)
    // A refresh with another user's token ends the connection.
    refreshing.send("refresh_token", { token: await tokenFor("42"), requestId: "rt2" })
    expect((await refreshing.closed).code).toBe(4500)
  })

  it("sends heartbeats with watermarks and closes a silent client after the idle timeout", async () => {
    const quiet = await TestClient.connect(h.url)
    await quiet.hello(await tokenFor("51"))
    await quiet.subscribe(["runtime.run_summaries:user:51"])
    const beat = await quiet.next((f) => f.kind === FrameKind.HEARTBEAT)
    expect(beat.message.watermarks[0].topic).toBe("runtime.run_summaries:user:51")
    const chatty = await TestClient.connect(h.url)
    await chatty.hello(await tokenFor("51"))
    const timer = setInterval(() => chatty.send("heartbeat", {}), 200)
    const closed = await quiet.closed
    expect(closed.code).toBe(4000)
    expect(chatty.socket.readyState).toBe(WebSocket.OPEN)
    clearInterval(timer)
    await chatty.close()
  })

  it("refuses bad input with typed errors and close codes, without affecting other connections", async () => {
    const bystander = await TestClient.connect(h.url)
    await bystander.hello(await tokenFor("61"))
    await bystander.subscribe(["runtime.run_summaries:user:61"])

    const garbage = await TestClient.connect(h.url)
    garbage.sendRaw(new Uint8Array([0xff, 0x01, 0x02, 0x03]))
    expect((await garbage.closed).code).toBe(4503)
    expect(garbage.errors()[0].code).toBe(SyncErrorCode.BAD_FRAME)

    const early = await TestClient.connect(h.url)
    early.send("subscribe", { topics: ["runtime.run_summaries:user:61"], requestId: "x" })
    expect((await early.closed).code).toBe(4503)

    const big = await TestClient.connect(h.url)
    await big.hello(await tokenFor("61"))
    big.send("subscribe", { topics: ["x".repeat(5000)], requestId: "big" })
    expect((await big.closed).code).toBe(1009)
    expect(big.errors().at(-1)!.code).toBe(SyncErrorCode.PAYLOAD_TOO_LARGE)

    const limits = await TestClient.connect(h.url)
    await limits.hello(await tokenFor("61"))
    const tooMany = await limits.subscribe(["runtime.run_summaries:user:61", "runtime.notifications:user:61", "runtime.codex_worker_summaries:user:61", "runtime.codex_worker_events:worker:w61"], "many")
    expect(tooMany.message.code).toBe(SyncErrorCode.BAD_SUBSCRIPTION)
    const invalid = await limits.subscribe(["not-a-topic"], "inv")
    expect(invalid.message.code).toBe(SyncErrorCode.BAD_SUBSCRIPTION)
    const stray = await limits.subscribe(["runtime.run_summaries:user:61"], "stray", { resumeAfter: [{ topic: "runtime.notifications:user:61", watermark: 1n }] })
    expect(stray.message.code).toBe(SyncErrorCode.BAD_SUBSCRIPTION)
    for (let i = 0; i < 3; i++) limits.send("subscribe", { topics: ["runtime.run_summaries:user:61"], requestId: `burst${i}` })
    const limited = await limits.next((f) => f.kind === FrameKind.ERROR && f.message.code === SyncErrorCode.RATE_LIMITED)
    expect(limited.message.retryAfterMs).toBeGreaterThan(0)

    const server = await TestClient.connect(h.url)
    server.sendRaw(new Uint8Array([0x08, 0x01, 0x20, 0x05])) // schema 1, kind WELCOME: a server frame
    expect((await server.closed).code).toBe(4503)

    const version = await TestClient.connect(h.url)
    version.sendRaw(new Uint8Array([0x08, 0x02, 0x20, 0x10])) // schema 2, kind HELLO
    expect((await version.closed).code).toBe(4503)

    await expect(TestClient.connect(h.url, { protocols: ["graphql-ws"] })).rejects.toThrow(/400/)

    await h.publish("runtime.run_summaries:user:61", [{ docKey: "still", docVersion: 1, payload: { alive: true } }])
    await bystander.until("runtime.run_summaries:user:61", 1n)
    expect(bystander.socket.readyState).toBe(WebSocket.OPEN)
    await bystander.close()
    await limits.close()
  })

  it("enforces compatibility gates with upgrade_required", async () => {
    const gated = await start({
      transport: UwsTransport.transport,
      server: { session: { gate: { protocolVersion: "khala.ws.v1", minClientBuildId: "20260101T000000Z", maxClientBuildId: "", minSchemaVersion: 1, maxSchemaVersion: 1 } } }
    })
    try {
      const old = await TestClient.connect(gated.url)
      const reply = await old.hello(await tokenFor("1"), { clientBuildId: "20250101T000000Z" })
      expect(reply.message.code).toBe(SyncErrorCode.UPGRADE_REQUIRED)
      expect(reply.message.details.value.minClientBuildId).toBe("20260101T000000Z")
      expect((await old.closed).code).toBe(4502)
      const proto = await TestClient.connect(gated.url)
      expect((await proto.hello(await tokenFor("1"), { protocolVersion: "khala.ws.v0" })).message.details.value.reason).toBe(2)
      const ok = await TestClient.connect(gated.url)
      expect((await ok.hello(await tokenFor("1"))).kind).toBe(FrameKind.WELCOME)
      await ok.close()
    } finally {
      await gated.dispose()
    }
  })

  it("answers a pruned cursor with stale_cursor, per-topic details and a snapshot plan, while other topics proceed", async () => {
    const topic = "runtime.run_summaries:user:71"
    const other = "runtime.notifications:user:71"
    await h.publish(topic, [{ docKey: "r1", docVersion: 1, payload: { v: 1 } }])
    await h.publish(topic, [{ docKey: "r1", docVersion: 2, payload: { v: 2 } }])
    await h.publish(other, [{ docKey: "n1", docVersion: 1, payload: { hi: true } }])
    await h.run(Effect.flatMap(Retention.Retention, (r) => r.pruneClass("runtime.run_summaries", { now: new Date(Date.now() + 8 * 86_400_000) })))
    const client = await TestClient.connect(h.url)
    await client.hello(await tokenFor("71"))
    client.send("subscribe", { topics: [topic, other], requestId: "s" })
    const stale = await client.next((f) => f.kind === FrameKind.ERROR && f.message.code === SyncErrorCode.STALE_CURSOR)
    const details = stale.message.details.value
    expect(stale.message.fullResyncRequired).toBe(true)
    expect(details.staleTopics[0]).toMatchObject({ topic, reasons: [StaleReason.RETENTION_FLOOR_BREACH], resumeAfter: 0n, retentionFloor: 2n, headWatermark: 2n })
    expect(details.snapshotPlan.topics[0].snapshot.path).toBe("/sync/v1/snapshot/runtime.run_summaries%3Auser%3A71")
    const subscribed = await client.next((f) => f.kind === FrameKind.SUBSCRIBED)
    expect(subscribed.message.topics).toEqual([other])
    await client.until(other, 1n)

    // Recovery: the snapshot is consistent with a watermark; resuming after it works.
    const response = await fetch(`${h.httpUrl}${details.snapshotPlan.topics[0].snapshot.path}`, {
      headers: { authorization: `Bearer ${await tokenFor("71")}`, accept: "application/x-protobuf" }
    })
    expect(response.status).toBe(200)
    const snapshot = fromBinary(SnapshotResponseSchema, new Uint8Array(await response.arrayBuffer()))
    expect(snapshot.watermark).toBe(2n)
    expect(snapshot.documents.map((d) => [d.docKey, d.docVersion, new TextDecoder().decode(d.payload)])).toEqual([["r1", 2n, `{"v":2}`]])
    client.lastApplied.set(topic, snapshot.watermark)
    const resumed = await client.subscribe([topic], "resume", { resumeAfter: [{ topic, watermark: snapshot.watermark, epoch: snapshot.epoch }] })
    expect(resumed.kind).toBe(FrameKind.SUBSCRIBED)
    await h.publish(topic, [{ docKey: "r1", docVersion: 3, payload: { v: 3 } }])
    await client.until(topic, 3n)
    const epoch = await client.subscribe([topic], "epoch", { resumeAfter: [{ topic, watermark: 3n, epoch: "ep_elsewhere" }] })
    expect(epoch.message.details.value.staleTopics[0].reasons).toEqual([StaleReason.EPOCH_MISMATCH])
    await client.close()
  })

  it("serves snapshots only to the topic's owner with a valid token", async () => {
    const topic = "runtime.run_summaries:user:72"
    await h.publish(topic, [{ docKey: "x", docVersion: 1, payload: { x: 1 } }])
    const path = `${h.httpUrl}/sync/v1/snapshot/${encodeURIComponent(topic)}`
    const json = await fetch(path, { headers: { authorization: `Bearer ${await tokenFor("72")}` } })
    expect(json.status).toBe(200)
    expect((await json.json()) as unknown).toMatchObject({ topic, watermark: "1", format: "openagents.sync.snapshot.v1" })
    expect((await fetch(path, { headers: { authorization: `Bearer ${await tokenFor("73")}` } })).status).toBe(403)
    const anonymous = await fetch(path)
    expect(anonymous.status).toBe(401)
    expect(((await anonymous.json()) as any).error.code).toBe("unauthorized")
    expect((await fetch(`${h.httpUrl}/sync/v1/snapshot/nope`, { headers: { authorization: `Bearer ${await tokenFor("72")}` } })).status).toBe(400)
    const events = `${h.httpUrl}/sync/v1/snapshot/${encodeURIComponent("runtime.codex_worker_events:worker:w1")}`
    expect(((await (await fetch(events, { headers: { authorization: `Bearer ${await tokenFor("72")}` } })).json()) as any).error.code).toBe("forbidden_topic")
  })

  it("speaks the JSON subprotocol end to end", async () => {
    const topic = "runtime.notifications:user:81"
    const client = await TestClient.connect(h.url, { format: "json" })
    expect(client.socket.protocol).toBe("khala.v1+json")
    expect((await client.hello(await tokenFor("81"))).kind).toBe(FrameKind.WELCOME)
    await client.subscribe([topic])
    await h.publish(topic, [{ docKey: "n", docVersion: 1, payload: { text: "hello" } }])
    await client.until(topic, 1n)
    expect(client.applied.get(topic)![0]!.payload).toBe(`{"text":"hello"}`)
    await client.close()
  })

  it("counts the time its fanout hub spends reading and publishing live batches", async () => {
    const value = (name: string) => Number(Prometheus.render().match(new RegExp(`^${name} ([0-9.e+-]+)$`, "m"))?.[1] ?? NaN)
    const topic = "runtime.notifications:user:82"
    const client = await TestClient.connect(h.url)
    await client.hello(await tokenFor("82"))
    await client.subscribe([topic])
    const read0 = value("khala_fanout_read_seconds_total")
    const publish0 = value("khala_fanout_publish_seconds_total")
    // A commit through this node's Publisher: its events are handed to the hub, nothing is read back.
    await h.publish(topic, [{ docKey: "n", docVersion: 1, payload: { text: "live" } }])
    await client.until(topic, 1n)
    const publish1 = value("khala_fanout_publish_seconds_total")
    expect(publish1).toBeGreaterThan(Number.isNaN(publish0) ? 0 : publish0)
    expect(value("khala_fanout_read_seconds_total")).toEqual(read0)
    // A commit announced without its events (another node's): the hub reads it.
    await h.run(Effect.flatMap(Journal.Journal, (j) => j.publish(topic, [{ docKey: "n", docVersion: 2, payload: { text: "read" } }])))
    await h.run(Effect.flatMap(Notifier.Notifier, (n) => n.wake([topic])))
    await client.until(topic, 2n)
    // Counted once the pass ended (it may end just after the frame arrived).
    for (let i = 0; i < 50 && !(value("khala_fanout_publish_seconds_total") > publish1); i++) await sleep(10)
    expect(value("khala_fanout_read_seconds_total")).toBeGreaterThan(Number.isNaN(read0) ? 0 : read0)
    expect(value("khala_fanout_publish_seconds_total")).toBeGreaterThan(publish1)
    await client.close()
  })

  it("exports its metrics in Prometheus text", () => {
    const text = Prometheus.render()
    for (const name of ["khala_connections", "khala_subscriptions", "khala_replay_batches_total", "khala_fanout_latency_ms_bucket", "khala_auth_failures_total", "khala_stale_cursors_total"]) {
      expect(text).toContain(name)
    }
    expect(text).toMatch(/khala_auth_failures_total\{key="token_expired"\} \d+/)
  })
})

const hotClass: Topic.TopicClass = {
  name: "test.hot",
  partition: "user",
  kind: "high_churn_events",
  qosTier: "hot",
  replayBudgetEvents: 100,
  retentionSeconds: 3600,
  maxPayloadBytes: 64 * 1024,
  payloadMode: "inline",
  readModelTable: undefined,
  snapshot: undefined
}

for (const transport of [UwsTransport.transport, WsTransport.transport]) {
  describe(`slow consumers on ${transport.name}`, () => {
    it("demotes, then disconnects a consumer that stops reading, while a fast one on the same topic receives everything", async () => {
      const h = await start({
        transport,
        classes: [...Topic.defaultClasses, hotClass],
        server: { tickMs: 20, pollIntervalMs: 100, slowConsumer: { softLimitBytes: 64 * 1024, resumeBelowBytes: 16 * 1024, maxStrikes: 3, strikeWindowMs: 60_000, reconnectAfterMs: 1500 } }
      })
      try {
        const topic = "test.hot:user:u1" // replay budget 100 events
        const fast = await TestClient.connect(h.url)
        const slowClient = await TestClient.connect(h.url)
        for (const c of [fast, slowClient]) {
          await c.hello(await tokenFor("u1", { oa_sync_scopes: ["test.hot"] }))
          await c.subscribe([topic])
          await c.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.replayComplete)
        }
        // The slow client stops reading from its socket; events keep coming.
        const raw = (slowClient.socket as unknown as { _socket: { pause: () => void; resume: () => void } })._socket
        raw.pause()
        const blob = "z".repeat(8 * 1024)
        let sent = 0
        while (slowClient.socket.readyState === WebSocket.OPEN && sent < 6000) {
          await h.publish(topic, Array.from({ length: 50 }, (_, j) => ({ docKey: `e${sent + j}`, docVersion: 1, payload: { blob, i: sent + j } })))
          sent += 50
          await sleep(10)
          if (sent % 1000 === 0) {
            // Let a little through now and then, so the close handshake can eventually arrive.
            raw.resume()
            raw.pause()
          }
          if (h.server.connections() < 2) break
        }
        expect(h.server.connections()).toBe(1) // the slow one was dropped by the server
        // Read again at once: the close frame waits behind the backlog, and a server that sees no
        // progress for seconds may give up on the closing handshake (1006 instead of 4001).
        raw.resume()
        await fast.until(topic, BigInt(sent), 30_000)
        expect(fast.gaps).toBe(0)
        expect(fast.applied.get(topic)!.length).toBe(sent)
        const closed = await slowClient.closed
        expect(closed.code).toBe(4001)
        const errors = slowClient.errors().filter((e) => e.code === SyncErrorCode.SLOW_CONSUMER)
        expect(errors.at(-1)!.details.value.action).toBe(2) // DISCONNECT
        expect(errors.at(-1)!.retryAfterMs).toBe(1500)
        // What it did apply is a gap-free prefix it can resume from.
        expect(slowClient.gaps).toBe(0)
        expect(fast.socket.readyState).toBe(WebSocket.OPEN)
        await fast.close()
      } finally {
        await h.dispose()
      }
    }, 60_000)
  })
}
