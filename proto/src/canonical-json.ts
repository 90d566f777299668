// Canonical JSON, the byte form every OpenAgents payload hash and hash chain is computed over
// (`khala.payload_hash.v1`), defined so that any language can reproduce it:
//
// - objects: members sorted by key, compared as UTF-8 byte strings (equivalently, by Unicode
//   code point — NOT by UTF-16 code unit, which orders U+E000..U+FFFF after astral characters
//   differently); no whitespace; a duplicate key cannot occur (input is a parsed value);
// - arrays keep their order; strings are escaped as ECMAScript JSON.stringify escapes them
//   (RFC 8785 §3.2.2.2); numbers are written as ECMAScript Number.prototype.toString writes them
//   (RFC 8785 §3.2.2.3: shortest round-trip form, exponent for |x| >= 1e21 or < 1e-6), -0 as 0;
// - `null`, `true`, `false` as themselves. Anything else (undefined, functions, symbols, bigint,
//   NaN, ±Infinity, non-plain objects other than Date) is refused: there is no portable
//   form for it. Object members whose value is undefined are omitted, as JSON.stringify does.
//   A Date is written as its ISO-8601 string (toJSON).
//
// The committed vectors in proto/testdata/payload_hash_vectors.v1.json pin this definition.
export class CanonicalJsonError extends Error {
  readonly code = "invalid_payload"
  constructor(readonly path: string, reason: string) {
    super(`payload is not canonicalisable at ${path}: ${reason}`)
    this.name = "CanonicalJsonError"
  }
}

/** Compare two strings by Unicode code point (= UTF-8 byte order). */
export const compareCodePoints = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // A surrogate (part of an astral character, >= U+10000) sorts after every BMP character,
    // although its UTF-16 code unit (0xD800..0xDFFF) is below 0xE000..0xFFFF.
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs !== ys) return xs ? 1 : -1
    return x - y
  }
  return a.length - b.length
}

const writeNumber = (value: number, path: string): string => {
  if (!Number.isFinite(value)) throw new CanonicalJsonError(path, `${value} has no JSON form`)
  return Object.is(value, -0) ? "0" : String(value)
}

const write = (value: unknown, path: string, out: Array<string>, seen: Set<object>): void => {
  switch (typeof value) {
    case "string":
      out.push(JSON.stringify(value))
      return
    case "number":
      out.push(writeNumber(value, path))
      return
    case "boolean":
      out.push(value ? "true" : "false")
      return
    case "object": {
      if (value === null) {
        out.push("null")
        return
      }
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new CanonicalJsonError(path, "invalid Date")
        out.push(JSON.stringify(value.toISOString()))
        return
      }
      if (seen.has(value)) throw new CanonicalJsonError(path, "circular reference")
      seen.add(value)
      if (Array.isArray(value)) {
        out.push("[")
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out.push(",")
          const item = value[i]
          // JSON.stringify writes holes and undefined items as null; a canonical form must not guess.
          if (item === undefined) throw new CanonicalJsonError(`${path}[${i}]`, "undefined array item")
          write(item, `${path}[${i}]`, out, seen)
        }
        out.push("]")
      } else {
        const proto = Object.getPrototypeOf(value)
        if (proto !== Object.prototype && proto !== null) {
          throw new CanonicalJsonError(path, `${proto?.constructor?.name ?? "object"} is not a plain object`)
        }
        const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort(compareCodePoints)
        out.push("{")
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i]!
          if (i > 0) out.push(",")
          out.push(JSON.stringify(key), ":")
          write((value as Record<string, unknown>)[key], `${path}.${key}`, out, seen)
        }
        out.push("}")
      }
      seen.delete(value)
      return
    }
    default:
      throw new CanonicalJsonError(path, `${typeof value} has no JSON form`)
  }
}

/** The canonical JSON text of `value`. Throws CanonicalJsonError for values without one. */
export const canonicalJson = (value: unknown): string => {
  const out: Array<string> = []
  write(value, "$", out, new Set())
  return out.join("")
}

const encoder = new TextEncoder()

/** The canonical JSON of `value` as UTF-8 bytes. */
export const canonicalJsonBytes = (value: unknown): Uint8Array => encoder.encode(canonicalJson(value))

/** Lower-case hex of bytes. */
export const toHex = (bytes: Uint8Array): string => {
  let s = ""
  for (const b of bytes) s += b.toString(16).padStart(2, "0")
  return s
}

/**
 * SHA-256 of the canonical JSON of `value` (32 raw bytes), through WebCrypto so it runs in
 * browsers, React Native with a WebCrypto polyfill, and Node. Servers with node:crypto may
 * compute the same digest synchronously over `canonicalJsonBytes(value)`.
 */
export const payloadHash = async (value: unknown): Promise<Uint8Array> =>
  new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", canonicalJsonBytes(value) as BufferSource))
