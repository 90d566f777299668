// Sync-token minting (POST /api/sync/token; UPSTREAM_SPEC §1.10 and §3.2): short-lived JWTs that
// authorize a Khala sync connection, verified by the runtime locally — never by a call to
// control and never by reading control's tables.
//
// Verification material, two modes:
// - HS256 (the upstream default): a shared keyring. Control signs with the current key
//   (OA_SYNC_TOKEN_KEY_ID / OA_SYNC_TOKEN_SIGNING_KEY); the runtime holds the current and the
//   previous key (OA_SYNC_TOKEN_PREVIOUS_*), so a rotation never refuses a live token.
// - ES256: control signs with its access-token keyring (AccessTokens) and the runtime verifies
//   with the published JWKS (GET /.well-known/jwks.json); a previous key stays in the JWKS during
//   rotation. No shared secret at all.
//
// Grants (ADR 0004): a scope is a topic class; a topic is `<class>:<partition>:<id>`. Requested
// scopes must be allowed (else 422 invalid_scope); with none requested the default scopes are
// granted. Each requested topic's class must be a granted scope and its partition the class's;
// a user-partitioned topic must be the requester's own (`…:user:<id>`); worker- and
// run-partitioned topics are granted by scope and their ownership is checked by the runtime at
// subscribe; org topics are never granted (control has no organisations). With no topics
// requested, the token names the requester's topic of every granted user-partitioned scope.
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import { SignJWT } from "jose"
import { AccessTokens } from "./AccessTokens.js"
import type { Principal } from "./Auth.js"
import { InvalidRequest, InvalidScope, SyncTokenUnavailable } from "./Errors.js"
import { uuid7Hex } from "./internal/crypto.js"

export type PartitionKind = "user" | "worker" | "run" | "org"

export const MIN_TTL_SECONDS = 60
export const MAX_TTL_SECONDS = 900
export const DEFAULT_TTL_SECONDS = 300
export const MAX_SCOPE_LENGTH = 120
export const MAX_TOPIC_LENGTH = 160
export const MIN_SECRET_LENGTH = 32
/**
 * Topics one token may name: khala-core's default maxTopicsPerConnection (Session.ts), so a token
 * never names more than a connection may subscribe, and stays small (20,000 topics made a 1 MB JWT).
 */
export const MAX_TOPICS = 100

/** The topic classes of the OpenAgents runtime and how each is partitioned (khala-core Topic.defaultClasses). */
export const DEFAULT_SCOPE_PARTITIONS: Readonly<Record<string, PartitionKind>> = {
  "runtime.run_summaries": "user",
  "runtime.codex_worker_summaries": "user",
  "runtime.notifications": "user",
  "runtime.codex_worker_events": "worker"
}

export type Signing =
  | { readonly alg: "HS256"; readonly kid: string; readonly secret: Redacted.Redacted<string> }
  /** Sign with the current AccessTokens key; the runtime verifies with the JWKS. */
  | { readonly alg: "ES256" }

export interface SyncTokenSettings {
  /** False: every request is 503 sync_token_unavailable. */
  readonly enabled: boolean
  readonly issuer: string
  readonly audience: string
  readonly ttlSeconds: number
  readonly minTtlSeconds: number
  readonly maxTtlSeconds: number
  readonly claimsVersion: string
  readonly subjectPrefix: string
  readonly orgPrefix: string
  readonly defaultScopes: ReadonlyArray<string>
  readonly allowedScopes: ReadonlyArray<string>
  readonly scopePartitions: Readonly<Record<string, PartitionKind>>
  /** Undefined: minting is unavailable (no key configured). */
  readonly signing: Signing | undefined
}

export const defaultSettings = (issuer: string, signing: Signing | undefined): SyncTokenSettings => ({
  enabled: true,
  issuer,
  audience: "openagents-sync",
  ttlSeconds: DEFAULT_TTL_SECONDS,
  minTtlSeconds: MIN_TTL_SECONDS,
  maxTtlSeconds: MAX_TTL_SECONDS,
  claimsVersion: "oa_sync_claims_v1",
  subjectPrefix: "user",
  orgPrefix: "user",
  defaultScopes: ["runtime.run_summaries", "runtime.codex_worker_summaries", "runtime.notifications"],
  allowedScopes: ["runtime.run_summaries", "runtime.codex_worker_summaries", "runtime.notifications", "runtime.codex_worker_events"],
  scopePartitions: DEFAULT_SCOPE_PARTITIONS,
  signing
})

export interface MintRequest {
  readonly scopes: ReadonlyArray<string>
  readonly topics: ReadonlyArray<string>
  readonly ttlSeconds?: number | undefined
  readonly deviceId?: string | undefined
}

export interface Minted {
  readonly token: string
  readonly tokenType: "Bearer"
  readonly expiresIn: number
  readonly issuedAtMs: number
  readonly expiresAtMs: number
  readonly issuer: string
  readonly audience: string
  readonly subject: string
  readonly orgId: string
  readonly claimsVersion: string
  readonly scopes: ReadonlyArray<string>
  readonly kid: string
  readonly grantedTopics: ReadonlyArray<{ readonly topic: string; readonly requiredScope: string }>
  readonly tokenId: string
  readonly sessionId: string
  readonly deviceId: string
}

export interface SyncTokensService {
  readonly settings: SyncTokenSettings
  readonly mint: (principal: Principal, request: MintRequest) => Effect.Effect<Minted, InvalidScope | InvalidRequest | SyncTokenUnavailable>
}

export class SyncTokens extends Context.Tag("@openagents/control-core/SyncTokens")<SyncTokens, SyncTokensService>() {}

const minted = Metric.counter("control_sync_tokens_minted_total", { description: "Sync tokens minted" })
const refused = Metric.counter("control_sync_tokens_refused_total", { description: "Sync token requests refused" })

const OWNER_ID = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/

/** Why a topic cannot be granted, or undefined when it can. Pure: the grant rules in one place. */
export const topicRefusal = (
  topic: string,
  grantedScopes: ReadonlyArray<string>,
  partitions: Readonly<Record<string, PartitionKind>>,
  userId: string
): string | undefined => {
  if (topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) return `topics are 1..${MAX_TOPIC_LENGTH} characters`
  const first = topic.indexOf(":")
  const second = first < 0 ? -1 : topic.indexOf(":", first + 1)
  if (second < 0) return "expected <class>:<partition>:<id>"
  const scope = topic.slice(0, first)
  const partition = topic.slice(first + 1, second)
  const owner = topic.slice(second + 1)
  if (!grantedScopes.includes(scope)) return `scope ${scope} is not granted`
  const kind = partitions[scope]
  if (kind === undefined) return `scope ${scope} has no topics`
  if (partition !== kind) return `${scope} is partitioned by ${kind}`
  if (!OWNER_ID.test(owner)) return "invalid owner id"
  if (kind === "user" && owner !== userId) return "another user's topic"
  if (kind === "org") return "organisation topics are not granted"
  return undefined
}

export const make = (settings: SyncTokenSettings) =>
  Effect.gen(function*() {
    const tokens = yield* Effect.serviceOption(AccessTokens)
    const es256 = settings.signing?.alg === "ES256"
      ? tokens._tag === "Some"
        ? tokens.value
        : yield* Effect.dieMessage("sync tokens: ES256 signing needs the AccessTokens keyring")
      : undefined
    if (settings.signing?.alg === "HS256" && Redacted.value(settings.signing.secret).length < MIN_SECRET_LENGTH) {
      return yield* Effect.dieMessage(`sync tokens: the HS256 signing key must be at least ${MIN_SECRET_LENGTH} characters`)
    }

    const unavailable = (message: string) => Effect.zipRight(Metric.increment(refused), Effect.fail(new SyncTokenUnavailable({ message })))
    const refuse = <E>(error: E) => Effect.zipRight(Metric.increment(refused), Effect.fail(error))

    const mint = (principal: Principal, request: MintRequest): Effect.Effect<Minted, InvalidScope | InvalidRequest | SyncTokenUnavailable> =>
      Effect.gen(function*() {
        if (!settings.enabled) return yield* unavailable("sync token minting is disabled")
        const signing = settings.signing
        if (signing === undefined) return yield* unavailable("sync token signing key is not configured")
        if (settings.issuer === "" || settings.audience === "" || (signing.alg === "HS256" && signing.kid === "")) {
          return yield* unavailable("sync token issuer, audience or key id is not configured")
        }
        if (!(settings.minTtlSeconds <= settings.ttlSeconds && settings.ttlSeconds <= settings.maxTtlSeconds)) {
          return yield* unavailable("sync token TTL is out of bounds")
        }

        if (request.topics.length > MAX_TOPICS) {
          const message = `at most ${MAX_TOPICS} topics per sync token`
          return yield* refuse(new InvalidRequest({ message, errors: { topics: [message] } }))
        }
        const requested = [...new Set(request.scopes.map((s) => s.trim()))]
        const tooLong = requested.filter((s) => s.length === 0 || s.length > MAX_SCOPE_LENGTH)
        if (tooLong.length > 0) {
          return yield* refuse(new InvalidRequest({ message: `each scope must be 1..${MAX_SCOPE_LENGTH} characters`, errors: { scopes: [`each scope must be 1..${MAX_SCOPE_LENGTH} characters`] } }))
        }
        const notAllowed = requested.filter((s) => !settings.allowedScopes.includes(s))
        if (notAllowed.length > 0) {
          return yield* refuse(new InvalidScope({ message: "requested sync scopes are not allowed", details: { scopes: notAllowed } }))
        }
        const scopes = requested.length > 0 ? requested : settings.defaultScopes.length > 0 ? [...settings.defaultScopes] : [...settings.allowedScopes]

        const requestedTopics = [...new Set(request.topics.map((t) => t.trim()))]
        const refusedTopics = requestedTopics
          .map((topic) => ({ topic, reason: topicRefusal(topic, scopes, settings.scopePartitions, principal.userId) }))
          .filter((t): t is { topic: string; reason: string } => t.reason !== undefined)
        if (refusedTopics.length > 0) {
          return yield* refuse(new InvalidScope({ message: "requested sync topics are not allowed", details: { topics: refusedTopics } }))
        }
        const grantedTopics = (requestedTopics.length > 0
          ? requestedTopics
          : scopes.filter((s) => settings.scopePartitions[s] === "user").map((s) => `${s}:user:${principal.userId}`))
          .map((topic) => ({ topic, requiredScope: topic.slice(0, topic.indexOf(":")) }))

        const ttl = request.ttlSeconds ?? settings.ttlSeconds
        if (!Number.isInteger(ttl) || ttl < settings.minTtlSeconds || ttl > settings.maxTtlSeconds) {
          const message = `ttl_seconds must be an integer between ${settings.minTtlSeconds} and ${settings.maxTtlSeconds}`
          return yield* refuse(new InvalidRequest({ message, errors: { ttl_seconds: [message] } }))
        }
        if (request.deviceId !== undefined && request.deviceId !== principal.deviceId) {
          const message = "device_id must be the device of the requesting session"
          return yield* refuse(new InvalidRequest({ message, errors: { device_id: [message] } }))
        }

        const nowMs = yield* Clock.currentTimeMillis
        const iat = Math.floor(nowMs / 1000)
        const exp = iat + ttl
        const tokenId = `sync_${uuid7Hex(nowMs)}`
        const subject = `${settings.subjectPrefix}:${principal.userId}`
        const orgId = `${settings.orgPrefix}:${principal.userId}`
        const claims = {
          oa_user_id: principal.userId,
          oa_org_id: orgId,
          oa_sync_scopes: scopes,
          oa_sync_topics: grantedTopics.map((t) => t.topic),
          oa_claims_version: settings.claimsVersion,
          oa_session_id: principal.sessionId,
          oa_device_id: principal.deviceId
        }
        const jwt = new SignJWT(claims)
          .setIssuer(settings.issuer)
          .setAudience(settings.audience)
          .setSubject(subject)
          .setIssuedAt(iat)
          .setNotBefore(iat)
          .setExpirationTime(exp)
          .setJti(tokenId)
        const { token, kid } = signing.alg === "HS256"
          ? {
            kid: signing.kid,
            token: yield* Effect.promise(() =>
              jwt.setProtectedHeader({ alg: "HS256", typ: "JWT", kid: signing.kid }).sign(new TextEncoder().encode(Redacted.value(signing.secret))))
          }
          : { kid: es256!.currentKid, token: yield* es256!.signJwt(jwt, "JWT") }
        yield* Metric.increment(minted)
        return {
          token,
          tokenType: "Bearer" as const,
          expiresIn: ttl,
          issuedAtMs: iat * 1000,
          expiresAtMs: exp * 1000,
          issuer: settings.issuer,
          audience: settings.audience,
          subject,
          orgId,
          claimsVersion: settings.claimsVersion,
          scopes,
          kid,
          grantedTopics,
          tokenId,
          sessionId: principal.sessionId,
          deviceId: principal.deviceId
        }
      })

    const service: SyncTokensService = { settings, mint }
    return service
  })

export const layer = (settings: SyncTokenSettings): Layer.Layer<SyncTokens> => Layer.effect(SyncTokens, make(settings))
