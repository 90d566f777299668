import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { canonicalJson, CanonicalJsonError, compareCodePoints, payloadHash, toHex } from "@openagents/proto/canonical-json"
import fc from "fast-check"
import { describe, expect, it } from "vitest"

interface Vector {
  readonly name: string
  readonly payload: unknown
  readonly canonical_json: string
  readonly sha256: string
}
const vectors = JSON.parse(readFileSync(new URL("../testdata/payload_hash_vectors.v1.json", import.meta.url), "utf8")) as {
  version: string
  vectors: Array<Vector>
}

describe("canonical JSON (khala.payload_hash.v1)", () => {
  it("pins the vector file's version", () => {
    expect(vectors.version).toBe("khala.payload_hash.v1")
    expect(vectors.vectors.length).toBeGreaterThanOrEqual(10)
  })

  for (const vector of vectors.vectors) {
    it(`reproduces vector ${vector.name}: canonical text and SHA-256`, async () => {
      expect(canonicalJson(vector.payload)).toBe(vector.canonical_json)
      expect(`sha256:${toHex(await payloadHash(vector.payload))}`).toBe(vector.sha256)
      expect(`sha256:${createHash("sha256").update(vector.canonical_json, "utf8").digest("hex")}`).toBe(vector.sha256)
    })
  }

  it("orders keys by UTF-8 bytes where UTF-16 code-unit order differs", () => {
    const astral = "\u{1F600}"
    const privateUse = "\uE000"
    expect([astral, privateUse].sort()).toEqual([astral, privateUse]) // UTF-16 order: astral first
    expect([astral, privateUse].sort(compareCodePoints)).toEqual([privateUse, astral])
    expect(canonicalJson({ [astral]: 1, [privateUse]: 2 })).toBe(`{"${privateUse}":2,"${astral}":1}`)
  })

  it("writes -0 as 0, omits undefined members, and writes Dates as ISO strings", () => {
    expect(canonicalJson({ a: -0, b: undefined, c: new Date(Date.UTC(2026, 10, 24)) })).toBe(`{"a":0,"c":"2026-11-24T00:00:00.000Z"}`)
  })

  it.each([
    ["NaN", { n: Number.NaN }, "$.n"],
    ["Infinity", [Number.POSITIVE_INFINITY], "$[0]"],
    ["bigint", { id: 1n }, "$.id"],
    ["undefined array item", [1, undefined], "$[1]"],
    ["function", { f: () => 1 }, "$.f"],
    ["class instance", { m: new Map() }, "$.m"],
    ["invalid Date", { d: new Date(Number.NaN) }, "$.d"]
  ])("refuses %s with a typed error naming the path", (_name, value, path) => {
    let error: unknown
    try {
      canonicalJson(value)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(CanonicalJsonError)
    expect((error as CanonicalJsonError).code).toBe("invalid_payload")
    expect((error as CanonicalJsonError).path).toBe(path)
  })

  it("refuses circular structures", () => {
    const a: Record<string, unknown> = {}
    a["self"] = a
    expect(() => canonicalJson(a)).toThrow(CanonicalJsonError)
  })

  const json = fc.jsonValue({ maxDepth: 4 })

  it("property: canonical text parses back to an equal value and is a fixed point", () => {
    fc.assert(
      fc.property(json, (value) => {
        const text = canonicalJson(value)
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)))
        expect(canonicalJson(JSON.parse(text))).toBe(text)
      }),
      { numRuns: 500 }
    )
  })

  it("property: key insertion order never changes the canonical text", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: "binary" }), fc.jsonValue({ maxDepth: 2 })), (record) => {
        const reversed = Object.fromEntries(Object.entries(record).reverse())
        expect(canonicalJson(reversed)).toBe(canonicalJson(record))
      }),
      { numRuns: 300 }
    )
  })

  it("property: compareCodePoints agrees with comparing UTF-8 bytes", () => {
    const utf8 = (s: string) => Buffer.from(s, "utf8")
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (a, b) => {
        expect(Math.sign(compareCodePoints(a, b))).toBe(Math.sign(Buffer.compare(utf8(a), utf8(b))))
      }),
      { numRuns: 1000 }
    )
  })

  it("property: strings and keys are escaped exactly as JSON.stringify escapes them (any UTF-16, lone surrogates included)", () => {
    // Code units weighted towards the ones that need escaping: controls, '"', '\\', surrogates.
    const unit = fc.oneof(
      fc.integer({ min: 0, max: 0x1f }),
      fc.constantFrom(0x22, 0x5c, 0x7f, 0x2028, 0xfffe),
      fc.integer({ min: 0xd800, max: 0xdfff }),
      fc.integer({ min: 0x20, max: 0xffff })
    ).map((c) => String.fromCharCode(c))
    const text = fc.string({ unit, maxLength: 40 })
    fc.assert(
      fc.property(text, text, (s, key) => {
        expect(canonicalJson(s)).toBe(JSON.stringify(s))
        expect(canonicalJson({ [key]: s })).toBe(`{${JSON.stringify(key)}:${JSON.stringify(s)}}`)
      }),
      { numRuns: 2000 }
    )
  })
})
