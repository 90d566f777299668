// The runtime HTTP API over a real HTTP server, real ES256 access tokens, real signed internal
// headers and a real Khala WebSocket server, on PGlite and (with TEST_DATABASE_URL) Postgres:
// every endpoint and its error paths, SSE resume, revocation, and isolation between users.
import * as SqlClient from "@effect/sql/SqlClient"
import { TestClient, TestServer } from "@openagents/khala-core/testing"
import { FrameKind, SyncErrorCode } from "@openagents/proto/sync/v1"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as HashChain from "../src/HashChain.js"
import * as Projection from "../src/Projection.js"
import { Runs } from "../src/Runs.js"
import { type Host, otherKey, readSse, startHost } from "./host-support.js"

const json = async (response: Response) => ({ status: response.status, body: await response.json() as any })

for (const engine of SqlTesting.engines()) {
  describe(`runtime HTTP API (${engine.name})`, () => {
    let host: Host
    beforeAll(async () => {
      host = await startHost(engine.layer)
    }, 60_000)
    afterAll(async () => {
      await host?.dispose()
    })

    it("serves health and an OpenAPI document that lists every route", async () => {
      expect(await json(await fetch(`${host.baseUrl}/internal/v1/health`))).toEqual({ status: 200, body: { status: "ok", service: "runtime", version: "0.0.0" } })
      const { body } = await json(await fetch(`${host.baseUrl}/openapi.json`))
      expect(Object.keys(body.paths).sort()).toEqual([
        "/internal/v1/codex/workers",
        "/internal/v1/codex/workers/{worker_id}/events",
        "/internal/v1/codex/workers/{worker_id}/requests",
        "/internal/v1/codex/workers/{worker_id}/snapshot",
        "/internal/v1/codex/workers/{worker_id}/stop",
        "/internal/v1/codex/workers/{worker_id}/stream",
        "/internal/v1/health",
        "/internal/v1/runs/{run_id}/cancel",
        "/internal/v1/runs/{run_id}/frames",
        "/internal/v1/runs/{run_id}/receipt",
        "/internal/v1/runs/{run_id}/snapshot",
        "/internal/v1/runs/{run_id}/stream",
        "/internal/v1/sync/sessions/revoke"
      ])
      const unknown = await json(await fetch(`${host.baseUrl}/internal/v1/nothing`))
      expect(unknown).toEqual({ status: 404, body: { error: { code: "not_found", message: "no such route" } } })
    })

    describe("authentication", () => {
      const path = "/internal/v1/codex/workers"
      const reason = async (response: Response) => {
        const { status, body } = await json(response)
        return [status, body.error.code, body.error.details?.reason]
      }

      it("accepts control's access token and a signed internal call naming the user", async () => {
        expect((await host.bearer("GET", path, await host.accessToken("auth-a"))).status).toBe(200)
        expect((await host.internal("GET", path, "auth-a")).status).toBe(200)
      })

      it("refuses missing, malformed, expired, future, foreign, mis-addressed and unsigned tokens with their reasons", async () => {
        expect(await reason(await fetch(`${host.baseUrl}${path}`))).toEqual([401, "unauthorized", "missing_token"])
        expect(await reason(await host.bearer("GET", path, "not.a.jwt"))).toEqual([401, "unauthorized", "invalid_token"])
        expect(await reason(await host.bearer("GET", path, await host.accessToken("u", { ttlSeconds: -120 })))).toEqual([401, "unauthorized", "token_expired"])
        const future = await host.accessToken("u", { claims: { nbf: Math.floor(Date.now() / 1000) + 600 } })
        expect(await reason(await host.bearer("GET", path, future))).toEqual([401, "unauthorized", "invalid_nbf"])
        expect(await reason(await host.bearer("GET", path, await host.accessToken("u", { key: await otherKey })))).toEqual([401, "unauthorized", "invalid_token"])
        expect(await reason(await host.bearer("GET", path, await host.accessToken("u", { header: { kid: "nobody" } })))).toEqual([401, "unauthorized", "unknown_kid"])
        expect(await reason(await host.bearer("GET", path, await host.accessToken("u", { claims: { aud: "openagents-sync" } })))).toEqual([401, "unauthorized", "invalid_aud"])
        expect(await reason(await host.bearer("GET", path, await host.accessToken("u", { claims: { iss: "https://evil.test" } })))).toEqual([401, "unauthorized", "invalid_iss"])
        expect(await reason(await host.bearer("GET", path, await host.accessToken("u", { header: { typ: "JWT" } })))).toEqual([401, "unauthorized", "invalid_typ"])
        expect(await reason(await host.bearer("GET", path, await host.accessToken("u", { claims: { sub: "user:someone-else" } })))).toEqual([401, "unauthorized", "invalid_sub"])
        // alg "none": an unsigned token with the right claims.
        const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url")
        const now = Math.floor(Date.now() / 1000)
        const none = `${b64({ alg: "none", typ: "at+jwt" })}.${b64({ iss: "https://control.test", aud: "openagents-api", sub: "user:u", oa_user_id: "u", sid: "s", iat: now, exp: now + 60 })}.`
        expect(await reason(await host.bearer("GET", path, none))).toEqual([401, "unauthorized", "invalid_token"])
      })

      it("refuses signed calls that are replayed, tampered with or lack a user", async () => {
        const signed = await host.internal("GET", path, "auth-b")
        expect(signed.status).toBe(200)
        // Replay the exact headers.
        const { InternalSignature } = await import("@openagents/host-kit")
        const headers = await Effect.runPromise(InternalSignature.sign({ kid: "runtime-internal-test", secret: (await import("effect/Redacted")).make("i".repeat(40)) }, { method: "GET", path, userId: "auth-b" }))
        expect((await fetch(`${host.baseUrl}${path}`, { headers })).status).toBe(200)
        expect(await reason(await fetch(`${host.baseUrl}${path}`, { headers }))).toEqual([401, "unauthorized", "token_replayed"])
        // Another user than the one signed.
        const again = await Effect.runPromise(InternalSignature.sign({ kid: "runtime-internal-test", secret: (await import("effect/Redacted")).make("i".repeat(40)) }, { method: "GET", path, userId: "auth-b" }))
        expect(await reason(await fetch(`${host.baseUrl}${path}`, { headers: { ...again, "x-oa-user-id": "auth-c" } }))).toEqual([403, "forbidden", "binding_mismatch"])
        // A wrong key.
        const forged = await Effect.runPromise(InternalSignature.sign({ kid: "runtime-internal-test", secret: (await import("effect/Redacted")).make("x".repeat(40)) }, { method: "GET", path, userId: "auth-b" }))
        expect(await reason(await fetch(`${host.baseUrl}${path}`, { headers: forged }))).toEqual([401, "unauthorized", "invalid_signature"])
        // A user route needs a user.
        expect(await reason(await host.internal("GET", path, undefined))).toEqual([401, "unauthorized", "missing_user"])
      })
    })

    describe("runs", () => {
      const frame = (frameId: string, type = "run.delta", payload: unknown = { text: frameId }) => ({ thread_id: "thread-1", frame_id: frameId, type, payload })

      it("ingests frames idempotently: 202 new, 200 replay, 409 changed payload", async () => {
        const first = await json(await host.internal("POST", "/internal/v1/runs/run-a/frames", "alice", frame("f1", "run.started", {})))
        expect(first).toEqual({ status: 202, body: { runId: "run-a", frameId: "f1", seq: 1, status: "accepted", idempotentReplay: false } })
        const replay = await json(await host.internal("POST", "/internal/v1/runs/run-a/frames", "alice", frame("f1", "run.started", {})))
        expect(replay).toEqual({ status: 200, body: { runId: "run-a", frameId: "f1", seq: 1, status: "accepted", idempotentReplay: true } })
        const changed = await json(await host.internal("POST", "/internal/v1/runs/run-a/frames", "alice", frame("f1", "run.started", { different: true })))
        expect([changed.status, changed.body.error.code]).toEqual([409, "conflict"])
        const token = await host.accessToken("alice")
        expect((await json(await host.bearer("POST", "/internal/v1/runs/run-a/frames", token, frame("f2")))).body.seq).toBe(2)
      })

      it("validates frames and refuses other owners and threads", async () => {
        const bad = async (body: unknown) => {
          const r = await json(await host.internal("POST", "/internal/v1/runs/run-v/frames", "alice", body))
          return [r.status, r.body.error.code]
        }
        expect(await bad({ frame_id: "f", type: "run.delta" })).toEqual([400, "invalid_request"])
        expect(await bad({ thread_id: "t", frame_id: "f", type: "NotAType" })).toEqual([400, "invalid_request"])
        expect(await bad({ thread_id: "t", frame_id: "bad id!", type: "run.delta" })).toEqual([400, "invalid_request"])
        const raw = await fetch(`${host.baseUrl}/internal/v1/runs/run-v/frames`, { method: "POST", headers: { authorization: `Bearer ${await host.accessToken("alice")}`, "content-type": "application/json" }, body: "{not json" })
        expect(raw.status).toBe(400)
        await host.internal("POST", "/internal/v1/runs/run-o/frames", "alice", frame("f1"))
        const other = await json(await host.internal("POST", "/internal/v1/runs/run-o/frames", "bob", frame("f2")))
        expect([other.status, other.body.error.code]).toEqual([403, "forbidden"])
        const thread = await json(await host.internal("POST", "/internal/v1/runs/run-o/frames", "alice", { ...frame("f3"), thread_id: "thread-2" }))
        expect([thread.status, thread.body.error.code]).toEqual([409, "conflict"])
      })

      it("answers snapshots, receipts and cancels with their error paths", async () => {
        await host.internal("POST", "/internal/v1/runs/run-s/frames", "alice", frame("f1", "run.started", {}))
        await host.internal("POST", "/internal/v1/runs/run-s/frames", "alice", frame("f2"))
        const snap = await json(await host.internal("GET", "/internal/v1/runs/run-s/snapshot?thread_id=thread-1", "alice"))
        expect(snap.status).toBe(200)
        expect(snap.body).toMatchObject({ runId: "run-s", threadId: "thread-1", status: "running", latestSeq: 2, latestEventType: "run.delta" })
        expect((await json(await host.internal("GET", "/internal/v1/runs/run-s/snapshot?thread_id=thread-9", "alice"))).status).toBe(409)
        expect((await json(await host.internal("GET", "/internal/v1/runs/run-s/snapshot", "bob"))).body.error.code).toBe("forbidden")
        expect((await json(await host.internal("GET", "/internal/v1/runs/run-missing/snapshot", "alice"))).status).toBe(404)
        const receipt = await json(await host.internal("GET", "/internal/v1/runs/run-s/receipt", "alice"))
        expect(receipt.body).toMatchObject({ runId: "run-s", eventCount: 2, lastSeq: 2, projectionVersion: Projection.PROJECTION_VERSION })
        expect(receipt.body.chainHead).toMatch(/^[0-9a-f]{64}$/)
        const cancel = await json(await host.internal("POST", "/internal/v1/runs/run-s/cancel", "alice", { thread_id: "thread-1", reason: "user" }))
        expect(cancel).toEqual({ status: 202, body: { runId: "run-s", status: "canceling", cancelRequested: true, idempotentReplay: false } })
        const again = await json(await host.internal("POST", "/internal/v1/runs/run-s/cancel", "alice", { thread_id: "thread-1" }))
        expect([again.status, again.body.idempotentReplay]).toEqual([200, true])
        expect((await json(await host.internal("POST", "/internal/v1/runs/run-nope/cancel", "alice", { thread_id: "thread-1" }))).status).toBe(404)
        expect((await json(await host.internal("POST", "/internal/v1/runs/run-s/cancel", "bob", { thread_id: "thread-1" }))).status).toBe(403)
      })

      it("keeps seq dense and the chain valid under 100 concurrent frames to one run", async () => {
        const token = await host.accessToken("carol")
        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => host.bearer("POST", "/internal/v1/runs/run-c/frames", token, frame(`c${i}`, "run.delta", { i }))))
        expect(results.map((r) => r.status).every((s) => s === 202)).toBe(true)
        const seqs = (await Promise.all(results.map((r) => r.json() as Promise<{ seq: number }>))).map((b) => b.seq).sort((a, b) => a - b)
        expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
        const verification = await host.run(Effect.flatMap(Runs, (runs) => runs.verify("run-c")))
        expect(verification.drift).toBe(false)
        expect(verification.chain.problems).toEqual([])
        expect(verification.chain.count).toBe(100)
      })
    })

    describe("run streams (SSE)", () => {
      const path = (run: string, query = "") => `/internal/v1/runs/${run}/stream${query}`
      const append = (run: string, id: string, type = "run.delta", user = "dave") =>
        host.internal("POST", `/internal/v1/runs/${run}/frames`, user, { thread_id: "t", frame_id: id, type, payload: { id } })

      it("resumes from Last-Event-ID with exactly the missed events, then follows live ones, and ends after a terminal event", async () => {
        for (const id of ["a", "b", "c"]) await append("run-sse", id)
        const token = await host.accessToken("dave")
        const response = await host.bearer("GET", path("run-sse"), token, undefined, { "last-event-id": "1" })
        expect(response.status).toBe(200)
        expect(response.headers.get("content-type")).toContain("text/event-stream")
        const pending = readSse(response, (events) => events.some((e) => e.data === "[DONE]"))
        await new Promise((r) => setTimeout(r, 200))
        await append("run-sse", "d")
        await append("run-sse", "e", "run.finished")
        const { events } = await pending
        expect(events.map((e) => e.id ?? e.data)).toEqual(["2", "3", "4", "5", "[DONE]"])
        expect(events[0]!.event).toBe("message")
        expect(JSON.parse(events[0]!.data)).toMatchObject({ runId: "run-sse", seq: 2, eventType: "run.delta", payload: { id: "b" } })
        // The same cursor as a query parameter gives the same events; the stream ended by itself.
        const viaQuery = await readSse(await host.bearer("GET", path("run-sse", "?cursor=3"), token), () => false)
        expect(viaQuery.ended).toBe(true)
        expect(viaQuery.events.map((e) => e.id ?? e.data)).toEqual(["4", "5", "[DONE]"])
      })

      it("applies the cursor rules: disagreeing cursors, a cursor ahead, bad tail_ms → 400; pruned history → 410", async () => {
        for (const id of ["a", "b", "c", "d"]) await append("run-cur", id)
        const token = await host.accessToken("dave")
        const code = async (r: Response) => [r.status, ((await r.json()) as any).error.code]
        expect(await code(await host.bearer("GET", path("run-cur", "?cursor=1"), token, undefined, { "last-event-id": "2" }))).toEqual([400, "invalid_request"])
        expect(await code(await host.bearer("GET", path("run-cur", "?cursor=9"), token))).toEqual([400, "invalid_request"])
        expect(await code(await host.bearer("GET", path("run-cur", "?cursor=-1"), token))).toEqual([400, "invalid_request"])
        expect(await code(await host.bearer("GET", path("run-cur", "?tail_ms=abc"), token))).toEqual([400, "invalid_request"])
        expect(await code(await host.bearer("GET", path("run-cur"), await host.accessToken("erin")))).toEqual([403, "forbidden"])
        // Same cursor twice is fine.
        const same = await host.bearer("GET", path("run-cur", "?cursor=2&tail_ms=0"), token, undefined, { "last-event-id": "2" })
        expect((await readSse(same, () => false)).events.map((e) => e.id)).toEqual(["3", "4"])
        // Retention removed events 1 and 2: cursor 0 and 1 are stale, 2 is not.
        await host.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM runtime.run_events WHERE run_id = 'run-cur' AND seq <= 2`))
        const stale = await host.bearer("GET", path("run-cur", "?cursor=1"), token)
        const body = (await stale.json()) as any
        expect([stale.status, body.error.code, body.error.details.retained_from]).toEqual([410, "stale_cursor", "3"])
        expect((await host.bearer("GET", path("run-cur", "?cursor=2&tail_ms=0"), token)).status).toBe(200)
      })

      it("without a cursor starts after the latest event", async () => {
        for (const id of ["a", "b"]) await append("run-tail", id)
        const token = await host.accessToken("dave")
        const response = await host.bearer("GET", path("run-tail", "?tail_ms=5000"), token)
        const pending = readSse(response, (events) => events.length >= 1)
        await new Promise((r) => setTimeout(r, 200))
        await append("run-tail", "c")
        expect((await pending).events.map((e) => e.id)).toEqual(["3"])
      })
    })

    describe("workers", () => {
      const base = "/internal/v1/codex/workers"

      it("creates, reattaches, lists, snapshots, takes requests and events, and stops, with their error paths", async () => {
        const created = await json(await host.internal("POST", base, "wendy", { worker_id: "w-1", workspace_ref: "ws/1", adapter: "in_memory", metadata: { a: 1 } }))
        expect(created).toEqual({ status: 202, body: { data: { workerId: "w-1", status: "running", latestSeq: 1, idempotentReplay: false } } })
        const again = await json(await host.internal("POST", base, "wendy", { worker_id: "w-1" }))
        expect([again.status, again.body.data.idempotentReplay]).toEqual([200, true])
        expect((await json(await host.internal("POST", base, "mallory", { worker_id: "w-1" }))).status).toBe(403)
        expect((await json(await host.internal("POST", base, "wendy", { worker_id: "bad id" }))).status).toBe(400)

        const list = await json(await host.internal("GET", `${base}?status=running&limit=10`, "wendy"))
        expect(list.status).toBe(200)
        expect(list.body.data).toHaveLength(1)
        expect(list.body.data[0]).toMatchObject({
          worker_id: "w-1",
          status: "running",
          latest_seq: 1,
          heartbeat_state: "missing",
          heartbeat_stale_after_ms: 120_000,
          workspace_ref: "ws/1",
          khala_projection: { status: "in_sync", lag_events: 0, last_runtime_seq: 1 }
        })
        expect((await json(await host.internal("GET", `${base}?limit=0`, "wendy"))).status).toBe(400)
        expect((await json(await host.internal("GET", `${base}?limit=201`, "wendy"))).status).toBe(400)
        expect((await json(await host.internal("GET", `${base}?status=sleeping`, "wendy"))).status).toBe(400)
        expect((await json(await host.internal("GET", base, "mallory"))).body.data).toEqual([])

        const snap = await json(await host.internal("GET", `${base}/w-1/snapshot`, "wendy"))
        expect(snap.body.data).toMatchObject({ worker_id: "w-1", status: "running", adapter: "in_memory", metadata: { a: 1 }, workspace_ref: "ws/1" })
        expect((await json(await host.internal("GET", `${base}/w-1/snapshot`, "mallory"))).status).toBe(403)
        expect((await json(await host.internal("GET", `${base}/w-none/snapshot`, "wendy"))).status).toBe(404)

        const request = await json(await host.internal("POST", `${base}/w-1/requests`, "wendy", { request: { request_id: "r1", method: "thread/start", params: { x: 1 } } }))
        expect(request).toEqual({ status: 202, body: { data: { worker_id: "w-1", request_id: "r1", seq: 2, status: "accepted" } } })
        expect((await json(await host.internal("POST", `${base}/w-1/requests`, "wendy", { request: { method: "x" } }))).status).toBe(400)

        const event = await json(await host.internal("POST", `${base}/w-1/events`, "wendy", { event: { event_type: "worker.heartbeat", payload: {} } }))
        expect(event.status).toBe(202)
        expect(event.body.data).toMatchObject({ worker_id: "w-1", seq: 3, event_type: "worker.heartbeat" })
        expect((await json(await host.internal("GET", `${base}/w-1/snapshot`, "wendy"))).body.data.heartbeat_state).toBe("fresh")
        expect((await json(await host.internal("POST", `${base}/w-1/events`, "wendy", { event: { event_type: "run.delta", payload: {} } }))).status).toBe(400)
        const handshake = await json(await host.internal("POST", `${base}/w-1/events`, "wendy", { event: { event_type: "worker.event", payload: { method: "ios/handshake", source: "ios" } } }))
        expect([handshake.status, handshake.body.error.details.missing]).toEqual([400, ["handshake_id", "occurred_at", "device_id"]])
        const okHandshake = await host.internal("POST", `${base}/w-1/events`, "wendy", {
          event: { event_type: "worker.event", payload: { method: "ios/handshake", source: "ios", handshake_id: "h1", occurred_at: "2026-11-24T00:00:00Z", device_id: "d1" } }
        })
        expect(okHandshake.status).toBe(202)

        const stop = await json(await host.internal("POST", `${base}/w-1/stop`, "wendy", { reason: "done" }))
        expect(stop).toEqual({ status: 202, body: { data: { worker_id: "w-1", status: "stopped", idempotentReplay: false } } })
        expect((await json(await host.internal("POST", `${base}/w-1/stop`, "wendy", {}))).status).toBe(200)
        const afterStop = await json(await host.internal("POST", `${base}/w-1/requests`, "wendy", { request: { request_id: "r2", method: "thread/start" } }))
        expect([afterStop.status, afterStop.body.error.code]).toEqual([409, "conflict"])
        expect((await json(await host.internal("POST", `${base}/w-1/stop`, "mallory", {}))).status).toBe(403)
        // Reattach re-activates a stopped worker.
        const reattach = await json(await host.internal("POST", base, "wendy", { worker_id: "w-1" }))
        expect([reattach.status, reattach.body.data.status]).toEqual([200, "running"])
      })

      it("streams a worker's events and resumes with Last-Event-ID without gaps or repeats", async () => {
        await host.internal("POST", base, "wendy", { worker_id: "w-sse" })
        const token = await host.accessToken("wendy")
        const seen: Array<number> = []
        let cursor = "0"
        // Three connections, each cut after a few events, with events appended in between.
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < 4; i++) await host.internal("POST", `${base}/w-sse/events`, "wendy", { event: { event_type: "worker.output", payload: { round, i } } })
          const response = await host.bearer("GET", `${base}/w-sse/stream`, token, undefined, { "last-event-id": cursor })
          const { events } = await readSse(response, (evs) => evs.length >= 3)
          for (const e of events) {
            expect(e.event).toBe("codex.worker.event")
            seen.push(JSON.parse(e.data).seq)
          }
          cursor = events.at(-1)!.id!
        }
        const rest = await readSse(await host.bearer("GET", `${base}/w-sse/stream?tail_ms=0`, token, undefined, { "last-event-id": cursor }), () => false)
        for (const e of rest.events) seen.push(JSON.parse(e.data).seq)
        expect(seen).toEqual(Array.from({ length: 13 }, (_, i) => i + 1))
        expect((await host.bearer("GET", `${base}/w-sse/stream`, await host.accessToken("mallory"))).status).toBe(403)
      })
    })

    describe("isolation and revocation", () => {
      it("never lets user B read, stream or subscribe to user A's runs and workers", async () => {
        await host.internal("POST", "/internal/v1/runs/run-iso/frames", "ann", { thread_id: "t", frame_id: "f", type: "run.started", payload: {} })
        await host.internal("POST", "/internal/v1/codex/workers", "ann", { worker_id: "w-iso" })
        const ben = await host.accessToken("ben")
        for (const p of ["/internal/v1/runs/run-iso/snapshot", "/internal/v1/runs/run-iso/stream", "/internal/v1/runs/run-iso/receipt", "/internal/v1/codex/workers/w-iso/snapshot", "/internal/v1/codex/workers/w-iso/stream"]) {
          expect([p, (await host.bearer("GET", p, ben)).status]).toEqual([p, 403])
        }
        const client = await TestClient.connect(host.khalaUrl)
        await client.hello(await TestServer.token("ben"))
        const denied = await client.subscribe([Projection.workerEventsTopic("w-iso")], "x")
        expect(denied.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
        const deniedUser = await client.subscribe([Projection.runTopic("ann")], "y")
        expect(deniedUser.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
        const own = await client.subscribe([Projection.runTopic("ben")], "z")
        expect(own.kind).toBe(FrameKind.SUBSCRIBED)
        client.close()
      })

      it("delivers a frame ingested over HTTP to the owner's Khala subscription", async () => {
        const client = await TestClient.connect(host.khalaUrl)
        await client.hello(await TestServer.token("fay"))
        const topic = Projection.runTopic("fay")
        expect((await client.subscribe([topic], "s")).kind).toBe(FrameKind.SUBSCRIBED)
        await host.internal("POST", "/internal/v1/runs/run-live/frames", "fay", { thread_id: "t", frame_id: "f", type: "run.started", payload: {} })
        await client.until(topic, 1n)
        expect(client.applied.get(topic)!.map((u) => u.docKey)).toEqual([Projection.runDocKey("run-live")])
        client.close()
      })

      it("revokes sessions: live SSE streams and Khala sockets are cut, later requests refused, repeat calls are fine", async () => {
        await host.internal("POST", "/internal/v1/runs/run-rev/frames", "gus", { thread_id: "t", frame_id: "f", type: "run.started", payload: {} })
        const token = await host.accessToken("gus", { sid: "sess_gus_1" })
        const other = await host.accessToken("gus", { sid: "sess_gus_2" })
        const stream = await host.bearer("GET", "/internal/v1/runs/run-rev/stream", token)
        expect(stream.status).toBe(200)
        const pending = readSse(stream, (events) => events.some((e) => e.event === "error"))
        const socket = await TestClient.connect(host.khalaUrl)
        await socket.hello(await TestServer.token("gus", { oa_session_id: "sess_gus_1" }))
        await new Promise((r) => setTimeout(r, 100))

        const body = { session_ids: ["sess_gus_1"], device_ids: [], reason: "user_requested" }
        const revoked = await json(await host.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, body))
        expect(revoked).toEqual({ status: 200, body: { ok: true, revoked_sessions: 1, revoked_devices: 0 } })
        const { events } = await pending
        expect(JSON.parse(events.at(-1)!.data).code).toBe("reauth_required")
        const closed = await socket.closed
        expect(closed.reason).toContain("reauth_required")

        const refused = await json(await host.bearer("GET", "/internal/v1/runs/run-rev/snapshot", token))
        expect([refused.status, refused.body.error.details.reason]).toEqual([401, "session_revoked"])
        expect((await host.bearer("GET", "/internal/v1/runs/run-rev/snapshot", other)).status).toBe(200)
        expect((await host.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, body)).status).toBe(200)
        // Unsigned, or signed for a user route's user, is refused; bad bodies are 400.
        expect((await fetch(`${host.baseUrl}/internal/v1/sync/sessions/revoke`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).status).toBe(401)
        expect((await host.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, { session_ids: ["s"], reason: "because" })).status).toBe(400)
        for (const user_id of ["", "u".repeat(257), 42]) {
          expect((await host.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, { session_ids: ["s"], device_ids: ["d"], user_id, reason: "user_requested" })).status).toBe(400)
        }
        for (const revoked_at_ms of [-1, 1.5, "1764028800000", 9e15]) {
          expect((await host.internal("POST", "/internal/v1/sync/sessions/revoke", undefined, { session_ids: ["s"], device_ids: ["d"], user_id: "gus", revoked_at_ms, reason: "user_requested" })).status).toBe(400)
        }
      })
    })

    it("hash chain payload digests are canonical (language-neutral)", () => {
      expect(HashChain.payloadHash({ b: 1, a: [true, null] })).toBe(HashChain.payloadHash({ a: [true, null], b: 1 }))
    })
  })
}
