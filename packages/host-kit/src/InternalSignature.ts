// The signed internal header between planes (UPSTREAM_SPEC §2.5): control signs its calls to the
// runtime's `/internal/v1/*` routes (the runtime proxy, session revocation) and the runtime
// verifies them. It lives here, below both planes, because neither may import the other.
//
//   X-OA-RUNTIME-SIGNATURE: v1.<b64url(payload_json)>.<b64url(HMAC-SHA256(secret, payload_segment))>
//   X-OA-RUNTIME-KEY-ID:    <kid>            (selects the key: current or previous, for rotation)
//   X-OA-RUNTIME-BODY-SHA256: <hex>          (also inside the signed payload)
//
// Payload claims: iat, exp (seconds; exp - iat at most maxTtlSeconds, default TTL 60 s), nonce
// (single-use: a second use within its lifetime is `token_replayed`), method and path (the
// request line the signature was made for), body_sha256, and the optional bindings run_id,
// thread_id, user_id, guest_scope.
//
// Upstream gaps fixed here: the body hash, method and path are inside the signed payload (upstream
// sent the body hash beside it, so a signature could carry another body), and a binding is
// checked in both directions — a signed user_id needs the X-OA-USER-ID header to match, and an
// X-OA-USER-ID header (or thread_id query, guest scope header, route run id) without the
// matching signed claim is refused, so no unsigned identity rides along a valid signature.
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"

export const SIGNATURE_HEADER = "x-oa-runtime-signature"
export const KEY_ID_HEADER = "x-oa-runtime-key-id"
export const BODY_SHA256_HEADER = "x-oa-runtime-body-sha256"
export const USER_ID_HEADER = "x-oa-user-id"
export const GUEST_SCOPE_HEADER = "x-oa-guest-scope"
export const REQUEST_ID_HEADER = "x-request-id"

export const VERSION = "v1"
export const DEFAULT_TTL_SECONDS = 60
export const DEFAULT_MAX_TTL_SECONDS = 300
export const DEFAULT_SKEW_SECONDS = 5
export const MIN_SECRET_LENGTH = 32

export interface Key {
  readonly kid: string
  readonly secret: Redacted.Redacted<string>
}

/** The signed claims (JSON names as on the wire). */
export interface Claims {
  readonly iat: number
  readonly exp: number
  readonly nonce: string
  readonly method: string
  readonly path: string
  readonly body_sha256: string
  readonly run_id?: string
  readonly thread_id?: string
  readonly user_id?: string
  readonly guest_scope?: string
}

export type FailureReason =
  | "missing_signature"
  | "invalid_signature_format"
  | "unknown_key"
  | "invalid_signature"
  | "invalid_claims"
  | "signature_expired"
  | "signature_not_yet_valid"
  | "token_replayed"
  | "request_mismatch"
  | "body_mismatch"
  | "binding_mismatch"

export class InternalSignatureError extends Data.TaggedError("InternalSignatureError")<{
  readonly reason: FailureReason
  readonly detail: string
}> {
  /** The wire code of the runtime error envelope. */
  get code(): "unauthorized" | "forbidden" {
    return this.reason === "binding_mismatch" ? "forbidden" : "unauthorized"
  }
  get status(): 401 | 403 {
    return this.reason === "binding_mismatch" ? 403 : 401
  }
  override get message() {
    return `internal signature refused (${this.reason}): ${this.detail}`
  }
  /** `{error: {code, message, details: {reason}}}`. */
  get envelope() {
    return { error: { code: this.code, message: this.message, details: { reason: this.reason } } }
  }
}

const fail = (reason: FailureReason, detail: string) => Effect.fail(new InternalSignatureError({ reason, detail }))

const b64url = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("base64url")
const B64URL = /^[A-Za-z0-9_-]+$/
const sha256Hex = (body: Uint8Array | string) => createHash("sha256").update(body).digest("hex")
const hmac = (secret: string, data: string) => createHmac("sha256", secret).update(data).digest()

const checkKey = (key: Key) => {
  if (key.kid.trim() === "") throw new Error("internal signature key: kid must not be empty")
  if (Redacted.value(key.secret).length < MIN_SECRET_LENGTH) {
    throw new Error(`internal signature key ${key.kid}: the secret must be at least ${MIN_SECRET_LENGTH} characters`)
  }
}

// ---------------------------------------------------------------------------------------------
// Signing

export interface Bindings {
  readonly runId?: string | undefined
  readonly threadId?: string | undefined
  readonly userId?: string | undefined
  readonly guestScope?: string | undefined
}

export interface SignOptions extends Bindings {
  readonly method: string
  /** The request path, without the query string. */
  readonly path: string
  readonly body?: Uint8Array | string | undefined
  readonly ttlSeconds?: number | undefined
}

/**
 * The headers to send with a request: the signature, the key id, the body hash, and the
 * X-OA-USER-ID / X-OA-GUEST-SCOPE headers of the user_id / guest_scope bindings.
 */
export const sign = (key: Key, options: SignOptions): Effect.Effect<Record<string, string>> =>
  Effect.gen(function*() {
    checkKey(key)
    const ttl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS
    if (!Number.isSafeInteger(ttl) || ttl <= 0 || ttl > DEFAULT_MAX_TTL_SECONDS) {
      return yield* Effect.dieMessage(`internal signature ttl must be 1..${DEFAULT_MAX_TTL_SECONDS} seconds`)
    }
    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const bodySha256 = sha256Hex(options.body ?? "")
    const claims: Claims = {
      iat: now,
      exp: now + ttl,
      nonce: randomBytes(16).toString("hex"),
      method: options.method.toUpperCase(),
      path: options.path,
      body_sha256: bodySha256,
      ...(options.runId !== undefined ? { run_id: options.runId } : {}),
      ...(options.threadId !== undefined ? { thread_id: options.threadId } : {}),
      ...(options.userId !== undefined ? { user_id: options.userId } : {}),
      ...(options.guestScope !== undefined ? { guest_scope: options.guestScope } : {})
    }
    const payload = b64url(JSON.stringify(claims))
    const signature = b64url(hmac(Redacted.value(key.secret), payload))
    const headers: Record<string, string> = {
      [SIGNATURE_HEADER]: `${VERSION}.${payload}.${signature}`,
      [KEY_ID_HEADER]: key.kid,
      [BODY_SHA256_HEADER]: bodySha256
    }
    if (options.userId !== undefined) headers[USER_ID_HEADER] = options.userId
    if (options.guestScope !== undefined) headers[GUEST_SCOPE_HEADER] = options.guestScope
    return headers
  })

/**
 * Sign an outgoing `HttpClientRequest` (its body must be empty or bytes, as `bodyJson`,
 * `bodyUnsafeJson`, `bodyText` and `bodyUint8Array` produce). `threadId` must also be in the
 * request's `thread_id` query parameter when given.
 */
export const signRequest = (key: Key, bindings: Bindings = {}) => (request: HttpClientRequest.HttpClientRequest): Effect.Effect<HttpClientRequest.HttpClientRequest> =>
  Effect.gen(function*() {
    const body = request.body
    const bytes = body._tag === "Empty" ? new Uint8Array() : body._tag === "Uint8Array" ? body.body : undefined
    if (bytes === undefined) return yield* Effect.dieMessage(`signRequest: a ${body._tag} body cannot be signed; use a byte body`)
    const url = new URL(request.url, "http://placeholder.invalid")
    const headers = yield* sign(key, { ...bindings, method: request.method, path: url.pathname, body: bytes })
    return HttpClientRequest.setHeaders(request, headers)
  })

// ---------------------------------------------------------------------------------------------
// Replay cache

/** Remembers nonces until their signature expires. A shared store makes replay protection span nodes. */
export interface ReplayCache {
  /** Record the nonce; false when it was already recorded (a replay). */
  readonly remember: (nonce: string, expiresAtSeconds: number) => Effect.Effect<boolean>
}

/** An in-process cache, bounded: expired nonces are pruned, and past `maxEntries` the call fails closed. */
export const memoryReplayCache = (options: { readonly maxEntries?: number } = {}): ReplayCache => {
  const seen = new Map<string, number>()
  const maxEntries = options.maxEntries ?? 100_000
  return {
    remember: (nonce, expiresAtSeconds) =>
      Effect.map(Clock.currentTimeMillis, (nowMs) => {
        const now = Math.floor(nowMs / 1000)
        if (seen.size >= maxEntries) {
          for (const [n, exp] of seen) if (exp < now) seen.delete(n)
        }
        const existing = seen.get(nonce)
        if (existing !== undefined && existing >= now) return false
        // Full of live nonces: refusing is safer than forgetting one (a forgotten nonce could be replayed).
        if (seen.size >= maxEntries) return false
        seen.set(nonce, expiresAtSeconds)
        return true
      })
  }
}

// ---------------------------------------------------------------------------------------------
// Verification

export interface VerifierOptions {
  /** The current key and, during rotation, the previous one. */
  readonly keys: ReadonlyArray<Key>
  readonly replayCache?: ReplayCache
  readonly skewSeconds?: number
  readonly maxTtlSeconds?: number
}

export interface IncomingRequest {
  readonly method: string
  /** Path and optional query string, as in the request line. */
  readonly url: string
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: Uint8Array | string
  /** The run id of the route (`/internal/v1/runs/:run_id/...`), when the route has one. */
  readonly runId?: string | undefined
}

export interface Verifier {
  readonly verify: (request: IncomingRequest) => Effect.Effect<Claims, InternalSignatureError>
  /** Verify an `HttpServerRequest` (reads its body as text, which the handler can read again). */
  readonly verifyServerRequest: (
    request: HttpServerRequest.HttpServerRequest,
    options?: { readonly runId?: string | undefined }
  ) => Effect.Effect<Claims, InternalSignatureError>
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const optionalString = (u: unknown) => u === undefined || (typeof u === "string" && u.length > 0 && u.length <= 512)

export const makeVerifier = (options: VerifierOptions): Verifier => {
  if (options.keys.length === 0) throw new Error("internal signature verifier: at least one key is required")
  options.keys.forEach(checkKey)
  const keys = new Map(options.keys.map((k) => [k.kid, Redacted.value(k.secret)] as const))
  const replayCache = options.replayCache ?? memoryReplayCache()
  const skew = options.skewSeconds ?? DEFAULT_SKEW_SECONDS
  const maxTtl = options.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS

  const verify = (request: IncomingRequest): Effect.Effect<Claims, InternalSignatureError> =>
    Effect.gen(function*() {
      const header = request.headers[SIGNATURE_HEADER]
      if (header === undefined || header.trim() === "") return yield* fail("missing_signature", `no ${SIGNATURE_HEADER} header`)
      const parts = header.trim().split(".")
      if (parts.length !== 3 || parts[0] !== VERSION || !B64URL.test(parts[1]!) || !B64URL.test(parts[2]!)) {
        return yield* fail("invalid_signature_format", `expected ${VERSION}.<payload>.<signature>`)
      }
      const [, payload, signature] = parts as [string, string, string]
      const kid = request.headers[KEY_ID_HEADER]
      const candidates = kid !== undefined ? (keys.has(kid) ? [keys.get(kid)!] : []) : [...keys.values()]
      if (candidates.length === 0) return yield* fail("unknown_key", `no key with id ${JSON.stringify(kid)}`)
      const presented = Buffer.from(signature, "base64url")
      const valid = candidates.some((secret) => {
        const expected = hmac(secret, payload)
        return expected.length === presented.length && timingSafeEqual(expected, presented)
      })
      if (!valid) return yield* fail("invalid_signature", "the signature does not verify")

      let claims: unknown
      try {
        claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"))
      } catch {
        return yield* fail("invalid_claims", "the payload is not JSON")
      }
      if (
        !isRecord(claims) || !Number.isSafeInteger(claims["iat"]) || !Number.isSafeInteger(claims["exp"]) ||
        typeof claims["nonce"] !== "string" || claims["nonce"].length < 8 || claims["nonce"].length > 128 ||
        typeof claims["method"] !== "string" || typeof claims["path"] !== "string" ||
        typeof claims["body_sha256"] !== "string" ||
        !["run_id", "thread_id", "user_id", "guest_scope"].every((k) => optionalString((claims as Record<string, unknown>)[k]))
      ) {
        return yield* fail("invalid_claims", "iat, exp, nonce, method, path and body_sha256 are required; bindings must be non-empty strings")
      }
      const c = claims as unknown as Claims
      if (c.exp <= c.iat || c.exp - c.iat > maxTtl) return yield* fail("invalid_claims", `exp must be after iat and at most ${maxTtl} s later`)
      const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      if (c.exp + skew <= now) return yield* fail("signature_expired", `expired at ${c.exp}`)
      if (c.iat > now + skew) return yield* fail("signature_not_yet_valid", "iat is in the future")

      const url = new URL(request.url, "http://placeholder.invalid")
      if (c.method !== request.method.toUpperCase() || c.path !== url.pathname) {
        return yield* fail("request_mismatch", "the signature was made for another method or path")
      }
      const bodyHash = sha256Hex(request.body)
      const bodyHeader = request.headers[BODY_SHA256_HEADER]
      if (!safeEqual(c.body_sha256, bodyHash) || (bodyHeader !== undefined && !safeEqual(bodyHeader.toLowerCase(), bodyHash))) {
        return yield* fail("body_mismatch", "the body does not match the signed body hash")
      }
      const bindings: ReadonlyArray<readonly [keyof Claims, string | undefined, string]> = [
        ["run_id", request.runId, "route run id"],
        ["thread_id", url.searchParams.get("thread_id") ?? undefined, "thread_id query parameter"],
        ["user_id", request.headers[USER_ID_HEADER], `${USER_ID_HEADER} header`],
        ["guest_scope", request.headers[GUEST_SCOPE_HEADER], `${GUEST_SCOPE_HEADER} header`]
      ]
      for (const [claim, actual, what] of bindings) {
        if (c[claim] !== actual) return yield* fail("binding_mismatch", `${claim} does not match the ${what}`)
      }
      // Last, so that a refused request does not burn its nonce.
      if (!(yield* replayCache.remember(`${c.nonce}`, c.exp + skew))) return yield* fail("token_replayed", "this signature was already used")
      return c
    })

  const verifyServerRequest = (request: HttpServerRequest.HttpServerRequest, opts?: { readonly runId?: string | undefined }) =>
    Effect.flatMap(
      Effect.orElseSucceed(request.text, () => undefined),
      (body) =>
        body === undefined
          ? fail("body_mismatch", "the body could not be read")
          : verify({ method: request.method, url: request.url, headers: request.headers, body, runId: opts?.runId })
    )

  return { verify, verifyServerRequest }
}

const safeEqual = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** A JSON body for a signed request (the same bytes are hashed and sent). */
export const jsonBody = (value: unknown): HttpBody.Uint8Array => HttpBody.uint8Array(new TextEncoder().encode(JSON.stringify(value)), "application/json")
