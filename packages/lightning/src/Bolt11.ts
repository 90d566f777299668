// BOLT #11 payment requests: a strict reader and a writer.
//
// `decode` is the reader of BOLT #11 ("Requirements" for readers), including what common
// libraries skip (LIGHTNING.md §4): the signature is always checked (against `n` when present,
// where a high-S signature is refused; otherwise by recovering the payee), known fields of the
// wrong length are skipped, a missing payment secret and an unknown *required* (even) feature bit
// refuse the invoice, and an amount with sub-millisatoshi precision is malformed.
// `checkPayable` adds what a payer must check on top of validity: the network, the expiry
// (timestamp + x, default 3600 s, with a margin) and the presence of an amount.
//
// `encode` writes and signs an invoice with a node key (the LND simulator issues real invoices
// with it); signatures are RFC 6979 deterministic and low-S, so the spec's vectors re-encode
// byte for byte.
import { secp256k1 } from "@noble/curves/secp256k1"
import { sha256 } from "@noble/hashes/sha2"
import { bech32 } from "@scure/base"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { concat, convertBits, fromHex, fromUtf8, intToWords, toHex, utf8, wordsToInt } from "./internal/bytes.js"

export type Network = "mainnet" | "testnet" | "signet" | "regtest" | "simnet"

/** The BOLT #11 currency prefix of each network (`ln` + prefix). */
export const networkPrefix: Readonly<Record<Network, string>> = {
  mainnet: "bc",
  testnet: "tb",
  signet: "tbs",
  regtest: "bcrt",
  simnet: "sb"
}

const networkOfPrefix = new Map<string, Network>(Object.entries(networkPrefix).map(([n, p]) => [p, n as Network]))

export const isNetwork = (value: string): value is Network => Object.hasOwn(networkPrefix, value)

export const DEFAULT_EXPIRY_SECONDS = 3600
export const DEFAULT_MIN_FINAL_CLTV_EXPIRY = 18

/**
 * Feature bits this reader understands (BOLT #9, invoice context): var_onion_optin 8/9,
 * payment_secret 14/15, basic_mpp 16/17, option_route_blinding 24/25, AMP 30/31 (lnd),
 * option_payment_metadata 48/49. Any other *even* bit is an unknown required feature.
 */
export const KNOWN_FEATURE_BITS: ReadonlySet<number> = new Set([8, 9, 14, 15, 16, 17, 24, 25, 30, 31, 48, 49])

export type InvoiceErrorCode =
  | "invoice_malformed"
  | "invoice_signature_invalid"
  | "invoice_missing_payment_secret"
  | "invoice_unknown_required_feature"
  | "invoice_network_mismatch"
  | "invoice_expired"
  | "invoice_amount_missing"

/** A payment request that must not be paid; `code` says why (it is the wire code). */
export class InvoiceError extends Data.TaggedError("InvoiceError")<{
  readonly code: InvoiceErrorCode
  readonly reason: string
}> {
  override get message() {
    return `${this.code}: ${this.reason}`
  }
}

export interface RouteHop {
  /** Hex, 33-byte compressed public key of the hop's node. */
  readonly pubkey: string
  /** Hex, 8 bytes. */
  readonly shortChannelId: string
  readonly feeBaseMsat: number
  readonly feeProportionalMillionths: number
  readonly cltvExpiryDelta: number
}

export interface FallbackAddress {
  /** 0 (segwit v0), 1 (taproot), 17 (P2PKH), 18 (P2SH). */
  readonly version: number
  /** Hex of the hash or witness program. */
  readonly program: string
}

export interface Invoice {
  readonly paymentRequest: string
  readonly network: Network
  /** Human-readable part, e.g. "lnbc2500u". */
  readonly hrp: string
  /** Undefined for an amountless invoice. */
  readonly amountMsats: bigint | undefined
  /** Unix seconds. */
  readonly timestamp: number
  readonly expirySeconds: number
  /** Unix seconds: timestamp + expiry. */
  readonly expiresAt: number
  /** Hex, 32 bytes. */
  readonly paymentHash: string
  /** Hex, 32 bytes. */
  readonly paymentSecret: string
  readonly description: string | undefined
  /** Hex, 32 bytes. */
  readonly descriptionHash: string | undefined
  /** Hex, 33-byte compressed key: the `n` field, or recovered from the signature. */
  readonly payee: string
  readonly payeeFromField: boolean
  readonly minFinalCltvExpiry: number
  readonly fallbackAddresses: ReadonlyArray<FallbackAddress>
  readonly routeHints: ReadonlyArray<ReadonlyArray<RouteHop>>
  /** Set feature bits, ascending. */
  readonly features: ReadonlyArray<number>
  /** Hex. */
  readonly metadata: string | undefined
  /** Hex of r ‖ s (64 bytes). */
  readonly signature: string
  readonly recoveryId: number
}

const TAG = {
  p: 1,
  s: 16,
  d: 13,
  h: 23,
  n: 19,
  x: 6,
  c: 24,
  f: 9,
  r: 3,
  features: 5,
  m: 27
} as const

const SIGNATURE_WORDS = 104
const TIMESTAMP_WORDS = 7

const malformed = (reason: string) => new InvoiceError({ code: "invoice_malformed", reason })

// Amounts: "<digits><multiplier>" where m = 1e-3, u = 1e-6, n = 1e-9, p = 1e-12 BTC; in msat,
// 1 BTC = 1e11 msat, so m = 1e8, u = 1e5, n = 100 and p = 0.1 msat (must be a multiple of 10 p).
const MSAT_PER_BTC = 100_000_000_000n
const multiplierMsats: Readonly<Record<string, bigint>> = { m: 100_000_000n, u: 100_000n, n: 100n }

const parseAmount = (digits: string, multiplier: string | undefined): Either.Either<bigint, InvoiceError> => {
  if (!/^[0-9]+$/.test(digits)) return Either.left(malformed(`amount ${digits} is not a number`))
  const value = BigInt(digits)
  if (multiplier === undefined) return Either.right(value * MSAT_PER_BTC)
  if (multiplier === "p") {
    if (value % 10n !== 0n) return Either.left(malformed(`amount ${digits}p has sub-millisatoshi precision`))
    return Either.right(value / 10n)
  }
  const per = multiplierMsats[multiplier]
  if (per === undefined) return Either.left(malformed(`unknown amount multiplier "${multiplier}"`))
  return Either.right(value * per)
}

/** The shortest amount text for a millisatoshi amount. */
export const formatAmount = (msats: bigint): string => {
  if (msats <= 0n) throw new RangeError("amount must be positive")
  if (msats % MSAT_PER_BTC === 0n) return (msats / MSAT_PER_BTC).toString()
  for (const m of ["m", "u", "n"] as const) {
    const per = multiplierMsats[m]!
    if (msats % per === 0n) return `${msats / per}${m}`
  }
  return `${msats * 10n}p`
}

const parseHrp = (hrp: string): Either.Either<{ network: Network; amountMsats: bigint | undefined }, InvoiceError> => {
  const match = /^ln([a-z]+)([0-9]*)([a-z]?)$/.exec(hrp)
  if (match === null) return Either.left(malformed(`human-readable part "${hrp}" is not ln<currency>[amount]`))
  const [, currency = "", digits = "", multiplier = ""] = match
  // A trailing letter after no digits belongs to the currency (e.g. "lntbs" is signet, not "tb"+"s").
  const network = networkOfPrefix.get(digits === "" ? currency + multiplier : currency)
  if (network === undefined) return Either.left(malformed(`unknown currency prefix in "${hrp}"`))
  if (digits === "") return Either.right({ network, amountMsats: undefined })
  return Either.map(parseAmount(digits, multiplier === "" ? undefined : multiplier), (amountMsats) => ({ network, amountMsats }))
}

const bytesOf = (words: ReadonlyArray<number>): Uint8Array => Uint8Array.from(convertBits(words, 5, 8, false))

/** The message a BOLT #11 signature covers: sha256(hrp ‖ data words regrouped to bytes, zero-padded). */
export const signingHash = (hrp: string, dataWords: ReadonlyArray<number>): Uint8Array =>
  sha256(concat(utf8(hrp), Uint8Array.from(convertBits(dataWords, 5, 8, true))))

const parseRouteHint = (bytes: Uint8Array): Array<RouteHop> | undefined => {
  if (bytes.length === 0 || bytes.length % 51 !== 0) return undefined
  const hops: Array<RouteHop> = []
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let o = 0; o < bytes.length; o += 51) {
    hops.push({
      pubkey: toHex(bytes.subarray(o, o + 33)),
      shortChannelId: toHex(bytes.subarray(o + 33, o + 41)),
      feeBaseMsat: view.getUint32(o + 41),
      feeProportionalMillionths: view.getUint32(o + 45),
      cltvExpiryDelta: view.getUint16(o + 49)
    })
  }
  return hops
}

const featureBits = (words: ReadonlyArray<number>): Array<number> => {
  const bits: Array<number> = []
  for (let j = 0; j < words.length; j++) {
    for (let b = 0; b < 5; b++) {
      if ((words[j]! >> b) & 1) bits.push((words.length - 1 - j) * 5 + b)
    }
  }
  return bits.sort((a, b) => a - b)
}

const featureWords = (bits: ReadonlyArray<number>): Array<number> => {
  if (bits.length === 0) return []
  const max = Math.max(...bits)
  const words = new Array<number>(Math.floor(max / 5) + 1).fill(0)
  for (const bit of bits) words[words.length - 1 - Math.floor(bit / 5)]! |= 1 << (bit % 5)
  return words
}

/** Decode and validate a payment request as a BOLT #11 reader must. */
export const decode = (paymentRequest: string): Either.Either<Invoice, InvoiceError> => {
  const text = paymentRequest.trim()
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) return Either.left(malformed("mixed-case string"))
  const lower = text.toLowerCase()
  const separator = lower.lastIndexOf("1")
  if (separator < 1) return Either.left(malformed("no bech32 separator"))
  const decoded = bech32.decodeUnsafe(lower, false)
  if (decoded === undefined) return Either.left(malformed("bech32 checksum or character set is invalid"))
  const { prefix: hrp, words } = decoded
  if (words.length < TIMESTAMP_WORDS + SIGNATURE_WORDS) return Either.left(malformed("too short to hold a timestamp and a signature"))
  const head = parseHrp(hrp)
  if (Either.isLeft(head)) return Either.left(head.left)
  const { network, amountMsats } = head.right

  const dataWords = words.slice(0, words.length - SIGNATURE_WORDS)
  const signatureBytes = bytesOf(words.slice(words.length - SIGNATURE_WORDS))
  const timestamp = Number(wordsToInt(dataWords.slice(0, TIMESTAMP_WORDS)))

  let paymentHash: string | undefined
  let paymentSecret: string | undefined
  let description: string | undefined
  let descriptionHash: string | undefined
  let payeeField: Uint8Array | undefined
  let expirySeconds = DEFAULT_EXPIRY_SECONDS
  let minFinalCltvExpiry = DEFAULT_MIN_FINAL_CLTV_EXPIRY
  let features: Array<number> = []
  let metadata: string | undefined
  const fallbackAddresses: Array<FallbackAddress> = []
  const routeHints: Array<Array<RouteHop>> = []

  let i = TIMESTAMP_WORDS
  while (i < dataWords.length) {
    if (i + 3 > dataWords.length) return Either.left(malformed("truncated tagged field"))
    const type = dataWords[i]!
    const length = dataWords[i + 1]! * 32 + dataWords[i + 2]!
    const value = dataWords.slice(i + 3, i + 3 + length)
    if (value.length !== length) return Either.left(malformed("tagged field runs past the data"))
    i += 3 + length
    // Fields of a known type but the wrong length are skipped, as the reader requirements say;
    // the first well-formed occurrence of each wins.
    switch (type) {
      case TAG.p:
        if (length === 52 && paymentHash === undefined) paymentHash = toHex(bytesOf(value))
        break
      case TAG.s:
        if (length === 52 && paymentSecret === undefined) paymentSecret = toHex(bytesOf(value))
        break
      case TAG.h:
        if (length === 52 && descriptionHash === undefined) descriptionHash = toHex(bytesOf(value))
        break
      case TAG.n:
        if (length === 53 && payeeField === undefined) payeeField = bytesOf(value)
        break
      case TAG.d: {
        if (description !== undefined) break
        const d = fromUtf8(bytesOf(value))
        if (d === undefined) return Either.left(malformed("description is not valid UTF-8"))
        description = d
        break
      }
      case TAG.x:
        expirySeconds = Number(wordsToInt(value))
        break
      case TAG.c:
        minFinalCltvExpiry = Number(wordsToInt(value))
        break
      case TAG.f: {
        if (length === 0) break
        const version = value[0]!
        const program = bytesOf(value.slice(1))
        const known = (version === 17 || version === 18) ? program.length === 20
          : version === 0 ? program.length === 20 || program.length === 32
          : version === 1 ? program.length === 32
          : false
        if (known) fallbackAddresses.push({ version, program: toHex(program) })
        break
      }
      case TAG.r: {
        const hops = parseRouteHint(bytesOf(value))
        if (hops !== undefined) routeHints.push(hops)
        break
      }
      case TAG.features:
        features = featureBits(value)
        break
      case TAG.m:
        metadata = toHex(bytesOf(value))
        break
      default:
        break // unknown fields are ignored
    }
  }

  if (paymentHash === undefined) return Either.left(malformed("no valid payment hash (p) field"))
  if (description === undefined && descriptionHash === undefined) {
    return Either.left(malformed("neither a description (d) nor a description hash (h)"))
  }

  // Signature: r ‖ s ‖ recovery id over sha256(hrp ‖ data).
  const recoveryId = signatureBytes[64]!
  const compact = signatureBytes.subarray(0, 64)
  const hash = signingHash(hrp, dataWords)
  let payee: Uint8Array
  try {
    if (recoveryId > 3) throw new Error("recovery id out of range")
    const signature = secp256k1.Signature.fromBytes(compact, "compact")
    if (payeeField !== undefined) {
      // With `n` present the signature must verify against it and be low-S.
      if (!secp256k1.verify(compact, hash, payeeField, { lowS: true, prehash: false })) throw new Error("signature does not match n")
      payee = payeeField
    } else {
      payee = signature.addRecoveryBit(recoveryId).recoverPublicKey(hash).toBytes(true)
    }
  } catch (e) {
    return Either.left(new InvoiceError({ code: "invoice_signature_invalid", reason: e instanceof Error ? e.message : String(e) }))
  }

  if (paymentSecret === undefined) {
    return Either.left(new InvoiceError({ code: "invoice_missing_payment_secret", reason: "no valid payment secret (s) field" }))
  }
  const unknownRequired = features.filter((bit) => bit % 2 === 0 && !KNOWN_FEATURE_BITS.has(bit))
  if (unknownRequired.length > 0) {
    return Either.left(
      new InvoiceError({ code: "invoice_unknown_required_feature", reason: `unknown required feature bit(s) ${unknownRequired.join(", ")}` })
    )
  }

  return Either.right({
    paymentRequest: lower,
    network,
    hrp,
    amountMsats,
    timestamp,
    expirySeconds,
    expiresAt: timestamp + expirySeconds,
    paymentHash,
    paymentSecret,
    description,
    descriptionHash,
    payee: toHex(payee),
    payeeFromField: payeeField !== undefined,
    minFinalCltvExpiry,
    fallbackAddresses,
    routeHints,
    features,
    metadata,
    signature: toHex(compact),
    recoveryId
  })
}

export interface PayableOptions {
  /** The network of the paying node; an invoice for another network is refused. */
  readonly network: Network
  /** Current time, Unix milliseconds. */
  readonly nowMs: number
  /** Refuse invoices expiring within this many seconds (default 30). */
  readonly minRemainingSeconds?: number
}

/** The checks a payer makes on a valid invoice before paying it. */
export const checkPayable = (invoice: Invoice, options: PayableOptions): Either.Either<Invoice, InvoiceError> => {
  if (invoice.network !== options.network) {
    return Either.left(
      new InvoiceError({ code: "invoice_network_mismatch", reason: `invoice is for ${invoice.network}, this node is on ${options.network}` })
    )
  }
  const remaining = invoice.expiresAt - Math.floor(options.nowMs / 1000)
  const margin = options.minRemainingSeconds ?? 30
  if (remaining < margin) {
    return Either.left(
      new InvoiceError({
        code: "invoice_expired",
        reason: remaining <= 0 ? `invoice expired at ${invoice.expiresAt}` : `invoice expires in ${remaining}s (< ${margin}s margin)`
      })
    )
  }
  if (invoice.amountMsats === undefined || invoice.amountMsats <= 0n) {
    return Either.left(new InvoiceError({ code: "invoice_amount_missing", reason: "amountless invoices are not paid" }))
  }
  return Either.right(invoice)
}

/** decode, then checkPayable. */
export const decodePayable = (paymentRequest: string, options: PayableOptions): Either.Either<Invoice, InvoiceError> =>
  Either.flatMap(decode(paymentRequest), (invoice) => checkPayable(invoice, options))

// --- writing ---------------------------------------------------------------------------------

/** One tagged field, in the order it is to be written. */
export type TaggedField =
  | { readonly tag: "p" | "s" | "h"; readonly hex: string }
  | { readonly tag: "d"; readonly text: string }
  | { readonly tag: "n"; readonly hex: string }
  | { readonly tag: "x" | "c"; readonly value: number }
  | { readonly tag: "9"; readonly bits: ReadonlyArray<number> }
  | { readonly tag: "m"; readonly hex: string }
  | { readonly tag: "f"; readonly version: number; readonly hex: string }
  | { readonly tag: "r"; readonly hops: ReadonlyArray<RouteHop> }

const bytesToWords = (bytes: Uint8Array) => convertBits(bytes, 8, 5, true)

const mustHex = (text: string, bytes?: number): Uint8Array => {
  const b = fromHex(text)
  if (b === undefined || (bytes !== undefined && b.length !== bytes)) throw new TypeError(`expected ${bytes ?? "some"} bytes of hex, got "${text}"`)
  return b
}

const fieldWords = (field: TaggedField): [number, Array<number>] => {
  switch (field.tag) {
    case "p":
      return [TAG.p, bytesToWords(mustHex(field.hex, 32))]
    case "s":
      return [TAG.s, bytesToWords(mustHex(field.hex, 32))]
    case "h":
      return [TAG.h, bytesToWords(mustHex(field.hex, 32))]
    case "n":
      return [TAG.n, bytesToWords(mustHex(field.hex, 33))]
    case "d":
      return [TAG.d, bytesToWords(utf8(field.text))]
    case "x":
      return [TAG.x, intToWords(field.value)]
    case "c":
      return [TAG.c, intToWords(field.value)]
    case "9":
      return [TAG.features, featureWords(field.bits)]
    case "m":
      return [TAG.m, bytesToWords(mustHex(field.hex))]
    case "f":
      return [TAG.f, [field.version, ...bytesToWords(mustHex(field.hex))]]
    case "r": {
      const out = new Uint8Array(51 * field.hops.length)
      const view = new DataView(out.buffer)
      field.hops.forEach((hop, k) => {
        out.set(mustHex(hop.pubkey, 33), k * 51)
        out.set(mustHex(hop.shortChannelId, 8), k * 51 + 33)
        view.setUint32(k * 51 + 41, hop.feeBaseMsat)
        view.setUint32(k * 51 + 45, hop.feeProportionalMillionths)
        view.setUint16(k * 51 + 49, hop.cltvExpiryDelta)
      })
      return [TAG.r, bytesToWords(out)]
    }
  }
}

/** Write and sign a payment request from an explicit field list (order preserved). */
export const encodeFields = (input: {
  readonly network: Network
  readonly amountMsats?: bigint | undefined
  readonly timestamp: number
  readonly fields: ReadonlyArray<TaggedField>
  /** Hex, 32-byte secp256k1 private key of the payee node. */
  readonly privateKey: string
}): string => {
  const hrp = `ln${networkPrefix[input.network]}${input.amountMsats === undefined ? "" : formatAmount(input.amountMsats)}`
  const data: Array<number> = intToWords(input.timestamp, TIMESTAMP_WORDS)
  if (data.length !== TIMESTAMP_WORDS) throw new RangeError("timestamp does not fit in 35 bits")
  for (const field of input.fields) {
    const [type, words] = fieldWords(field)
    if (words.length >= 1024) throw new RangeError(`field ${field.tag} is longer than 1023 words`)
    data.push(type, words.length >> 5, words.length & 31, ...words)
  }
  const signature = secp256k1.sign(signingHash(hrp, data), mustHex(input.privateKey, 32), { lowS: true, prehash: false })
  const sigBytes = concat(signature.toBytes("compact"), Uint8Array.of(signature.recovery))
  return bech32.encode(hrp, [...data, ...bytesToWords(sigBytes)], false)
}

export interface EncodeInput {
  readonly network: Network
  readonly amountMsats?: bigint | undefined
  /** Unix seconds (default: now). */
  readonly timestamp?: number | undefined
  readonly paymentHash: string
  readonly paymentSecret: string
  readonly description?: string | undefined
  readonly descriptionHash?: string | undefined
  readonly expirySeconds?: number | undefined
  readonly minFinalCltvExpiry?: number | undefined
  /** Default DEFAULT_FEATURES (8, 14, 17), as lnd writes them. */
  readonly features?: ReadonlyArray<number> | undefined
  readonly metadata?: string | undefined
  readonly routeHints?: ReadonlyArray<ReadonlyArray<RouteHop>> | undefined
  /** Write the payee (`n`) field explicitly (default false: the reader recovers it). */
  readonly includePayee?: boolean | undefined
  readonly privateKey: string
}

/** Features lnd sets on its invoices: var_onion_optin, payment_secret (required), basic_mpp (optional). */
export const DEFAULT_FEATURES: ReadonlyArray<number> = [8, 14, 17]

/** Write and sign a payment request in lnd's field order. */
export const encode = (input: EncodeInput): string => {
  if (input.description === undefined && input.descriptionHash === undefined) throw new TypeError("an invoice needs a description or a description hash")
  const fields: Array<TaggedField> = [{ tag: "p", hex: input.paymentHash }]
  if (input.description !== undefined) fields.push({ tag: "d", text: input.description })
  if (input.descriptionHash !== undefined) fields.push({ tag: "h", hex: input.descriptionHash })
  if (input.includePayee === true) fields.push({ tag: "n", hex: publicKeyOf(input.privateKey) })
  if (input.expirySeconds !== undefined) fields.push({ tag: "x", value: input.expirySeconds })
  fields.push({ tag: "c", value: input.minFinalCltvExpiry ?? DEFAULT_MIN_FINAL_CLTV_EXPIRY })
  for (const hops of input.routeHints ?? []) fields.push({ tag: "r", hops })
  if (input.metadata !== undefined) fields.push({ tag: "m", hex: input.metadata })
  fields.push({ tag: "s", hex: input.paymentSecret })
  fields.push({ tag: "9", bits: input.features ?? DEFAULT_FEATURES })
  return encodeFields({
    network: input.network,
    amountMsats: input.amountMsats,
    timestamp: input.timestamp ?? Math.floor(Date.now() / 1000),
    fields,
    privateKey: input.privateKey
  })
}

/** Hex compressed public key of a hex private key (a node id). */
export const publicKeyOf = (privateKey: string): string => toHex(secp256k1.getPublicKey(mustHex(privateKey, 32), true))

/** A fresh random node private key (hex). */
export const randomPrivateKey = (): string => toHex(secp256k1.utils.randomPrivateKey())

/** sha256 of a hex preimage, as hex: the payment hash a preimage unlocks. */
export const paymentHashOf = (preimageHex: string): string => toHex(sha256(mustHex(preimageHex, 32)))
