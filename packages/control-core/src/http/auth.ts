// HTTP handlers of sign-in and sessions, and the Authentication middleware. They translate
// between the wire (bodies, cookies, X-Client / X-Device-Id headers, client IP) and the Auth
// service, which holds the rules.
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { AccessTokens } from "../AccessTokens.js"
import {
  AuthVerifyResponse,
  Authentication,
  CHALLENGE_COOKIE,
  ControlApi,
  RefreshResponse,
  SESSION_COOKIE
} from "../Api.js"
import { Auth, type AuthService, CurrentPrincipal, type RequestContext } from "../Auth.js"
import { Unauthorized } from "../Errors.js"
import type { RevocationReason } from "../Storage.js"
import { clientIp, HttpSettings, type HttpSettingsService, iso, orInternal, rateLimitedResponse, sessionView } from "./common.js"

const requestContext = (request: HttpServerRequest.HttpServerRequest, settings: HttpSettingsService): RequestContext => ({
  ip: clientIp(request, settings),
  userAgent: request.headers["user-agent"],
  client: request.headers["x-client"],
  deviceId: request.headers["x-device-id"]
})

const cookieOptions = (settings: HttpSettingsService, maxAgeSeconds: number, path = "/") => ({
  httpOnly: true,
  secure: settings.secureCookies,
  sameSite: settings.sameSite,
  path,
  maxAge: `${maxAgeSeconds} seconds` as const
})

const encodeVerify = Schema.encodeSync(AuthVerifyResponse)
const encodeRefresh = Schema.encodeSync(RefreshResponse)

/**
 * The caller of a request: the bearer access token when there is one, else the web's session
 * cookie. (The cookie is read here rather than declared as a second security scheme, so that a
 * refused bearer token is reported as such, not as a missing cookie.)
 */
export const authenticate = (auth: AuthService, bearer: string, request: Option.Option<HttpServerRequest.HttpServerRequest>) =>
  Effect.gen(function*() {
    if (bearer !== "") return yield* auth.authenticateBearer(bearer)
    const cookie = Option.flatMapNullable(request, (r) => r.cookies[SESSION_COOKIE])
    if (Option.isNone(cookie) || cookie.value === "") return yield* new Unauthorized({ message: "authentication required" })
    return yield* auth.authenticateCookie(cookie.value)
  })

/** The bearer token of an Authorization header ("" when there is none). */
export const bearerOf = (request: HttpServerRequest.HttpServerRequest) => {
  const header = request.headers["authorization"] ?? ""
  return header.toLowerCase().startsWith("bearer ") ? header.slice(7).trim() : ""
}

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(Auth, (auth) =>
    Authentication.of({
      bearer: (token) =>
        orInternal(Effect.flatMap(Effect.serviceOption(HttpServerRequest.HttpServerRequest), (request) =>
          authenticate(auth, Redacted.value(token).trim(), request)))
    }))
)

export const AuthHandlers = HttpApiBuilder.group(ControlApi, "auth", (handlers) =>
  Effect.gen(function*() {
    const auth = yield* Auth
    const tokens = yield* AccessTokens
    return handlers
      .handle("email", ({ payload, request }) =>
        Effect.gen(function*() {
          const settings = yield* HttpSettings
          const sent = yield* orInternal(auth.startSignIn(payload.email, requestContext(request, settings)))
          return HttpServerResponse.unsafeJson({ ok: true, status: "code-sent", email: sent.email, challengeId: sent.challengeId }).pipe(
            HttpServerResponse.unsafeSetCookie(CHALLENGE_COOKIE, sent.challengeId, cookieOptions(settings, auth.settings.challengeTtlSeconds, "/api/auth"))
          )
        }).pipe(Effect.catchTag("RateLimited", (e) => Effect.succeed(rateLimitedResponse(e)))))
      .handle("verify", ({ payload, request }) =>
        Effect.gen(function*() {
          const settings = yield* HttpSettings
          const challengeId = payload.challenge_id ?? payload.challengeId ?? request.cookies[CHALLENGE_COOKIE]
          const signedIn = yield* orInternal(auth.verify({ code: payload.code, challengeId, deviceId: payload.device_id ?? payload.deviceId }, requestContext(request, settings)))
          const { session, user } = signedIn
          const bearer = signedIn.accessToken !== undefined
          const body = encodeVerify({
            ok: true,
            userId: user.id,
            status: "authenticated",
            user: { id: user.id, name: user.name, email: user.email, ...(user.providerUserId !== undefined ? { workosId: user.providerUserId } : {}) },
            redirect: settings.redirect,
            ...(bearer ? { tokenType: "Bearer" as const, token: signedIn.accessToken!.token, refreshToken: signedIn.refreshToken.secret } : {}),
            tokenName: session.tokenName,
            sessionId: session.id,
            newUser: signedIn.newUser
          })
          const response = HttpServerResponse.unsafeJson(body).pipe(HttpServerResponse.expireCookie(CHALLENGE_COOKIE, { path: "/api/auth" }))
          return bearer
            ? response
            : HttpServerResponse.unsafeSetCookie(response, SESSION_COOKIE, signedIn.refreshToken.secret, cookieOptions(settings, auth.settings.refreshTtlSeconds))
        }).pipe(Effect.catchTag("RateLimited", (e) => Effect.succeed(rateLimitedResponse(e)))))
      .handle("refresh", ({ payload, request }) =>
        Effect.gen(function*() {
          const settings = yield* HttpSettings
          const fromBody = payload.refresh_token ?? payload.refreshToken
          const header = request.headers["authorization"]
          const fromHeader = header?.toLowerCase().startsWith("bearer oa_rt_") ? header.slice(7).trim() : undefined
          const fromCookie = request.cookies[SESSION_COOKIE]
          const presented = fromBody ?? fromHeader ?? fromCookie
          if (presented === undefined || presented === "") return yield* new Unauthorized({ message: "no refresh token" })
          const viaCookie = fromBody === undefined && fromHeader === undefined
          const refreshed = yield* orInternal(auth.refresh({ refreshToken: presented, rotate: payload.rotate_refresh_token ?? payload.rotateRefreshToken ?? true }))
          const body = encodeRefresh({
            ok: true,
            status: "active",
            ...(refreshed.accessToken !== undefined
              ? { tokenType: "Bearer" as const, token: refreshed.accessToken.token, accessExpiresAt: iso(refreshed.accessToken.expiresAtMs) }
              : {}),
            ...(viaCookie ? {} : { refreshToken: refreshed.refreshToken.secret }),
            refreshTokenId: refreshed.refreshToken.id,
            ...(refreshed.replacedRefreshTokenId !== undefined ? { replacedRefreshTokenId: refreshed.replacedRefreshTokenId } : {}),
            sessionId: refreshed.session.id,
            refreshExpiresAt: iso(refreshed.refreshToken.expiresAtMs)
          })
          const response = HttpServerResponse.unsafeJson(body)
          return viaCookie
            ? HttpServerResponse.unsafeSetCookie(response, SESSION_COOKIE, refreshed.refreshToken.secret, cookieOptions(settings, auth.settings.refreshTtlSeconds))
            : response
        }))
      .handle("jwks", () => Effect.succeed({ keys: tokens.jwks.keys as ReadonlyArray<Record<string, unknown>> }))
  }))

export const SessionsHandlers = HttpApiBuilder.group(ControlApi, "sessions", (handlers) =>
  Effect.gen(function*() {
    const auth = yield* Auth
    return handlers
      .handle("logout", () =>
        Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const settings = yield* HttpSettings
          const done = yield* orInternal(auth.logout(principal))
          return HttpServerResponse.unsafeJson({ ok: true, status: "revoked", sessionId: done.sessionId, revokedAt: iso(done.revokedAtMs) }).pipe(
            HttpServerResponse.expireCookie(SESSION_COOKIE, { path: "/", httpOnly: true, secure: settings.secureCookies, sameSite: settings.sameSite })
          )
        }))
      .handle("me", () =>
        orInternal(Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const user = yield* auth.findUser(principal.userId)
          const session = (yield* auth.listSessions(principal)).find((s) => s.id === principal.sessionId)
          if (user === undefined || session === undefined) return yield* Effect.dieMessage("authenticated principal without user or session")
          return {
            ok: true as const,
            user: { id: user.id, name: user.name, email: user.email, ...(user.providerUserId !== undefined ? { workosId: user.providerUserId } : {}) },
            session: sessionView(session, principal.sessionId)
          }
        })))
      .handle("list", () =>
        orInternal(Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const sessions = yield* auth.listSessions(principal)
          return { data: sessions.map((s) => sessionView(s, principal.sessionId)) }
        })))
      .handle("revoke", ({ payload }) =>
        orInternal(Effect.gen(function*() {
          const principal = yield* CurrentPrincipal
          const result = yield* auth.revokeSessions(principal, {
            sessionIds: payload.session_ids ?? payload.sessionIds ?? [],
            deviceIds: payload.device_ids ?? payload.deviceIds ?? [],
            reason: payload.reason as RevocationReason | undefined,
            includeCurrent: payload.include_current ?? payload.includeCurrent
          })
          return {
            ok: true as const,
            revokedSessionIds: result.sessionIds,
            revokedDeviceIds: result.deviceIds,
            revokedRefreshTokenIds: result.refreshTokenIds,
            reason: result.reason,
            revokedAt: iso(result.revokedAtMs)
          }
        })))
  }))
