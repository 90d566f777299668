// Email-code sign-in, sessions, refresh and logout (UPSTREAM_SPEC §3.1, with the Rust-era
// challenge id), independent of HTTP: the handlers in http/auth.ts only translate.
//
// Sign-in: `startSignIn(email)` creates a challenge (10 minutes, at most 5 code checks) and
// asks the identity provider to send a code; its answer is the same for every well-formed
// email, so nobody learns whether an address has an account. `verify(code, challengeId)` counts
// an attempt first (atomically, so brute force stops at the 5th check even under concurrency),
// asks the provider, then consumes the challenge (single use) and opens a session.
//
// Sessions: a recognised native client (X-Client openagents-expo, autopilot-ios ->
// "mobile:<client>"; openagents-desktop, autopilot-desktop -> "desktop:<client>",
// case-insensitive) gets a bearer session: an access token (AccessTokens, ES256 JWT) and a
// refresh token. Anyone else (the web) gets a cookie session: the refresh secret travels only in
// an HttpOnly SameSite cookie. A new sign-in on the same device (device id, defaulting to the
// token name as upstream replaced same-named tokens) replaces the previous session.
//
// Refresh rotates the refresh token; presenting a retired refresh token again is treated as
// theft (RFC 9700 §4.14): the whole session is revoked (token_replay). Every revocation is
// written to the revocation outbox in the same transaction and delivered to the runtime.
//
// Rate limits (per client IP and per email, over any sliding minute): 6/min for startSignIn,
// 10/min for verify; a refusal is RateLimited with the seconds until the oldest counted attempt
// leaves the minute. Only allowed attempts count, so hammering does not prolong a lock-out, and
// no burst across a minute boundary gets more through (fixed windows let 2× the limit pass).
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { AccessTokens } from "./AccessTokens.js"
import { InvalidRequest, RateLimited, ReauthRequired, ServiceUnavailable, type StorageError, Unauthorized } from "./Errors.js"
import { IdentityProvider } from "./IdentityProvider.js"
import { randomId, randomSecret, sha256Hex } from "./internal/crypto.js"
import * as Revocations from "./Revocations.js"
import { AuthStorage, REVOCATION_REASONS, type RevocationReason, type Session, type SessionKind, type User } from "./Storage.js"

export interface AuthSettings {
  /** Lifetime of a sign-in challenge; default 600 s. */
  readonly challengeTtlSeconds: number
  /** Code checks allowed per challenge; default 5. */
  readonly maxAttempts: number
  /** Per IP and per email, per minute; defaults 6 and 10. */
  readonly emailRateLimitPerMinute: number
  readonly verifyRateLimitPerMinute: number
  /** Lifetime of a refresh token and of an idle session; default 30 days. */
  readonly refreshTtlSeconds: number
}

export const defaultSettings: AuthSettings = {
  challengeTtlSeconds: 600,
  maxAttempts: 5,
  emailRateLimitPerMinute: 6,
  verifyRateLimitPerMinute: 10,
  refreshTtlSeconds: 2_592_000
}

export const MESSAGES = {
  challengeMissing: "Your sign-in code expired. Request a new code.",
  codeRefused: "That code is invalid or expired. Request a new one.",
  emailInvalid: "The email field must be a valid email address.",
  codeInvalid: "The code field must be between 6 and 128 characters."
} as const

// ---------------------------------------------------------------------------------------------
// Clients

export interface RecognizedClient {
  /** Lower-cased X-Client. */
  readonly client: string
  readonly tokenName: string
}

const MOBILE = new Set(["autopilot-ios", "openagents-expo"])
const DESKTOP = new Set(["autopilot-desktop", "openagents-desktop"])

/** The native clients that receive a bearer token, by X-Client (case-insensitive). */
export const recognizeClient = (header: string | undefined): RecognizedClient | undefined => {
  const client = header?.trim().toLowerCase()
  if (client === undefined) return undefined
  if (MOBILE.has(client)) return { client, tokenName: `mobile:${client}` }
  if (DESKTOP.has(client)) return { client, tokenName: `desktop:${client}` }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Principal

/** Who is calling: resolved from a bearer access token or the session cookie. */
export interface Principal {
  readonly userId: string
  readonly sessionId: string
  readonly deviceId: string
  readonly client: string
  readonly tokenName: string
  readonly kind: SessionKind
}

/** The principal of a session. */
export const principalOf = (s: Session): Principal => ({
  userId: s.userId,
  sessionId: s.id,
  deviceId: s.deviceId,
  client: s.client,
  tokenName: s.tokenName,
  kind: s.kind
})

export class CurrentPrincipal extends Context.Tag("@openagents/control-core/CurrentPrincipal")<CurrentPrincipal, Principal>() {}

// ---------------------------------------------------------------------------------------------
// Inputs and results

export interface RequestContext {
  readonly ip: string
  readonly userAgent?: string | undefined
  /** The X-Client header. */
  readonly client?: string | undefined
  /** The X-Device-Id header. */
  readonly deviceId?: string | undefined
}

export interface SignedIn {
  readonly user: User
  readonly newUser: boolean
  readonly session: Session
  readonly refreshToken: { readonly id: string; readonly secret: string; readonly expiresAtMs: number }
  /** Bearer sessions only. */
  readonly accessToken: { readonly token: string; readonly expiresAtMs: number } | undefined
}

export interface Refreshed {
  readonly session: Session
  readonly refreshToken: { readonly id: string; readonly secret: string; readonly expiresAtMs: number }
  readonly replacedRefreshTokenId: string | undefined
  readonly accessToken: { readonly token: string; readonly expiresAtMs: number } | undefined
}

export interface RevokeRequest {
  readonly sessionIds: ReadonlyArray<string>
  readonly deviceIds: ReadonlyArray<string>
  readonly reason?: RevocationReason | undefined
  readonly includeCurrent?: boolean | undefined
}

export interface Revoked {
  readonly sessionIds: ReadonlyArray<string>
  readonly deviceIds: ReadonlyArray<string>
  readonly refreshTokenIds: ReadonlyArray<string>
  readonly reason: RevocationReason
  readonly revokedAtMs: number
}

const EMAIL = /^[^\s@"<>()[\],;:\\]+@[^\s@"<>()[\],;:\\]+\.[^\s@"<>()[\],;:\\]+$/

/** What a device id may be, at sign-in and in a revocation (so every id control sends the runtime is one it accepts). */
export const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:~-]{0,159}$/
export const DEVICE_ID_RULE = "each device id must be 1..160 characters of A-Z a-z 0-9 . _ : ~ - (starting with a letter or digit)"

/** Session ids in a revocation: 1..256 characters each, as the runtime's revocation endpoint takes them. */
export const MAX_SESSION_ID_LENGTH = 256
export const SESSION_ID_RULE = `each session id must be 1..${MAX_SESSION_ID_LENGTH} characters`
export const isSessionId = (id: string): boolean => id.length >= 1 && id.length <= MAX_SESSION_ID_LENGTH
export const isDeviceId = (id: string): boolean => DEVICE_ID.test(id)

/** Ids of each kind in one revocation request. */
export const MAX_REVOKE_IDS = 1_000

/**
 * Why a revocation request's ids are refused (field -> message), or undefined. A notice the
 * runtime would refuse is never written: it would be retried forever and never cut anything.
 */
export const revokeIdsProblem = (request: { readonly sessionIds: ReadonlyArray<string>; readonly deviceIds: ReadonlyArray<string> }) => {
  if (request.sessionIds.length > MAX_REVOKE_IDS) return { field: "session_ids", message: `at most ${MAX_REVOKE_IDS} session ids` }
  if (!request.sessionIds.every(isSessionId)) return { field: "session_ids", message: SESSION_ID_RULE }
  if (request.deviceIds.length > MAX_REVOKE_IDS) return { field: "device_ids", message: `at most ${MAX_REVOKE_IDS} device ids` }
  if (!request.deviceIds.every(isDeviceId)) return { field: "device_ids", message: DEVICE_ID_RULE }
  return undefined
}

/** users.name is varchar(255): characters, as Postgres counts them (code points). */
export const MAX_NAME_LENGTH = 255

/**
 * The provider's name for a person, cut to what control stores. A provider may send any length;
 * failing the sign-in on it would consume the challenge and lock that person out for good. Cut
 * at a code point, so a surrogate pair is never split.
 */
export const storedName = (name: string | undefined): string => {
  if (name === undefined) return ""
  // Any string with more than 255 code points has more than 255 UTF-16 units.
  if (name.length <= MAX_NAME_LENGTH) return name
  return Array.from(name).slice(0, MAX_NAME_LENGTH).join("")
}

export const normalizeEmail = (email: string): string | undefined => {
  const e = email.trim().toLowerCase()
  return e.length > 0 && e.length <= 255 && EMAIL.test(e) ? e : undefined
}

const invalid = (field: string, message: string, details?: Record<string, unknown>) =>
  new InvalidRequest({ message, errors: { [field]: [message] }, ...(details !== undefined ? { details } : {}) })

const codeRefused = (reason: string) => invalid("code", MESSAGES.codeRefused, { reason })

// ---------------------------------------------------------------------------------------------

export interface AuthService {
  readonly settings: AuthSettings
  readonly startSignIn: (email: string, ctx: RequestContext) => Effect.Effect<{ readonly challengeId: string; readonly email: string; readonly expiresAtMs: number }, InvalidRequest | RateLimited | ServiceUnavailable | StorageError>
  readonly verify: (
    input: { readonly code: string; readonly challengeId: string | undefined; readonly deviceId?: string | undefined },
    ctx: RequestContext
  ) => Effect.Effect<SignedIn, InvalidRequest | RateLimited | ServiceUnavailable | StorageError>
  readonly refresh: (input: { readonly refreshToken: string; readonly rotate: boolean }) => Effect.Effect<Refreshed, Unauthorized | ReauthRequired | StorageError>
  readonly logout: (principal: Principal) => Effect.Effect<{ readonly sessionId: string; readonly revokedAtMs: number }, StorageError>
  readonly authenticateBearer: (token: string) => Effect.Effect<Principal, Unauthorized | ReauthRequired | StorageError>
  readonly authenticateCookie: (secret: string) => Effect.Effect<Principal, Unauthorized | ReauthRequired | StorageError>
  readonly findUser: (userId: string) => Effect.Effect<User | undefined, StorageError>
  readonly listSessions: (principal: Principal) => Effect.Effect<ReadonlyArray<Session>, StorageError>
  readonly revokeSessions: (principal: Principal, request: RevokeRequest) => Effect.Effect<Revoked, InvalidRequest | StorageError>
}

export class Auth extends Context.Tag("@openagents/control-core/Auth")<Auth, AuthService>() {}

export const make = (settings: AuthSettings = defaultSettings) =>
  Effect.gen(function*() {
    const storage = yield* AuthStorage
    const provider = yield* IdentityProvider
    const tokens = yield* AccessTokens
    const relay = yield* Revocations.RevocationRelay

    const limit = (key: string, perMinute: number) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const decision = yield* storage.takeRateLimit(key, now, 60_000, perMinute)
        if (!decision.allowed) {
          const retryAfterSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000))
          return yield* new RateLimited({
            message: "Too many attempts. Try again later.",
            retryAfterSeconds,
            details: { retry_after_seconds: retryAfterSeconds }
          })
        }
      })

    /**
     * Revoke inside the caller's transaction and enqueue the runtime notice. The notice always
     * lists the revoked session ids; device ids only where the caller revoked whole devices
     * (not when a sign-in replaces the session of its own device, whose new session would share it).
     */
    const revokeTx = (input: {
      readonly userId: string
      readonly sessionIds: ReadonlyArray<string>
      readonly deviceIds: ReadonlyArray<string>
      readonly reason: RevocationReason
      readonly nowMs: number
      readonly notifyDeviceIds?: boolean
    }) =>
      Effect.gen(function*() {
        const result = yield* storage.revokeSessions(input)
        if (result.sessions.length > 0) {
          yield* storage.enqueueRevocation(Revocations.notice({
            userId: input.userId,
            sessionIds: result.sessions.map((s) => s.id),
            deviceIds: input.notifyDeviceIds === false ? [] : input.deviceIds,
            reason: input.reason,
            nowMs: input.nowMs
          }))
        }
        return result
      })

    const liveSession = (sessionId: string, nowMs: number) =>
      Effect.gen(function*() {
        const session = yield* storage.findSession(sessionId)
        if (session === undefined) return yield* new Unauthorized({ message: "unknown session" })
        if (session.revokedAtMs !== undefined) return yield* new ReauthRequired({ message: "the session was revoked; sign in again", details: { reason: session.revokedReason ?? "user_requested" } })
        if (session.expiresAtMs <= nowMs) return yield* new ReauthRequired({ message: "the session expired; sign in again", details: { reason: "expired" } })
        return session
      })

    const service: AuthService = {
      settings,

      startSignIn: (rawEmail, ctx) =>
        Effect.gen(function*() {
          const email = normalizeEmail(rawEmail)
          if (email === undefined) return yield* invalid("email", MESSAGES.emailInvalid)
          yield* limit(`email:ip:${ctx.ip}`, settings.emailRateLimitPerMinute)
          yield* limit(`email:addr:${email}`, settings.emailRateLimitPerMinute)
          const now = yield* Clock.currentTimeMillis
          const challengeId = randomId("ch")
          const sent = yield* provider.sendCode({ email, challengeId, ipAddress: ctx.ip, userAgent: ctx.userAgent }).pipe(
            Effect.catchTag("ProviderUnavailable", (e) =>
              Effect.zipRight(
                Effect.logWarning(`identity provider ${provider.name} could not send a code: ${e.detail}`),
                Effect.fail(new ServiceUnavailable({ message: "The sign-in service is unavailable. Try again shortly." }))
              ))
          )
          const expiresAtMs = now + settings.challengeTtlSeconds * 1000
          yield* storage.insertChallenge({
            id: challengeId,
            email,
            provider: provider.name,
            providerRef: sent.providerRef,
            providerUserId: sent.providerUserId,
            verifier: sent.verifier,
            attempts: 0,
            maxAttempts: settings.maxAttempts,
            createdAtMs: now,
            expiresAtMs,
            consumedAtMs: undefined
          })
          return { challengeId, email, expiresAtMs }
        }),

      verify: (input, ctx) =>
        Effect.gen(function*() {
          const code = input.code.trim()
          if (code.length < 6 || code.length > 128) return yield* invalid("code", MESSAGES.codeInvalid)
          const deviceIdInput = input.deviceId ?? ctx.deviceId
          if (deviceIdInput !== undefined && !DEVICE_ID.test(deviceIdInput)) {
            return yield* invalid("device_id", "The device id must be 1..160 characters of A-Z a-z 0-9 . _ : ~ -.")
          }
          yield* limit(`verify:ip:${ctx.ip}`, settings.verifyRateLimitPerMinute)
          if (input.challengeId === undefined || input.challengeId === "") return yield* invalid("code", MESSAGES.challengeMissing, { reason: "missing_challenge" })
          const challenge = yield* storage.findChallenge(input.challengeId)
          if (challenge === undefined) return yield* invalid("code", MESSAGES.challengeMissing, { reason: "unknown_challenge" })
          yield* limit(`verify:addr:${challenge.email}`, settings.verifyRateLimitPerMinute)

          const now = yield* Clock.currentTimeMillis
          const attempt = yield* storage.recordAttempt(challenge.id, now)
          if (attempt === undefined) {
            const reason = challenge.consumedAtMs !== undefined
              ? "already_used"
              : challenge.expiresAtMs <= now
              ? "expired"
              : "attempts_exhausted"
            return yield* codeRefused(reason)
          }
          if (attempt.provider !== provider.name) return yield* codeRefused("provider_changed")
          const identity = yield* provider.verifyCode({
            email: attempt.email,
            code,
            challengeId: attempt.id,
            providerRef: attempt.providerRef,
            providerUserId: attempt.providerUserId,
            verifier: attempt.verifier,
            ipAddress: ctx.ip,
            userAgent: ctx.userAgent
          }).pipe(
            Effect.catchTags({
              InvalidCode: () => Effect.fail(codeRefused(attempt.attempts >= attempt.maxAttempts ? "attempts_exhausted" : "invalid_code")),
              ProviderUnavailable: (e) =>
                Effect.zipRight(
                  Effect.logWarning(`identity provider ${provider.name} could not verify a code: ${e.detail}`),
                  Effect.fail(new ServiceUnavailable({ message: "The sign-in service is unavailable. Try again shortly." }))
                )
            })
          )
          const consumedAt = yield* Clock.currentTimeMillis
          if (!(yield* storage.consumeChallenge(attempt.id, consumedAt))) return yield* codeRefused("already_used")

          const recognized = recognizeClient(ctx.client)
          const kind: SessionKind = recognized !== undefined ? "bearer" : "cookie"
          const client = recognized?.client ?? "web"
          const tokenName = recognized?.tokenName ?? "web"
          const deviceId = deviceIdInput ?? (recognized !== undefined ? recognized.tokenName : `web:${randomId("dev").slice(4)}`)
          const secret = randomSecret("oa_rt")
          const refreshExpiresAtMs = consumedAt + settings.refreshTtlSeconds * 1000

          const opened = yield* storage.transaction(Effect.gen(function*() {
            const { created, user } = yield* storage.upsertUser({
              id: randomId("usr"),
              email: attempt.email,
              name: storedName(identity.name),
              provider: provider.name,
              providerUserId: identity.providerUserId ?? attempt.providerUserId,
              nowMs: consumedAt
            })
            const replaced = yield* revokeTx({ userId: user.id, sessionIds: [], deviceIds: [deviceId], reason: "device_replaced", nowMs: consumedAt, notifyDeviceIds: false })
            const session: Session = {
              id: randomId("sess"),
              userId: user.id,
              deviceId,
              client,
              tokenName,
              kind,
              createdAtMs: consumedAt,
              lastSeenAtMs: consumedAt,
              expiresAtMs: refreshExpiresAtMs,
              revokedAtMs: undefined,
              revokedReason: undefined
            }
            const refreshTokenId = randomId("rt")
            yield* storage.insertSession(session, {
              id: refreshTokenId,
              sessionId: session.id,
              tokenHash: sha256Hex(secret),
              createdAtMs: consumedAt,
              expiresAtMs: refreshExpiresAtMs,
              rotatedAtMs: undefined,
              replacedBy: undefined,
              revokedAtMs: undefined
            })
            return { user, newUser: created, session, refreshTokenId, replaced: replaced.sessions.length }
          }))
          if (opened.replaced > 0) yield* relay.kick
          const accessToken = kind === "bearer"
            ? yield* tokens.sign({ userId: opened.user.id, sessionId: opened.session.id, deviceId, client, tokenName, nowMs: consumedAt })
            : undefined
          return {
            user: opened.user,
            newUser: opened.newUser,
            session: opened.session,
            refreshToken: { id: opened.refreshTokenId, secret, expiresAtMs: refreshExpiresAtMs },
            accessToken: accessToken === undefined ? undefined : { token: accessToken.token, expiresAtMs: accessToken.expiresAtMs }
          }
        }),

      refresh: (input) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const presented = yield* storage.findRefreshToken(sha256Hex(input.refreshToken.trim()))
          if (presented === undefined) return yield* new Unauthorized({ message: "unknown refresh token" })
          const session = yield* storage.findSession(presented.sessionId)
          if (session === undefined) return yield* new Unauthorized({ message: "unknown refresh token" })
          const replay = () =>
            Effect.gen(function*() {
              if (session.revokedAtMs === undefined) {
                yield* storage.transaction(revokeTx({ userId: session.userId, sessionIds: [session.id], deviceIds: [], reason: "token_replay", nowMs: now }))
                yield* relay.kick
                yield* Effect.logWarning(`refresh token ${presented.id} of session ${session.id} was presented after rotation; the session is revoked`)
              }
              return yield* new ReauthRequired({ message: "the refresh token was already used; sign in again", details: { reason: "token_replay" } })
            })
          if (presented.rotatedAtMs !== undefined) return yield* replay()
          if (presented.revokedAtMs !== undefined || session.revokedAtMs !== undefined) {
            return yield* new ReauthRequired({ message: "the session was revoked; sign in again", details: { reason: session.revokedReason ?? "user_requested" } })
          }
          if (presented.expiresAtMs <= now || session.expiresAtMs <= now) {
            return yield* new ReauthRequired({ message: "the session expired; sign in again", details: { reason: "expired" } })
          }
          const expiresAtMs = now + settings.refreshTtlSeconds * 1000
          let refreshToken = { id: presented.id, secret: input.refreshToken.trim(), expiresAtMs }
          let replacedRefreshTokenId: string | undefined
          if (input.rotate) {
            const secret = randomSecret("oa_rt")
            const next = {
              id: randomId("rt"),
              sessionId: session.id,
              tokenHash: sha256Hex(secret),
              createdAtMs: now,
              expiresAtMs,
              rotatedAtMs: undefined,
              replacedBy: undefined,
              revokedAtMs: undefined
            }
            // Losing this race means another caller rotated the same token: a replay.
            if (!(yield* storage.rotateRefreshToken(presented.id, next, now))) return yield* replay()
            refreshToken = { id: next.id, secret, expiresAtMs }
            replacedRefreshTokenId = presented.id
          } else if (!(yield* storage.extendRefreshToken(presented.id, expiresAtMs))) {
            return yield* replay()
          }
          const current = { ...session, expiresAtMs, lastSeenAtMs: now }
          const accessToken = session.kind === "bearer"
            ? yield* tokens.sign({ userId: session.userId, sessionId: session.id, deviceId: session.deviceId, client: session.client, tokenName: session.tokenName, nowMs: now })
            : undefined
          return {
            session: current,
            refreshToken,
            replacedRefreshTokenId,
            accessToken: accessToken === undefined ? undefined : { token: accessToken.token, expiresAtMs: accessToken.expiresAtMs }
          }
        }),

      logout: (principal) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          yield* storage.transaction(revokeTx({ userId: principal.userId, sessionIds: [principal.sessionId], deviceIds: [], reason: "user_requested", nowMs: now }))
          yield* relay.kick
          return { sessionId: principal.sessionId, revokedAtMs: now }
        }),

      authenticateBearer: (token) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const claims = yield* tokens.verify(token, now).pipe(Effect.mapError(() => new Unauthorized({ message: "invalid or expired bearer token" })))
          const session = yield* liveSession(claims.sessionId, now)
          if (session.userId !== claims.userId || session.kind !== "bearer") return yield* new Unauthorized({ message: "invalid bearer token" })
          yield* storage.touchSession(session.id, now)
          return principalOf(session)
        }),

      authenticateCookie: (secret) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const token = yield* storage.findRefreshToken(sha256Hex(secret.trim()))
          if (token === undefined || token.rotatedAtMs !== undefined) return yield* new Unauthorized({ message: "invalid session cookie" })
          const session = yield* liveSession(token.sessionId, now)
          if (session.kind !== "cookie") return yield* new Unauthorized({ message: "invalid session cookie" })
          if (token.revokedAtMs !== undefined || token.expiresAtMs <= now) return yield* new ReauthRequired({ message: "the session ended; sign in again" })
          yield* storage.touchSession(session.id, now)
          return principalOf(session)
        }),

      findUser: (userId) => storage.findUser(userId),

      listSessions: (principal) => Effect.flatMap(Clock.currentTimeMillis, (now) => storage.listSessions(principal.userId, now)),

      revokeSessions: (principal, request) =>
        Effect.gen(function*() {
          const reason = request.reason ?? "user_requested"
          if (!REVOCATION_REASONS.includes(reason) || reason === "token_replay" || reason === "admin_revoked") {
            return yield* invalid("reason", "The reason must be user_requested, device_replaced or security_policy.")
          }
          const idsProblem = revokeIdsProblem(request)
          if (idsProblem !== undefined) return yield* invalid(idsProblem.field, idsProblem.message)
          const now = yield* Clock.currentTimeMillis
          const includeCurrent = request.includeCurrent === true
          const sessions = yield* storage.listSessions(principal.userId, now)
          const targets = sessions.filter((s) =>
            s.revokedAtMs === undefined &&
            (request.sessionIds.includes(s.id) || request.deviceIds.includes(s.deviceId)) &&
            (includeCurrent || s.id !== principal.sessionId)
          )
          const deviceIds = request.deviceIds.filter((d) => includeCurrent || d !== principal.deviceId)
          const result = yield* storage.transaction(revokeTx({ userId: principal.userId, sessionIds: targets.map((s) => s.id), deviceIds, reason, nowMs: now }))
          if (result.sessions.length > 0) yield* relay.kick
          return {
            sessionIds: result.sessions.map((s) => s.id),
            deviceIds: [...new Set(result.sessions.map((s) => s.deviceId))].sort(),
            refreshTokenIds: result.refreshTokenIds,
            reason,
            revokedAtMs: now
          }
        })
    }
    return service
  })

export const layer = (settings: AuthSettings = defaultSettings): Layer.Layer<Auth, never, AuthStorage | IdentityProvider | AccessTokens | Revocations.RevocationRelay> =>
  Layer.effect(Auth, make(settings))
