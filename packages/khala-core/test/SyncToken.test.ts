import { describe, expect, it } from "@effect/vitest"
import { SyncToken } from "@openagents/khala-core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { exportJWK, generateKeyPair } from "jose"

const current = { kid: "sync-auth-v2", secret: Redacted.make("c".repeat(48)) }
const previous = { kid: "sync-auth-v1", secret: Redacted.make("p".repeat(48)) }
const options = { hmacKeys: [current, previous], issuer: "https://control.test", audience: "openagents-sync", claimsVersion: "oa_sync_claims_v1" }
const now = 1_790_000_000

const claims = (overrides: Record<string, unknown> = {}): SyncToken.SyncTokenClaims => ({
  iss: "https://control.test",
  aud: "openagents-sync",
  sub: "user:42",
  iat: now,
  exp: now + 300,
  jti: "0123456789abcdef01234567",
  oa_user_id: "42",
  oa_org_id: "user:42",
  oa_sync_scopes: ["runtime.run_summaries", "runtime.codex_worker_events"],
  oa_sync_topics: ["runtime.run_summaries:user:42"],
  oa_claims_version: "oa_sync_claims_v1",
  oa_session_id: "sess_1",
  oa_device_id: "dev_1",
  ...overrides
})

const refused = (token: string | undefined, at = now) =>
  Effect.gen(function*() {
    const verifier = yield* SyncToken.makeVerifier(options)
    const error = yield* Effect.flip(verifier.verify(token, at))
    return { reason: error.reason, code: error.code, claim: error.claim }
  })

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

describe("SyncToken verification", () => {
  it.effect("accepts a valid token and returns its principal", () =>
    Effect.gen(function*() {
      const verifier = yield* SyncToken.makeVerifier(options)
      const principal = yield* verifier.verify(yield* SyncToken.signHmac(claims(), current), now + 10)
      expect(principal).toMatchObject({
        subject: "user:42",
        userId: "42",
        orgId: "user:42",
        scopes: ["runtime.run_summaries", "runtime.codex_worker_events"],
        topics: ["runtime.run_summaries:user:42"],
        sessionId: "sess_1",
        deviceId: "dev_1",
        expiresAt: now + 300
      })
    }))

  it.effect("accepts the previous key during rotation, a list audience, and comma-separated scopes", () =>
    Effect.gen(function*() {
      const verifier = yield* SyncToken.makeVerifier(options)
      const token = yield* SyncToken.signHmac(claims({ aud: ["other", "openagents-sync"], oa_sync_scopes: "runtime.run_summaries, runtime.notifications" }), previous)
      expect((yield* verifier.verify(token, now)).scopes).toEqual(["runtime.run_summaries", "runtime.notifications"])
    }))

  it.effect("refuses each kind of bad token with its own reason code", () =>
    Effect.gen(function*() {
      const good = yield* SyncToken.signHmac(claims(), current)
      const [h, p, s] = good.split(".")
      const stranger = { kid: "sync-auth-v9", secret: Redacted.make("x".repeat(48)) }
      const forgedKey = { kid: current.kid, secret: Redacted.make("f".repeat(48)) }
      expect(yield* refused(undefined)).toMatchObject({ reason: "missing_token", code: "unauthorized" })
      expect(yield* refused("")).toMatchObject({ reason: "missing_token" })
      expect(yield* refused("a.b")).toMatchObject({ reason: "invalid_token_format" })
      expect(yield* refused("a.b.c!")).toMatchObject({ reason: "invalid_token_format" })
      expect(yield* refused("bm90IGpzb24.bm90IGpzb24.c2ln")).toMatchObject({ reason: "invalid_token_encoding" })
      expect(yield* refused(`${b64([1])}.${p}.${s}`)).toMatchObject({ reason: "invalid_header" })
      expect(yield* refused(`${b64({ alg: "none", kid: current.kid })}.${p}.`)).toMatchObject({ reason: "invalid_token_format" })
      expect(yield* refused(`${b64({ alg: "none", kid: current.kid })}.${p}.${s}`)).toMatchObject({ reason: "unsupported_alg" })
      expect(yield* refused(`${b64({ alg: "HS512", kid: current.kid })}.${p}.${s}`)).toMatchObject({ reason: "unsupported_alg" })
      expect(yield* refused(`${b64({ alg: "HS256" })}.${p}.${s}`)).toMatchObject({ reason: "missing_kid" })
      expect(yield* refused(yield* SyncToken.signHmac(claims(), stranger))).toMatchObject({ reason: "unknown_kid" })
      expect(yield* refused(yield* SyncToken.signHmac(claims(), forgedKey))).toMatchObject({ reason: "invalid_signature" })
      // A payload swapped under a valid signature (scope escalation) is a forgery.
      expect(yield* refused(`${h}.${b64(claims({ oa_sync_scopes: ["admin"] }))}.${s}`)).toMatchObject({ reason: "invalid_signature" })
      expect(yield* refused(good, now + 300 + 31)).toMatchObject({ reason: "token_expired", code: "token_expired" })
      expect(yield* refused(good, now - 31)).toMatchObject({ reason: "token_not_yet_valid" })
      expect(yield* refused(yield* SyncToken.signHmac(claims({ nbf: now + 120 }), current))).toMatchObject({ reason: "token_not_yet_valid" })
      expect(yield* refused(yield* SyncToken.signHmac(claims({ aud: "someone-else" }), current))).toMatchObject({ reason: "claim_mismatch", claim: "aud" })
      expect(yield* refused(yield* SyncToken.signHmac(claims({ iss: "https://evil.test" }), current))).toMatchObject({ reason: "claim_mismatch", claim: "iss" })
      expect(yield* refused(yield* SyncToken.signHmac(claims({ oa_claims_version: "v0" }), current))).toMatchObject({ reason: "claim_mismatch", claim: "oa_claims_version" })
      for (const missing of ["sub", "jti", "oa_org_id", "oa_session_id", "oa_device_id"]) {
        expect(yield* refused(yield* SyncToken.signHmac(claims({ [missing]: "" }), current))).toMatchObject({ reason: "invalid_claims" })
      }
      expect(yield* refused(yield* SyncToken.signHmac(claims({ oa_sync_scopes: [] }), current))).toMatchObject({ reason: "invalid_claims" })
      expect(yield* refused(yield* SyncToken.signHmac(claims({ exp: now - 1 }), current))).toMatchObject({ reason: "invalid_claims" })
      expect(yield* refused(yield* SyncToken.signHmac(claims({ iat: "yesterday" }), current))).toMatchObject({ reason: "invalid_claims" })
    }))

  it.effect("tolerates 30 s of clock skew on both sides", () =>
    Effect.gen(function*() {
      const verifier = yield* SyncToken.makeVerifier(options)
      const token = yield* SyncToken.signHmac(claims(), current)
      yield* verifier.verify(token, now - 29)
      yield* verifier.verify(token, now + 300 + 29)
    }))

  it.effect("verifies asymmetric tokens against a JWKS and refuses them when the kid is not in it", () =>
    Effect.gen(function*() {
      const { privateKey, publicKey } = yield* Effect.promise(() => generateKeyPair("ES256", { extractable: true }))
      const publicJwk = { ...(yield* Effect.promise(() => exportJWK(publicKey))), kid: "es-1", alg: "ES256", use: "sig" }
      const privateJwk = { ...(yield* Effect.promise(() => exportJWK(privateKey))), kid: "es-1", alg: "ES256" }
      const verifier = yield* SyncToken.makeVerifier({ ...options, hmacKeys: [], jwks: { keys: [publicJwk] } })
      expect((yield* verifier.verify(yield* SyncToken.signJwk(claims(), privateJwk), now)).subject).toBe("user:42")
      const other = yield* Effect.flip(verifier.verify(yield* SyncToken.signJwk(claims(), { ...privateJwk, kid: "es-2" }), now))
      expect(other.reason).toBe("unknown_kid")
    }))

  it.effect("reads its keyring from the environment and refuses weak or half-configured keys", () =>
    Effect.gen(function*() {
      const withEnv = (env: Record<string, string>) =>
        Effect.gen(function*() {
          return yield* SyncToken.SyncTokenVerifier
        }).pipe(Effect.provide(SyncToken.layerConfig.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))))
      const ok = yield* withEnv({
        OA_SYNC_TOKEN_SIGNING_KEY: Redacted.value(current.secret),
        OA_SYNC_TOKEN_KEY_ID: current.kid,
        OA_SYNC_TOKEN_PREVIOUS_KEY_ID: previous.kid,
        OA_SYNC_TOKEN_PREVIOUS_SIGNING_KEY: Redacted.value(previous.secret),
        OA_SYNC_TOKEN_ISSUER: "https://control.test"
      })
      yield* ok.verify(yield* SyncToken.signHmac(claims(), previous), now)
      const weak = yield* Effect.flip(withEnv({ OA_SYNC_TOKEN_SIGNING_KEY: "short", OA_SYNC_TOKEN_ISSUER: "x" }))
      expect(String(weak)).toContain("at least 32 characters")
      const half = yield* Effect.flip(withEnv({ OA_SYNC_TOKEN_SIGNING_KEY: "k".repeat(40), OA_SYNC_TOKEN_ISSUER: "x", OA_SYNC_TOKEN_PREVIOUS_KEY_ID: "old" }))
      expect(String(half)).toContain("or neither")
    }))
})
