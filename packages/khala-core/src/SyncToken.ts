// Sync tokens: the short-lived JWTs the control plane mints (POST /api/sync/token) and the
// runtime verifies locally, without calling control (DESIGN.md §4, UPSTREAM_SPEC §1.10, §3.2).
//
// Verification, in order, each failure with its own reason code:
//   three base64url segments (invalid_token_format) → header JSON (invalid_token_encoding,
//   invalid_header) → `alg` allowed (unsupported_alg; `none` never is) → `kid` present
//   (missing_kid) and known (unknown_kid) → signature (invalid_signature, constant time) →
//   claims: integer iat/exp, nbf defaulting to iat, non-empty sub/jti/oa_org_id/oa_sync_scopes/
//   oa_session_id/oa_device_id, exp > iat (invalid_claims) → time with 30 s skew: expired
//   (token_expired), iat/nbf in the future (token_not_yet_valid) → iss, aud (membership) and
//   oa_claims_version equal to the configuration (claim_mismatch, naming the claim).
// Keys: an HS256 keyring (current and previous kid: the rotation window), and/or a JSON Web Key
// Set for asymmetric algorithms.
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { compactVerify, createLocalJWKSet, importJWK, SignJWT, type JSONWebKeySet, type JWK } from "jose"

export type AuthFailureReason =
  | "missing_token"
  | "invalid_token_format"
  | "invalid_token_encoding"
  | "invalid_header"
  | "unsupported_alg"
  | "missing_kid"
  | "unknown_kid"
  | "invalid_signature"
  | "invalid_claims"
  | "token_expired"
  | "token_not_yet_valid"
  | "claim_mismatch"

export class SyncTokenError extends Data.TaggedError("SyncTokenError")<{
  readonly reason: AuthFailureReason
  readonly detail: string
  /** For claim_mismatch: the claim that did not match. */
  readonly claim?: string
}> {
  /** The wire code: `token_expired` for expiry, `unauthorized` for everything else. */
  get code(): "token_expired" | "unauthorized" {
    return this.reason === "token_expired" ? "token_expired" : "unauthorized"
  }
  override get message() {
    return `sync token refused (${this.reason}${this.claim ? `: ${this.claim}` : ""}): ${this.detail}`
  }
}

/** What a verified token says about its holder. */
export interface SyncPrincipal {
  readonly subject: string
  readonly userId: string
  readonly orgId: string
  readonly scopes: ReadonlyArray<string>
  readonly topics: ReadonlyArray<string>
  readonly sessionId: string
  readonly deviceId: string
  readonly tokenId: string
  readonly claimsVersion: string
  readonly issuedAt: number
  /** Seconds since the epoch. */
  readonly expiresAt: number
}

export interface HmacKey {
  readonly kid: string
  readonly secret: Redacted.Redacted<string>
}

export interface VerifierOptions {
  /** HS256 keys by kid: the current one and, during rotation, the previous one. */
  readonly hmacKeys?: ReadonlyArray<HmacKey>
  /** Public keys for asymmetric algorithms (ES256, EdDSA, RS256, …), selected by kid. */
  readonly jwks?: JSONWebKeySet
  readonly issuer: string
  readonly audience: string
  readonly claimsVersion: string
  /** Allowed algorithms (default ["HS256"] plus those of the JWKS keys). */
  readonly algorithms?: ReadonlyArray<string>
  /** Clock skew tolerated on time claims, in seconds (default 30). */
  readonly skewSeconds?: number
}

export const MIN_SECRET_LENGTH = 32
export const DEFAULT_AUDIENCE = "openagents-sync"
export const DEFAULT_CLAIMS_VERSION = "oa_sync_claims_v1"

const fail = (reason: AuthFailureReason, detail: string, claim?: string) =>
  Effect.fail(new SyncTokenError(claim === undefined ? { reason, detail } : { reason, detail, claim }))

const B64URL = /^[A-Za-z0-9_-]*$/
const decodeSegment = (segment: string): unknown => JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64UrlDecode(segment)))
const base64UrlDecode = (s: string) => {
  const pad = s.length % 4 === 0 ? "" : "=".repeat(4 - (s.length % 4))
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + pad)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}
const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const nonEmptyString = (u: unknown): u is string => typeof u === "string" && u.trim().length > 0

/** Scopes arrive as a list, or (upstream) as a comma-separated string. */
const readList = (u: unknown): ReadonlyArray<string> | undefined => {
  if (Array.isArray(u)) return u.every((x) => typeof x === "string") ? u.map((x) => x.trim()).filter((x) => x.length > 0) : undefined
  if (typeof u === "string") return u.split(",").map((x) => x.trim()).filter((x) => x.length > 0)
  return u === undefined ? [] : undefined
}

export interface Verifier {
  readonly verify: (token: string | undefined, nowSeconds?: number) => Effect.Effect<SyncPrincipal, SyncTokenError>
}

export const makeVerifier = (options: VerifierOptions): Effect.Effect<Verifier> =>
  Effect.sync(() => {
    const hmac = new Map<string, Uint8Array>()
    for (const key of options.hmacKeys ?? []) {
      const secret = Redacted.value(key.secret)
      if (secret.length < MIN_SECRET_LENGTH) throw new Error(`sync token key ${key.kid}: HS256 secrets must be at least ${MIN_SECRET_LENGTH} characters`)
      hmac.set(key.kid, new TextEncoder().encode(secret))
    }
    const jwksKids = new Set((options.jwks?.keys ?? []).map((k) => k.kid).filter((k): k is string => typeof k === "string"))
    const jwks = options.jwks ? createLocalJWKSet(options.jwks) : undefined
    const jwksAlgs = (options.jwks?.keys ?? []).map((k) => k.alg).filter((a): a is string => typeof a === "string")
    const algorithms = new Set((options.algorithms ?? ["HS256", ...jwksAlgs]).filter((a) => a.toLowerCase() !== "none"))
    const skew = options.skewSeconds ?? 30

    const verify = (token: string | undefined, nowSeconds?: number): Effect.Effect<SyncPrincipal, SyncTokenError> =>
      Effect.gen(function*() {
        if (token === undefined || token.trim() === "") return yield* fail("missing_token", "no token was presented")
        const segments = token.split(".")
        if (segments.length !== 3 || segments.some((s) => s.length === 0 || !B64URL.test(s))) {
          return yield* fail("invalid_token_format", "expected three non-empty base64url segments")
        }
        let header: unknown
        let claims: unknown
        try {
          header = decodeSegment(segments[0]!)
          claims = decodeSegment(segments[1]!)
        } catch {
          return yield* fail("invalid_token_encoding", "header or payload is not base64url-encoded UTF-8 JSON")
        }
        if (!isRecord(header) || typeof header["alg"] !== "string") return yield* fail("invalid_header", "header must be an object with a string alg")
        const alg = header["alg"]
        if (!algorithms.has(alg)) return yield* fail("unsupported_alg", `alg ${JSON.stringify(alg)} is not accepted`)
        const kid = header["kid"]
        if (!nonEmptyString(kid)) return yield* fail("missing_kid", "header has no kid")
        const hmacKey = alg === "HS256" ? hmac.get(kid) : undefined
        if (hmacKey === undefined && !(alg !== "HS256" && jwksKids.has(kid))) return yield* fail("unknown_kid", `no key with kid ${JSON.stringify(kid)}`)
        const verified = yield* Effect.tryPromise({
          try: () =>
            hmacKey !== undefined
              ? compactVerify(token, hmacKey, { algorithms: [alg] })
              : compactVerify(token, jwks!, { algorithms: [alg] }),
          catch: () => new SyncTokenError({ reason: "invalid_signature", detail: "the signature does not verify" })
        })
        void verified
        if (!isRecord(claims)) return yield* fail("invalid_claims", "payload must be a JSON object")
        const { exp, iat } = claims
        const nbf = claims["nbf"] ?? iat
        if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp) || !Number.isSafeInteger(nbf)) {
          return yield* fail("invalid_claims", "iat, exp and nbf must be integers")
        }
        if ((exp as number) <= (iat as number)) return yield* fail("invalid_claims", "exp must be after iat")
        for (const claim of ["sub", "jti", "oa_org_id", "oa_session_id", "oa_device_id"] as const) {
          if (!nonEmptyString(claims[claim])) return yield* fail("invalid_claims", `${claim} must be a non-empty string`)
        }
        const scopes = readList(claims["oa_sync_scopes"])
        if (scopes === undefined || scopes.length === 0) return yield* fail("invalid_claims", "oa_sync_scopes must be a non-empty list")
        const topics = readList(claims["oa_sync_topics"])
        if (topics === undefined) return yield* fail("invalid_claims", "oa_sync_topics must be a list")
        const now = nowSeconds ?? Math.floor(Date.now() / 1000)
        if ((exp as number) + skew <= now) return yield* fail("token_expired", `expired at ${exp}`)
        if ((iat as number) > now + skew || (nbf as number) > now + skew) return yield* fail("token_not_yet_valid", "iat or nbf is in the future")
        if (claims["iss"] !== options.issuer) return yield* fail("claim_mismatch", "issuer does not match", "iss")
        const aud = claims["aud"]
        const audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : []
        if (!audiences.includes(options.audience)) return yield* fail("claim_mismatch", "audience does not match", "aud")
        if (claims["oa_claims_version"] !== options.claimsVersion) return yield* fail("claim_mismatch", "claims version does not match", "oa_claims_version")
        const sub = claims["sub"] as string
        const userId = claims["oa_user_id"]
        return {
          subject: sub,
          userId: typeof userId === "string" || typeof userId === "number" ? String(userId) : sub.replace(/^user:/, ""),
          orgId: claims["oa_org_id"] as string,
          scopes,
          topics,
          sessionId: claims["oa_session_id"] as string,
          deviceId: claims["oa_device_id"] as string,
          tokenId: claims["jti"] as string,
          claimsVersion: claims["oa_claims_version"] as string,
          issuedAt: iat as number,
          expiresAt: exp as number
        }
      })
    return { verify }
  })

/** The verifier in force (a service, so hosts configure it once). */
export class SyncTokenVerifier extends Context.Tag("@openagents/khala-core/SyncTokenVerifier")<SyncTokenVerifier, Verifier>() {}

export const layer = (options: VerifierOptions): Layer.Layer<SyncTokenVerifier> => Layer.effect(SyncTokenVerifier, makeVerifier(options))

/**
 * From the environment (the upstream names): OA_SYNC_TOKEN_KEY_ID + OA_SYNC_TOKEN_SIGNING_KEY,
 * optionally OA_SYNC_TOKEN_PREVIOUS_KEY_ID + OA_SYNC_TOKEN_PREVIOUS_SIGNING_KEY (rotation),
 * OA_SYNC_TOKEN_ISSUER, OA_SYNC_TOKEN_AUDIENCE (default openagents-sync),
 * OA_SYNC_TOKEN_CLAIMS_VERSION (default oa_sync_claims_v1). `defaults.issuer` is used when
 * OA_SYNC_TOKEN_ISSUER is unset (a runtime passes control's public URL, control's default issuer).
 */
export const configWith = (defaults: { readonly issuer?: string | undefined }): Config.Config<VerifierOptions> => Config.all({
  keyId: Config.string("OA_SYNC_TOKEN_KEY_ID").pipe(Config.withDefault("sync-auth-v1")),
  signingKey: Config.redacted("OA_SYNC_TOKEN_SIGNING_KEY").pipe(
    Config.validate({ message: `OA_SYNC_TOKEN_SIGNING_KEY must be at least ${MIN_SECRET_LENGTH} characters`, validation: (s) => Redacted.value(s).length >= MIN_SECRET_LENGTH })
  ),
  previousKeyId: Config.option(Config.string("OA_SYNC_TOKEN_PREVIOUS_KEY_ID")),
  previousSigningKey: Config.option(Config.redacted("OA_SYNC_TOKEN_PREVIOUS_SIGNING_KEY")),
  issuer: defaults.issuer === undefined ? Config.string("OA_SYNC_TOKEN_ISSUER") : Config.string("OA_SYNC_TOKEN_ISSUER").pipe(Config.withDefault(defaults.issuer)),
  audience: Config.string("OA_SYNC_TOKEN_AUDIENCE").pipe(Config.withDefault(DEFAULT_AUDIENCE)),
  claimsVersion: Config.string("OA_SYNC_TOKEN_CLAIMS_VERSION").pipe(Config.withDefault(DEFAULT_CLAIMS_VERSION))
}).pipe(
  Config.mapOrFail((c) => {
    const keys: Array<HmacKey> = [{ kid: c.keyId, secret: c.signingKey }]
    if (Option.isSome(c.previousKeyId) !== Option.isSome(c.previousSigningKey)) {
      return Either.left(ConfigError.InvalidData([], "set both OA_SYNC_TOKEN_PREVIOUS_KEY_ID and OA_SYNC_TOKEN_PREVIOUS_SIGNING_KEY, or neither"))
    }
    if (Option.isSome(c.previousKeyId) && Option.isSome(c.previousSigningKey)) {
      if (Redacted.value(c.previousSigningKey.value).length < MIN_SECRET_LENGTH) {
        return Either.left(ConfigError.InvalidData([], `OA_SYNC_TOKEN_PREVIOUS_SIGNING_KEY must be at least ${MIN_SECRET_LENGTH} characters`))
      }
      keys.push({ kid: c.previousKeyId.value, secret: c.previousSigningKey.value })
    }
    return Either.right<VerifierOptions>({ hmacKeys: keys, issuer: c.issuer, audience: c.audience, claimsVersion: c.claimsVersion })
  })
)

export const config: Config.Config<VerifierOptions> = configWith({})

export const layerConfig: Layer.Layer<SyncTokenVerifier, ConfigError.ConfigError> = Layer.unwrapEffect(Effect.map(config, layer))

/** Claims of a sync token, as minted (see control/v1 SyncTokenClaims). */
export interface SyncTokenClaims {
  readonly iss: string
  readonly aud: string | ReadonlyArray<string>
  readonly sub: string
  readonly iat: number
  readonly nbf?: number
  readonly exp: number
  readonly jti: string
  readonly oa_user_id?: string
  readonly oa_org_id: string
  readonly oa_sync_scopes: ReadonlyArray<string>
  readonly oa_sync_topics?: ReadonlyArray<string>
  readonly oa_claims_version: string
  readonly oa_session_id: string
  readonly oa_device_id: string
  readonly [extra: string]: unknown
}

/** Sign claims with an HS256 key (what the control plane does; also handy in tests). */
export const signHmac = (claims: SyncTokenClaims, key: HmacKey): Effect.Effect<string> =>
  Effect.promise(() =>
    new SignJWT({ ...claims } as Record<string, unknown>)
      .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: key.kid })
      .sign(new TextEncoder().encode(Redacted.value(key.secret)))
  )

/** Sign claims with an asymmetric private JWK (its `alg` and `kid` go in the header). */
export const signJwk = (claims: SyncTokenClaims, privateJwk: JWK & { alg: string; kid: string }): Effect.Effect<string> =>
  Effect.promise(async () =>
    new SignJWT({ ...claims } as Record<string, unknown>)
      .setProtectedHeader({ alg: privateJwk.alg, typ: "JWT", kid: privateJwk.kid })
      .sign(await importJWK(privateJwk, privateJwk.alg))
  )
