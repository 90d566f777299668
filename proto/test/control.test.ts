import { create, equals, fromBinary, fromJson, fromJsonString, toBinary, toJson, toJsonString } from "@bufbuild/protobuf"
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt"
import {
  AuthEmailResponseSchema,
  AuthVerifyResponseSchema,
  ControlErrorCode,
  ControlErrorEnvelopeSchema,
  RefreshTokenResponseSchema,
  SessionRevocationReason,
  SessionRevocationRequestSchema,
  SessionRevocationResponseSchema,
  SessionSchema,
  SyncTokenClaimsSchema,
  SyncTokenRequestSchema,
  SyncTokenResponseEnvelopeSchema,
  SyncTokenResponseSchema
} from "@openagents/proto/control/v1"
import { describe, expect, it } from "vitest"

const ISSUED = new Date("2026-02-21T09:26:00Z")
const EXPIRES = new Date("2026-02-21T09:31:00Z")

const syncToken = create(SyncTokenResponseSchema, {
  token: "eyJhbGciOiJIUzI1NiJ9.e30.sig",
  tokenType: "Bearer",
  expiresIn: 300,
  issuedAt: timestampFromDate(ISSUED),
  expiresAt: timestampFromDate(EXPIRES),
  issuer: "https://openagents.com",
  audience: "openagents-sync",
  subject: "user:42",
  orgId: "org:openagents",
  claimsVersion: "oa_sync_claims_v1",
  scopes: ["runtime.codex_worker_events", "runtime.run_summaries"],
  kid: "sync-auth-v1",
  grantedTopics: [
    { topic: "org:openagents:worker_events", requiredScope: "runtime.codex_worker_events" },
    { topic: "user:42:runs", requiredScope: "runtime.run_summaries" }
  ],
  tokenId: "sync_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
  sessionId: "sess_123",
  deviceId: "mobile:autopilot-ios"
})

const claims = create(SyncTokenClaimsSchema, {
  iss: "https://openagents.com",
  aud: ["openagents-sync"],
  sub: "user:42",
  iat: 1771665960,
  nbf: 1771665960,
  exp: 1771666260,
  jti: "sync_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
  oaUserId: "42",
  oaOrgId: "org:openagents",
  oaSyncScopes: ["runtime.run_summaries"],
  oaSyncTopics: ["user:42:runs"],
  oaClaimsVersion: "oa_sync_claims_v1",
  oaSessionId: "sess_123",
  oaDeviceId: "mobile:autopilot-ios"
})

describe("openagents.control.v1 sign-in", () => {
  it("reads and writes the Rust-era verify response with its exact JSON field names", () => {
    const wire = {
      ok: true,
      userId: "42",
      status: "authenticated",
      user: { id: "42", name: "Ada", email: "ada@example.com", workosId: "user_01HWORKOS" },
      redirect: "/",
      tokenType: "Bearer",
      token: "oa_at_abc",
      tokenName: "mobile:autopilot-ios",
      refreshToken: "oa_rt_def",
      sessionId: "sess_123",
      newUser: true
    }
    const verify = fromJson(AuthVerifyResponseSchema, wire)
    expect(verify.user!.workosId).toBe("user_01HWORKOS")
    expect(verify.newUser).toBe(true)
    expect(toJson(AuthVerifyResponseSchema, verify)).toEqual(wire)
    const back = fromBinary(AuthVerifyResponseSchema, toBinary(AuthVerifyResponseSchema, verify))
    expect(equals(AuthVerifyResponseSchema, verify, back)).toBe(true)
    expect(back.refreshToken).toBe("oa_rt_def")
  })

  it("carries the challenge id of the email step", () => {
    const wire = { ok: true, status: "code-sent", email: "ada@example.com", challengeId: "chal_1" }
    const sent = fromJson(AuthEmailResponseSchema, wire)
    expect(sent.challengeId).toBe("chal_1")
    expect(toJson(AuthEmailResponseSchema, sent)).toEqual(wire)
  })

  it("round-trips a refresh answer with its token expiries", () => {
    const refreshed = create(RefreshTokenResponseSchema, {
      ok: true,
      status: "active",
      tokenType: "Bearer",
      token: "oa_at_2",
      refreshToken: "oa_rt_2",
      refreshTokenId: "rt_2",
      replacedRefreshTokenId: "rt_1",
      sessionId: "sess_123",
      accessExpiresAt: timestampFromDate(EXPIRES),
      refreshExpiresAt: timestampFromDate(new Date("2026-03-23T09:26:00Z"))
    })
    expect(equals(RefreshTokenResponseSchema, refreshed, fromBinary(RefreshTokenResponseSchema, toBinary(RefreshTokenResponseSchema, refreshed)))).toBe(true)
    const json = toJson(RefreshTokenResponseSchema, refreshed)
    expect(json.replacedRefreshTokenId).toBe("rt_1")
    expect(json.refreshExpiresAt).toBe("2026-03-23T09:26:00Z")
    expect(equals(RefreshTokenResponseSchema, refreshed, fromJson(RefreshTokenResponseSchema, json))).toBe(true)
  })
})

describe("openagents.control.v1 sync tokens", () => {
  it("round-trips a fully populated token answer through binary and JSON", () => {
    const back = fromBinary(SyncTokenResponseSchema, toBinary(SyncTokenResponseSchema, syncToken))
    expect(equals(SyncTokenResponseSchema, syncToken, back)).toBe(true)
    expect(back.grantedTopics[1]!.requiredScope).toBe("runtime.run_summaries")
    expect(timestampDate(back.expiresAt!).toISOString()).toBe("2026-02-21T09:31:00.000Z")

    const json = toJson(SyncTokenResponseSchema, syncToken)
    expect(json.expiresIn).toBe(300)
    expect(json.grantedTopics![0]).toEqual({ topic: "org:openagents:worker_events", requiredScope: "runtime.codex_worker_events" })
    expect(json.issuedAt).toBe("2026-02-21T09:26:00Z")
    expect(equals(SyncTokenResponseSchema, syncToken, fromJson(SyncTokenResponseSchema, json))).toBe(true)

    const envelope = create(SyncTokenResponseEnvelopeSchema, { data: syncToken })
    const viaString = fromJsonString(SyncTokenResponseEnvelopeSchema, toJsonString(SyncTokenResponseEnvelopeSchema, envelope))
    expect(equals(SyncTokenResponseEnvelopeSchema, envelope, viaString)).toBe(true)
  })

  it("accepts the upstream snake_case token answer", () => {
    const parsed = fromJson(SyncTokenResponseEnvelopeSchema, {
      data: {
        token: "eyJhbGciOiJIUzI1NiJ9.e30.sig",
        token_type: "Bearer",
        expires_in: 300,
        issued_at: "2026-02-21T09:26:00+00:00",
        expires_at: "2026-02-21T09:31:00+00:00",
        issuer: "https://openagents.com",
        audience: "openagents-sync",
        subject: "user:42",
        org_id: "org:openagents",
        claims_version: "oa_sync_claims_v1",
        scopes: ["runtime.codex_worker_events", "runtime.run_summaries"],
        granted_topics: [
          { topic: "org:openagents:worker_events", required_scope: "runtime.codex_worker_events" },
          { topic: "user:42:runs", required_scope: "runtime.run_summaries" }
        ],
        kid: "sync-auth-v1",
        token_id: "sync_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        session_id: "sess_123",
        device_id: "mobile:autopilot-ios"
      }
    })
    expect(equals(SyncTokenResponseSchema, syncToken, parsed.data!)).toBe(true)
  })

  it("keeps an unset ttl distinct from an explicit one in the request", () => {
    const defaults = create(SyncTokenRequestSchema, { scopes: ["runtime.run_summaries"] })
    expect(defaults.ttlSeconds).toBeUndefined()
    const explicit = fromJson(SyncTokenRequestSchema, { scopes: ["runtime.run_summaries"], topics: ["user:42:runs"], ttl_seconds: 600, device_id: "d1" })
    expect(explicit.ttlSeconds).toBe(600)
    expect(explicit.topics).toEqual(["user:42:runs"])
    expect(equals(SyncTokenRequestSchema, explicit, fromBinary(SyncTokenRequestSchema, toBinary(SyncTokenRequestSchema, explicit)))).toBe(true)
  })

  it("serializes claims as the JWT payload: claim names kept, NumericDate times as JSON numbers", () => {
    const json = toJson(SyncTokenClaimsSchema, claims)
    expect(json).toEqual({
      iss: "https://openagents.com",
      aud: ["openagents-sync"],
      sub: "user:42",
      iat: 1771665960,
      nbf: 1771665960,
      exp: 1771666260,
      jti: "sync_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
      oa_user_id: "42",
      oa_org_id: "org:openagents",
      oa_sync_scopes: ["runtime.run_summaries"],
      oa_sync_topics: ["user:42:runs"],
      oa_claims_version: "oa_sync_claims_v1",
      oa_session_id: "sess_123",
      oa_device_id: "mobile:autopilot-ios"
    })
    expect(equals(SyncTokenClaimsSchema, claims, fromJson(SyncTokenClaimsSchema, json))).toBe(true)
    expect(equals(SyncTokenClaimsSchema, claims, fromBinary(SyncTokenClaimsSchema, toBinary(SyncTokenClaimsSchema, claims)))).toBe(true)
  })
})

describe("openagents.control.v1 sessions", () => {
  it("round-trips a revoked session and a revocation request", () => {
    const session = create(SessionSchema, {
      sessionId: "sess_123",
      userId: "42",
      deviceId: "mobile:autopilot-ios",
      client: "autopilot-ios",
      tokenName: "mobile:autopilot-ios",
      createdAt: timestampFromDate(ISSUED),
      lastSeenAt: timestampFromDate(EXPIRES),
      expiresAt: timestampFromDate(new Date("2026-03-23T09:26:00Z")),
      revokedAt: timestampFromDate(EXPIRES),
      revokedReason: SessionRevocationReason.TOKEN_REPLAY
    })
    const back = fromBinary(SessionSchema, toBinary(SessionSchema, session))
    expect(equals(SessionSchema, session, back)).toBe(true)
    expect(back.revokedReason).toBe(SessionRevocationReason.TOKEN_REPLAY)
    const json = toJson(SessionSchema, session)
    expect(json.revokedReason).toBe("SESSION_REVOCATION_REASON_TOKEN_REPLAY")
    expect(json.lastSeenAt).toBe("2026-02-21T09:31:00Z")
    expect(equals(SessionSchema, session, fromJson(SessionSchema, json))).toBe(true)

    const request = create(SessionRevocationRequestSchema, {
      sessionIds: ["sess_1", "sess_2"],
      deviceIds: ["desktop:autopilot-desktop"],
      reason: SessionRevocationReason.DEVICE_REPLACED
    })
    const requestJson = toJson(SessionRevocationRequestSchema, request)
    expect(requestJson).toEqual({
      sessionIds: ["sess_1", "sess_2"],
      deviceIds: ["desktop:autopilot-desktop"],
      reason: "SESSION_REVOCATION_REASON_DEVICE_REPLACED"
    })
    expect(equals(SessionRevocationRequestSchema, request, fromJson(SessionRevocationRequestSchema, requestJson))).toBe(true)

    const response = create(SessionRevocationResponseSchema, {
      ok: true,
      revokedSessionIds: ["sess_1"],
      revokedDeviceIds: ["desktop:autopilot-desktop"],
      revokedRefreshTokenIds: ["rt_1"],
      reason: SessionRevocationReason.DEVICE_REPLACED,
      revokedAt: timestampFromDate(EXPIRES)
    })
    expect(equals(SessionRevocationResponseSchema, response, fromBinary(SessionRevocationResponseSchema, toBinary(SessionRevocationResponseSchema, response)))).toBe(true)
  })

  it("keeps the upstream revocation reasons in order", () => {
    expect([
      SessionRevocationReason.USER_REQUESTED,
      SessionRevocationReason.ADMIN_REVOKED,
      SessionRevocationReason.TOKEN_REPLAY,
      SessionRevocationReason.DEVICE_REPLACED,
      SessionRevocationReason.SECURITY_POLICY
    ]).toEqual([1, 2, 3, 4, 5])
  })
})

describe("openagents.control.v1 error envelope", () => {
  it("reads and writes the upstream validation error body unchanged", () => {
    const wire = {
      error: { code: "invalid_scope", message: "requested sync scopes are not allowed", details: { scopes: ["admin"] } },
      message: "requested sync scopes are not allowed",
      errors: { scopes: ["The selected scopes are invalid."] }
    }
    const envelope = fromJson(ControlErrorEnvelopeSchema, wire)
    expect(envelope.error!.code).toBe(ControlErrorCode[ControlErrorCode.INVALID_SCOPE].toLowerCase())
    expect(envelope.errors).toEqual({ scopes: ["The selected scopes are invalid."] })
    expect(toJson(ControlErrorEnvelopeSchema, envelope)).toEqual(wire)
    expect(equals(ControlErrorEnvelopeSchema, envelope, fromBinary(ControlErrorEnvelopeSchema, toBinary(ControlErrorEnvelopeSchema, envelope)))).toBe(true)
  })
})
