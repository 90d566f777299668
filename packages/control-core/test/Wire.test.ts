// The HTTP answers are the proto contracts' JSON: each body parses with the generated
// openagents.control.v1 schema, strictly (an unknown or misspelt field fails).
import { fromJson } from "@bufbuild/protobuf"
import { describe, expect, layer } from "@effect/vitest"
import { MemoryStorage } from "@openagents/control-core"
import {
  AuthEmailResponseSchema,
  AuthVerifyResponseSchema,
  ControlErrorEnvelopeSchema,
  LogoutResponseSchema,
  RefreshTokenResponseSchema,
  SyncTokenResponseEnvelopeSchema
} from "@openagents/proto/control/v1"
import * as Effect from "effect/Effect"
import { call, controlServer, freshEmail, freshIp, signInNative } from "./harness.js"

describe("wire shapes", () => {
  layer(controlServer(MemoryStorage.layer), { excludeTestServices: true })((it) => {
    it.effect("sign-in, refresh, logout, sync token and error bodies parse as their control/v1 messages", () =>
      Effect.gen(function*() {
        const sent = yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": freshIp() } })
        expect(fromJson(AuthEmailResponseSchema, sent.body).challengeId).toBe(sent.body.challengeId)
        const verified = yield* signInNative("autopilot-ios")
        const verify = fromJson(AuthVerifyResponseSchema, verified.body)
        expect(verify).toMatchObject({ tokenName: "mobile:autopilot-ios", tokenType: "Bearer", newUser: true })
        const refreshed = yield* call("POST", "/api/auth/refresh", { body: { refresh_token: verified.body.refreshToken } })
        expect(fromJson(RefreshTokenResponseSchema, refreshed.body).replacedRefreshTokenId).toMatch(/^rt_/)
        const minted = yield* call("POST", "/api/sync/token", { body: {}, headers: { authorization: `Bearer ${refreshed.body.token}` } })
        const envelope = fromJson(SyncTokenResponseEnvelopeSchema, minted.body)
        expect(envelope.data!.grantedTopics).toHaveLength(3)
        expect(envelope.data!.expiresIn).toBe(300)
        const refused = yield* call("POST", "/api/sync/token", { body: { scopes: ["runtime.admin"] }, headers: { authorization: `Bearer ${refreshed.body.token}` } })
        expect(fromJson(ControlErrorEnvelopeSchema, refused.body).error!.code).toBe("invalid_scope")
        const out = yield* call("POST", "/api/auth/logout", { headers: { authorization: `Bearer ${refreshed.body.token}` } })
        expect(fromJson(LogoutResponseSchema, out.body).sessionId).toBe(verified.body.sessionId)
        const invalid = yield* call("POST", "/api/auth/email", { body: {}, headers: { "x-forwarded-for": freshIp() } })
        expect(fromJson(ControlErrorEnvelopeSchema, invalid.body).errors).toEqual({ email: ["is missing"] })
      }))

    it.effect("a body that is not JSON is a 422 invalid_request envelope on every route that reads one, not a 500", () =>
      Effect.gen(function*() {
        const session = yield* signInNative("autopilot-ios")
        const auth = { authorization: `Bearer ${session.body.token}`, "x-forwarded-for": freshIp() }
        for (const url of ["/api/auth/email", "/api/auth/verify", "/api/auth/refresh", "/api/sync/token", "/api/auth/sessions/revoke", "/api/l402/paywalls"]) {
          const answer = yield* call("POST", url, { rawJson: "{not json", headers: auth })
          expect([url, answer.status]).toEqual([url, 422])
          expect(fromJson(ControlErrorEnvelopeSchema, answer.body).error!.code).toBe("invalid_request")
        }
        // The session is untouched: the refused revocation revoked nothing.
        expect((yield* call("GET", "/api/auth/me", { headers: auth })).status).toBe(200)
      }))
  })
})
