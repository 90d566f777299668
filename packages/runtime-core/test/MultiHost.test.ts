// Two runtime hosts on one Postgres (needs TEST_DATABASE_URL): a write on one reaches Khala
// subscribers and SSE streams on the other (LISTEN/NOTIFY), a revocation through one cuts the
// other's sockets and streams and is refused by both, and a signed call used on one cannot be
// replayed on the other.
import * as PgClient from "@effect/sql-pg/PgClient"
import { InternalSignature } from "@openagents/host-kit"
import { TestClient, TestServer } from "@openagents/khala-core/testing"
import { FrameKind } from "@openagents/proto/sync/v1"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Projection from "../src/Projection.js"
import { type Host, INTERNAL_KEY, readSse, startHost } from "./host-support.js"

const admin = SqlTesting.postgresUrl()

describe.skipIf(admin === undefined)("two runtime hosts on one Postgres", () => {
  let database: ManagedRuntime.ManagedRuntime<unknown, unknown>
  let second: ReturnType<typeof PgClient.layer>
  let a: Host
  let b: Host
  beforeAll(async () => {
    const fresh = SqlTesting.freshPostgres(admin!)
    database = ManagedRuntime.make(fresh.layer) as never
    await database.runtime()
    second = PgClient.layer({ url: Redacted.make(fresh.url), maxConnections: 10 })
    a = await startHost(second)
    b = await startHost(second)
  }, 60_000)
  afterAll(async () => {
    await a?.dispose()
    await b?.dispose()
    await database?.dispose()
  })

  it("delivers a frame written through one host to a Khala subscriber and an SSE stream on the other", async () => {
    await a.internal("POST", "/internal/v1/runs/mh-run/frames", "hana", { thread_id: "t", frame_id: "f1", type: "run.started", payload: {} })
    const client = await TestClient.connect(b.khalaUrl)
    await client.hello(await TestServer.token("hana"))
    const topic = Projection.runTopic("hana")
    await client.subscribe([topic], "s")
    await client.until(topic, 1n)
    const stream = await b.bearer("GET", "/internal/v1/runs/mh-run/stream", await b.accessToken("hana"))
    const pending = readSse(stream, (events) => events.length >= 2)
    await new Promise((r) => setTimeout(r, 200))
    await a.internal("POST", "/internal/v1/runs/mh-run/frames", "hana", { thread_id: "t", frame_id: "f2", type: "run.delta", payload: { n: 2 } })
    await a.internal("POST", "/internal/v1/runs/mh-run/frames", "hana", { thread_id: "t", frame_id: "f3", type: "run.delta", payload: { n: 3 } })
    await client.until(topic, 3n)
    expect(client.gaps + client.duplicates).toBe(0)
    expect((await pending).events.map((e) => e.id)).toEqual(["2", "3"])
    client.close()
  })

  it("a revocation through one host cuts the other's sockets and streams, and both refuse the session", async () => {
    await a.internal("POST", "/internal/v1/runs/mh-rev/frames", "ivan", { thread_id: "t", frame_id: "f1", type: "run.started", payload: {} })
    const token = await a.accessToken("ivan", { sid: "sess_ivan_mh" })
    const stream = await b.bearer("GET", "/internal/v1/runs/mh-rev/stream", token)
    const pending = readSse(stream, (events) => events.some((e) => e.event === "error"))
    const socket = await TestClient.connect(b.khalaUrl)
    await socket.hello(await TestServer.token("ivan", { oa_session_id: "sess_ivan_mh" }))
    await new Promise((r) => setTimeout(r, 200))
    const revoke = await a.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, { session_ids: ["sess_ivan_mh"], reason: "admin_revoked" })
    expect(revoke.status).toBe(200)
    expect(JSON.parse((await pending).events.at(-1)!.data).code).toBe("reauth_required")
    expect((await socket.closed).reason).toContain("reauth_required")
    const syncToken = await TestServer.token("ivan", { oa_session_id: "sess_ivan_mh" })
    const khalaSnapshot = (host: typeof a) =>
      fetch(`${host.baseUrl}/sync/v1/snapshot/${encodeURIComponent(Projection.runTopic("ivan"))}`, { headers: { authorization: `Bearer ${syncToken}` } })
    for (const host of [a, b]) {
      const refused = await host.bearer("GET", "/internal/v1/runs/mh-rev/snapshot", token)
      expect(((await refused.json()) as any).error.details.reason).toBe("session_revoked")
      // Khala's snapshot endpoint too (the node's Revocations, shared with its WebSocket server).
      const snapshot = await khalaSnapshot(host)
      expect(snapshot.status).toBe(401)
      expect(((await snapshot.json()) as any).error.code).toBe("reauth_required")
    }
    // A host that starts after the revocation missed the broadcast; it refuses the session's
    // sync tokens from the table at hello.
    const late = await startHost(second)
    try {
      const lateSocket = await TestClient.connect(late.khalaUrl)
      await lateSocket.hello(await TestServer.token("ivan", { oa_session_id: "sess_ivan_mh" }))
      expect((await lateSocket.closed).reason).toContain("reauth_required")
      expect((await khalaSnapshot(late)).status).toBe(401)
      const fresh = await TestClient.connect(late.khalaUrl)
      await fresh.hello(await TestServer.token("ivan", { oa_session_id: "sess_ivan_other" }))
      expect((await fresh.subscribe([Projection.runTopic("ivan")], "ok")).kind).toBe(FrameKind.SUBSCRIBED)
      fresh.close()
    } finally {
      await late.dispose()
    }
  })

  it("a revoked device is remembered too: a host that starts later refuses the tokens it held, while a new sign-in on it, and other users sharing its id, go on", async () => {
    const socket = await TestClient.connect(b.khalaUrl)
    await socket.hello(await TestServer.token("jude", { oa_session_id: "sess_jude_1", oa_device_id: "mobile:shared" }))
    // Tokens held when the device is revoked: the device's other session, another user on the same id.
    const heldOther = await TestServer.token("jude", { oa_session_id: "sess_jude_2", oa_device_id: "mobile:shared" })
    const heldByKim = await TestServer.token("kim", { oa_session_id: "sess_kim_1", oa_device_id: "mobile:shared" })
    await new Promise((r) => setTimeout(r, 200))
    const revoke = await a.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, { session_ids: [], device_ids: ["mobile:shared"], reason: "device_replaced" })
    expect([revoke.status, await revoke.json()]).toEqual([200, { ok: true, revoked_sessions: 0, revoked_devices: 1 }])
    expect((await socket.closed).code).toBe(4501)
    const late = await startHost(second)
    try {
      // The broadcast was before this host: the table refuses the tokens issued before it (and
      // the host that heard the broadcast, from memory).
      for (const url of [late.khalaUrl, b.khalaUrl]) {
        for (const token of [heldOther, heldByKim]) {
          const lateSocket = await TestClient.connect(url)
          await lateSocket.hello(token)
          expect((await lateSocket.closed).code).toBe(4501)
        }
      }
      const snapshot = await fetch(`${late.baseUrl}/sync/v1/snapshot/${encodeURIComponent(Projection.runTopic("jude"))}`, { headers: { authorization: `Bearer ${heldOther}` } })
      expect(snapshot.status).toBe(401)
      // Tokens issued after it (a new sign-in on the device; iat has a one-second resolution) are fine.
      await new Promise((r) => setTimeout(r, 1_100))
      for (const [user, url] of [["jude", late.khalaUrl], ["kim", late.khalaUrl], ["jude", b.khalaUrl]] as const) {
        const fresh = await TestClient.connect(url)
        expect((await fresh.hello(await TestServer.token(user, { oa_session_id: `sess_${user}_new`, oa_device_id: "mobile:shared" }))).kind).toBe(FrameKind.WELCOME)
        // (The revocation check follows the welcome: a refused token would be closed now.)
        expect((await fresh.subscribe([Projection.runTopic(user)], "ok")).kind).toBe(FrameKind.SUBSCRIBED)
        fresh.close()
      }
    } finally {
      await late.dispose()
    }
  })

  it("a device revoked for one user cuts and refuses that user's tokens only, live and from the table", async () => {
    const device = { oa_device_id: "mobile:shared-scoped" }
    // SSE streams on the device too: lena's is cut, mia's goes on.
    for (const user of ["lena", "mia"]) {
      await a.internal("POST", `/internal/v1/runs/mh-${user}/frames`, user, { thread_id: "t", frame_id: "f1", type: "run.started", payload: {} })
    }
    const streamOf = async (user: string) =>
      b.bearer("GET", `/internal/v1/runs/mh-${user}/stream`, await a.accessToken(user, { sid: `sess_${user}_1`, did: "mobile:shared-scoped" }))
    const lenaStream = readSse(await streamOf("lena"), (events) => events.some((e) => e.event === "error"))
    const miaStream = readSse(await streamOf("mia"), (events) => events.some((e) => e.event === "error" || e.id === "2"))
    const lena = await TestClient.connect(b.khalaUrl)
    await lena.hello(await TestServer.token("lena", { oa_session_id: "sess_lena_1", ...device }))
    const mia = await TestClient.connect(b.khalaUrl)
    await mia.hello(await TestServer.token("mia", { oa_session_id: "sess_mia_1", ...device }))
    const heldByLena = await TestServer.token("lena", { oa_session_id: "sess_lena_2", ...device })
    const heldByMia = await TestServer.token("mia", { oa_session_id: "sess_mia_2", ...device })
    await new Promise((r) => setTimeout(r, 200))
    const revoke = await a.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, {
      session_ids: [],
      device_ids: ["mobile:shared-scoped"],
      user_id: "lena",
      reason: "user_requested"
    })
    expect([revoke.status, await revoke.json()]).toEqual([200, { ok: true, revoked_sessions: 0, revoked_devices: 1 }])
    expect((await lena.closed).code).toBe(4501)
    expect(JSON.parse((await lenaStream).events.at(-1)!.data).code).toBe("reauth_required")
    await a.internal("POST", "/internal/v1/runs/mh-mia/frames", "mia", { thread_id: "t", frame_id: "f2", type: "run.delta", payload: {} })
    expect((await miaStream).events.map((e) => e.event ?? "message")).not.toContain("error")
    // The other user on the same device id keeps the socket (the broadcast named lena).
    expect((await mia.subscribe([Projection.runTopic("mia")], "still")).kind).toBe(FrameKind.SUBSCRIBED)
    mia.close()
    const late = await startHost(second)
    try {
      for (const url of [late.khalaUrl, b.khalaUrl]) {
        const refused = await TestClient.connect(url)
        await refused.hello(heldByLena)
        expect((await refused.closed).code).toBe(4501)
        const kept = await TestClient.connect(url)
        expect((await kept.hello(heldByMia)).kind).toBe(FrameKind.WELCOME)
        expect((await kept.subscribe([Projection.runTopic("mia")], "ok")).kind).toBe(FrameKind.SUBSCRIBED)
        kept.close()
      }
    } finally {
      await late.dispose()
    }
  })

  it("a redelivered device revocation (control retrying a notice) does not cut or refuse a sign-in made since", async () => {
    const device = { oa_device_id: "mobile:redelivered" }
    const old = await TestClient.connect(b.khalaUrl)
    await old.hello(await TestServer.token("nora", { oa_session_id: "sess_nora_1", ...device }))
    await new Promise((r) => setTimeout(r, 200))
    const notice = { session_ids: ["sess_nora_1"], device_ids: ["mobile:redelivered"], user_id: "nora", revoked_at_ms: Date.now(), reason: "user_requested" }
    expect((await a.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, notice)).status).toBe(200)
    expect((await old.closed).code).toBe(4501)
    // A new sign-in on the device (iat has a one-second resolution) …
    await new Promise((r) => setTimeout(r, 1_100))
    const token = await TestServer.token("nora", { oa_session_id: "sess_nora_2", ...device })
    const live = await TestClient.connect(b.khalaUrl)
    expect((await live.hello(token)).kind).toBe(FrameKind.WELCOME)
    // … then the same notice again: the new socket stays, its token is accepted everywhere.
    expect((await a.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, notice)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 300))
    expect((await live.subscribe([Projection.runTopic("nora")], "still")).kind).toBe(FrameKind.SUBSCRIBED)
    live.close()
    const late = await startHost(second)
    try {
      for (const url of [late.khalaUrl, a.khalaUrl, b.khalaUrl]) {
        const again = await TestClient.connect(url)
        expect((await again.hello(token)).kind).toBe(FrameKind.WELCOME)
        expect((await again.subscribe([Projection.runTopic("nora")], "ok")).kind).toBe(FrameKind.SUBSCRIBED)
        again.close()
      }
    } finally {
      await late.dispose()
    }
  })

  it("a signed call accepted by one host is a replay on the other", async () => {
    const path = "/internal/v1/codex/workers"
    const headers = await Effect.runPromise(InternalSignature.sign(INTERNAL_KEY, { method: "GET", path, userId: "jan" }))
    expect((await fetch(`${a.baseUrl}${path}`, { headers })).status).toBe(200)
    const replay = await fetch(`${b.baseUrl}${path}`, { headers })
    expect([replay.status, ((await replay.json()) as any).error.details.reason]).toEqual([401, "token_replayed"])
  })
})
