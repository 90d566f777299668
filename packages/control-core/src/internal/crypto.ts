// Randomness, hashing and constant-time comparison, in one place so that every secret the
// control plane issues (codes, refresh tokens, session cookies, ids) comes from the CSPRNG and
// every secret it checks is compared without a timing side channel.
import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from "node:crypto"

/** `<prefix>_<32 hex chars>` (128 random bits). */
export const randomId = (prefix: string): string => `${prefix}_${randomBytes(16).toString("hex")}`

/** A bearer secret: `<prefix>_<43 base64url chars>` (256 random bits). */
export const randomSecret = (prefix: string): string => `${prefix}_${randomBytes(32).toString("base64url")}`

/** A numeric one-time code of `digits` digits, uniformly distributed. */
export const randomDigits = (digits: number): string => {
  let out = ""
  for (let i = 0; i < digits; i++) out += String(randomInt(0, 10))
  return out
}

/** A UUIDv7 (time-ordered) as 32 lower-case hex chars, for `evt_` and `dep_` ids. */
export const uuid7Hex = (nowMs: number): string => {
  const bytes = randomBytes(16)
  let ts = BigInt(nowMs)
  for (let i = 5; i >= 0; i--) {
    bytes[i] = Number(ts & 0xffn)
    ts >>= 8n
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x70
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  return bytes.toString("hex")
}

export const sha256Hex = (value: string | Uint8Array): string => createHash("sha256").update(value).digest("hex")

export const hmacHex = (key: string | Uint8Array, value: string): string => createHmac("sha256", key).update(value).digest("hex")

/** Constant-time string equality (the length is not secret). */
export const safeEqual = (a: string, b: string): boolean => {
  const x = Buffer.from(a, "utf8")
  const y = Buffer.from(b, "utf8")
  return x.length === y.length && timingSafeEqual(x, y)
}
