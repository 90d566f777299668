// Sync tokens minted over HTTP and verified by the runtime's own verifier
// (@openagents/khala-core SyncToken), in both modes: an HS256 keyring with rotation, and ES256
// with the JWKS control publishes. Every tampering is refused.
import { describe, expect, it, layer } from "@effect/vitest"
import { type Auth, MemoryStorage, SqlStorage, SyncTokens } from "@openagents/control-core"
import { SyncToken } from "@openagents/khala-core"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import { call, controlServer, cookie, signInNative, SYNC_ISSUER, SYNC_KEY, syncSettings } from "./harness.js"

const PREVIOUS_KEY = { kid: "sync-auth-v1", secret: Redacted.make("p".repeat(32) + "-previous-sync-key") }
const runtimeVerifier = (over: Partial<SyncToken.VerifierOptions> = {}) =>
  SyncToken.makeVerifier({ hmacKeys: [SYNC_KEY, PREVIOUS_KEY], issuer: SYNC_ISSUER, audience: "openagents-sync", claimsVersion: "oa_sync_claims_v1", ...over })

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const mint = (token: string, body: unknown = {}) => call("POST", "/api/sync/token", { body, headers: bearer(token) })
const nowSeconds = () => Math.floor(Date.now() / 1000)
const forge = (token: string, change: (claims: Record<string, any>) => Record<string, any>) => {
  const [h, p, s] = token.split(".")
  const claims = JSON.parse(Buffer.from(p!, "base64url").toString())
  return `${h}.${Buffer.from(JSON.stringify(change(claims))).toString("base64url")}.${s}`
}

const syncSuite = (name: string, storage: Layer.Layer<any, unknown>) =>
  describe(`sync tokens on ${name}`, () => {
    layer(controlServer(storage), { excludeTestServices: true })((it) => {
      it.effect("a minted token is accepted by the runtime's verifier, with the default owner-partitioned grants", () =>
        Effect.gen(function*() {
          const session = yield* signInNative("autopilot-ios")
          const userId = session.body.userId as string
          const minted = yield* mint(session.body.token)
          expect(minted.status).toBe(200)
          const data = minted.body.data
          expect(data).toMatchObject({
            token_type: "Bearer",
            expires_in: 300,
            issuer: SYNC_ISSUER,
            audience: "openagents-sync",
            subject: `user:${userId}`,
            org_id: `user:${userId}`,
            claims_version: "oa_sync_claims_v1",
            scopes: ["runtime.run_summaries", "runtime.codex_worker_summaries", "runtime.notifications"],
            kid: "sync-auth-v2",
            session_id: session.body.sessionId,
            device_id: "mobile:autopilot-ios"
          })
          expect(data.token_id).toMatch(/^sync_[0-9a-f]{32}$/)
          expect(data.granted_topics).toEqual([
            { topic: `runtime.run_summaries:user:${userId}`, required_scope: "runtime.run_summaries" },
            { topic: `runtime.codex_worker_summaries:user:${userId}`, required_scope: "runtime.codex_worker_summaries" },
            { topic: `runtime.notifications:user:${userId}`, required_scope: "runtime.notifications" }
          ])
          expect(Date.parse(data.expires_at) - Date.parse(data.issued_at)).toBe(300_000)

          const verifier = yield* runtimeVerifier()
          const principal = yield* verifier.verify(data.token)
          expect(principal).toMatchObject({
            subject: `user:${userId}`,
            userId,
            orgId: `user:${userId}`,
            scopes: data.scopes,
            topics: data.granted_topics.map((g: any) => g.topic),
            sessionId: session.body.sessionId,
            deviceId: "mobile:autopilot-ios",
            tokenId: data.token_id,
            claimsVersion: "oa_sync_claims_v1"
          })
          expect(principal.expiresAt - principal.issuedAt).toBe(300)
        }))

      it.effect("each tampering is refused by the runtime: scope escalation, another user's topic, expiry, audience, issuer, key", () =>
        Effect.gen(function*() {
          const session = yield* signInNative("openagents-expo")
          const { token } = (yield* mint(session.body.token, { scopes: ["runtime.codex_worker_summaries"], ttl_seconds: 60 })).body.data
          const verifier = yield* runtimeVerifier()
          const refusal = (t: string, at?: number, v = verifier) => Effect.map(Effect.flip(v.verify(t, at)), (e) => [e.reason, e.claim])
          expect(yield* refusal(forge(token, (c) => ({ ...c, oa_sync_scopes: [...c.oa_sync_scopes, "runtime.codex_worker_events"] })))).toEqual(["invalid_signature", undefined])
          expect(yield* refusal(forge(token, (c) => ({ ...c, oa_sync_topics: ["runtime.codex_worker_summaries:user:usr_someone_else"] })))).toEqual(["invalid_signature", undefined])
          expect(yield* refusal(forge(token, (c) => ({ ...c, sub: "user:usr_someone_else", oa_user_id: "usr_someone_else" })))).toEqual(["invalid_signature", undefined])
          expect(yield* refusal(token, nowSeconds() + 60 + 31)).toEqual(["token_expired", undefined])
          expect(yield* refusal(token, undefined, yield* runtimeVerifier({ audience: "another-audience" }))).toEqual(["claim_mismatch", "aud"])
          expect(yield* refusal(token, undefined, yield* runtimeVerifier({ issuer: "https://evil.example" }))).toEqual(["claim_mismatch", "iss"])
          expect(yield* refusal(token, undefined, yield* runtimeVerifier({ hmacKeys: [PREVIOUS_KEY] }))).toEqual(["unknown_kid", undefined])
          expect(yield* refusal(token, undefined, yield* runtimeVerifier({ hmacKeys: [{ kid: SYNC_KEY.kid, secret: PREVIOUS_KEY.secret }] }))).toEqual(["invalid_signature", undefined])
          // Within the 30 s skew the runtime still accepts it.
          yield* verifier.verify(token, nowSeconds() + 60 + 20)
        }))

      it.effect("refuses scopes outside the allowed set (422 invalid_scope) and topics that are not the requester's", () =>
        Effect.gen(function*() {
          const session = yield* signInNative("autopilot-desktop")
          const userId = session.body.userId as string
          const escalate = yield* mint(session.body.token, { scopes: ["runtime.run_summaries", "runtime.admin"] })
          expect(escalate.status).toBe(422)
          expect(escalate.body.error).toEqual({ code: "invalid_scope", message: "requested sync scopes are not allowed", details: { scopes: ["runtime.admin"] } })
          const foreign = yield* mint(session.body.token, { topics: ["runtime.run_summaries:user:usr_someone_else"] })
          expect(foreign.status).toBe(422)
          expect(foreign.body.error.code).toBe("invalid_scope")
          expect(foreign.body.error.details.topics).toEqual([{ topic: "runtime.run_summaries:user:usr_someone_else", reason: "another user's topic" }])
          const ungranted = yield* mint(session.body.token, { scopes: ["runtime.notifications"], topics: [`runtime.run_summaries:user:${userId}`] })
          expect(ungranted.body.error.details.topics[0].reason).toBe("scope runtime.run_summaries is not granted")
          const wrongPartition = yield* mint(session.body.token, { topics: [`runtime.run_summaries:worker:${userId}`] })
          expect(wrongPartition.body.error.details.topics[0].reason).toBe("runtime.run_summaries is partitioned by user")
          const tooLong = yield* mint(session.body.token, { scopes: ["x".repeat(121)] })
          expect(tooLong.status).toBe(422)
          expect(tooLong.body.error.code).toBe("invalid_request")
        }))

      it.effect("grants worker-partitioned topics by scope, leaving ownership to the runtime at subscribe", () =>
        Effect.gen(function*() {
          const session = yield* signInNative("autopilot-ios")
          const minted = yield* mint(session.body.token, { scopes: ["runtime.codex_worker_events"], topics: ["runtime.codex_worker_events:worker:w_7f3a"] })
          expect(minted.status).toBe(200)
          expect(minted.body.data.granted_topics).toEqual([{ topic: "runtime.codex_worker_events:worker:w_7f3a", required_scope: "runtime.codex_worker_events" }])
          const principal = yield* (yield* runtimeVerifier()).verify(minted.body.data.token)
          expect(principal.topics).toEqual(["runtime.codex_worker_events:worker:w_7f3a"])
          // No topics requested for a worker scope: no default topic is named.
          const scopeOnly = yield* mint(session.body.token, { scopes: ["runtime.codex_worker_events"] })
          expect(scopeOnly.body.data.granted_topics).toEqual([])
        }))

      it.effect("names at most 100 topics (khala's topics per connection): more is 422 invalid_request on topics", () =>
        Effect.gen(function*() {
          const session = yield* signInNative("autopilot-ios")
          const topics = (n: number) => Array.from({ length: n }, (_, i) => `runtime.codex_worker_events:worker:w_${i}`)
          const most = yield* mint(session.body.token, { scopes: ["runtime.codex_worker_events"], topics: topics(100) })
          expect(most.status).toBe(200)
          expect(most.body.data.granted_topics).toHaveLength(100)
          for (const n of [101, 20_000]) {
            const refused = yield* mint(session.body.token, { scopes: ["runtime.codex_worker_events"], topics: topics(n) })
            expect([refused.status, refused.body.error.code, refused.body.errors]).toEqual([422, "invalid_request", { topics: ["at most 100 topics per sync token"] }])
          }
          expect(SyncTokens.MAX_TOPICS).toBe(100)
        }))

      it.effect("bounds the TTL to 60..900 seconds and binds the session's device", () =>
        Effect.gen(function*() {
          const session = yield* signInNative("openagents-desktop")
          for (const ttl of [59, 901, 1.5]) {
            const refused = yield* mint(session.body.token, { ttl_seconds: ttl })
            expect(refused.status).toBe(422)
            expect(Object.keys(refused.body.errors)).toEqual(["ttl_seconds"])
          }
          expect((yield* mint(session.body.token, { ttl_seconds: 60 })).body.data.expires_in).toBe(60)
          expect((yield* mint(session.body.token, { ttlSeconds: 900 })).body.data.expires_in).toBe(900)
          const otherDevice = yield* mint(session.body.token, { device_id: "someone-elses-device" })
          expect(otherDevice.status).toBe(422)
          expect((yield* mint(session.body.token, { device_id: "desktop:openagents-desktop" })).status).toBe(200)
        }))

      it.effect("requires authentication; the web mints with its session cookie; /api/v1/sync/token is the same", () =>
        Effect.gen(function*() {
          expect((yield* call("POST", "/api/sync/token", { body: {} })).status).toBe(401)
          const web = yield* signInNative("web-browser")
          const session = cookie(web, "oa_session")!.value
          const minted = yield* call("POST", "/api/v1/sync/token", { body: {}, headers: { cookie: `oa_session=${session}` } })
          expect(minted.status).toBe(200)
          const principal = yield* (yield* runtimeVerifier()).verify(minted.body.data.token)
          expect(principal.sessionId).toBe(web.body.sessionId)
          expect(principal.deviceId).toMatch(/^web:/)
        }))
    })
  })

syncSuite("memory", MemoryStorage.layer)
for (const engine of SqlTesting.engines()) syncSuite(engine.name, SqlStorage.layer.pipe(Layer.provide(engine.layer)))

describe("sync token configuration", () => {
  layer(controlServer(MemoryStorage.layer, { sync: syncSettings({ enabled: false }) }), { excludeTestServices: true })((it) => {
    it.effect("disabled minting is 503 sync_token_unavailable", () =>
      Effect.gen(function*() {
        const session = yield* signInNative("autopilot-ios")
        const refused = yield* mint(session.body.token)
        expect(refused.status).toBe(503)
        expect(refused.body.error.code).toBe("sync_token_unavailable")
      }))
  })

  layer(controlServer(MemoryStorage.layer, { sync: syncSettings({ signing: undefined }) }), { excludeTestServices: true })((it) => {
    it.effect("a missing signing key is 503 sync_token_unavailable", () =>
      Effect.gen(function*() {
        const session = yield* signInNative("autopilot-ios")
        expect((yield* mint(session.body.token)).body.error.code).toBe("sync_token_unavailable")
      }))
  })

  layer(controlServer(MemoryStorage.layer, { sync: syncSettings({ signing: { alg: "HS256", ...PREVIOUS_KEY } }) }), { excludeTestServices: true })((it) => {
    it.effect("rotation: a token signed with the previous key is accepted while the runtime keeps it in its keyring", () =>
      Effect.gen(function*() {
        const session = yield* signInNative("autopilot-ios")
        const minted = yield* mint(session.body.token)
        expect(minted.body.data.kid).toBe("sync-auth-v1")
        yield* (yield* runtimeVerifier()).verify(minted.body.data.token)
        const afterRotation = yield* runtimeVerifier({ hmacKeys: [SYNC_KEY] })
        expect((yield* Effect.flip(afterRotation.verify(minted.body.data.token))).reason).toBe("unknown_kid")
      }))
  })

  layer(controlServer(MemoryStorage.layer, { sync: syncSettings({ signing: { alg: "ES256" } }) }), { excludeTestServices: true })((it) => {
    it.effect("ES256: the runtime verifies with the JWKS control publishes, and nothing else", () =>
      Effect.gen(function*() {
        const session = yield* signInNative("autopilot-ios")
        const minted = yield* mint(session.body.token)
        expect(minted.body.data.kid).toBe("control-test-1")
        const jwks = (yield* call("GET", "/.well-known/jwks.json")).body
        const verifier = yield* SyncToken.makeVerifier({ jwks, issuer: SYNC_ISSUER, audience: "openagents-sync", claimsVersion: "oa_sync_claims_v1" })
        const principal = yield* verifier.verify(minted.body.data.token)
        expect(principal.userId).toBe(session.body.userId)
        // An access token from the same keyring is not a sync token.
        expect((yield* Effect.flip(verifier.verify(session.body.token))).reason).toBe("invalid_claims")
        expect((yield* Effect.flip(verifier.verify(forge(minted.body.data.token, (c) => ({ ...c, oa_sync_scopes: ["runtime.codex_worker_events"] }))))).reason).toBe("invalid_signature")
      }))
  })
})

describe("sync token grant rules", () => {
  const scopes = Object.keys(SyncTokens.DEFAULT_SCOPE_PARTITIONS)
  const arbTopic = fc.tuple(
    fc.constantFrom(...scopes, "runtime.other"),
    fc.constantFrom("user", "worker", "run", "org"),
    fc.constantFrom("usr_me", "usr_other", "w_1", "bad id")
  ).map(([c, p, o]) => `${c}:${p}:${o}`)

  it("a granted topic always has a granted class, that class's partition, and, for users, the requester as owner", () => {
    fc.assert(fc.property(fc.subarray(scopes), arbTopic, (granted, topic) => {
      const refusal = SyncTokens.topicRefusal(topic, granted, SyncTokens.DEFAULT_SCOPE_PARTITIONS, "usr_me")
      if (refusal !== undefined) return true
      const [cls, partition, owner] = topic.split(":")
      return granted.includes(cls!) &&
        SyncTokens.DEFAULT_SCOPE_PARTITIONS[cls!] === partition &&
        (partition !== "user" || owner === "usr_me") &&
        partition !== "org"
    }), { numRuns: 500 })
  })

  it.effect("mint never grants more than was allowed, whatever is requested", () =>
    Effect.gen(function*() {
      const service = yield* SyncTokens.make(syncSettings())
      const principal: Auth.Principal = { userId: "usr_me", sessionId: "sess_1", deviceId: "dev_1", client: "autopilot-ios", tokenName: "mobile:autopilot-ios", kind: "bearer" }
      yield* Effect.promise(() =>
        fc.assert(fc.asyncProperty(fc.subarray([...scopes, "runtime.admin"]), fc.array(arbTopic, { maxLength: 4 }), async (requested, topics) => {
          const result = await Effect.runPromise(Effect.either(service.mint(principal, { scopes: requested, topics })))
          if (result._tag === "Left") return true
          const m = result.right
          return m.scopes.every((s) => syncSettings().allowedScopes.includes(s)) &&
            m.grantedTopics.every((g) => m.scopes.includes(g.requiredScope) && (!g.topic.includes(":user:") || g.topic.endsWith(":user:usr_me")))
        }), { numRuns: 200 }))
    }))
})
