// The commit's preparation: the hash both Node code paths compute, and the UTF-8 an event keeps.
import { canonicalJson } from "@openagents/proto/canonical-json"
import * as fc from "fast-check"
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import { eventOf, prepareBatch, sha256OneShot, sha256Streaming } from "../src/internal/prepare.js"
import * as Topic from "../src/Topic.js"

const registry = Topic.makeRegistry(Topic.defaultClasses)
const topic = registry.parse("runtime.notifications:user:u1") as Topic.Topic

describe("prepareBatch", () => {
  it("property: the one-shot and the streaming SHA-256 agree with createHash over the UTF-8, for any text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        const expected = new Uint8Array(createHash("sha256").update(Buffer.from(text, "utf8")).digest())
        expect(sha256OneShot(text)).toEqual(expected)
        expect(sha256Streaming(text)).toEqual(expected)
        expect(sha256OneShot(new TextEncoder().encode(text))).toEqual(expected)
      }),
      { numRuns: 300 }
    )
  })

  it("property: an entry's size, hash and the event's UTF-8 are those of its canonical JSON", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (payload) => {
        const prepared = prepareBatch(topic, [{ docKey: "d", docVersion: 1, payload }], true)
        if (!Array.isArray(prepared)) throw new Error(String(prepared))
        const entry = prepared[0]!
        const bytes = Buffer.from(canonicalJson(payload), "utf8")
        expect(entry.payloadBytes).toBe(bytes.length)
        expect(Buffer.from(entry.payloadHash)).toEqual(createHash("sha256").update(bytes).digest())
        const event = eventOf(topic.topic, 1n, entry, new Date(0))
        expect(Buffer.from(event.payloadUtf8!)).toEqual(bytes)
        // The event's bytes own their buffer (a retained event pins nothing else).
        expect(event.payloadUtf8!.byteLength).toBe(event.payloadUtf8!.buffer.byteLength)
      }),
      { numRuns: 300 }
    )
  })
})
