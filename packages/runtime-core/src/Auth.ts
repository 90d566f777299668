// Who may call the runtime, decided locally (docs/control/RUNTIME.md):
//
// - Clients send control's access token (`Authorization: Bearer`): an ES256 JWT (typ at+jwt,
//   aud openagents-api, iss = control's public URL) verified against control's JWKS, fetched once
//   and refetched when a token names an unknown kid (at most once a minute), or configured
//   statically. No call to control per request.
// - Control's proxy (and control's service calls) send the signed internal header of host-kit's
//   InternalSignature; the user is the signed X-OA-USER-ID. Nonces are single-use across every
//   node through a shared replay cache (a table), so a captured request cannot be replayed.
// - Sessions control revoked are remembered (a table, so every node and every restart agrees)
//   until every token they hold has expired; their bearer tokens are refused.
import * as SqlClient from "@effect/sql/SqlClient"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { InternalSignature } from "@openagents/host-kit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createLocalJWKSet, createRemoteJWKSet, errors as JoseErrors, type JSONWebKeySet, jwtVerify } from "jose"
import type { Caller } from "./Api.js"
import * as Errors from "./Errors.js"

// ---------------------------------------------------------------------------------------------
// Access tokens

export const ACCESS_TOKEN_AUDIENCE = "openagents-api"
export const ACCESS_TOKEN_TYPE = "at+jwt"
export const CLOCK_SKEW_SECONDS = 30

export interface AccessTokenOptions {
  /** Control's public URL: the tokens' issuer (and, unless `jwks` is given, where the JWKS is published). */
  readonly issuer: string
  /** A static JWKS, or the URL to fetch it from (default `<issuer>/.well-known/jwks.json`). */
  readonly jwks?: JSONWebKeySet | URL | undefined
  readonly audience?: string | undefined
}

export interface AccessTokenClaims {
  readonly userId: string
  readonly sessionId: string
  readonly deviceId: string | undefined
  readonly clientId: string | undefined
  /** iat, seconds since the epoch. */
  readonly issuedAt: number
}

const unauthorized = (message: string, reason: string) => new Errors.RuntimeError({ code: "unauthorized", message, details: { reason } })

export const makeAccessTokenVerifier = (options: AccessTokenOptions) => {
  const source = options.jwks ?? new URL("/.well-known/jwks.json", options.issuer)
  const keys = source instanceof URL
    ? createRemoteJWKSet(source, { cooldownDuration: 60_000, cacheMaxAge: 10 * 60_000, timeoutDuration: 5_000 })
    : createLocalJWKSet(source)
  const audience = options.audience ?? ACCESS_TOKEN_AUDIENCE
  return (token: string): Effect.Effect<AccessTokenClaims, Errors.RuntimeError> =>
    Effect.tryPromise({
      try: () =>
        jwtVerify(token, keys, {
          issuer: options.issuer,
          audience,
          algorithms: ["ES256"],
          typ: ACCESS_TOKEN_TYPE,
          clockTolerance: CLOCK_SKEW_SECONDS,
          requiredClaims: ["exp", "iat", "sub", "sid"]
        }),
      catch: (error) =>
        error instanceof JoseErrors.JWTExpired
          ? unauthorized("the access token has expired", "token_expired")
          : error instanceof JoseErrors.JWKSNoMatchingKey
          ? unauthorized("the access token's key is not in control's key set", "unknown_kid")
          : error instanceof JoseErrors.JWKSTimeout || (error instanceof Error && /fetch|ECONNREFUSED|network/i.test(error.message) && !(error instanceof JoseErrors.JOSEError))
          ? unauthorized("control's key set could not be fetched", "jwks_unavailable")
          : unauthorized("the access token is invalid", error instanceof JoseErrors.JWTClaimValidationFailed ? `invalid_${error.claim}` : "invalid_token")
    }).pipe(
      Effect.flatMap(({ payload }) => {
        const userId = payload["oa_user_id"]
        if (typeof userId !== "string" || userId.length === 0 || payload.sub !== `user:${userId}`) {
          return Effect.fail(unauthorized("the access token names no user", "invalid_sub"))
        }
        const sid = payload["sid"]
        if (typeof sid !== "string" || sid.length === 0) return Effect.fail(unauthorized("the access token names no session", "invalid_sid"))
        const did = payload["did"]
        const cid = payload["client_id"]
        return Effect.succeed({
          userId,
          sessionId: sid,
          deviceId: typeof did === "string" && did.length > 0 ? did : undefined,
          clientId: typeof cid === "string" ? cid : undefined,
          issuedAt: typeof payload.iat === "number" ? payload.iat : 0
        })
      })
    )
}

// ---------------------------------------------------------------------------------------------
// Revoked sessions

/** Longest token lifetime plus skew: max(access-token TTL 3600 s, sync token 900 s) + 30 s. */
export const DEFAULT_REVOCATION_TTL_MS = 3_630_000

/** One revocation notice, as control sends it. */
export interface RevocationRecord {
  readonly sessionIds: ReadonlyArray<string>
  readonly deviceIds: ReadonlyArray<string>
  /**
   * Whose devices: a device id is not unique across users (a client that sends none is named
   * after its client), so the devices are revoked for this user only. Undefined: for every user
   * (notices from a control that does not send one).
   */
  readonly userId?: string | undefined
  /**
   * When the devices were revoked (ms; default now): tokens issued up to then are refused. A
   * redelivered notice carries the same time, so it does not reach a sign-in made since.
   */
  readonly revokedAtMs?: number | undefined
  readonly reason: string
  readonly ttlMs: number
}

export interface RevokedSessionsService {
  /** Remember `sessionIds` until `ttlMs` from now (an existing longer entry is kept). */
  readonly revoke: (sessionIds: ReadonlyArray<string>, reason: string, ttlMs: number) => Effect.Effect<void, Errors.RuntimeError>
  readonly isRevoked: (sessionId: string) => Effect.Effect<boolean, Errors.RuntimeError>
  /**
   * Remember a notice's sessions and devices until `ttlMs` from now (an existing longer entry is
   * kept), all or nothing.
   */
  readonly record: (record: RevocationRecord) => Effect.Effect<void, Errors.RuntimeError>
  /**
   * Whether `deviceId` was revoked for `userId` (or for every user) at or after `issuedAtSeconds`
   * (a token's iat), and the entry holds.
   */
  readonly isDeviceRevoked: (deviceId: string, issuedAtSeconds: number, userId: string) => Effect.Effect<boolean, Errors.RuntimeError>
  /** Forget entries (sessions and devices) that have expired. */
  readonly prune: Effect.Effect<number, Errors.RuntimeError>
}

export class RevokedSessions extends Context.Tag("@openagents/runtime-core/RevokedSessions")<RevokedSessions, RevokedSessionsService>() {}

const storageFailure = (e: { message: string }) => Errors.internal(`runtime storage failed: ${e.message}`)

export const layerRevokedSessionsSql: Layer.Layer<RevokedSessions, never, SqlClient.SqlClient> = Layer.effect(
  RevokedSessions,
  Effect.map(SqlClient.SqlClient, (sql) => {
    const interval = (ttlMs: number) => `${Math.ceil(ttlMs)} milliseconds`
    const rememberSessions = (ids: ReadonlyArray<string>, reason: string, ttlMs: number) =>
      Effect.forEach(
        ids,
        (id) =>
          sql`INSERT INTO runtime.revoked_sessions (session_id, reason, expires_at)
              VALUES (${id}, ${reason}, now() + ${interval(ttlMs)}::interval)
              ON CONFLICT (session_id) DO UPDATE SET expires_at = GREATEST(runtime.revoked_sessions.expires_at, EXCLUDED.expires_at),
                revoked_at = EXCLUDED.revoked_at, reason = EXCLUDED.reason`,
        { discard: true }
      )
    // user_id '' stands for every user of the device id.
    // The latest revocation time wins (a redelivered notice changes nothing).
    const rememberDevices = (ids: ReadonlyArray<string>, userId: string | undefined, revokedAtMs: number | undefined, reason: string, ttlMs: number) =>
      Effect.forEach(
        ids,
        (id) =>
          sql`INSERT INTO runtime.revoked_devices (device_id, user_id, reason, revoked_at, expires_at)
              VALUES (${id}, ${userId ?? ""}, ${reason},
                ${revokedAtMs === undefined ? sql`now()` : sql`to_timestamp(${revokedAtMs / 1000})`},
                now() + ${interval(ttlMs)}::interval)
              ON CONFLICT (device_id, user_id) DO UPDATE SET expires_at = GREATEST(runtime.revoked_devices.expires_at, EXCLUDED.expires_at),
                revoked_at = GREATEST(runtime.revoked_devices.revoked_at, EXCLUDED.revoked_at), reason = EXCLUDED.reason`,
        { discard: true }
      )
    const held = (table: "revoked_sessions" | "revoked_devices", column: "session_id" | "device_id", id: string) =>
      sql<{ one: number }>`SELECT 1 AS one FROM ${sql(`runtime.${table}`)} WHERE ${sql(column)} = ${id} AND expires_at > now()`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(storageFailure)
      )
    const pruneOne = (table: "revoked_sessions" | "revoked_devices") =>
      sql<{ n: string }>`WITH gone AS (DELETE FROM ${sql(`runtime.${table}`)} WHERE expires_at <= now() RETURNING 1) SELECT count(*) AS n FROM gone`.pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0))
      )
    return {
      revoke: (sessionIds, reason, ttlMs) =>
        sessionIds.length === 0 ? Effect.void : rememberSessions(sessionIds, reason, ttlMs).pipe(sql.withTransaction, Effect.mapError(storageFailure)),
      isRevoked: (sessionId) => held("revoked_sessions", "session_id", sessionId),
      record: (r) =>
        r.sessionIds.length === 0 && r.deviceIds.length === 0
          ? Effect.void
          : Effect.zipRight(rememberSessions(r.sessionIds, r.reason, r.ttlMs), rememberDevices(r.deviceIds, r.userId, r.revokedAtMs, r.reason, r.ttlMs)).pipe(
            sql.withTransaction,
            Effect.mapError(storageFailure)
          ),
      // Only tokens issued before the (latest) revocation: a new sign-in on the device is not refused.
      isDeviceRevoked: (deviceId, issuedAtSeconds, userId) =>
        sql<{ one: number }>`SELECT 1 AS one FROM runtime.revoked_devices
          WHERE device_id = ${deviceId} AND user_id IN ('', ${userId}) AND expires_at > now()
            AND revoked_at >= to_timestamp(${issuedAtSeconds})`.pipe(
          Effect.map((rows) => rows.length > 0),
          Effect.mapError(storageFailure)
        ),
      prune: Effect.zipWith(pruneOne("revoked_sessions"), pruneOne("revoked_devices"), (a, b) => a + b).pipe(Effect.mapError(storageFailure))
    } satisfies RevokedSessionsService
  })
)

export const layerRevokedSessionsMemory: Layer.Layer<RevokedSessions> = Layer.sync(RevokedSessions, () => {
  const sessions = new Map<string, number>()
  // Keyed by user id ("" for every user) and device id.
  const devices = new Map<string, { until: number; at: number }>()
  const deviceKey = (userId: string, deviceId: string) => `${userId}\u0000${deviceId}`
  const rememberSessions = (ids: ReadonlyArray<string>, ttlMs: number) => {
    const t = Date.now() + ttlMs
    for (const id of ids) sessions.set(id, Math.max(sessions.get(id) ?? 0, t))
  }
  const heldFor = (key: string, issuedAtSeconds: number) => {
    const d = devices.get(key)
    return d !== undefined && d.until > Date.now() && issuedAtSeconds * 1000 <= d.at
  }
  return {
    revoke: (ids, _reason, ttlMs) => Effect.sync(() => rememberSessions(ids, ttlMs)),
    isRevoked: (id) => Effect.sync(() => (sessions.get(id) ?? 0) > Date.now()),
    record: (r) =>
      Effect.sync(() => {
        rememberSessions(r.sessionIds, r.ttlMs)
        const now = Date.now()
        const at = r.revokedAtMs ?? now
        for (const id of r.deviceIds) {
          const key = deviceKey(r.userId ?? "", id)
          const held = devices.get(key)
          devices.set(key, { until: Math.max(held?.until ?? 0, now + r.ttlMs), at: Math.max(held?.at ?? 0, at) })
        }
      }),
    isDeviceRevoked: (id, issuedAtSeconds, userId) =>
      Effect.sync(() => heldFor(deviceKey("", id), issuedAtSeconds) || heldFor(deviceKey(userId, id), issuedAtSeconds)),
    prune: Effect.sync(() => {
      const now = Date.now()
      let n = 0
      for (const [id, t] of sessions) if (t <= now && sessions.delete(id)) n++
      for (const [id, d] of devices) if (d.until <= now && devices.delete(id)) n++
      return n
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Internal signature replay cache shared by every node

/** Nonces in `runtime.internal_nonces`: a nonce is accepted once until it expires. Fails closed. */
export const sqlReplayCache = (sql: SqlClient.SqlClient): InternalSignature.ReplayCache => {
  let calls = 0
  return {
    remember: (nonce, expiresAtSeconds) =>
      Effect.gen(function*() {
        // Expired nonces are deleted now and then by the writers themselves (no extra job).
        if (++calls % 500 === 0) yield* sql`DELETE FROM runtime.internal_nonces WHERE expires_at < now()`
        const rows = yield* sql<{ nonce: string }>`
          INSERT INTO runtime.internal_nonces (nonce, expires_at) VALUES (${nonce}, to_timestamp(${expiresAtSeconds}))
          ON CONFLICT (nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE runtime.internal_nonces.expires_at < now()
          RETURNING nonce`
        return rows.length === 1
      }).pipe(Effect.orElseSucceed(() => false))
  }
}

// ---------------------------------------------------------------------------------------------
// The authenticator the HTTP middleware uses

export interface AuthenticatorService {
  /** A user route: the signed internal header (with X-OA-USER-ID) or a bearer access token. */
  readonly user: (request: HttpServerRequest.HttpServerRequest, bearer: string) => Effect.Effect<Caller, Errors.RuntimeError>
  /** A service route (control → runtime): the signed internal header only. */
  readonly internal: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<InternalSignature.Claims, Errors.RuntimeError>
}

export class Authenticator extends Context.Tag("@openagents/runtime-core/Authenticator")<Authenticator, AuthenticatorService>() {}

export interface AuthenticatorOptions {
  readonly accessTokens?: AccessTokenOptions | undefined
  /** The keys control signs internal requests with (current, and previous during a rotation). */
  readonly internalKeys?: ReadonlyArray<InternalSignature.Key> | undefined
  /** Default: a table shared by every node (needs the SqlClient); pass memoryReplayCache() for one process. */
  readonly replayCache?: InternalSignature.ReplayCache | undefined
}

const RUN_ROUTE = /^\/internal\/v1\/runs\/([^/]+)\//

const fromSignatureError = (e: InternalSignature.InternalSignatureError) =>
  new Errors.RuntimeError({ code: e.status === 403 ? "forbidden" : "unauthorized", message: e.message, details: { reason: e.reason } })

export const layerAuthenticator = (options: AuthenticatorOptions): Layer.Layer<Authenticator, never, RevokedSessions | SqlClient.SqlClient> =>
  Layer.effect(
    Authenticator,
    Effect.gen(function*() {
      const revoked = yield* RevokedSessions
      const sql = yield* SqlClient.SqlClient
      const verifyAccess = options.accessTokens === undefined ? undefined : makeAccessTokenVerifier(options.accessTokens)
      const signatures = options.internalKeys === undefined || options.internalKeys.length === 0
        ? undefined
        : InternalSignature.makeVerifier({ keys: options.internalKeys, replayCache: options.replayCache ?? sqlReplayCache(sql) })

      const verifySignature = (request: HttpServerRequest.HttpServerRequest) => {
        if (signatures === undefined) return Effect.fail(unauthorized("internal calls are not configured on this runtime (OA_RUNTIME_SIGNING_KEY)", "internal_auth_disabled"))
        const path = new URL(request.url, "http://runtime.invalid").pathname
        const runId = RUN_ROUTE.exec(path)?.[1]
        let decoded: string | undefined
        try {
          decoded = runId === undefined ? undefined : decodeURIComponent(runId)
        } catch {
          return Effect.fail(Errors.invalid("the run id is not valid percent-encoding"))
        }
        return Effect.mapError(signatures.verifyServerRequest(request, { runId: decoded }), fromSignatureError)
      }

      return {
        user: (request, bearer) =>
          Effect.gen(function*() {
            if (request.headers[InternalSignature.SIGNATURE_HEADER] !== undefined) {
              const claims = yield* verifySignature(request)
              if (claims.user_id === undefined) return yield* Effect.fail(unauthorized(`user routes need a signed ${InternalSignature.USER_ID_HEADER}`, "missing_user"))
              return { userId: claims.user_id, via: "internal" as const }
            }
            if (bearer === "") return yield* Effect.fail(unauthorized("authentication required", "missing_token"))
            if (verifyAccess === undefined) return yield* Effect.fail(unauthorized("bearer tokens are not configured on this runtime (OA_CONTROL_PUBLIC_URL)", "bearer_auth_disabled"))
            const claims = yield* verifyAccess(bearer)
            if (yield* revoked.isRevoked(claims.sessionId)) return yield* Effect.fail(unauthorized("the session was revoked; sign in again", "session_revoked"))
            return { userId: claims.userId, via: "bearer" as const, sessionId: claims.sessionId, deviceId: claims.deviceId, issuedAt: claims.issuedAt }
          }),
        internal: verifySignature
      }
    })
  )
