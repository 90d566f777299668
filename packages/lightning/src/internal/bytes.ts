// Byte helpers shared by the Lightning modules: hex, UTF-8, base64 (std and url-safe) and the
// 5-bit/8-bit regrouping BOLT #11 uses. Pure functions over Uint8Array; nothing Node-only, so the
// modules that use them run in browsers too.
import { base64, base64url, base64urlnopad, hex } from "@scure/base"

export const toHex = (bytes: Uint8Array): string => hex.encode(bytes)

/** Lower- or upper-case hex of even length, else undefined. */
export const fromHex = (text: string): Uint8Array | undefined =>
  text.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(text) ? hex.decode(text.toLowerCase()) : undefined

export const isHex = (text: string, bytes?: number): boolean =>
  /^[0-9a-f]*$/.test(text) && text.length % 2 === 0 && (bytes === undefined || text.length === bytes * 2)

const encoder = new TextEncoder()
export const utf8 = (text: string): Uint8Array => encoder.encode(text)

/** Strict UTF-8 decode; undefined for invalid sequences. */
export const fromUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}

export const toBase64 = (bytes: Uint8Array): string => base64.encode(bytes)
export const toBase64Url = (bytes: Uint8Array): string => base64urlnopad.encode(bytes)

/** Std or url-safe base64, padded or not; undefined when it does not decode. */
export const fromBase64 = (text: string): Uint8Array | undefined => {
  const urlSafe = /[-_]/.test(text)
  const stripped = text.replace(/=+$/, "")
  const padded = stripped + "=".repeat((4 - (stripped.length % 4)) % 4)
  try {
    return urlSafe ? base64url.decode(padded) : base64.decode(padded)
  } catch {
    return undefined
  }
}

export const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

/**
 * Regroup bits (BIP-173 convertbits). With `pad`, the tail is zero-padded to a full group (how
 * BOLT #11 turns 5-bit data into bytes for signing); without it, leftover bits are dropped.
 */
export const convertBits = (data: ArrayLike<number>, from: number, to: number, pad: boolean): Array<number> => {
  let acc = 0
  let bits = 0
  const out: Array<number> = []
  const maxv = (1 << to) - 1
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | data[i]!
    bits += from
    while (bits >= to) {
      bits -= to
      out.push((acc >> bits) & maxv)
    }
    acc &= (1 << bits) - 1
  }
  if (pad && bits > 0) out.push((acc << (to - bits)) & maxv)
  return out
}

/** Big-endian unsigned integer of 5-bit words. */
export const wordsToInt = (words: ReadonlyArray<number>): bigint => words.reduce((n, w) => (n << 5n) | BigInt(w), 0n)

/** The shortest big-endian 5-bit words of a non-negative integer (at least one word). */
export const intToWords = (value: bigint | number, minWords = 1): Array<number> => {
  let n = BigInt(value)
  const out: Array<number> = []
  while (n > 0n) {
    out.unshift(Number(n & 31n))
    n >>= 5n
  }
  while (out.length < minWords) out.unshift(0)
  return out
}
