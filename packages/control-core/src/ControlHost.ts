// The control host, assembled from configuration: everything `hosts/control` runs except the
// process itself (the Node HTTP server, the HTTP client and the database come from the host).
// Configuration is read with Effect Config and validated before anything starts; a wrong or
// missing setting stops the host with a message naming the variable.
//
// Two modes. `production` (the default) refuses what is only safe on a developer's machine: the
// local identity provider, generated signing keys, insecure cookies. `development`
// (OA_CONTROL_MODE=development) allows them and says so in the log.
//
// Routes: the control API (ControlServer), /openapi.json, /docs (Swagger UI), /healthz (database
// check) and /metrics (Prometheus).
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiSwagger from "@effect/platform/HttpApiSwagger"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Health, type InternalSignature, Prometheus } from "@openagents/host-kit"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as AccessTokens from "./AccessTokens.js"
import { ControlApi } from "./Api.js"
import * as Auth from "./Auth.js"
import * as ControlPlane from "./ControlPlane.js"
import * as ControlServer from "./ControlServer.js"
import { HttpSettings, type HttpSettingsService } from "./HttpSettings.js"
import * as LocalIdentity from "./identity/local.js"
import * as WorkOsIdentity from "./identity/workos.js"
import * as LightningOps from "./LightningOps.js"
import { MIN_OPS_SECRET_LENGTH } from "./LightningOpsRpc.js"
import * as Revocations from "./Revocations.js"
import { RuntimeClient, RuntimeUnavailable } from "./RuntimeClient.js"
import * as HttpRuntime from "./runtime/http.js"
import { AuthStorage, type L402Storage } from "./Storage.js"
import * as SqlStorage from "./storage/sql.js"
import * as SyncTokens from "./SyncTokens.js"

export const SERVICE = "control"
export const VERSION = "0.0.0"

export type Identity =
  | { readonly provider: "local"; readonly secret: Redacted.Redacted<string> | undefined }
  | { readonly provider: "workos"; readonly apiKey: Redacted.Redacted<string>; readonly clientId: string; readonly baseUrl: string }

export interface ControlHostConfig {
  readonly mode: "production" | "development"
  readonly host: string
  readonly port: number
  /** The public URL of control: the issuer of access tokens (and, by default, of sync tokens). */
  readonly publicUrl: string
  readonly identity: Identity
  /** Undefined (development only): a key is generated at start. */
  readonly signingKeys: ReadonlyArray<AccessTokens.SigningKey> | undefined
  readonly accessTokenTtlSeconds: number
  readonly auth: Auth.AuthSettings
  readonly http: HttpSettingsService
  readonly sync: SyncTokens.SyncTokenSettings
  readonly runtime: { readonly baseUrl: string; readonly key: InternalSignature.Key } | undefined
  readonly opsSecret: Redacted.Redacted<string> | undefined
}

const invalid = (message: string) => Either.left(ConfigError.InvalidData([], message))

const bounded = (name: string, fallback: number, min: number, max: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be an integer between ${min} and ${max}`, validation: (n) => n >= min && n <= max })
  )

const list = (name: string, fallback: ReadonlyArray<string>) =>
  Config.string(name).pipe(
    Config.map((s) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)),
    Config.withDefault(fallback)
  )

/** OA_TRUST_PROXY: true/false, or the number of trusted proxy hops in front of control. */
export const trustProxyConfig: Config.Config<boolean | number> = Config.string("OA_TRUST_PROXY").pipe(
  Config.withDefault("false"),
  Config.mapOrFail((raw) => {
    const value = raw.trim().toLowerCase()
    if (["true", "yes", "on"].includes(value)) return Either.right(true)
    if (["false", "no", "off", ""].includes(value)) return Either.right(false)
    if (/^[0-9]+$/.test(value) && Number.isSafeInteger(Number(value))) {
      const hops = Number(value)
      return Either.right(hops === 0 ? false : hops)
    }
    return invalid(`OA_TRUST_PROXY must be true, false, or the number of trusted proxy hops in front of control (a positive integer); got ${JSON.stringify(raw)}`)
  })
)

const signingKeysConfig = Config.option(Config.redacted("OA_AUTH_SIGNING_KEYS")).pipe(
  Config.mapOrFail((raw) => {
    if (Option.isNone(raw)) return Either.right(undefined)
    let parsed: unknown
    try {
      parsed = JSON.parse(Redacted.value(raw.value))
    } catch {
      return invalid("OA_AUTH_SIGNING_KEYS must be a JSON array of private EC P-256 JWKs, each with a kid (the first signs)")
    }
    const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys
    if (!Array.isArray(keys) || keys.length === 0) return invalid("OA_AUTH_SIGNING_KEYS must list at least one key")
    const out: Array<AccessTokens.SigningKey> = []
    for (const k of keys as Array<Record<string, unknown>>) {
      if (typeof k?.["kid"] !== "string" || k["kty"] !== "EC" || k["crv"] !== "P-256" || typeof k["d"] !== "string") {
        return invalid("each OA_AUTH_SIGNING_KEYS entry must be a private EC P-256 JWK with a kid")
      }
      out.push({ kid: k["kid"] as string, privateJwk: k as AccessTokens.SigningKey["privateJwk"] })
    }
    if (new Set(out.map((k) => k.kid)).size !== out.length) return invalid("OA_AUTH_SIGNING_KEYS kids must be unique")
    return Either.right(out as ReadonlyArray<AccessTokens.SigningKey>)
  })
)

const syncConfig = (publicUrl: string) =>
  Config.all({
    enabled: Config.boolean("OA_SYNC_TOKEN_ENABLED").pipe(Config.withDefault(true)),
    issuer: Config.string("OA_SYNC_TOKEN_ISSUER").pipe(Config.withDefault(publicUrl)),
    audience: Config.string("OA_SYNC_TOKEN_AUDIENCE").pipe(Config.withDefault("openagents-sync")),
    ttlSeconds: bounded("OA_SYNC_TOKEN_TTL_SECONDS", SyncTokens.DEFAULT_TTL_SECONDS, SyncTokens.MIN_TTL_SECONDS, SyncTokens.MAX_TTL_SECONDS),
    claimsVersion: Config.string("OA_SYNC_TOKEN_CLAIMS_VERSION").pipe(Config.withDefault("oa_sync_claims_v1")),
    subjectPrefix: Config.string("OA_SYNC_TOKEN_SUBJECT_PREFIX").pipe(Config.withDefault("user")),
    orgPrefix: Config.string("OA_SYNC_TOKEN_ORG_PREFIX").pipe(Config.withDefault("user")),
    alg: Config.literal("HS256", "ES256")("OA_SYNC_TOKEN_ALG").pipe(Config.withDefault("HS256" as const)),
    keyId: Config.string("OA_SYNC_TOKEN_KEY_ID").pipe(Config.withDefault("sync-auth-v1")),
    signingKey: Config.option(Config.redacted("OA_SYNC_TOKEN_SIGNING_KEY")),
    previousKeyId: Config.option(Config.string("OA_SYNC_TOKEN_PREVIOUS_KEY_ID")),
    previousSigningKey: Config.option(Config.redacted("OA_SYNC_TOKEN_PREVIOUS_SIGNING_KEY")),
    defaultScopes: list("OA_SYNC_TOKEN_DEFAULT_SCOPES", SyncTokens.defaultSettings("", undefined).defaultScopes),
    allowedScopes: list("OA_SYNC_TOKEN_ALLOWED_SCOPES", SyncTokens.defaultSettings("", undefined).allowedScopes)
  }).pipe(
    Config.mapOrFail((c) => {
      const key = Option.getOrUndefined(c.signingKey)
      if (key !== undefined && Redacted.value(key).length < SyncTokens.MIN_SECRET_LENGTH) {
        return invalid(`OA_SYNC_TOKEN_SIGNING_KEY must be at least ${SyncTokens.MIN_SECRET_LENGTH} characters`)
      }
      if (Option.isSome(c.previousKeyId) !== Option.isSome(c.previousSigningKey)) {
        return invalid("set both OA_SYNC_TOKEN_PREVIOUS_KEY_ID and OA_SYNC_TOKEN_PREVIOUS_SIGNING_KEY, or neither")
      }
      if (Option.isSome(c.previousKeyId) && c.previousKeyId.value === c.keyId) {
        return invalid("OA_SYNC_TOKEN_PREVIOUS_KEY_ID must differ from OA_SYNC_TOKEN_KEY_ID")
      }
      const unknownDefaults = c.defaultScopes.filter((s) => !c.allowedScopes.includes(s))
      if (unknownDefaults.length > 0) return invalid(`OA_SYNC_TOKEN_DEFAULT_SCOPES must be allowed scopes (not allowed: ${unknownDefaults.join(", ")})`)
      const signing: SyncTokens.Signing | undefined = c.alg === "ES256"
        ? { alg: "ES256" }
        : key === undefined
        ? undefined
        : { alg: "HS256", kid: c.keyId, secret: key }
      const base = SyncTokens.defaultSettings(c.issuer, signing)
      return Either.right<SyncTokens.SyncTokenSettings>({
        ...base,
        enabled: c.enabled,
        audience: c.audience,
        ttlSeconds: c.ttlSeconds,
        claimsVersion: c.claimsVersion,
        subjectPrefix: c.subjectPrefix,
        orgPrefix: c.orgPrefix,
        defaultScopes: c.defaultScopes,
        allowedScopes: c.allowedScopes
      })
    })
  )

/**
 * The host's configuration from the environment. See docs/control/CONFIGURATION.md for every
 * variable; upstream names are kept where upstream had one (OA_SYNC_TOKEN_*,
 * OA_LIGHTNING_OPS_SECRET).
 */
export const loadConfig: Effect.Effect<ControlHostConfig, ConfigError.ConfigError> = Effect.gen(function*() {
  const mode = yield* Config.literal("production", "development")("OA_CONTROL_MODE").pipe(Config.withDefault("production" as const))
  const dev = mode === "development"
  const host = yield* Config.string("HOST").pipe(Config.withDefault("127.0.0.1"))
  const port = yield* Config.port("PORT").pipe(Config.withDefault(4200))
  const publicUrl = yield* Config.string("OA_CONTROL_PUBLIC_URL").pipe(
    Config.withDefault(`http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`),
    Config.validate({ message: "OA_CONTROL_PUBLIC_URL must be an http(s) URL", validation: (u) => /^https?:\/\/[^/]+/.test(u) })
  )
  const provider = yield* Config.literal("local", "workos")("OA_IDENTITY_PROVIDER").pipe(Config.withDefault(dev ? "local" as const : "workos" as const))
  let identity: Identity
  if (provider === "workos") {
    identity = {
      provider,
      apiKey: yield* Config.redacted("WORKOS_API_KEY"),
      clientId: yield* Config.string("WORKOS_CLIENT_ID"),
      baseUrl: yield* Config.string("WORKOS_API_BASE_URL").pipe(Config.withDefault(WorkOsIdentity.DEFAULT_BASE_URL))
    }
  } else {
    if (!dev) return yield* Effect.fail(ConfigError.InvalidData(["OA_IDENTITY_PROVIDER"], "the local identity provider prints sign-in codes and is for development only: set OA_CONTROL_MODE=development, or use workos"))
    identity = { provider, secret: Option.getOrUndefined(yield* Config.option(Config.redacted("OA_LOCAL_IDENTITY_SECRET"))) }
  }
  const signingKeys = yield* signingKeysConfig
  if (signingKeys === undefined && !dev) {
    return yield* Effect.fail(ConfigError.MissingData(["OA_AUTH_SIGNING_KEYS"], "OA_AUTH_SIGNING_KEYS is required in production (a JSON array of private ES256 JWKs; generated keys are for development only)"))
  }
  const auth: Auth.AuthSettings = {
    challengeTtlSeconds: yield* bounded("OA_AUTH_CHALLENGE_TTL_SECONDS", 600, 60, 3600),
    maxAttempts: yield* bounded("OA_AUTH_MAX_ATTEMPTS", 5, 1, 20),
    emailRateLimitPerMinute: yield* bounded("OA_AUTH_EMAIL_RATE_LIMIT", 6, 1, 1000),
    verifyRateLimitPerMinute: yield* bounded("OA_AUTH_VERIFY_RATE_LIMIT", 10, 1, 1000),
    refreshTtlSeconds: yield* bounded("OA_AUTH_REFRESH_TOKEN_TTL_SECONDS", 2_592_000, 3600, 31_536_000)
  }
  const http: HttpSettingsService = {
    trustProxy: yield* trustProxyConfig,
    secureCookies: yield* Config.boolean("OA_SECURE_COOKIES").pipe(Config.withDefault(!dev)),
    sameSite: yield* Config.literal("lax", "strict")("OA_COOKIE_SAMESITE").pipe(Config.withDefault("lax" as const)),
    redirect: yield* Config.string("OA_WEB_REDIRECT").pipe(Config.withDefault("/"))
  }
  if (!http.secureCookies && !dev) {
    return yield* Effect.fail(ConfigError.InvalidData(["OA_SECURE_COOKIES"], "session cookies must be Secure in production (OA_SECURE_COOKIES=false is for development)"))
  }
  const runtimeUrl = Option.getOrUndefined(yield* Config.option(Config.string("OA_RUNTIME_BASE_URL")))
  let runtime: ControlHostConfig["runtime"]
  if (runtimeUrl !== undefined) {
    const secret = yield* Config.redacted("OA_RUNTIME_SIGNING_KEY").pipe(
      Config.validate({ message: "OA_RUNTIME_SIGNING_KEY must be at least 32 characters", validation: (s) => Redacted.value(s).length >= 32 })
    )
    runtime = { baseUrl: runtimeUrl, key: { kid: yield* Config.string("OA_RUNTIME_SIGNING_KEY_ID").pipe(Config.withDefault("runtime-internal-v1")), secret } }
  }
  return {
    mode,
    host,
    port,
    publicUrl,
    identity,
    signingKeys,
    accessTokenTtlSeconds: yield* bounded("OA_AUTH_ACCESS_TOKEN_TTL_SECONDS", AccessTokens.DEFAULT_TTL_SECONDS, 60, 86_400),
    auth,
    http,
    sync: yield* syncConfig(publicUrl),
    runtime,
    opsSecret: Option.getOrUndefined(yield* Config.option(Config.redacted("OA_LIGHTNING_OPS_SECRET")))
  }
})

/** Used when OA_RUNTIME_BASE_URL is unset: revocations wait in the outbox, the proxy answers 503. */
const runtimeUnconfigured = Layer.succeed(RuntimeClient, {
  revokeSessions: () => Effect.fail(new RuntimeUnavailable({ detail: "OA_RUNTIME_BASE_URL is not configured" })),
  forward: () => Effect.fail(new RuntimeUnavailable({ detail: "OA_RUNTIME_BASE_URL is not configured" }))
})

const warnings = (c: ControlHostConfig) =>
  Effect.gen(function*() {
    if (c.identity.provider === "local") yield* Effect.logWarning("identity: the LOCAL provider is in use; sign-in codes are printed to this log (development only)")
    if (c.signingKeys === undefined) yield* Effect.logWarning("access tokens: OA_AUTH_SIGNING_KEYS is unset; a key was generated for this process (tokens stop verifying after a restart)")
    if (c.runtime === undefined) yield* Effect.logWarning("runtime: OA_RUNTIME_BASE_URL is unset; session revocations are queued and the runtime proxy answers 503")
    if (c.opsSecret === undefined || Redacted.value(c.opsSecret).length < MIN_OPS_SECRET_LENGTH) {
      yield* Effect.logWarning(`lightning-ops: OA_LIGHTNING_OPS_SECRET is unset or shorter than ${MIN_OPS_SECRET_LENGTH} characters; the internal API refuses every call`)
    }
    if (c.sync.signing === undefined) yield* Effect.logWarning("sync tokens: OA_SYNC_TOKEN_SIGNING_KEY is unset; POST /api/sync/token answers 503 sync_token_unavailable")
  })

/** Periodically delete expired challenges and old rate-limit windows. */
const maintenance = Layer.scopedDiscard(
  Effect.gen(function*() {
    const storage = yield* AuthStorage
    yield* Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (now) => storage.prune(now - 3_600_000)).pipe(
      Effect.catchAll((e) => Effect.logWarning(`maintenance: ${e.message}`)),
      Effect.repeat(Schedule.spaced(Duration.minutes(10))),
      Effect.forkScoped
    )
  })
)

/**
 * Every service of the control plane from a configuration. Storage defaults to SQL over the
 * SqlClient in context (the migrations run first); pass MemoryStorage.layer to embed control
 * without a database.
 */
export const services = <E = never, R = never>(
  c: ControlHostConfig,
  storage: Layer.Layer<AuthStorage | L402Storage, E, R> = SqlStorage.layer as unknown as Layer.Layer<AuthStorage | L402Storage, E, R>
) => {
  const keys = c.signingKeys === undefined
    ? Layer.unwrapEffect(Effect.map(AccessTokens.generateSigningKey(`control-dev-${Date.now().toString(36)}`), (key) =>
      AccessTokens.layer({ issuer: c.publicUrl, keys: [key], ttlSeconds: c.accessTokenTtlSeconds })))
    : AccessTokens.layer({ issuer: c.publicUrl, keys: c.signingKeys, ttlSeconds: c.accessTokenTtlSeconds })
  // The LocalOutbox is always there (empty unless the local provider is in use), so embedding code
  // can read it whatever the provider.
  const identity = c.identity.provider === "workos"
    ? Layer.merge(WorkOsIdentity.layer({ apiKey: c.identity.apiKey, clientId: c.identity.clientId, baseUrl: c.identity.baseUrl }), LocalIdentity.layerOutbox)
    : LocalIdentity.layer({ secret: c.identity.secret }).pipe(Layer.provideMerge(LocalIdentity.layerLoggingOutbox))
  const runtime = c.runtime === undefined ? runtimeUnconfigured : HttpRuntime.layer({ baseUrl: c.runtime.baseUrl, key: c.runtime.key })
  // The runtime must refuse a revoked session's tokens as long as the longest of them can live.
  const tokenLifetimeMs = Math.max(c.accessTokenTtlSeconds, c.sync.maxTtlSeconds) * 1000
  return Auth.layer(c.auth).pipe(
    Layer.provideMerge(Revocations.layer({ tokenLifetimeMs })),
    Layer.provideMerge(SyncTokens.layer(c.sync)),
    Layer.provideMerge(ControlPlane.layer),
    Layer.provideMerge(identity),
    Layer.provideMerge(runtime),
    Layer.provideMerge(keys),
    Layer.provideMerge(LightningOps.layerSecret(c.opsSecret)),
    Layer.provideMerge(Layer.succeed(HttpSettings, c.http)),
    Layer.provideMerge(storage),
    Layer.provide(FetchHttpClient.layer)
  )
}

/**
 * A development configuration (local identity provider, generated access-token keys, plain-http
 * cookies), for embedding and examples; `overrides` replace any part.
 */
export const developmentConfig = (overrides: Partial<ControlHostConfig> = {}): ControlHostConfig => {
  const publicUrl = overrides.publicUrl ?? "http://127.0.0.1:4200"
  return {
    mode: "development",
    host: "127.0.0.1",
    port: 4200,
    publicUrl,
    identity: { provider: "local", secret: undefined },
    signingKeys: undefined,
    accessTokenTtlSeconds: AccessTokens.DEFAULT_TTL_SECONDS,
    auth: Auth.defaultSettings,
    http: { trustProxy: false, secureCookies: false, sameSite: "lax", redirect: "/" },
    sync: SyncTokens.defaultSettings(publicUrl, { alg: "ES256" }),
    runtime: undefined,
    opsSecret: undefined,
    ...overrides
  }
}

/** /healthz (with a database check), /metrics and /docs. */
export const operationalRoutes = Layer.mergeAll(
  HttpLayerRouter.add(
    "GET",
    "/healthz",
    Effect.flatMap(Health.database, (database) => Health.response({ service: SERVICE, version: VERSION, checks: { database } }))
  ),
  HttpLayerRouter.add("GET", "/metrics", Prometheus.response),
  HttpApiSwagger.layerHttpLayerRouter({ api: ControlApi, path: "/docs" })
)

/** The whole host from a configuration; needs an HttpServer and a SqlClient. */
export const layer = (c: ControlHostConfig) => {
  const deps = services(c)
  return Layer.mergeAll(ControlServer.layer({ extraRoutes: operationalRoutes }), maintenance).pipe(
    Layer.provide(deps),
    Layer.tap(() => warnings(c))
  )
}

/** The host from the environment (fails with a ConfigError naming the variable). */
export const layerConfig = Layer.unwrapEffect(Effect.map(loadConfig, layer))
