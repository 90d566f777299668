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

// What JSON.stringify would escape in a string: '"', '\\', control characters, and (well-formed
// JSON.stringify) lone surrogates. A string without any is quoted as it is, which is cheaper than
// JSON.stringify (with the concatenation below: 0.89 → 0.47 µs for a 100 B document, ~15% at 2 KiB).
// eslint-disable-next-line no-control-regex -- the control characters are what it looks for
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/
const quote = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`)

// Built by string concatenation (V8 joins the pieces as a rope, flattened once when the text is
// hashed or encoded), not an array of parts and a join.
const write = (value: unknown, path: string, seen: Set<object>): string => {
  switch (typeof value) {
    case "string":
      return quote(value)
    case "number":
      return writeNumber(value, path)
    case "boolean":
      return value ? "true" : "false"
    case "object": {
      if (value === null) return "null"
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new CanonicalJsonError(path, "invalid Date")
        return quote(value.toISOString())
      }
      if (seen.has(value)) throw new CanonicalJsonError(path, "circular reference")
      seen.add(value)
      let out: string
      if (Array.isArray(value)) {
        out = "["
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ","
          const item = value[i]
          // JSON.stringify writes holes and undefined items as null; a canonical form must not guess.
          if (item === undefined) throw new CanonicalJsonError(`${path}[${i}]`, "undefined array item")
          out += write(item, `${path}[${i}]`, seen)
        }
        out += "]"
      } else {
        const proto = Object.getPrototypeOf(value)
        if (proto !== Object.prototype && proto !== null) {
          throw new CanonicalJsonError(path, `${proto?.constructor?.name ?? "object"} is not a plain object`)
        }
        const record = value as Record<string, unknown>
        const keys = Object.keys(record)
        // Keys in code-point order; members whose value is undefined are omitted.
        if (keys.length > 1) keys.sort(compareCodePoints)
        out = "{"
        let first = true
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i]!
          const member = record[key]
          if (member === undefined) continue
          if (!first) out += ","
          first = false
          out += quote(key) + ":" + write(member, `${path}.${key}`, seen)
        }
        out += "}"
      }
      seen.delete(value)
      return out
    }
    default:
      throw new CanonicalJsonError(path, `${typeof value} has no JSON form`)
  }
}

/** The canonical JSON text of `value`. Throws CanonicalJsonError for values without one. */
export const canonicalJson = (value: unknown): string => write(value, "$", new Set())

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
