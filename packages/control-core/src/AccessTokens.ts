// Access tokens: the bearer tokens of native clients. They are ES256 JWTs (RFC 9068 profile,
// `typ: at+jwt`) signed by control with a keyring of a current key and, during rotation,
// previous keys; the public half of every key is published as a JSON Web Key Set at
// `GET /.well-known/jwks.json`. So any service — the runtime first — verifies a bearer token
// locally, with the JWKS and no call to control and no access to control's tables.
//
//   header  {"alg":"ES256","typ":"at+jwt","kid"}
//   claims  {"iss","aud","sub":"user:<id>","iat","nbf","exp","jti":"at_<hex>",
//            "sid":<session id>,"did":<device id>,"client_id":<X-Client>,"token_name","oa_user_id"}
//
// A token is valid until `exp` (default 3600 s). Revoking its session is pushed to the runtime
// (POST /internal/v1/sync/sessions/revoke), which refuses tokens whose `sid` it was told about;
// control itself checks the session row on every request.
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, createLocalJWKSet, type JSONWebKeySet, type JWK } from "jose"
import { randomId } from "./internal/crypto.js"

export const ALGORITHM = "ES256"
export const TOKEN_TYPE = "at+jwt"
export const DEFAULT_AUDIENCE = "openagents-api"
export const DEFAULT_TTL_SECONDS = 3600

/** A private signing key as a JWK (EC P-256), with its kid. */
export interface SigningKey {
  readonly kid: string
  readonly privateJwk: JWK
}

export interface AccessTokenOptions {
  readonly issuer: string
  readonly audience?: string | undefined
  /** The first key signs; the others (previous keys) are published for verification only. */
  readonly keys: ReadonlyArray<SigningKey>
  readonly ttlSeconds?: number | undefined
}

export interface AccessClaims {
  readonly userId: string
  readonly sessionId: string
  readonly deviceId: string
  readonly client: string
  readonly tokenName: string
  readonly tokenId: string
  readonly issuedAt: number
  readonly expiresAt: number
}

export class AccessTokenInvalid extends Data.TaggedError("AccessTokenInvalid")<{ readonly detail: string }> {}

export interface AccessTokensService {
  readonly issuer: string
  readonly audience: string
  readonly ttlSeconds: number
  readonly currentKid: string
  /** Public keys of every key in the keyring (what /.well-known/jwks.json serves). */
  readonly jwks: JSONWebKeySet
  readonly sign: (claims: {
    readonly userId: string
    readonly sessionId: string
    readonly deviceId: string
    readonly client: string
    readonly tokenName: string
    readonly nowMs: number
  }) => Effect.Effect<{ readonly token: string; readonly tokenId: string; readonly expiresAtMs: number }>
  readonly verify: (token: string, nowMs: number) => Effect.Effect<AccessClaims, AccessTokenInvalid>
  /** Sign other JWTs (ES256 sync tokens) with the current key: sets alg, kid and `typ`. */
  readonly signJwt: (jwt: SignJWT, typ: string) => Effect.Effect<string>
}

export class AccessTokens extends Context.Tag("@openagents/control-core/AccessTokens")<AccessTokens, AccessTokensService>() {}

const publicJwk = (jwk: JWK, kid: string): JWK => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...pub } = jwk as JWK & Record<string, unknown>
  return { ...pub, kid, alg: ALGORITHM, use: "sig" } as JWK
}

export const make = (options: AccessTokenOptions): Effect.Effect<AccessTokensService> =>
  Effect.gen(function*() {
    if (options.keys.length === 0) return yield* Effect.dieMessage("access tokens: at least one signing key is required")
    const kids = new Set<string>()
    for (const key of options.keys) {
      if (key.kid.trim() === "" || kids.has(key.kid)) return yield* Effect.dieMessage(`access tokens: kids must be unique and non-empty (${key.kid})`)
      if (key.privateJwk.kty !== "EC" || key.privateJwk.crv !== "P-256" || typeof key.privateJwk.d !== "string") {
        return yield* Effect.dieMessage(`access tokens: key ${key.kid} must be a private EC P-256 JWK (ES256)`)
      }
      kids.add(key.kid)
    }
    const current = options.keys[0]!
    const signingKey = yield* Effect.promise(() => importJWK({ ...current.privateJwk, alg: ALGORITHM }, ALGORITHM))
    const jwks: JSONWebKeySet = { keys: options.keys.map((k) => publicJwk(k.privateJwk, k.kid)) }
    const keySet = createLocalJWKSet(jwks)
    const audience = options.audience ?? DEFAULT_AUDIENCE
    const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS

    const service: AccessTokensService = {
      signJwt: (jwt, typ) => Effect.promise(() => jwt.setProtectedHeader({ alg: ALGORITHM, typ, kid: current.kid }).sign(signingKey)),
      issuer: options.issuer,
      audience,
      ttlSeconds,
      currentKid: current.kid,
      jwks,
      sign: (c) =>
        Effect.promise(async () => {
          const iat = Math.floor(c.nowMs / 1000)
          const tokenId = randomId("at")
          const token = await new SignJWT({
            sid: c.sessionId,
            did: c.deviceId,
            client_id: c.client,
            token_name: c.tokenName,
            oa_user_id: c.userId
          })
            .setProtectedHeader({ alg: ALGORITHM, typ: TOKEN_TYPE, kid: current.kid })
            .setIssuer(options.issuer)
            .setAudience(audience)
            .setSubject(`user:${c.userId}`)
            .setIssuedAt(iat)
            .setNotBefore(iat)
            .setExpirationTime(iat + ttlSeconds)
            .setJti(tokenId)
            .sign(signingKey)
          return { token, tokenId, expiresAtMs: (iat + ttlSeconds) * 1000 }
        }),
      verify: (token, nowMs) =>
        Effect.tryPromise({
          try: () =>
            jwtVerify(token, keySet, {
              issuer: options.issuer,
              audience,
              algorithms: [ALGORITHM],
              typ: TOKEN_TYPE,
              currentDate: new Date(nowMs),
              clockTolerance: 30,
              requiredClaims: ["sub", "exp", "iat", "jti", "sid"]
            }),
          catch: (e) => new AccessTokenInvalid({ detail: e instanceof Error ? e.message : String(e) })
        }).pipe(
          Effect.flatMap(({ payload }) => {
            const str = (k: string) => (typeof payload[k] === "string" ? (payload[k] as string) : undefined)
            const userId = str("oa_user_id")
            const sessionId = str("sid")
            if (userId === undefined || sessionId === undefined || payload.sub !== `user:${userId}`) {
              return Effect.fail(new AccessTokenInvalid({ detail: "sub, oa_user_id and sid must agree" }))
            }
            return Effect.succeed({
              userId,
              sessionId,
              deviceId: str("did") ?? "",
              client: str("client_id") ?? "",
              tokenName: str("token_name") ?? "",
              tokenId: payload.jti!,
              issuedAt: payload.iat!,
              expiresAt: payload.exp!
            })
          })
        )
    }
    return service
  })

export const layer = (options: AccessTokenOptions): Layer.Layer<AccessTokens> => Layer.effect(AccessTokens, make(options))

/** A fresh ES256 private key as a JWK (for configuration: OA_AUTH_SIGNING_KEYS, or tests). */
export const generateSigningKey = (kid: string): Effect.Effect<SigningKey> =>
  Effect.promise(async () => {
    const { privateKey } = await generateKeyPair(ALGORITHM, { extractable: true })
    return { kid, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: ALGORITHM } }
  })
