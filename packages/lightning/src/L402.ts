// L402 (formerly LSAT) as Aperture speaks it (LIGHTNING.md §1): the 66-byte token identifier,
// macaroons minted with Aperture's caveats, verification in Aperture's order, the
// `WWW-Authenticate` challenge and the `Authorization` credential, in every form a peer may send.
//
// Identifier: version uint16 BE (0) ‖ payment_hash (32) ‖ token_id (32). Location "lsat".
// Caveats, in Aperture's order: `services=<name>:<tier>`, `<name>_capabilities=<caps>`, each
// constraint `<k>=<v>`, `<name>_valid_until=<unix seconds>`.
// Verification: identifier → sha256(preimage) == payment_hash → the root key of
// sha256(identifier) → signature → caveats (`services` must list the target service and later
// `services` caveats may only narrow; `<service>_valid_until` must be in the future and may only
// shrink; unknown caveats are skipped, as the spec requires). Capabilities and constraints are
// not enforced here (Aperture does not either): the backend checks them.
import { hmac } from "@noble/hashes/hmac"
import { sha256 } from "@noble/hashes/sha2"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { equalBytes, fromHex, toHex, utf8 } from "./internal/bytes.js"
import * as Macaroon from "./Macaroon.js"

export const LOCATION = "lsat"
export const IDENTIFIER_VERSION = 0
export const IDENTIFIER_LENGTH = 66

export type L402ErrorCode =
  /** No L402/LSAT credential in the request. */
  | "credential_missing"
  /** The header, token or identifier does not parse. */
  | "credential_malformed"
  /** sha256(preimage) is not the token's payment hash. */
  | "preimage_mismatch"
  /** No root key for this token (revoked, or minted elsewhere). */
  | "token_revoked"
  /** The macaroon signature does not verify (tampered: caveat removed, changed or added). */
  | "signature_invalid"
  /** The token does not grant the requested service. */
  | "service_not_allowed"
  /** `<service>_valid_until` has passed. */
  | "token_expired"

export class L402Error extends Data.TaggedError("L402Error")<{ readonly code: L402ErrorCode; readonly reason: string }> {
  override get message() {
    return `${this.code}: ${this.reason}`
  }
}

const fail = (code: L402ErrorCode, reason: string) => new L402Error({ code, reason })

// --- identifier --------------------------------------------------------------------------------

export interface Identifier {
  readonly version: number
  /** Hex, 32 bytes. */
  readonly paymentHash: string
  /** Hex, 32 bytes: the stable id of the buyer's token across re-mints. */
  readonly tokenId: string
}

export const encodeIdentifier = (id: Identifier): Uint8Array => {
  const out = new Uint8Array(IDENTIFIER_LENGTH)
  new DataView(out.buffer).setUint16(0, id.version)
  const hash = fromHex(id.paymentHash)
  const token = fromHex(id.tokenId)
  if (hash?.length !== 32 || token?.length !== 32) throw new TypeError("payment hash and token id must be 32 bytes of hex")
  out.set(hash, 2)
  out.set(token, 34)
  return out
}

export const decodeIdentifier = (bytes: Uint8Array): Either.Either<Identifier, L402Error> => {
  if (bytes.length !== IDENTIFIER_LENGTH) return Either.left(fail("credential_malformed", `identifier is ${bytes.length} bytes, not ${IDENTIFIER_LENGTH}`))
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(0)
  if (version !== IDENTIFIER_VERSION) return Either.left(fail("credential_malformed", `unknown identifier version ${version}`))
  return Either.right({ version, paymentHash: toHex(bytes.subarray(2, 34)), tokenId: toHex(bytes.subarray(34, 66)) })
}

/** The key Aperture stores a token's root key under: sha256(identifier). */
export const secretKeyOf = (identifier: Uint8Array): string => toHex(sha256(identifier))

// --- root keys ---------------------------------------------------------------------------------

export interface L402SecretsService {
  /** A root key for a new token (stored, or derived). */
  readonly create: (identifierHash: string) => Effect.Effect<Uint8Array>
  /** The root key of a token; none when revoked or unknown. */
  readonly get: (identifierHash: string) => Effect.Effect<Option.Option<Uint8Array>>
  readonly revoke: (identifierHash: string) => Effect.Effect<void>
}

export class L402Secrets extends Context.Tag("@openagents/lightning/L402Secrets")<L402Secrets, L402SecretsService>() {}

/** Random root keys kept in memory, as Aperture keeps them in its secrets table. */
export const memorySecrets = Layer.sync(L402Secrets, () => {
  const keys = new Map<string, Uint8Array>()
  return {
    create: (h) => Effect.sync(() => {
      const key = crypto.getRandomValues(new Uint8Array(32))
      keys.set(h, key)
      return key
    }),
    get: (h) => Effect.sync(() => Option.fromNullable(keys.get(h))),
    revoke: (h) => Effect.sync(() => void keys.delete(h))
  }
})

/**
 * Root keys derived from one secret: HMAC-SHA256(secret, identifier hash). Stateless, so every
 * gateway replica verifies every token, at the price of no per-token revocation (`revoke` adds
 * to an in-memory deny list only). Rotate the secret to revoke everything.
 */
export const derivedSecrets = (secret: Redacted.Redacted<Uint8Array>) =>
  Layer.sync(L402Secrets, () => {
    const revoked = new Set<string>()
    const derive = (h: string) => hmac(sha256, Redacted.value(secret), utf8(`l402-root-key:${h}`))
    return {
      create: (h) => Effect.sync(() => derive(h)),
      get: (h) => Effect.sync(() => (revoked.has(h) ? Option.none() : Option.some(derive(h)))),
      revoke: (h) => Effect.sync(() => void revoked.add(h))
    }
  })

// --- minting and verifying ---------------------------------------------------------------------

export interface MintOptions {
  readonly service: string
  readonly paymentHash: string
  /** Default 0 (Aperture's base tier). */
  readonly tier?: number
  /** Comma list; the `<service>_capabilities` caveat is always added, as Aperture does. */
  readonly capabilities?: string
  /** Added verbatim as `<key>=<value>`, in key order (Aperture's map order is random). */
  readonly constraints?: Readonly<Record<string, string>>
  /** Adds `<service>_valid_until=<now + timeout>`. */
  readonly timeoutSeconds?: number
  /** Unix ms (default: now). */
  readonly nowMs?: number
  /** Hex, 32 bytes (default: random). */
  readonly tokenId?: string
}

const SERVICE_NAME = /^[A-Za-z0-9_.\-/]+$/

/** Mint an Aperture-layout token for an invoice's payment hash. */
export const mint = (options: MintOptions) =>
  Effect.gen(function*() {
    if (!SERVICE_NAME.test(options.service)) return yield* Effect.dieMessage(`invalid L402 service name ${options.service}`)
    const secrets = yield* L402Secrets
    const identifier = encodeIdentifier({
      version: IDENTIFIER_VERSION,
      paymentHash: options.paymentHash,
      tokenId: options.tokenId ?? toHex(crypto.getRandomValues(new Uint8Array(32)))
    })
    const rootKey = yield* secrets.create(secretKeyOf(identifier))
    let mac = Macaroon.mint({ rootKey, identifier, location: LOCATION })
    mac = Macaroon.addFirstPartyCaveat(mac, `services=${options.service}:${options.tier ?? 0}`)
    mac = Macaroon.addFirstPartyCaveat(mac, `${options.service}_capabilities=${options.capabilities ?? ""}`)
    for (const key of Object.keys(options.constraints ?? {}).sort()) {
      mac = Macaroon.addFirstPartyCaveat(mac, `${key}=${options.constraints![key]}`)
    }
    if (options.timeoutSeconds !== undefined && options.timeoutSeconds > 0) {
      const now = Math.floor((options.nowMs ?? Date.now()) / 1000)
      mac = Macaroon.addFirstPartyCaveat(mac, `${options.service}_valid_until=${now + options.timeoutSeconds}`)
    }
    return mac
  })

export interface VerifiedToken {
  readonly identifier: Identifier
  readonly macaroon: Macaroon.Macaroon
  /** First-party caveats, as text (for the backend's own checks: capabilities, constraints). */
  readonly caveats: ReadonlyArray<string>
  /** The presented preimage (lower-case hex): the proof of payment of identifier.paymentHash. */
  readonly preimageHex: string
}

const parseServices = (value: string): Array<string> | undefined => {
  const names = value.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => {
    const [name, tier] = s.split(":")
    return name !== undefined && name !== "" && (tier === undefined || /^\d+$/.test(tier)) ? name : undefined
  })
  return names.length === 0 || names.includes(undefined) ? undefined : (names as Array<string>)
}

/** Check the caveats the verifier understands; unknown ones are skipped. */
export const checkCaveats = (caveats: ReadonlyArray<string>, service: string, nowMs: number): Either.Either<void, L402Error> => {
  let allowed: Array<string> | undefined
  let validUntil: number | undefined
  for (const caveat of caveats) {
    const eq = caveat.indexOf("=")
    if (eq <= 0) continue
    const condition = caveat.slice(0, eq).trim()
    const value = caveat.slice(eq + 1).trim()
    if (condition === "services") {
      const names = parseServices(value)
      if (names === undefined) return Either.left(fail("credential_malformed", `bad services caveat "${value}"`))
      if (allowed !== undefined && names.some((n) => !allowed!.includes(n))) {
        return Either.left(fail("service_not_allowed", "a later services caveat widens an earlier one"))
      }
      allowed = names
    } else if (condition === `${service}_valid_until`) {
      if (!/^\d+$/.test(value)) return Either.left(fail("credential_malformed", `bad ${condition} caveat`))
      const t = Number(value)
      if (validUntil !== undefined && t > validUntil) return Either.left(fail("token_expired", "a later valid_until extends an earlier one"))
      validUntil = t
    }
  }
  if (allowed !== undefined && !allowed.includes(service)) return Either.left(fail("service_not_allowed", `the token does not grant ${service}`))
  if (validUntil !== undefined && Math.floor(nowMs / 1000) >= validUntil) return Either.left(fail("token_expired", `the token expired at ${validUntil}`))
  return Either.right(undefined)
}

/** Verify a credential for `service` (Aperture's `VerifyL402`). */
export const verify = (credential: Credential, options: { readonly service: string; readonly nowMs?: number }) =>
  Effect.gen(function*() {
    const secrets = yield* L402Secrets
    if (credential.macaroons.length !== 1) return yield* Effect.fail(fail("credential_malformed", "exactly one macaroon is supported"))
    const mac = yield* Macaroon.fromBase64String(credential.macaroons[0]!).pipe(Either.mapLeft((e) => fail("credential_malformed", e.reason)))
    const identifier = yield* decodeIdentifier(mac.identifier)
    const preimage = fromHex(credential.preimage)
    if (preimage?.length !== 32) return yield* Effect.fail(fail("credential_malformed", "the preimage must be 32 bytes of hex"))
    if (!equalBytes(sha256(preimage), fromHex(identifier.paymentHash)!)) {
      return yield* Effect.fail(fail("preimage_mismatch", "sha256(preimage) is not the token's payment hash"))
    }
    const rootKey = yield* secrets.get(secretKeyOf(mac.identifier))
    if (Option.isNone(rootKey)) return yield* Effect.fail(fail("token_revoked", "no root key for this token"))
    if (!Macaroon.verifySignature(mac, rootKey.value)) return yield* Effect.fail(fail("signature_invalid", "signature mismatch after caveat verification"))
    const caveats = Macaroon.firstPartyCaveats(mac)
    yield* checkCaveats(caveats, options.service, options.nowMs ?? Date.now())
    return { identifier, macaroon: mac, caveats, preimageHex: toHex(preimage) } satisfies VerifiedToken
  })

// --- headers -----------------------------------------------------------------------------------

export interface Challenge {
  readonly scheme: "L402" | "LSAT"
  /** Std base64 of the V2 macaroon. */
  readonly macaroon: string
  readonly invoice: string
  readonly version?: string | undefined
  /** When the server states it (buyers must still decode the invoice). */
  readonly amountMsats?: bigint | undefined
}

export type ChallengeStyle =
  /** Two values, LSAT first, `macaroon=` (what Aperture sends; old clients read the first). */
  | "aperture"
  /** One value, the 2026 spec form: `L402 version="0", token="…", invoice="…"`. */
  | "spec"

/** `WWW-Authenticate` values for a 402 answer. */
export const challengeHeaders = (macaroonB64: string, invoice: string, style: ChallengeStyle = "aperture"): Array<string> =>
  style === "spec"
    ? [`L402 version="0", token="${macaroonB64}", invoice="${invoice}"`]
    : [`LSAT macaroon="${macaroonB64}", invoice="${invoice}"`, `L402 macaroon="${macaroonB64}", invoice="${invoice}"`]

const SCHEME = /^(L402|LSAT)\s+/i

/** Split header values that may be comma-joined into one challenge per scheme occurrence. */
const splitChallenges = (values: ReadonlyArray<string>): Array<string> =>
  values.flatMap((v) => v.split(/,\s*(?=(?:L402|LSAT|Bearer|Basic|Payment)\s)/i)).map((s) => s.trim()).filter((s) => s !== "")

const parseParams = (text: string): Either.Either<Map<string, string>, string> => {
  const params = new Map<string, string>()
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"([^"]*)"|([^\s,"]+))\s*(?:,|$)/y
  let offset = 0
  while (offset < text.length) {
    re.lastIndex = offset
    const m = re.exec(text)
    if (m === null) return Either.left(`cannot parse parameters at "${text.slice(offset, offset + 20)}"`)
    const key = m[1]!.toLowerCase()
    const value = m[2] ?? m[3] ?? ""
    if (params.has(key)) return Either.left(`duplicate parameter ${key}`)
    if (value === "") return Either.left(`empty parameter ${key}`)
    params.set(key, value)
    offset = re.lastIndex
  }
  return Either.right(params)
}

/** The L402 (preferred) or LSAT challenge among `WWW-Authenticate` values. */
export const parseChallenge = (values: string | ReadonlyArray<string>): Either.Either<Challenge, L402Error> => {
  const all = splitChallenges(typeof values === "string" ? [values] : values)
  const candidates: Array<Challenge> = []
  let lastError = "no L402 or LSAT challenge"
  for (const value of all) {
    const scheme = SCHEME.exec(value)
    if (scheme === null) continue
    const params = parseParams(value.slice(scheme[0].length))
    if (Either.isLeft(params)) {
      lastError = params.left
      continue
    }
    const p = params.right
    const macaroon = p.get("token") ?? p.get("macaroon")
    const invoice = p.get("invoice")
    if (macaroon === undefined || invoice === undefined) {
      lastError = "a challenge needs invoice and token (or macaroon)"
      continue
    }
    if (p.has("token") && p.has("macaroon") && p.get("token") !== p.get("macaroon")) {
      lastError = "token and macaroon disagree"
      continue
    }
    const amounts = [p.get("amount_msats"), p.get("amountmsats")].filter((a): a is string => a !== undefined)
    if (amounts.some((a) => !/^\d+$/.test(a)) || new Set(amounts).size > 1) {
      lastError = "amount_msats must be one non-negative integer"
      continue
    }
    candidates.push({
      scheme: scheme[1]!.toUpperCase() as "L402" | "LSAT",
      macaroon,
      invoice,
      version: p.get("version"),
      amountMsats: amounts[0] === undefined ? undefined : BigInt(amounts[0])
    })
  }
  const chosen = candidates.find((c) => c.scheme === "L402") ?? candidates[0]
  return chosen === undefined ? Either.left(fail("credential_malformed", lastError)) : Either.right(chosen)
}

export interface Credential {
  readonly scheme: "L402" | "LSAT"
  /** Std base64 macaroons (Aperture accepts several, comma-separated). */
  readonly macaroons: ReadonlyArray<string>
  /** Lower-case hex, 32 bytes. */
  readonly preimage: string
}

/**
 * Parse `Authorization` in both token formats: `L402 <b64>[,<b64>…]:<hex preimage>` (the spec and
 * Aperture) and `L402 macaroon="<b64>", preimage="<hex>"` (also `token=`), scheme L402 or LSAT.
 */
export const parseAuthorization = (header: string | undefined): Either.Either<Credential, L402Error> => {
  if (header === undefined || header.trim() === "") return Either.left(fail("credential_missing", "no Authorization header"))
  const text = header.trim()
  const scheme = SCHEME.exec(text)
  if (scheme === null) return Either.left(fail("credential_missing", "the Authorization scheme is not L402 or LSAT"))
  const rest = text.slice(scheme[0].length).trim()
  const kind = scheme[1]!.toUpperCase() as "L402" | "LSAT"
  const colon = /^([A-Za-z0-9+/=_-]+(?:,[A-Za-z0-9+/=_-]+)*):([0-9a-fA-F]{64})$/.exec(rest)
  if (colon !== null) {
    return Either.right({ scheme: kind, macaroons: colon[1]!.split(","), preimage: colon[2]!.toLowerCase() })
  }
  const params = parseParams(rest)
  if (Either.isLeft(params)) return Either.left(fail("credential_malformed", params.left))
  const macaroon = params.right.get("macaroon") ?? params.right.get("token")
  const preimage = params.right.get("preimage")
  if (macaroon === undefined || preimage === undefined || !/^[0-9a-fA-F]{64}$/.test(preimage)) {
    return Either.left(fail("credential_malformed", "expected <macaroon>:<preimage> or macaroon=\"…\", preimage=\"…\""))
  }
  return Either.right({ scheme: kind, macaroons: macaroon.split(","), preimage: preimage.toLowerCase() })
}

export type AuthorizationStyle = "macaroon_preimage_colon" | "macaroon_preimage_params"

/** An `Authorization` value (default: the spec's `L402 <macaroon>:<preimage>`). */
export const authorizationHeader = (macaroonB64: string, preimageHex: string, style: AuthorizationStyle = "macaroon_preimage_colon"): string =>
  style === "macaroon_preimage_params"
    ? `L402 macaroon="${macaroonB64}", preimage="${preimageHex.toLowerCase()}"`
    : `L402 ${macaroonB64}:${preimageHex.toLowerCase()}`

/** Decode a token's identifier without verifying it (to read its payment hash). */
export const inspect = (macaroonB64: string): Either.Either<Identifier, L402Error> =>
  Either.flatMap(Macaroon.fromBase64String(macaroonB64).pipe(Either.mapLeft((e) => fail("credential_malformed", e.reason))), (m) =>
    decodeIdentifier(m.identifier))

