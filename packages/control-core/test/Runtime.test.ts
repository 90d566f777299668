// Control -> runtime over real HTTP: the revocation call and the worker proxy, each checked by a
// fake runtime with the runtime-side InternalSignature verifier; revocations survive a runtime
// outage through the outbox.
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it, layer } from "@effect/vitest"
import { NodeHttpServer } from "@effect/platform-node"
import { ControlHost, ControlServer, HttpRuntime, MemoryStorage, RuntimeProxy } from "@openagents/control-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { request as httpRequest } from "node:http"
import { call, controlServer, serverUrl, signInNative } from "./harness.js"
import { type FakeRuntime, RUNTIME_KEY, startFakeRuntime } from "./fakeRuntime.js"

class Fake extends Effect.Tag("test/FakeRuntime")<Fake, FakeRuntime>() {}
const FakeLive = Layer.scoped(Fake, Effect.map(startFakeRuntime, ({ fake }) => fake))
const HttpRuntimeLive = Layer.unwrapEffect(Effect.map(Fake, (fake) => HttpRuntime.layer({ baseUrl: fake.url, key: RUNTIME_KEY, timeout: "2 seconds" }))).pipe(
  Layer.provide(FetchHttpClient.layer)
)

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean, tries = 150) =>
  Effect.gen(function*() {
    for (let i = 0; i < tries; i++) {
      const value = yield* effect
      if (done(value)) return value
      yield* Effect.sleep("20 millis")
    }
    return yield* effect
  })

describe("HttpRuntime.revokeSessions", () => {
  it.scopedLive("sends the signed revocation the runtime verifies, and reports an outage as RuntimeUnavailable", () =>
    Effect.gen(function*() {
      const { fake } = yield* startFakeRuntime
      const client = yield* HttpRuntime.make({ baseUrl: fake.url, key: RUNTIME_KEY }).pipe(Effect.provide(FetchHttpClient.layer))
      yield* client.revokeSessions({
        userId: "usr_1",
        revokedAtMs: 1_764_000_000_123,
        rememberUntilMs: 1_764_003_630_123,
        sessionIds: ["sess_1", "sess_2"],
        deviceIds: ["mobile:autopilot-ios"],
        reason: "user_requested"
      })
      expect(fake.refused).toEqual([])
      expect(fake.received).toHaveLength(1)
      const [received] = fake.received
      expect(received).toMatchObject({ method: "POST", url: "/internal/v1/sync/sessions/revoke", claims: { method: "POST", path: "/internal/v1/sync/sessions/revoke" } })
      expect(JSON.parse(received!.body)).toEqual({
        session_ids: ["sess_1", "sess_2"],
        device_ids: ["mobile:autopilot-ios"],
        user_id: "usr_1",
        revoked_at_ms: 1_764_000_000_123,
        remember_until_ms: 1_764_003_630_123,
        reason: "user_requested"
      })
      expect(received!.headers["x-oa-runtime-key-id"]).toBe(RUNTIME_KEY.kid)
      const wrongKey = yield* HttpRuntime.make({ baseUrl: fake.url, key: { kid: RUNTIME_KEY.kid, secret: { ...RUNTIME_KEY.secret } as never } }).pipe(Effect.provide(FetchHttpClient.layer))
      void wrongKey
      fake.mode = "down"
      const down = yield* Effect.flip(client.revokeSessions({ sessionIds: ["sess_3"], deviceIds: [], reason: "user_requested" }))
      expect(down).toMatchObject({ _tag: "RuntimeUnavailable", status: 503 })
      const nowhere = yield* HttpRuntime.make({ baseUrl: "http://127.0.0.1:1", key: RUNTIME_KEY }).pipe(Effect.provide(FetchHttpClient.layer))
      expect((yield* Effect.flip(nowhere.revokeSessions({ sessionIds: ["s"], deviceIds: [], reason: "user_requested" })))._tag).toBe("RuntimeUnavailable")
    }))
})

describe("RuntimeProxy.internalPath", () => {
  it("forwards only the worker routes, never a crafted path", () => {
    expect(RuntimeProxy.internalPath("/api/runtime/codex/workers")).toBe("/internal/v1/codex/workers")
    expect(RuntimeProxy.internalPath("/api/runtime/codex/workers/w_1")).toBe("/internal/v1/codex/workers/w_1")
    for (const action of ["snapshot", "stream", "requests", "events", "stop"]) {
      expect(RuntimeProxy.internalPath(`/api/runtime/codex/workers/w_1/${action}`)).toBe(`/internal/v1/codex/workers/w_1/${action}`)
    }
    for (const bad of [
      "/api/runtime/codex/workers/..",
      "/api/runtime/codex/workers/../../sync/sessions/revoke",
      "/api/runtime/codex/workers/w_1/delete",
      "/api/runtime/codex/workers/w_1/stream/x",
      "/api/runtime/codex/workers/w%2F1",
      "/api/runtime/codex/workers/",
      "/api/runtime/codex/workersX",
      "/api/runtime/runs/r_1"
    ]) expect(RuntimeProxy.internalPath(bad), bad).toBeUndefined()
  })
})

describe("control with the HTTP runtime client", () => {
  const server = controlServer(MemoryStorage.layer, { runtime: HttpRuntimeLive.pipe(Layer.provideMerge(FakeLive)) })
  layer(server as Layer.Layer<Layer.Layer.Success<typeof server> | Fake, unknown>, { excludeTestServices: true })((it) => {
    it.effect("a logout reaches the runtime as a signed revocation", () =>
      Effect.gen(function*() {
        const fake = yield* Fake
        const session = yield* signInNative("autopilot-ios")
        expect((yield* call("POST", "/api/auth/logout", { headers: bearer(session.body.token) })).status).toBe(200)
        const received = yield* waitFor(Effect.sync(() => fake.received), (r) => r.some((x) => x.body.includes(session.body.sessionId)))
        const revocation = received.find((x) => x.body.includes(session.body.sessionId))!
        const sent = JSON.parse(revocation.body)
        expect(sent).toEqual({
          session_ids: [session.body.sessionId],
          device_ids: [],
          user_id: session.body.userId,
          revoked_at_ms: expect.any(Number),
          remember_until_ms: sent.revoked_at_ms + 3_630_000,
          reason: "user_requested"
        })
      }))

    it.effect("a revocation made while the runtime is down is delivered when it comes back", () =>
      Effect.gen(function*() {
        const fake = yield* Fake
        const email = `outage_${Date.now()}@example.com`
        const phone = yield* signInNative("autopilot-ios", email)
        const laptop = yield* signInNative("autopilot-desktop", email)
        fake.mode = "down"
        const before = Date.now()
        const revoked = yield* call("POST", "/api/auth/sessions/revoke", { body: { device_ids: ["mobile:autopilot-ios"] }, headers: bearer(laptop.body.token) })
        const after = Date.now()
        expect(revoked.body.revokedSessionIds).toEqual([phone.body.sessionId])
        yield* Effect.sleep("150 millis")
        expect(fake.received.some((x) => x.body.includes(phone.body.sessionId))).toBe(false)
        fake.mode = "ok"
        const received = yield* waitFor(Effect.sync(() => fake.received), (r) => r.some((x) => x.body.includes(phone.body.sessionId)))
        const delivered = JSON.parse(received.find((x) => x.body.includes(phone.body.sessionId))!.body)
        // The time of the revocation, not of the (later) delivery: a redelivery carries the same.
        expect(delivered.revoked_at_ms).toBeGreaterThanOrEqual(before)
        expect(delivered.revoked_at_ms).toBeLessThanOrEqual(after)
        expect(delivered).toEqual({
          session_ids: [phone.body.sessionId],
          device_ids: ["mobile:autopilot-ios"],
          user_id: phone.body.userId,
          revoked_at_ms: expect.any(Number),
          // From the revocation, not the (later) delivery.
          remember_until_ms: delivered.revoked_at_ms + 3_630_000,
          reason: "user_requested"
        })
      }))

    it.effect("proxies worker reads and commands with the user bound in the signature", () =>
      Effect.gen(function*() {
        const fake = yield* Fake
        const session = yield* signInNative("autopilot-desktop")
        const list = yield* call("GET", "/api/runtime/codex/workers?status=running&limit=5", { headers: { ...bearer(session.body.token), "x-request-id": "req_list_1" } })
        expect(list.status).toBe(200)
        expect(list.body).toEqual({ data: [{ worker_id: "w_1", status: "running", owner: session.body.userId }] })
        expect(list.headers["x-request-id"]).toBe("req_list_1")
        const seen = fake.received.at(-1)!
        expect(seen).toMatchObject({ method: "GET", url: "/internal/v1/codex/workers?status=running&limit=5", claims: { user_id: session.body.userId } })
        expect(seen.headers["x-oa-user-id"]).toBe(session.body.userId)

        const command = { request: { request_id: "r1", method: "thread/start", params: { prompt: "hello" } } }
        const posted = yield* call("POST", "/api/runtime/codex/workers/w_1/requests", { body: command, headers: bearer(session.body.token) })
        expect(posted.status).toBe(202)
        expect(posted.body).toEqual({ data: { echoed: command } })
        expect(fake.received.at(-1)!.claims).toMatchObject({ method: "POST", path: "/internal/v1/codex/workers/w_1/requests", user_id: session.body.userId })
      }))

    it.effect("streams a worker's SSE events through, resuming from Last-Event-ID", () =>
      Effect.gen(function*() {
        const session = yield* signInNative("autopilot-ios")
        const stream = yield* call("GET", "/api/runtime/codex/workers/w_1/stream", { headers: { ...bearer(session.body.token), "last-event-id": "3" } })
        expect(stream.status).toBe(200)
        expect(stream.headers["content-type"]).toContain("text/event-stream")
        expect((stream.body as string).match(/^id: \d+$/gm)).toEqual(["id: 4", "id: 5", "id: 6"])
      }))

    it.effect("refuses unauthenticated callers and unknown routes without forwarding; the runtime's own error status passes through", () =>
      Effect.gen(function*() {
        const fake = yield* Fake
        const before = fake.received.length
        const anonymous = yield* call("GET", "/api/runtime/codex/workers")
        expect(anonymous.status).toBe(401)
        expect(anonymous.body.error.code).toBe("unauthorized")
        const session = yield* signInNative("autopilot-ios")
        const baseUrl = yield* serverUrl
        // A raw request, so no client normalizes the path before it reaches control.
        const raw = yield* Effect.promise(() =>
          new Promise<number>((resolve) => {
            const url = new URL(baseUrl)
            const req = httpRequest({ host: url.hostname, port: url.port, path: "/api/runtime/codex/workers/../../sync/sessions/revoke", method: "POST", headers: bearer(session.body.token) }, (res) => {
              res.resume()
              resolve(res.statusCode ?? 0)
            })
            req.end("{}")
          }))
        expect(raw).toBe(404)
        expect((yield* call("DELETE", "/api/runtime/codex/workers/w_1", { headers: bearer(session.body.token) })).status).toBe(404)
        expect(fake.received.length).toBe(before)
        fake.mode = "down"
        const down = yield* call("GET", "/api/runtime/codex/workers", { headers: bearer(session.body.token) })
        fake.mode = "ok"
        expect(down.status).toBe(503)
      }))
  })
})

describe("the control host's revocation notices", () => {
  // A 24 h access token (the most OA_AUTH_ACCESS_TOKEN_TTL_SECONDS allows) must stay refused by
  // the runtime for 24 h, not for the runtime's default hour.
  const host = Layer.unwrapEffect(Effect.map(Fake, (fake) => {
    const deps = ControlHost.services(
      ControlHost.developmentConfig({ accessTokenTtlSeconds: 86_400, runtime: { baseUrl: fake.url, key: RUNTIME_KEY } }),
      MemoryStorage.layer
    )
    return ControlServer.layer({ disableLogger: true }).pipe(Layer.provide(deps), Layer.provideMerge(deps), Layer.provideMerge(NodeHttpServer.layerTest))
  })).pipe(Layer.provideMerge(FakeLive))
  layer(host as Layer.Layer<Layer.Layer.Success<typeof host>, unknown>, { excludeTestServices: true })((it) => {
    it.effect("tell the runtime to remember a revocation for the access-token TTL plus skew (remember_until_ms)", () =>
      Effect.gen(function*() {
        const fake = yield* Fake
        const session = yield* signInNative("autopilot-ios")
        const [, payload] = (session.body.token as string).split(".")
        const claims = JSON.parse(Buffer.from(payload!, "base64url").toString())
        expect(claims.exp - claims.iat).toBe(86_400)
        expect((yield* call("POST", "/api/auth/logout", { headers: bearer(session.body.token) })).status).toBe(200)
        const received = yield* waitFor(Effect.sync(() => fake.received), (r) => r.some((x) => x.body.includes(session.body.sessionId)))
        const notice = JSON.parse(received.find((x) => x.body.includes(session.body.sessionId))!.body)
        expect(notice.remember_until_ms).toBe(notice.revoked_at_ms + 86_400_000 + 30_000)
      }))
  })
})
