// What the HTTP handlers share: the HTTP settings (proxy trust, cookie flags), the client IP,
// response helpers, and the mapping of storage failures to internal_error.
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { isIP } from "node:net"
import * as Errors from "../Errors.js"
import type { Session } from "../Storage.js"
import type { SessionView } from "../Api.js"
import { type HttpSettingsService, trustedHops } from "../HttpSettings.js"

export { HttpSettings, type HttpSettingsService } from "../HttpSettings.js"

/**
 * The client IP, for rate limits and the identity provider. Behind N trusted proxies it is the
 * N-th X-Forwarded-For entry from the right: each proxy appends the address it received the
 * request from, so the entries left of those are whatever the client sent and prove nothing (the
 * leftmost entry would let anyone pick their rate-limit key). With fewer entries than hops, the
 * leftmost. An entry that is not an IP address (a forged or garbled header) is ignored in favour
 * of the socket address.
 */
export const clientIp = (request: HttpServerRequest.HttpServerRequest, settings: HttpSettingsService): string => {
  const hops = trustedHops(settings.trustProxy)
  if (hops > 0) {
    const entries = (request.headers["x-forwarded-for"] ?? "").split(",").map((e) => e.trim()).filter((e) => e.length > 0)
    const entry = entries[Math.max(0, entries.length - hops)]
    if (entry !== undefined && isIP(entry) !== 0) return entry
  }
  return Option.getOrElse(request.remoteAddress, () => "unknown")
}

export const iso = (ms: number): string => new Date(ms).toISOString()

export const sessionView = (s: Session, currentSessionId: string | undefined): SessionView => ({
  sessionId: s.id,
  userId: s.userId,
  deviceId: s.deviceId,
  client: s.client,
  tokenName: s.tokenName,
  createdAt: iso(s.createdAtMs),
  lastSeenAt: iso(s.lastSeenAtMs),
  expiresAt: iso(s.expiresAtMs),
  ...(s.revokedAtMs !== undefined ? { revokedAt: iso(s.revokedAtMs) } : {}),
  ...(s.revokedReason !== undefined ? { revokedReason: s.revokedReason } : {}),
  current: s.id === currentSessionId
})

/** A storage failure is a 500 internal_error (logged with its cause; the client sees no detail). */
export const orInternal = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, Errors.StorageError> | Errors.InternalError, R> =>
  Effect.catchIf(
    effect,
    (e): e is Extract<E, Errors.StorageError> => e instanceof Errors.StorageError,
    (e) => Effect.zipRight(Effect.logError(e.message), Effect.fail(new Errors.InternalError({ message: "internal error" })))
  ) as any

/** 429 with Retry-After and the envelope (HttpApi error schemas cannot set headers). */
export const rateLimitedResponse = (e: Errors.RateLimited) =>
  HttpServerResponse.unsafeJson(Errors.envelope(e.code, e), { status: 429, headers: { "retry-after": String(e.retryAfterSeconds) } })

export const envelopeResponse = (status: number, code: string, fields: Errors.ErrorFields) =>
  HttpServerResponse.unsafeJson(Errors.envelope(code, fields), { status })
