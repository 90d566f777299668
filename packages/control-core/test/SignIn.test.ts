// Sign-in, refresh, logout and sessions over HTTP (a real server on 127.0.0.1), on every storage:
// memory, PGlite, and Postgres when TEST_DATABASE_URL is set.
import { describe, expect, layer } from "@effect/vitest"
import { IdentityProvider, LocalIdentity, MemoryRuntime, MemoryStorage, SqlStorage } from "@openagents/control-core"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createLocalJWKSet, jwtVerify } from "jose"
import { type Call, call, controlServer, cookie, freshEmail, freshIp, localIdentity, requestCode, signInNative } from "./harness.js"

const NATIVE = [
  ["openagents-expo", "mobile:openagents-expo"],
  ["autopilot-ios", "mobile:autopilot-ios"],
  ["openagents-desktop", "desktop:openagents-desktop"],
  ["Autopilot-Desktop", "desktop:autopilot-desktop"]
] as const

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** How long the runtime is told to remember a revocation with the default 3600 s access token: its lifetime plus 30 s of skew. */
const DEFAULT_REMEMBER_MS = 3_630_000

const waitFor = <A>(effect: Effect.Effect<A>, done: (a: A) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100; i++) {
      const value = yield* effect
      if (done(value)) return value
      yield* Effect.sleep("20 millis")
    }
    return yield* effect
  })

const signInSuite = (name: string, storage: Layer.Layer<any, unknown>) =>
  describe(`sign-in on ${name}`, () => {
    layer(controlServer(storage), { excludeTestServices: true })((it) => {
      it.effect("web: the challenge rides in a cookie, the session in an HttpOnly SameSite cookie, never in the body", () =>
        Effect.gen(function*() {
          const ip = freshIp()
          const email = freshEmail()
          const { sent, code } = yield* requestCode(email, ip)
          expect(sent.body).toEqual({ ok: true, status: "code-sent", email, challengeId: expect.stringMatching(/^ch_[0-9a-f]{32}$/) })
          const challengeCookie = cookie(sent, "oa_magic_challenge")!
          expect(challengeCookie.value).toBe(sent.body.challengeId)
          expect(challengeCookie.options).toMatchObject({ httpOnly: true, sameSite: "lax", path: "/api/auth" })
          expect(challengeCookie.options?.maxAge).toBeDefined()

          const verified = yield* call("POST", "/api/auth/verify", {
            body: { code },
            headers: { "x-forwarded-for": ip, cookie: `oa_magic_challenge=${challengeCookie.value}` }
          })
          expect(verified.status).toBe(200)
          expect(verified.body).toMatchObject({ ok: true, status: "authenticated", redirect: "/", tokenName: "web", newUser: true, user: { email } })
          expect(verified.body.token).toBeUndefined()
          expect(verified.body.refreshToken).toBeUndefined()
          const session = cookie(verified, "oa_session")!
          expect(session.value).toMatch(/^oa_rt_/)
          expect(session.options).toMatchObject({ httpOnly: true, sameSite: "lax", path: "/" })
          expect(cookie(verified, "oa_magic_challenge")?.value).toBe("")

          const me = yield* call("GET", "/api/auth/me", { headers: { cookie: `oa_session=${session.value}` } })
          expect(me.status).toBe(200)
          expect(me.body.session).toMatchObject({ sessionId: verified.body.sessionId, client: "web", current: true })

          const refreshed = yield* call("POST", "/api/auth/refresh", { body: {}, headers: { cookie: `oa_session=${session.value}` } })
          expect(refreshed.status).toBe(200)
          expect(refreshed.body.refreshToken).toBeUndefined()
          expect(refreshed.body.token).toBeUndefined()
          const rotated = cookie(refreshed, "oa_session")!.value
          expect(rotated).not.toBe(session.value)
          expect((yield* call("GET", "/api/auth/me", { headers: { cookie: `oa_session=${session.value}` } })).status).toBe(401)

          const out = yield* call("POST", "/api/auth/logout", { headers: { cookie: `oa_session=${rotated}` } })
          expect(out.status).toBe(200)
          expect(out.body).toMatchObject({ ok: true, status: "revoked", sessionId: verified.body.sessionId })
          expect(cookie(out, "oa_session")?.value).toBe("")
          const after = yield* call("GET", "/api/auth/me", { headers: { cookie: `oa_session=${rotated}` } })
          expect(after.status).toBe(401)
          expect(after.body.error.code).toBe("reauth_required")
        }))

      for (const [client, tokenName] of NATIVE) {
        it.effect(`${client}: a bearer token named ${tokenName}, verifiable with the published JWKS alone`, () =>
          Effect.gen(function*() {
            const verified = yield* signInNative(client, freshEmail(), { "x-device-id": `dev-${client.toLowerCase()}` })
            expect(verified.body).toMatchObject({ ok: true, status: "authenticated", tokenType: "Bearer", tokenName, newUser: true })
            expect(verified.body.refreshToken).toMatch(/^oa_rt_/)
            expect(cookie(verified, "oa_session")).toBeUndefined()

            const jwks = yield* call("GET", "/.well-known/jwks.json")
            expect(jwks.body.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", kid: "control-test-1", use: "sig" })
            expect(jwks.body.keys[0].d).toBeUndefined()
            const { payload, protectedHeader } = yield* Effect.promise(() =>
              jwtVerify(verified.body.token, createLocalJWKSet(jwks.body), { issuer: "http://control.test", audience: "openagents-api" }))
            expect(protectedHeader).toMatchObject({ alg: "ES256", typ: "at+jwt", kid: "control-test-1" })
            expect(payload).toMatchObject({
              sub: `user:${verified.body.userId}`,
              sid: verified.body.sessionId,
              did: `dev-${client.toLowerCase()}`,
              client_id: client.toLowerCase(),
              token_name: tokenName
            })
            const me = yield* call("GET", "/api/auth/me", { headers: bearer(verified.body.token) })
            expect(me.status).toBe(200)
            expect(me.body.session).toMatchObject({ tokenName, deviceId: `dev-${client.toLowerCase()}` })
          }))
      }

      it.effect("an unrecognised X-Client gets a cookie session and no bearer token", () =>
        Effect.gen(function*() {
          const verified = yield* signInNative("some-other-app")
          expect(verified.body.token).toBeUndefined()
          expect(verified.body.tokenName).toBe("web")
          expect(cookie(verified, "oa_session")?.value).toMatch(/^oa_rt_/)
        }))

      it.effect("brute force of a code is stopped after 5 attempts, even with the right code after", () =>
        Effect.gen(function*() {
          const ip = freshIp()
          const { challengeId, code } = yield* requestCode(freshEmail(), ip)
          const wrong = code === "000000" ? "111111" : "000000"
          for (let i = 0; i < 5; i++) {
            const refused = yield* call("POST", "/api/auth/verify", { body: { code: wrong, challenge_id: challengeId }, headers: { "x-forwarded-for": freshIp() } })
            expect(refused.status).toBe(422)
            expect(refused.body.error).toMatchObject({ code: "invalid_request", message: "That code is invalid or expired. Request a new one." })
            expect(refused.body.errors).toEqual({ code: ["That code is invalid or expired. Request a new one."] })
          }
          const right = yield* call("POST", "/api/auth/verify", { body: { code, challenge_id: challengeId }, headers: { "x-forwarded-for": freshIp() } })
          expect(right.status).toBe(422)
          expect(right.body.error.details).toEqual({ reason: "attempts_exhausted" })
        }))

      it.effect("concurrent guesses cannot exceed the attempt budget", () =>
        Effect.gen(function*() {
          const { challengeId, code } = yield* requestCode(freshEmail(), freshIp())
          const guesses = Array.from({ length: 9 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, "0"))
          const results = yield* Effect.all(
            guesses.map((g) => call("POST", "/api/auth/verify", { body: { code: g, challenge_id: challengeId }, headers: { "x-forwarded-for": freshIp() } })),
            { concurrency: "unbounded" }
          )
          expect(results.every((r) => r.status === 422)).toBe(true)
          expect(results.filter((r) => r.body.error.details.reason === "invalid_code").length).toBeLessThanOrEqual(5)
          const right = yield* call("POST", "/api/auth/verify", { body: { code, challenge_id: challengeId }, headers: { "x-forwarded-for": freshIp() } })
          expect(right.body.error.details.reason).toBe("attempts_exhausted")
        }))

      it.effect("a used code is refused the second time", () =>
        Effect.gen(function*() {
          const ip = freshIp()
          const { challengeId, code } = yield* requestCode(freshEmail(), ip)
          const first = yield* call("POST", "/api/auth/verify", { body: { code, challenge_id: challengeId }, headers: { "x-forwarded-for": ip, "x-client": "autopilot-ios" } })
          expect(first.status).toBe(200)
          const again = yield* call("POST", "/api/auth/verify", { body: { code, challenge_id: challengeId }, headers: { "x-forwarded-for": ip, "x-client": "autopilot-ios" } })
          expect(again.status).toBe(422)
          expect(again.body.error.details.reason).toBe("already_used")
        }))

      it.effect("a missing or unknown challenge is refused with the upstream message", () =>
        Effect.gen(function*() {
          const missing = yield* call("POST", "/api/auth/verify", { body: { code: "123456" }, headers: { "x-forwarded-for": freshIp() } })
          expect(missing.status).toBe(422)
          expect(missing.body.errors).toEqual({ code: ["Your sign-in code expired. Request a new code."] })
          const unknown = yield* call("POST", "/api/auth/verify", { body: { code: "123456", challengeId: "ch_nope" }, headers: { "x-forwarded-for": freshIp() } })
          expect(unknown.body.error.details).toEqual({ reason: "unknown_challenge" })
          const short = yield* call("POST", "/api/auth/verify", { body: { code: "12345", challengeId: "ch_nope" }, headers: { "x-forwarded-for": freshIp() } })
          expect(short.body.errors).toEqual({ code: ["The code field must be between 6 and 128 characters."] })
        }))

      it.effect("answers the email step identically whether or not the email has an account", () =>
        Effect.gen(function*() {
          const known = freshEmail()
          yield* signInNative("autopilot-ios", known)
          const shape = (c: Call) => ({
            status: c.status,
            keys: Object.keys(c.body).sort(),
            status_: c.body.status,
            cookies: c.setCookies.map((s) => ({ name: s.name, options: s.options, id: /^ch_[0-9a-f]{32}$/.test(s.value) }))
          })
          const a = yield* call("POST", "/api/auth/email", { body: { email: known }, headers: { "x-forwarded-for": freshIp() } })
          const b = yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": freshIp() } })
          expect(shape(a)).toEqual(shape(b))
          expect(a.status).toBe(200)
        }))

      it.effect("rate limits the email step per IP and per email with 429 and Retry-After", () =>
        Effect.gen(function*() {
          const ip = freshIp()
          const perIp = []
          for (let i = 0; i < 7; i++) perIp.push(yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": ip } }))
          expect(perIp.slice(0, 6).every((r) => r.status === 200)).toBe(true)
          expect(perIp[6]!.status).toBe(429)
          expect(perIp[6]!.body.error.code).toBe("rate_limited")
          const retryAfter = Number(perIp[6]!.headers["retry-after"])
          expect(retryAfter).toBeGreaterThanOrEqual(1)
          expect(retryAfter).toBeLessThanOrEqual(60)
          const email = freshEmail()
          const perEmail = []
          for (let i = 0; i < 7; i++) perEmail.push(yield* call("POST", "/api/auth/email", { body: { email }, headers: { "x-forwarded-for": freshIp() } }))
          expect(perEmail.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 429])
        }))

      it.effect("the client IP is the X-Forwarded-For entry the proxy appended: entries the client sent do not dodge the per-IP limit", () =>
        Effect.gen(function*() {
          // An entry that is not an IP (here longer than a rate-limit key may be) is not used: the socket address is.
          const garbage = yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": "a".repeat(400) } })
          expect(garbage.status).toBe(200)
          const ip = freshIp()
          const statuses = []
          for (let i = 0; i < 7; i++) {
            const forged = `${freshIp()}, ${"f".repeat(i + 1)}`
            statuses.push((yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": `${forged}, ${ip}` } })).status)
          }
          expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429])
        }))

      it.effect("rate limits the verify step at 10 per minute per IP", () =>
        Effect.gen(function*() {
          const ip = freshIp()
          const statuses = []
          for (let i = 0; i < 11; i++) {
            statuses.push((yield* call("POST", "/api/auth/verify", { body: { code: "123456", challenge_id: `ch_${i}` }, headers: { "x-forwarded-for": ip } })).status)
          }
          expect(statuses.slice(0, 10).every((s) => s === 422)).toBe(true)
          expect(statuses[10]).toBe(429)
        }))

      it.effect("refresh rotates the refresh token; replaying the old one revokes the session and tells the runtime", () =>
        Effect.gen(function*() {
          const verified = yield* signInNative("openagents-expo")
          const first = yield* call("POST", "/api/auth/refresh", { body: { refresh_token: verified.body.refreshToken } })
          expect(first.status).toBe(200)
          expect(first.body).toMatchObject({ ok: true, status: "active", tokenType: "Bearer", sessionId: verified.body.sessionId })
          expect(first.body.refreshToken).not.toBe(verified.body.refreshToken)
          expect((yield* call("GET", "/api/auth/me", { headers: bearer(first.body.token) })).status).toBe(200)

          const replay = yield* call("POST", "/api/auth/refresh", { body: { refreshToken: verified.body.refreshToken } })
          expect(replay.status).toBe(401)
          expect(replay.body.error).toMatchObject({ code: "reauth_required", details: { reason: "token_replay" } })
          const me = yield* call("GET", "/api/auth/me", { headers: bearer(first.body.token) })
          expect(me.body.error.code).toBe("reauth_required")
          expect((yield* call("POST", "/api/auth/refresh", { body: { refresh_token: first.body.refreshToken } })).status).toBe(401)
          const recorder = yield* MemoryRuntime.RuntimeRecorder
          const revocations = yield* waitFor(recorder.revocations, (all) => all.some((r) => r.sessionIds.includes(verified.body.sessionId)))
          const replayed = revocations.find((r) => r.sessionIds.includes(verified.body.sessionId))!
          expect(replayed).toEqual({ revokedAtMs: expect.any(Number), rememberUntilMs: replayed.revokedAtMs! + DEFAULT_REMEMBER_MS, userId: verified.body.userId, sessionIds: [verified.body.sessionId], deviceIds: [], reason: "token_replay" })
        }))

      it.effect("refresh without rotation keeps the refresh token; an unknown one is unauthorized", () =>
        Effect.gen(function*() {
          const verified = yield* signInNative("autopilot-desktop")
          const kept = yield* call("POST", "/api/auth/refresh", { body: { refresh_token: verified.body.refreshToken, rotate_refresh_token: false } })
          expect(kept.status).toBe(200)
          expect(kept.body.refreshToken).toBe(verified.body.refreshToken)
          expect(kept.body.replacedRefreshTokenId).toBeUndefined()
          const unknown = yield* call("POST", "/api/auth/refresh", { body: { refresh_token: "oa_rt_unknown" } })
          expect(unknown.status).toBe(401)
          expect(unknown.body.error.code).toBe("unauthorized")
        }))

      it.effect("lists sessions and revokes another one; the revoked bearer token is refused and the runtime hears of it", () =>
        Effect.gen(function*() {
          const email = freshEmail()
          const phone = yield* signInNative("autopilot-ios", email)
          const laptop = yield* signInNative("autopilot-desktop", email)
          expect(phone.body.userId).toBe(laptop.body.userId)
          expect(laptop.body.newUser).toBe(false)
          const list = yield* call("GET", "/api/auth/sessions", { headers: bearer(laptop.body.token) })
          expect(list.body.data.map((s: any) => [s.sessionId, s.current])).toEqual([[laptop.body.sessionId, true], [phone.body.sessionId, false]])
          const revoked = yield* call("POST", "/api/auth/sessions/revoke", { body: { session_ids: [phone.body.sessionId, laptop.body.sessionId] }, headers: bearer(laptop.body.token) })
          expect(revoked.status).toBe(200)
          expect(revoked.body).toMatchObject({ ok: true, revokedSessionIds: [phone.body.sessionId], revokedDeviceIds: ["mobile:autopilot-ios"], reason: "user_requested" })
          const refused = yield* call("GET", "/api/auth/me", { headers: bearer(phone.body.token) })
          expect(refused.status).toBe(401)
          expect(refused.body.error).toMatchObject({ code: "reauth_required", details: { reason: "user_requested" } })
          expect((yield* call("GET", "/api/auth/me", { headers: bearer(laptop.body.token) })).status).toBe(200)
          const recorder = yield* MemoryRuntime.RuntimeRecorder
          const all = yield* waitFor(recorder.revocations, (rs) => rs.some((r) => r.sessionIds.includes(phone.body.sessionId)))
          const notice = all.find((r) => r.sessionIds.includes(phone.body.sessionId))!
          expect(notice).toEqual({ revokedAtMs: expect.any(Number), rememberUntilMs: notice.revokedAtMs! + DEFAULT_REMEMBER_MS, userId: phone.body.userId, sessionIds: [phone.body.sessionId], deviceIds: [], reason: "user_requested" })
          // Another user's session ids are ignored, not revoked.
          const stranger = yield* signInNative("autopilot-ios")
          const attempt = yield* call("POST", "/api/auth/sessions/revoke", { body: { sessionIds: [stranger.body.sessionId] }, headers: bearer(laptop.body.token) })
          expect(attempt.body.revokedSessionIds).toEqual([])
          expect((yield* call("GET", "/api/auth/me", { headers: bearer(stranger.body.token) })).status).toBe(200)
          const badReason = yield* call("POST", "/api/auth/sessions/revoke", { body: { sessionIds: [], reason: "admin_revoked" }, headers: bearer(laptop.body.token) })
          expect(badReason.status).toBe(422)
        }))

      it.effect("revocation ids the runtime would refuse are a 422 invalid_request naming the field, and nothing is revoked", () =>
        Effect.gen(function*() {
          const phone = yield* signInNative("autopilot-ios")
          const auth = bearer(phone.body.token)
          const refusal = (body: unknown) =>
            Effect.map(call("POST", "/api/auth/sessions/revoke", { body, headers: auth }), (r) => [r.status, r.body.error?.code, Object.keys(r.body.errors ?? {})])
          expect(yield* refusal({ device_ids: ["", "mobile:autopilot-ios"], include_current: true })).toEqual([422, "invalid_request", ["device_ids"]])
          expect(yield* refusal({ deviceIds: ["mobile:autopilot-ios", "not a device"], includeCurrent: true })).toEqual([422, "invalid_request", ["deviceIds"]])
          expect(yield* refusal({ device_ids: ["d".repeat(161)] })).toEqual([422, "invalid_request", ["device_ids"]])
          expect(yield* refusal({ device_ids: Array.from({ length: 1001 }, (_, i) => `dev-${i}`) })).toEqual([422, "invalid_request", ["device_ids"]])
          expect(yield* refusal({ session_ids: [phone.body.sessionId, ""], include_current: true })).toEqual([422, "invalid_request", ["session_ids"]])
          expect(yield* refusal({ sessionIds: ["s".repeat(257)] })).toEqual([422, "invalid_request", ["sessionIds"]])
          expect(yield* refusal({ session_ids: Array.from({ length: 1001 }, (_, i) => `sess_${i}`) })).toEqual([422, "invalid_request", ["session_ids"]])
          expect((yield* call("GET", "/api/auth/me", { headers: auth })).status).toBe(200)
          const recorder = yield* MemoryRuntime.RuntimeRecorder
          expect((yield* recorder.revocations).some((r) => r.sessionIds.includes(phone.body.sessionId))).toBe(false)
          // At the limits, accepted.
          const most = yield* call("POST", "/api/auth/sessions/revoke", {
            body: { session_ids: Array.from({ length: 1000 }, (_, i) => `sess_${i}`), device_ids: ["d".repeat(160)] },
            headers: auth
          })
          expect(most.status).toBe(200)
        }))

      it.effect("a new sign-in on the same device replaces the previous session (device_replaced)", () =>
        Effect.gen(function*() {
          const email = freshEmail()
          const first = yield* signInNative("autopilot-ios", email)
          const second = yield* signInNative("AUTOPILOT-IOS", email)
          expect(second.body.tokenName).toBe("mobile:autopilot-ios")
          const old = yield* call("GET", "/api/auth/me", { headers: bearer(first.body.token) })
          expect(old.body.error).toMatchObject({ code: "reauth_required", details: { reason: "device_replaced" } })
          expect((yield* call("GET", "/api/auth/me", { headers: bearer(second.body.token) })).status).toBe(200)
          const recorder = yield* MemoryRuntime.RuntimeRecorder
          const all = yield* waitFor(recorder.revocations, (rs) => rs.some((r) => r.sessionIds.includes(first.body.sessionId)))
          const replaced = all.find((r) => r.sessionIds.includes(first.body.sessionId))!
          expect(replaced).toEqual({ revokedAtMs: expect.any(Number), rememberUntilMs: replaced.revokedAtMs! + DEFAULT_REMEMBER_MS, userId: first.body.userId, sessionIds: [first.body.sessionId], deviceIds: [], reason: "device_replaced" })
        }))

      it.effect("refuses tampered and foreign bearer tokens", () =>
        Effect.gen(function*() {
          const verified = yield* signInNative("openagents-desktop")
          const [h, p, s] = (verified.body.token as string).split(".")
          const claims = JSON.parse(Buffer.from(p!, "base64url").toString())
          const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, oa_user_id: "usr_other", sub: "user:usr_other" })).toString("base64url")}.${s}`
          expect((yield* call("GET", "/api/auth/me", { headers: bearer(forged) })).status).toBe(401)
          expect((yield* call("GET", "/api/auth/me", { headers: bearer("not-a-jwt") })).body.error.code).toBe("unauthorized")
          // A refresh token is not an access token.
          expect((yield* call("GET", "/api/auth/me", { headers: bearer(verified.body.refreshToken) })).status).toBe(401)
        }))

      it.effect("validation failures are 422 invalid_request envelopes naming the field", () =>
        Effect.gen(function*() {
          const missing = yield* call("POST", "/api/auth/email", { body: {}, headers: { "x-forwarded-for": freshIp() } })
          expect(missing.status).toBe(422)
          expect(missing.body.error.code).toBe("invalid_request")
          expect(Object.keys(missing.body.errors)).toEqual(["email"])
          const bad = yield* call("POST", "/api/auth/email", { body: { email: "not-an-email" }, headers: { "x-forwarded-for": freshIp() } })
          expect(bad.status).toBe(422)
          expect(bad.body.errors).toEqual({ email: ["The email field must be a valid email address."] })
          const outbox = yield* LocalIdentity.LocalOutbox
          expect((yield* outbox.messages).some((m) => m.email === "not-an-email")).toBe(false)
          const unknown = yield* call("GET", "/api/no/such/route")
          expect(unknown.status).toBe(404)
          expect(unknown.body.error).toEqual({ code: "not_found", message: "no such route" })
        }))
    })
  })

signInSuite("memory", MemoryStorage.layer)
for (const engine of SqlTesting.engines()) signInSuite(engine.name, SqlStorage.layer.pipe(Layer.provide(engine.layer)))

// 300 UTF-16 units, with a surrogate pair across the 255th unit.
const LONG_NAME = "a".repeat(254) + "\u{1F600}" + "b".repeat(44)

/** The local provider, but naming every person LONG_NAME (as a provider with long names would). */
const longNameIdentity = Layer.merge(
  Layer.effect(
    IdentityProvider.IdentityProvider,
    Effect.map(IdentityProvider.IdentityProvider, (local) => ({ ...local, verifyCode: (input) => Effect.map(local.verifyCode(input), (id) => ({ ...id, name: LONG_NAME })) }))
  ).pipe(Layer.provide(localIdentity)),
  LocalIdentity.layerOutbox
)

for (const [name, storage] of [["memory", MemoryStorage.layer], ...SqlTesting.engines().map((e) => [e.name, SqlStorage.layer.pipe(Layer.provide(e.layer))] as const)] as const) {
  describe(`a provider's long name on ${name}`, () => {
    layer(controlServer(storage as Layer.Layer<any, unknown>, { identity: longNameIdentity }), { excludeTestServices: true })((it) => {
      it.effect("a name over 255 characters is cut to 255 (never inside a surrogate pair), and the sign-in succeeds, again and again", () =>
        Effect.gen(function*() {
          expect(LONG_NAME.length).toBe(300)
          const email = freshEmail()
          const first = yield* signInNative("autopilot-ios", email)
          expect(first.body.user.name).toBe("a".repeat(254) + "\u{1F600}")
          expect([...first.body.user.name as string].length).toBe(255)
          const again = yield* signInNative("autopilot-desktop", email)
          expect(again.body).toMatchObject({ newUser: false, user: { id: first.body.userId, name: first.body.user.name } })
          const me = yield* call("GET", "/api/auth/me", { headers: bearer(again.body.token) })
          expect(me.body.user.name).toBe(first.body.user.name)
        }))
    })
  })
}

describe("behind two trusted proxies (trustProxy: 2)", () => {
  layer(controlServer(MemoryStorage.layer, { trustProxy: 2 }), { excludeTestServices: true })((it) => {
    it.effect("the client IP is the second X-Forwarded-For entry from the right; with one entry, that one", () =>
      Effect.gen(function*() {
        const client = freshIp()
        const statuses = []
        for (let i = 0; i < 7; i++) {
          statuses.push((yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": `${freshIp()}, ${client}, ${freshIp()}` } })).status)
        }
        expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429])
        const alone = freshIp()
        const single = []
        for (let i = 0; i < 7; i++) single.push((yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": alone } })).status)
        expect(single).toEqual([200, 200, 200, 200, 200, 200, 429])
      }))
  })
})

describe("sign-in expiry", () => {
  layer(controlServer(MemoryStorage.layer, { settings: { challengeTtlSeconds: 1 } }), { excludeTestServices: true })((it) => {
    it.effect("an expired code is refused", () =>
      Effect.gen(function*() {
        const ip = freshIp()
        const { challengeId, code } = yield* requestCode(freshEmail(), ip)
        yield* Effect.sleep("1100 millis")
        const late = yield* call("POST", "/api/auth/verify", { body: { code, challenge_id: challengeId }, headers: { "x-forwarded-for": ip } })
        expect(late.status).toBe(422)
        expect(late.body.error.details).toEqual({ reason: "expired" })
      }))
  })
})
