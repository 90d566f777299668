// Properties of the Khala server under adversity: the replay→live handoff under concurrent
// writes and random disconnects, hostile bytes, and several nodes on one Postgres.
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Journal, Notifier, SqlStorage, SyncWire, UwsTransport, WsTransport } from "@openagents/khala-core"
import { TestClient } from "@openagents/khala-core/testing"
import { SqlNotify } from "@openagents/sql-pglite"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import { FrameKind, StaleReason } from "@openagents/proto/sync/v1"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"
import WebSocket from "ws"
import { describe, expect, it } from "vitest"
import { type Harness, sleep, start, tokenFor } from "./support/harness.js"

const storages = [
  { name: "memory", layer: undefined },
  ...SqlTesting.engines().map((e) => ({ name: e.name, layer: SqlStorage.layerStorage.pipe(Layer.provide(e.layer)) }))
]
const combos = [
  { transport: UwsTransport.transport, storage: storages[0]! },
  { transport: WsTransport.transport, storage: storages[0]! },
  ...storages.slice(1).map((storage, i) => ({ transport: i % 2 === 0 ? UwsTransport.transport : WsTransport.transport, storage }))
]

for (const { storage, transport } of combos) {
  describe(`handoff properties on ${transport.name} with ${storage.name} storage`, () => {
    it("property: under concurrent writes and random disconnects, the applied stream is every event exactly once, in order", async () => {
      const h = await start({ transport, storage: storage.layer, server: { tickMs: 20, pollIntervalMs: 50 } })
      let run = 0
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 10, max: 80 }),
            fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 0, maxLength: 5 }),
            fc.integer({ min: 1, max: 4 }),
            async (events, disconnectsAfterMs, perPublish) => {
              const user = `p${run++}`
              const topic = `runtime.run_summaries:user:${user}`
              const token = await tokenFor(user)
              // The writer runs concurrently with the client's connects and resumes.
              const writer = (async () => {
                for (let i = 1; i <= events; i += perPublish) {
                  const n = Math.min(perPublish, events - i + 1)
                  await h.publish(topic, Array.from({ length: n }, (_, k) => ({ docKey: `d${(i + k) % 5}`, docVersion: i + k, payload: { i: i + k } })))
                  if (i % 11 === 0) await sleep(0)
                }
              })()
              let client = await TestClient.connect(h.url)
              await client.hello(token)
              await client.subscribe([topic])
              for (const after of disconnectsAfterMs) {
                await sleep(after)
                const previous = client
                await previous.terminate()
                client = await TestClient.connect(h.url)
                client.resumeFrom(previous)
                await client.hello(token)
                await client.subscribe([topic])
              }
              await writer
              await client.until(topic, BigInt(events), 10_000)
              const applied = client.applied.get(topic)!
              expect(applied.map((u) => u.watermark)).toEqual(Array.from({ length: events }, (_, i) => BigInt(i + 1)))
              expect(applied.map((u) => JSON.parse(u.payload).i)).toEqual(Array.from({ length: events }, (_, i) => i + 1))
              expect(client.gaps).toBe(0)
              await client.close()
            }
          ),
          { numRuns: storage.name === "memory" ? 12 : 20 }
        )
      } finally {
        await h.dispose()
      }
    }, 120_000)
  })
}

describe("hostile input", () => {
  it("property: the decoder never throws on random bytes, truncated or mutated frames", () => {
    const valid = SyncWire.encodeClientFrame("binary", "subscribe", { topics: ["runtime.run_summaries:user:1"], requestId: "r", resumeAfter: [{ topic: "runtime.run_summaries:user:1", watermark: 5n }] }) as Uint8Array
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat({ max: valid.length }), fc.nat({ max: 255 }), fc.nat({ max: valid.length - 1 }), (random, cut, byte, at) => {
        for (const format of ["binary", "json"] as const) {
          const result = SyncWire.decodeClientFrame(random, format)
          expect(result instanceof SyncWire.FrameError || typeof result.kind === "string").toBe(true)
        }
        const truncated = SyncWire.decodeClientFrame(valid.subarray(0, cut), "binary")
        expect(truncated instanceof SyncWire.FrameError || truncated.kind === "subscribe").toBe(true)
        const mutated = new Uint8Array(valid)
        mutated[at] = byte
        const decoded = SyncWire.decodeClientFrame(mutated, "binary")
        expect(decoded instanceof SyncWire.FrameError || typeof decoded.kind === "string").toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  it("survives a burst of connections sending random bytes and keeps serving a well-behaved client", async () => {
    const h = await start({ transport: UwsTransport.transport, server: { tickMs: 20 } })
    try {
      const good = await TestClient.connect(h.url)
      await good.hello(await tokenFor("fz"))
      await good.subscribe(["runtime.run_summaries:user:fz"])
      const samples = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), 60)
      await Promise.all(
        samples.map(async (bytes, i) => {
          const c = await TestClient.connect(h.url, { format: i % 2 === 0 ? "binary" : "json" })
          if (i % 3 === 0) await c.hello(await tokenFor("fz"))
          c.sendRaw(i % 4 === 0 ? Buffer.from(bytes).toString("latin1") : bytes)
          c.sendRaw(bytes.subarray(0, Math.floor(bytes.length / 2)))
          const closed = await c.closed
          expect([4503, 1009, 1006, 4004]).toContain(closed.code)
        })
      )
      await h.publish("runtime.run_summaries:user:fz", [{ docKey: "ok", docVersion: 1, payload: { ok: true } }])
      await good.until("runtime.run_summaries:user:fz", 1n)
      expect(good.socket.readyState).toBe(WebSocket.OPEN)
      await good.close()
    } finally {
      await h.dispose()
    }
  }, 30_000)
})

const adminUrl = SqlTesting.postgresUrl()
// A restore or a failover under a running node (simulated: the commits after the "replication
// point" removed, and the recorded cluster made foreign, which is what a promoted replica or a
// restored backup looks like to the journal).
const loseLastCommit = (topic: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`DELETE FROM runtime.sync_stream_events WHERE topic = ${topic} AND watermark = 3`,
      sql`UPDATE runtime.sync_topic_sequences SET next_watermark = 2 WHERE topic = ${topic}`,
      sql`DELETE FROM runtime.sync_run_summaries WHERE topic = ${topic} AND doc_key = 'lost'`,
      sql`UPDATE runtime.sync_journal_meta SET cluster = '1:1'`
    ], { discard: true }))

const failoverScenario = async (h: Harness, topic: string, user: string, trigger: () => Promise<void>) => {
  const live = await TestClient.connect(h.url)
  await live.hello(await tokenFor(user))
  await live.subscribe([topic])
  await h.publish(topic, [{ docKey: "kept", docVersion: 1, payload: { n: 1 } }])
  await h.publish(topic, [{ docKey: "kept", docVersion: 2, payload: { n: 2 } }])
  await h.publish(topic, [{ docKey: "lost", docVersion: 1, payload: { n: 3 } }])
  await live.until(topic, 3n)
  const oldEpoch = (await live.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.updates.length > 0)).message.headWatermarks[0].epoch as string
  expect(oldEpoch).toMatch(/^ep_/)
  await h.run(loseLastCommit(topic))
  // The writers go on at once: watermark 3 is allocated again, to another document, then 4. The
  // head is past what the node published, so nothing looks moved back: only the epoch check under
  // test can tell (meanwhile the live subscriber gets 4 and never the reused 3).
  await h.publish(topic, [{ docKey: "reused", docVersion: 1, payload: { n: 3 } }])
  await h.publish(topic, [{ docKey: "after", docVersion: 1, payload: { n: 4 } }])
  await trigger()
  // The node learns the new epoch: its sockets are closed to resume.
  const closed = await Promise.race([live.closed, sleep(10_000).then(() => undefined)])
  expect(closed?.code).toBe(SyncWire.SyncCloseCode.SERVER_RESTART)
  const again = await TestClient.connect(h.url)
  await again.hello(await tokenFor(user))
  // The old cursor is refused (without the new epoch it would resume past "reused" forever).
  const cursor = live.lastApplied.get(topic)!
  const refused = await again.subscribe([topic], "old", { resumeAfter: [{ topic, watermark: cursor, epoch: oldEpoch }] })
  expect(refused.kind).toBe(FrameKind.ERROR)
  expect(refused.message.details.value.staleTopics[0].reasons).toEqual([StaleReason.EPOCH_MISMATCH])
  // From scratch, in the new epoch: the history the database has now, then live.
  const fresh = await again.subscribe([topic], "fresh")
  expect(fresh.kind).toBe(FrameKind.SUBSCRIBED)
  await again.until(topic, 4n)
  const batch = await again.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.updates.length > 0)
  expect(batch.message.headWatermarks[0].epoch).toMatch(/^ep_/)
  expect(batch.message.headWatermarks[0].epoch).not.toBe(oldEpoch)
  await h.publish(topic, [{ docKey: "live", docVersion: 1, payload: { n: 5 } }])
  await again.until(topic, 5n)
  expect(again.applied.get(topic)!.map((u) => u.docKey)).toEqual(["kept", "kept", "reused", "after", "live"])
  await again.close()
}

for (const engine of SqlTesting.engines()) {
  describe(`a restore or failover under a running node (${engine.name})`, () => {
    it("the node's periodic check finds the new epoch: sockets closed to resume, old cursors refused as epoch_mismatch, reused watermarks delivered", async () => {
      const h = await start({
        transport: WsTransport.transport,
        storage: SqlStorage.layerStorage.pipe(Layer.provideMerge(engine.layer)),
        server: { epochCheckIntervalMs: 200, pollIntervalMs: 600_000, tickMs: 50 }
      })
      try {
        await failoverScenario(h, "runtime.run_summaries:user:failover", "failover", async () => {})
      } finally {
        await h.dispose()
      }
    }, 60_000)
  })
}

describe.runIf(adminUrl !== undefined)("several nodes on one Postgres", () => {
  it("delivers a commit made through one node to a subscriber of another, through LISTEN/NOTIFY (not the head poll)", async () => {
    const database = SqlTesting.freshPostgres(adminUrl!)
    // Keeps the database alive (and drops it at the end).
    const keeper = ManagedRuntime.make(database.layer)
    await keeper.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`))
    const sqlLayer = () => {
      const client = PgClient.layer({ url: Redacted.make(database.url), maxConnections: 5 })
      return Layer.provideMerge(SqlNotify.layer, client)
    }
    const node = (transport: typeof UwsTransport.transport) => {
      const sql = sqlLayer()
      return start({
        transport,
        storage: SqlStorage.layerStorage.pipe(Layer.provide(sql)),
        notifier: Notifier.layerPostgres.pipe(Layer.provide(sql)),
        server: { pollIntervalMs: 600_000, tickMs: 50 }
      })
    }
    const a = await node(UwsTransport.transport)
    const b = await node(WsTransport.transport)
    try {
      const topic = "runtime.run_summaries:user:mn"
      const onB = await TestClient.connect(b.url)
      await onB.hello(await tokenFor("mn"))
      await onB.subscribe([topic])
      await onB.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.replayComplete)
      const onA = await TestClient.connect(a.url)
      await onA.hello(await tokenFor("mn"))
      await onA.subscribe([topic])
      await onA.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.replayComplete)
      const started = Date.now()
      await a.publish(topic, [{ docKey: "x", docVersion: 1, payload: { from: "a" } }])
      await onB.until(topic, 1n, 5_000)
      await b.publish(topic, [{ docKey: "x", docVersion: 2, payload: { from: "b" } }])
      await onA.until(topic, 2n, 5_000)
      await onB.until(topic, 2n, 5_000)
      // Far below the 10-minute head poll: the NOTIFY path delivered it.
      expect(Date.now() - started).toBeLessThan(5_000)
      // A revocation made on one node reaches the other node's sockets too.
      await a.run(a.server.revoke({ sessionIds: ["sess_mn"], deviceIds: [], reason: "admin_revoked" }))
      expect((await onB.closed).code).toBe(4501)
      expect((await onA.closed).code).toBe(4501)
    } finally {
      await a.dispose()
      await b.dispose()
      await keeper.dispose()
    }
  }, 60_000)

  it("a node whose LISTEN connection dies notices (its own probes stop coming back), reopens it, and catches up: commits and revocations announced meanwhile reach its sockets", async () => {
    const database = SqlTesting.freshPostgres(adminUrl!)
    const keeper = ManagedRuntime.make(database.layer)
    await keeper.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`))
    const sqlLayer = () => Layer.provideMerge(SqlNotify.layer, PgClient.layer({ url: Redacted.make(database.url), maxConnections: 5 }))
    // The durable revocation record both nodes consult (the runtime's revoked-sessions table).
    const durablyRevoked = new Set<string>()
    const durablyRevokedDevices = new Set<string>()
    const node = (notifier: typeof Notifier.layerPostgres) => {
      const sql = sqlLayer()
      return start({
        transport: WsTransport.transport,
        storage: SqlStorage.layerStorage.pipe(Layer.provide(sql)),
        notifier: notifier.pipe(Layer.provide(sql)),
        server: {
          pollIntervalMs: 600_000,
          tickMs: 50,
          sessionRevoked: (id) => Effect.sync(() => durablyRevoked.has(id)),
          deviceRevoked: (id) => Effect.sync(() => durablyRevokedDevices.has(id))
        }
      })
    }
    const a = await node(Notifier.layerPostgres)
    const b = await node(Notifier.layerPostgresWith({ probeIntervalMs: 100, probeTimeoutMs: 600 }))
    try {
      const topic = "runtime.run_summaries:user:deaf"
      const kept = await TestClient.connect(b.url)
      await kept.hello(await tokenFor("deaf", { oa_session_id: "sess_kept" }))
      await kept.subscribe([topic])
      await kept.next((f) => f.kind === FrameKind.UPDATE_BATCH && f.message.replayComplete)
      const doomed = await TestClient.connect(b.url)
      await doomed.hello(await tokenFor("deaf", { oa_session_id: "sess_doomed" }))
      const lostDevice = await TestClient.connect(b.url)
      await lostDevice.hello(await tokenFor("deaf", { oa_session_id: "sess_on_lost_device", oa_device_id: "dev_lost" }))
      // Every LISTEN connection on the database dies without a word to its client.
      await keeper.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`))
      // While B is deaf: a commit and a revocation through A.
      await a.publish(topic, [{ docKey: "x", docVersion: 1, payload: { during: "deafness" } }])
      durablyRevoked.add("sess_doomed")
      await a.run(a.server.revoke({ sessionIds: ["sess_doomed"], deviceIds: [], reason: "admin_revoked" }))
      durablyRevokedDevices.add("dev_lost")
      await a.run(a.server.revoke({ sessionIds: [], deviceIds: ["dev_lost"], reason: "device_replaced" }))
      // B notices within its probe timeout, reopens LISTEN, polls and re-checks its sessions.
      await kept.until(topic, 1n, 10_000)
      expect((await doomed.closed).code).toBe(4501)
      expect((await lostDevice.closed).code).toBe(4501)
      // And it hears new announcements again (the head poll is 10 minutes away).
      await a.publish(topic, [{ docKey: "x", docVersion: 2, payload: { after: "reopen" } }])
      await kept.until(topic, 2n, 5_000)
      await kept.close()
    } finally {
      await a.dispose()
      await b.dispose()
      await keeper.dispose()
    }
  }, 60_000)

  it("a failover under two running nodes: each learns the new epoch when its LISTEN connection is reopened (no periodic check), and it is renewed once", async () => {
    const database = SqlTesting.freshPostgres(adminUrl!)
    const keeper = ManagedRuntime.make(database.layer)
    await keeper.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`))
    const sqlLayer = () => Layer.provideMerge(SqlNotify.layer, PgClient.layer({ url: Redacted.make(database.url), maxConnections: 5 }))
    const node = () => {
      const sql = sqlLayer()
      return start({
        transport: WsTransport.transport,
        storage: SqlStorage.layerStorage.pipe(Layer.provideMerge(sql)),
        notifier: Notifier.layerPostgresWith({ probeIntervalMs: 100, probeTimeoutMs: 600 }).pipe(Layer.provide(sql)),
        server: { epochCheckIntervalMs: 0, pollIntervalMs: 600_000, tickMs: 50 }
      })
    }
    const a = await node()
    const b = await node()
    try {
      const topic = "runtime.run_summaries:user:failover2"
      const onB = await TestClient.connect(b.url)
      await onB.hello(await tokenFor("failover2"))
      await onB.subscribe([topic])
      await failoverScenario(a, topic, "failover2", () =>
        // A failover breaks every connection: here, the LISTEN ones.
        keeper.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`)).then(() => {}))
      // B's socket is closed to resume too (by the new epoch, or first by the gap its hub finds
      // when the topic's head moved back), and B adopts the epoch A renewed: renewed once.
      expect((await onB.closed).code).toBe(SyncWire.SyncCloseCode.SERVER_RESTART)
      const [meta] = await keeper.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ epoch: string }>`SELECT epoch FROM runtime.sync_journal_meta`))
      const epochOf = (h: Harness) => h.run(Effect.map(Journal.Journal, (j) => j.epoch))
      expect(await epochOf(a)).toBe(meta!.epoch)
      for (let i = 0; i < 200 && (await epochOf(b)) !== meta!.epoch; i++) await sleep(50)
      expect(await epochOf(b)).toBe(meta!.epoch)
    } finally {
      await a.dispose()
      await b.dispose()
      await keeper.dispose()
    }
  }, 60_000)
})
