// The control plane's HTTP API, declared with @effect/platform HttpApi (so the OpenAPI document
// at /openapi.json is generated from the same definitions the server and typed clients use).
//
// Wire shapes follow UPSTREAM_SPEC §3 (the Rust-era control service, whose JSON matches the
// proto3 JSON of `openagents.control.v1`): lowerCamelCase answers for sign-in and sessions,
// snake_case for the sync token (§1.10); request bodies accept both spellings where upstream
// clients send both. Every error is the control error envelope (Errors.ts), including request
// validation failures, which are 422 invalid_request (not HttpApi's default 400).
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { CurrentPrincipal, DEVICE_ID, DEVICE_ID_RULE, isDeviceId, isSessionId, MAX_REVOKE_IDS, MAX_SESSION_ID_LENGTH, SESSION_ID_RULE } from "./Auth.js"
import * as Errors from "./Errors.js"

const opt = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })
const optIn = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true, nullable: true })

/** RFC 3339 timestamp, as proto3 JSON writes google.protobuf.Timestamp. */
const Timestamp = Schema.String.annotations({ description: "RFC 3339 timestamp" })

// ---------------------------------------------------------------------------------------------
// Authentication (bearer access token, or the web's session cookie)

export const SESSION_COOKIE = "oa_session"
export const CHALLENGE_COOKIE = "oa_magic_challenge"

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("@openagents/control-core/Authentication", {
  failure: Schema.Union(Errors.UnauthorizedWire, Errors.ReauthRequiredWire, Errors.InternalErrorWire),
  provides: CurrentPrincipal,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(OpenApi.Description, `An access token (native clients), or none with the \`${SESSION_COOKIE}\` session cookie (the web).`)
    )
  }
}) {}

// ---------------------------------------------------------------------------------------------
// Sign-in

export const AuthEmailRequest = Schema.Struct({ email: Schema.String })

export const AuthEmailResponse = Schema.Struct({
  ok: Schema.Literal(true),
  status: Schema.Literal("code-sent"),
  email: Schema.String,
  challengeId: Schema.String
})

export const AuthVerifyRequest = Schema.Struct({
  code: Schema.String,
  challenge_id: optIn(Schema.String),
  challengeId: optIn(Schema.String),
  device_id: optIn(Schema.String),
  deviceId: optIn(Schema.String)
})

export const AuthUser = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  email: Schema.String,
  workosId: opt(Schema.String)
})

export const AuthVerifyResponse = Schema.Struct({
  ok: Schema.Literal(true),
  userId: Schema.String,
  status: Schema.Literal("authenticated"),
  user: AuthUser,
  redirect: Schema.String,
  /** Native clients only: the bearer token and the refresh token. */
  tokenType: opt(Schema.Literal("Bearer")),
  token: opt(Schema.String),
  tokenName: Schema.String,
  refreshToken: opt(Schema.String),
  sessionId: Schema.String,
  newUser: Schema.Boolean
})
export type AuthVerifyResponse = typeof AuthVerifyResponse.Type

export const RefreshRequest = Schema.Struct({
  refresh_token: optIn(Schema.String),
  refreshToken: optIn(Schema.String),
  rotate_refresh_token: optIn(Schema.Boolean),
  rotateRefreshToken: optIn(Schema.Boolean)
})

export const RefreshResponse = Schema.Struct({
  ok: Schema.Literal(true),
  status: Schema.Literal("active"),
  tokenType: opt(Schema.Literal("Bearer")),
  token: opt(Schema.String),
  refreshToken: opt(Schema.String),
  refreshTokenId: Schema.String,
  replacedRefreshTokenId: opt(Schema.String),
  sessionId: Schema.String,
  accessExpiresAt: opt(Timestamp),
  refreshExpiresAt: Timestamp
})
export type RefreshResponse = typeof RefreshResponse.Type

export const LogoutResponse = Schema.Struct({
  ok: Schema.Literal(true),
  status: Schema.Literal("revoked"),
  sessionId: Schema.String,
  revokedAt: Timestamp
})

export const SessionView = Schema.Struct({
  sessionId: Schema.String,
  userId: Schema.String,
  deviceId: Schema.String,
  client: Schema.String,
  tokenName: Schema.String,
  createdAt: Timestamp,
  lastSeenAt: Timestamp,
  expiresAt: Timestamp,
  revokedAt: opt(Timestamp),
  revokedReason: opt(Schema.String),
  /** The session making the request. */
  current: Schema.Boolean
})
export type SessionView = typeof SessionView.Type

export const SessionsResponse = Schema.Struct({ data: Schema.Array(SessionView) })

export const MeResponse = Schema.Struct({ ok: Schema.Literal(true), user: AuthUser, session: SessionView })

// Checked on the whole list, so `errors` names the field (`device_ids`), not an index in it.
const idList = (kind: string, valid: (id: string) => boolean, rule: string, items: object) =>
  Schema.Array(Schema.String).pipe(
    Schema.filter((ids) => (ids.length > MAX_REVOKE_IDS ? `at most ${MAX_REVOKE_IDS} ${kind}` : ids.every(valid) || rule), {
      jsonSchema: { maxItems: MAX_REVOKE_IDS, items: { type: "string", ...items } }
    })
  )
const SessionIds = idList("session ids", isSessionId, SESSION_ID_RULE, { minLength: 1, maxLength: MAX_SESSION_ID_LENGTH })
const DeviceIds = idList("device ids", isDeviceId, DEVICE_ID_RULE, { pattern: DEVICE_ID.source })

export const RevokeSessionsRequest = Schema.Struct({
  session_ids: optIn(SessionIds),
  sessionIds: optIn(SessionIds),
  device_ids: optIn(DeviceIds),
  deviceIds: optIn(DeviceIds),
  reason: optIn(Schema.String),
  include_current: optIn(Schema.Boolean),
  includeCurrent: optIn(Schema.Boolean)
})

export const RevokeSessionsResponse = Schema.Struct({
  ok: Schema.Literal(true),
  revokedSessionIds: Schema.Array(Schema.String),
  revokedDeviceIds: Schema.Array(Schema.String),
  revokedRefreshTokenIds: Schema.Array(Schema.String),
  reason: Schema.String,
  revokedAt: Timestamp
})

export const Jwks = Schema.Struct({ keys: Schema.Array(Schema.Record({ key: Schema.String, value: Schema.Unknown })) })

const SignInHeaders = Schema.Struct({
  "x-client": Schema.optional(Schema.String),
  "x-device-id": Schema.optional(Schema.String)
})

export class AuthGroup extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("email", "/api/auth/email")
      .setPayload(AuthEmailRequest)
      .addSuccess(AuthEmailResponse)
      .addError(Errors.InvalidRequestWire)
      .addError(Errors.RateLimitedWire)
      .addError(Errors.ServiceUnavailableWire)
      .annotate(OpenApi.Description, `Send a sign-in code. The answer is the same whether or not the email has an account; the challenge id is also set as the \`${CHALLENGE_COOKIE}\` cookie. 6 per minute per IP and per email.`)
  )
  .add(
    HttpApiEndpoint.post("verify", "/api/auth/verify")
      .setPayload(AuthVerifyRequest)
      .setHeaders(SignInHeaders)
      .addSuccess(AuthVerifyResponse)
      .addError(Errors.InvalidRequestWire)
      .addError(Errors.RateLimitedWire)
      .addError(Errors.ServiceUnavailableWire)
      .annotate(OpenApi.Description, `Check the code of a challenge (from the body or the \`${CHALLENGE_COOKIE}\` cookie). A recognised X-Client gets a bearer token named mobile:<client> or desktop:<client>; anyone else gets the HttpOnly \`${SESSION_COOKIE}\` cookie. 5 code checks per challenge; 10 requests per minute per IP and per email.`)
  )
  .add(
    HttpApiEndpoint.post("refresh", "/api/auth/refresh")
      .setPayload(RefreshRequest)
      .addSuccess(RefreshResponse)
      .addError(Errors.UnauthorizedWire)
      .addError(Errors.ReauthRequiredWire)
      .annotate(OpenApi.Description, `Exchange a refresh token (body, or the \`${SESSION_COOKIE}\` cookie) for a new access token and, by default, a new refresh token. Reusing a rotated refresh token revokes the session.`)
  )
  .add(HttpApiEndpoint.get("jwks", "/.well-known/jwks.json").addSuccess(Jwks).annotate(OpenApi.Description, "The public keys that verify access tokens (ES256)."))
  .addError(Errors.InternalErrorWire)
{}

export class SessionsGroup extends HttpApiGroup.make("sessions")
  .add(HttpApiEndpoint.post("logout", "/api/auth/logout").addSuccess(LogoutResponse))
  .add(HttpApiEndpoint.get("me", "/api/auth/me").addSuccess(MeResponse))
  .add(HttpApiEndpoint.get("list", "/api/auth/sessions").addSuccess(SessionsResponse))
  .add(
    HttpApiEndpoint.post("revoke", "/api/auth/sessions/revoke")
      .setPayload(RevokeSessionsRequest)
      .addSuccess(RevokeSessionsResponse)
      .addError(Errors.InvalidRequestWire)
      .annotate(OpenApi.Description, "Revoke the caller's sessions by id and/or device; the runtime cuts their live sync sockets. The calling session is kept unless include_current is true.")
  )
  .middleware(Authentication)
  .addError(Errors.InternalErrorWire)
{}

// ---------------------------------------------------------------------------------------------
// Sync tokens (§1.10 / §3.2: snake_case on the wire)

export const SyncTokenRequest = Schema.Struct({
  scopes: optIn(Schema.Array(Schema.String)),
  topics: optIn(Schema.Array(Schema.String)),
  ttl_seconds: optIn(Schema.Number),
  ttlSeconds: optIn(Schema.Number),
  device_id: optIn(Schema.String),
  deviceId: optIn(Schema.String)
})

export const SyncTopicGrant = Schema.Struct({ topic: Schema.String, required_scope: Schema.String })

export const SyncTokenData = Schema.Struct({
  token: Schema.String,
  token_type: Schema.Literal("Bearer"),
  expires_in: Schema.Number,
  issued_at: Timestamp,
  expires_at: Timestamp,
  issuer: Schema.String,
  audience: Schema.String,
  subject: Schema.String,
  org_id: Schema.String,
  claims_version: Schema.String,
  scopes: Schema.Array(Schema.String),
  kid: Schema.String,
  granted_topics: Schema.Array(SyncTopicGrant),
  token_id: Schema.String,
  session_id: Schema.String,
  device_id: Schema.String
})
export const SyncTokenResponse = Schema.Struct({ data: SyncTokenData })

const syncTokenEndpoint = <const N extends string, const P extends `/${string}`>(name: N, path: P) =>
  HttpApiEndpoint.post(name, path)
    .setPayload(SyncTokenRequest)
    .addSuccess(SyncTokenResponse)
    .addError(Errors.InvalidScopeWire)
    .addError(Errors.InvalidRequestWire)
    .addError(Errors.SyncTokenUnavailableWire)
    .annotate(OpenApi.Description, "Mint a sync token for the Khala WebSocket: scopes are topic classes, topics are `<class>:<partition>:<id>`; TTL 60..900 s (default 300). The runtime verifies it locally.")

export class SyncGroup extends HttpApiGroup.make("sync")
  .add(syncTokenEndpoint("token", "/api/sync/token"))
  .add(syncTokenEndpoint("tokenV1", "/api/v1/sync/token"))
  .middleware(Authentication)
  .addError(Errors.InternalErrorWire)
{}

// ---------------------------------------------------------------------------------------------
// Paywalls (the owner's side of the L402 control plane)

const Metadata = Schema.Record({ key: Schema.String, value: Schema.Unknown })

export const PaywallView = Schema.Struct({
  id: Schema.String,
  /** "owner_<user id>", as lightning-ops sees it. */
  ownerId: Schema.String,
  name: Schema.String,
  hostRegexp: Schema.String,
  pathRegexp: Schema.String,
  priceMsats: Schema.Number,
  upstream: Schema.String,
  enabled: Schema.Boolean,
  /** Derived: archived if archived, else active if enabled, else paused. */
  status: Schema.Literal("active", "paused", "archived"),
  metadata: Metadata,
  createdAt: Timestamp,
  updatedAt: Timestamp,
  archivedAt: opt(Timestamp),
  lastReconcileStatus: opt(Schema.String),
  lastReconcileError: opt(Schema.String),
  lastReconciledAt: opt(Timestamp),
  /** Why the last reconcile left this paywall out (compile diagnostics naming it); absent when none. */
  lastReconcileDiagnostics: opt(Schema.Array(Schema.Struct({
    code: Schema.String,
    severity: Schema.String,
    message: Schema.String,
    routeId: opt(Schema.String)
  })))
})
export type PaywallView = typeof PaywallView.Type

export const PaywallResponse = Schema.Struct({ data: PaywallView })
export const PaywallListResponse = Schema.Struct({ data: Schema.Array(PaywallView) })

export const CreatePaywallRequest = Schema.Struct({
  name: Schema.String,
  hostRegexp: Schema.String,
  pathRegexp: Schema.String,
  priceMsats: Schema.Number,
  upstream: Schema.String,
  enabled: optIn(Schema.Boolean),
  /** Policy and route options: maxPerRequestMsats, allowedHosts, blockedHosts, quotaPerMinute, quotaPerDay, timeoutMs, priority, description. */
  metadata: optIn(Metadata)
})

export const UpdatePaywallRequest = Schema.Struct({
  name: optIn(Schema.String),
  hostRegexp: optIn(Schema.String),
  pathRegexp: optIn(Schema.String),
  priceMsats: optIn(Schema.Number),
  upstream: optIn(Schema.String),
  enabled: optIn(Schema.Boolean),
  metadata: optIn(Metadata)
})

const PaywallPath = Schema.Struct({ paywallId: Schema.String })

export class PaywallsGroup extends HttpApiGroup.make("paywalls")
  .add(
    HttpApiEndpoint.post("create", "/api/l402/paywalls")
      .setPayload(CreatePaywallRequest)
      .addSuccess(PaywallResponse, { status: 201 })
      .addError(Errors.InvalidRequestWire)
  )
  .add(
    HttpApiEndpoint.get("list", "/api/l402/paywalls")
      .setUrlParams(Schema.Struct({ include_archived: Schema.optional(Schema.Literal("true", "false", "1", "0")) }))
      .addSuccess(PaywallListResponse)
  )
  .add(HttpApiEndpoint.get("get", "/api/l402/paywalls/:paywallId").setPath(PaywallPath).addSuccess(PaywallResponse))
  .add(
    HttpApiEndpoint.patch("update", "/api/l402/paywalls/:paywallId")
      .setPath(PaywallPath)
      .setPayload(UpdatePaywallRequest)
      .addSuccess(PaywallResponse)
      .addError(Errors.InvalidRequestWire)
      .addError(Errors.ConflictWire)
  )
  .add(HttpApiEndpoint.post("pause", "/api/l402/paywalls/:paywallId/pause").setPath(PaywallPath).addSuccess(PaywallResponse).addError(Errors.ConflictWire))
  .add(HttpApiEndpoint.post("resume", "/api/l402/paywalls/:paywallId/resume").setPath(PaywallPath).addSuccess(PaywallResponse).addError(Errors.ConflictWire))
  .add(
    HttpApiEndpoint.del("archive", "/api/l402/paywalls/:paywallId")
      .setPath(PaywallPath)
      .addSuccess(PaywallResponse)
      .annotate(OpenApi.Description, "Archive (soft-delete) the paywall; lightning-ops stops compiling it.")
  )
  .middleware(Authentication)
  .addError(Errors.NotFoundWire)
  .addError(Errors.ForbiddenWire)
  .addError(Errors.InternalErrorWire)
{}

// ---------------------------------------------------------------------------------------------
// Validation failures as 422 invalid_request envelopes

const fieldErrors = (issues: ReadonlyArray<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }>) => {
  const out: Record<string, Array<string>> = {}
  for (const issue of issues) {
    const field = issue.path.length === 0 ? "body" : issue.path.map(String).join(".")
    ;(out[field] ??= []).push(issue.message)
  }
  return out
}

/** HttpApiDecodeError on the wire: 422 with the control envelope (`errors` per field). */
export const DecodeErrorWire = Schema.transform(Errors.envelopeSchema("invalid_request"), Schema.instanceOf(HttpApiDecodeError), {
  strict: false,
  decode: (e) => new HttpApiDecodeError({ issues: [], message: e.error.message }),
  encode: (error) =>
    Errors.envelope("invalid_request", {
      message: "The request is invalid.",
      details: { issues: error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
      errors: fieldErrors(error.issues)
    }) as any
}).annotations(HttpApiSchema.annotations({ status: 422, description: "The request does not match the schema (invalid_request)" }))

/** Replace an API's default decode-error schema (400, `_tag` body) with the 422 envelope. */
export const withEnvelopeDecodeErrors = <A extends HttpApi.HttpApi.Any>(api: A): A => {
  ;(api as unknown as { errorSchema: unknown }).errorSchema = DecodeErrorWire
  return api
}

export const ControlApi = withEnvelopeDecodeErrors(
  HttpApi.make("control")
    .add(AuthGroup)
    .add(SessionsGroup)
    .add(SyncGroup)
    .add(PaywallsGroup)
    .annotate(OpenApi.Title, "OpenAgents control API")
    .annotate(OpenApi.Description, "Sign-in, sessions, sync tokens and the L402 paywalls of the OpenAgents control plane.")
)
export type ControlApi = typeof ControlApi
