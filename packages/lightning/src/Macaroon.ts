// Macaroons as go-macaroon, libmacaroons and Aperture make them: the V2 binary format and the
// HMAC-SHA256 signature chain with the derived key (LIGHTNING.md §1.5):
//
//   k    = HMAC-SHA256(key = "macaroons-key-generator", msg = rootKey)
//   sig0 = HMAC-SHA256(k, identifier)
//   sigi = HMAC-SHA256(sig(i-1), caveat_i)          (first-party caveats)
//
// The L402 spec's pseudo-code omits the derivation; implementing it literally would not verify
// Aperture's tokens. Only first-party caveats are supported: a macaroon with a third-party caveat
// decodes but never verifies. Verification compares signatures in constant time.
import { hmac } from "@noble/hashes/hmac"
import { sha256 } from "@noble/hashes/sha2"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { concat, equalBytes, fromBase64, fromHex, fromUtf8, toBase64, toHex, utf8 } from "./internal/bytes.js"

export interface Caveat {
  readonly identifier: Uint8Array
  /** Third-party caveats only. */
  readonly location?: string | undefined
  /** Third-party caveats only: the verification id. */
  readonly verificationId?: Uint8Array | undefined
}

export interface Macaroon {
  readonly location: string | undefined
  readonly identifier: Uint8Array
  readonly caveats: ReadonlyArray<Caveat>
  readonly signature: Uint8Array
}

export class MacaroonError extends Data.TaggedError("MacaroonError")<{ readonly reason: string }> {
  readonly code = "macaroon_malformed" as const
  override get message() {
    return `malformed macaroon: ${this.reason}`
  }
}

const KEY_GENERATOR = utf8("macaroons-key-generator")

const bytes = (value: string | Uint8Array) => (typeof value === "string" ? utf8(value) : value)

/** The HMAC key go-macaroon derives from a root key. */
export const deriveKey = (rootKey: Uint8Array): Uint8Array => hmac(sha256, KEY_GENERATOR, rootKey)

/** A new macaroon with no caveats. */
export const mint = (options: {
  readonly rootKey: Uint8Array
  readonly identifier: string | Uint8Array
  readonly location?: string | undefined
}): Macaroon => {
  const identifier = bytes(options.identifier)
  return { location: options.location, identifier, caveats: [], signature: hmac(sha256, deriveKey(options.rootKey), identifier) }
}

/** Append a first-party caveat ("condition=value" by convention) and extend the signature. */
export const addFirstPartyCaveat = (macaroon: Macaroon, caveat: string | Uint8Array): Macaroon => {
  const identifier = bytes(caveat)
  return { ...macaroon, caveats: [...macaroon.caveats, { identifier }], signature: hmac(sha256, macaroon.signature, identifier) }
}

/** The signature the macaroon would carry under `rootKey` (undefined with a third-party caveat). */
export const expectedSignature = (macaroon: Macaroon, rootKey: Uint8Array): Uint8Array | undefined => {
  let signature = hmac(sha256, deriveKey(rootKey), macaroon.identifier)
  for (const caveat of macaroon.caveats) {
    if (caveat.verificationId !== undefined) return undefined
    signature = hmac(sha256, signature, caveat.identifier)
  }
  return signature
}

/** The signature chain checks out under `rootKey` (constant-time comparison). */
export const verifySignature = (macaroon: Macaroon, rootKey: Uint8Array): boolean => {
  const expected = expectedSignature(macaroon, rootKey)
  return expected !== undefined && equalBytes(expected, macaroon.signature)
}

/** First-party caveats as UTF-8 strings (those that are not valid UTF-8 are skipped). */
export const firstPartyCaveats = (macaroon: Macaroon): Array<string> =>
  macaroon.caveats.flatMap((c) => {
    if (c.verificationId !== undefined) return []
    const text = fromUtf8(c.identifier)
    return text === undefined ? [] : [text]
  })

// --- V2 binary format --------------------------------------------------------------------------

const FIELD = { eos: 0, location: 1, identifier: 2, verificationId: 4, signature: 6 } as const

const uvarint = (n: number): Array<number> => {
  const out: Array<number> = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  out.push(n)
  return out
}

const field = (type: number, data: Uint8Array) => concat(Uint8Array.of(type, ...uvarint(data.length)), data)

/** V2 binary serialization (go-macaroon `MarshalBinary`). */
export const serialize = (macaroon: Macaroon): Uint8Array => {
  const parts: Array<Uint8Array> = [Uint8Array.of(2)]
  if (macaroon.location !== undefined && macaroon.location !== "") parts.push(field(FIELD.location, utf8(macaroon.location)))
  parts.push(field(FIELD.identifier, macaroon.identifier), Uint8Array.of(FIELD.eos))
  for (const caveat of macaroon.caveats) {
    if (caveat.location !== undefined) parts.push(field(FIELD.location, utf8(caveat.location)))
    parts.push(field(FIELD.identifier, caveat.identifier))
    if (caveat.verificationId !== undefined) parts.push(field(FIELD.verificationId, caveat.verificationId))
    parts.push(Uint8Array.of(FIELD.eos))
  }
  parts.push(Uint8Array.of(FIELD.eos), field(FIELD.signature, macaroon.signature))
  return concat(...parts)
}

class Reader {
  offset = 0
  constructor(readonly data: Uint8Array) {}
  byte(): number {
    if (this.offset >= this.data.length) throw new Error("unexpected end of data")
    return this.data[this.offset++]!
  }
  peek(): number | undefined {
    return this.data[this.offset]
  }
  varint(): number {
    let n = 0
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte()
      n += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return n
    }
    throw new Error("varint too long")
  }
  field(): { type: number; data: Uint8Array } {
    const type = this.byte()
    if (type === FIELD.eos) return { type, data: new Uint8Array() }
    const length = this.varint()
    if (this.offset + length > this.data.length) throw new Error("field runs past the data")
    const data = this.data.subarray(this.offset, this.offset + length)
    this.offset += length
    return { type, data }
  }
}

/** Parse the V2 binary format. */
export const deserialize = (data: Uint8Array): Either.Either<Macaroon, MacaroonError> => {
  try {
    const r = new Reader(data)
    if (r.byte() !== 2) throw new Error("only the V2 binary format is supported")
    let location: string | undefined
    let f = r.field()
    if (f.type === FIELD.location) {
      location = fromUtf8(f.data)
      if (location === undefined) throw new Error("location is not UTF-8")
      f = r.field()
    }
    if (f.type !== FIELD.identifier) throw new Error("identifier expected")
    const identifier = Uint8Array.from(f.data)
    if (r.field().type !== FIELD.eos) throw new Error("end of header expected")
    const caveats: Array<Caveat> = []
    for (;;) {
      let c = r.field()
      if (c.type === FIELD.eos) break
      let caveatLocation: string | undefined
      if (c.type === FIELD.location) {
        caveatLocation = fromUtf8(c.data)
        c = r.field()
      }
      if (c.type !== FIELD.identifier) throw new Error("caveat identifier expected")
      const caveat: { identifier: Uint8Array; location?: string; verificationId?: Uint8Array } = { identifier: Uint8Array.from(c.data) }
      if (caveatLocation !== undefined) caveat.location = caveatLocation
      let next = r.field()
      if (next.type === FIELD.verificationId) {
        caveat.verificationId = Uint8Array.from(next.data)
        next = r.field()
      }
      if (next.type !== FIELD.eos) throw new Error("end of caveat expected")
      caveats.push(caveat)
    }
    const s = r.field()
    if (s.type !== FIELD.signature || s.data.length !== 32) throw new Error("32-byte signature expected")
    if (r.offset !== data.length) throw new Error("trailing bytes after the signature")
    return Either.right({ location, identifier, caveats, signature: Uint8Array.from(s.data) })
  } catch (e) {
    return Either.left(new MacaroonError({ reason: e instanceof Error ? e.message : String(e) }))
  }
}

/** Std base64 (padded) of the V2 binary form: the L402 `token`/`macaroon` value. */
export const toBase64String = (macaroon: Macaroon): string => toBase64(serialize(macaroon))

/** Hex of the V2 binary form: the `Grpc-Metadata-macaroon` header value and lnd's file content. */
export const toHexString = (macaroon: Macaroon): string => toHex(serialize(macaroon))

/** Parse std or url-safe base64 of the V2 binary form. */
export const fromBase64String = (text: string): Either.Either<Macaroon, MacaroonError> => {
  const data = fromBase64(text.trim())
  return data === undefined ? Either.left(new MacaroonError({ reason: "not base64" })) : deserialize(data)
}

export const fromHexString = (text: string): Either.Either<Macaroon, MacaroonError> => {
  const data = fromHex(text.trim())
  return data === undefined ? Either.left(new MacaroonError({ reason: "not hex" })) : deserialize(data)
}
