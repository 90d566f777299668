import { applyBatch, backoffDelay, classifyClose } from "@openagents/khala-client"
import fc from "fast-check"
import { describe, expect, it } from "vitest"

const u = (watermark: bigint, docKey: string, docVersion: bigint) => ({ watermark, docKey, docVersion, payload: `${watermark}` })

describe("apply rules", () => {
  it("skips duplicates, applies the next watermarks, and stops at a gap", () => {
    const r = applyBatch(3n, () => undefined, [u(2n, "a", 1n), u(3n, "a", 1n), u(4n, "a", 2n), u(5n, "b", 1n), u(7n, "c", 1n), u(8n, "c", 1n)])
    expect(r.duplicates).toBe(2)
    expect(r.watermark).toBe(5n)
    expect(r.gapAt).toBe(7n)
    expect(r.upserts.map((d) => d.docKey)).toEqual(["a", "b"])
  })

  it("replaces a document on an equal or newer version, keeps it on an older one, and still advances", () => {
    const versions = new Map([["a", 5n], ["b", 5n]])
    const r = applyBatch(0n, (k) => versions.get(k), [u(1n, "a", 5n), u(2n, "b", 4n), u(3n, "c", 1n)])
    expect(r.watermark).toBe(3n)
    expect(r.upserts.map((d) => [d.docKey, d.docVersion])).toEqual([["a", 5n], ["c", 1n]])
  })

  it("property: any split of a stream into overlapping, duplicated batches applies exactly the stream once", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 40 })), { maxLength: 30 }), (n, cuts) => {
        const stream = Array.from({ length: n }, (_, i) => u(BigInt(i + 1), `k${i % 5}`, BigInt(i + 1)))
        let applied = 0n
        const seen: Array<bigint> = []
        for (const [a, b] of [...cuts, [0, n] as [number, number]]) {
          const from = Math.min(a, b)
          const r = applyBatch(applied, () => undefined, stream.slice(from, Math.max(a, b)))
          if (r.watermark > applied) for (let w = applied + 1n; w <= r.watermark; w++) seen.push(w)
          applied = r.watermark
        }
        expect(seen).toEqual(stream.map((x) => x.watermark))
      })
    )
  })
})

describe("reconnect policy", () => {
  it("draws full-jitter delays under an exponential ceiling, floored by the server's retry_after", () => {
    expect(backoffDelay(0, 0.5, 0)).toBe(500)
    expect(backoffDelay(3, 1, 0)).toBe(8000)
    expect(backoffDelay(20, 0.99, 0)).toBe(29700)
    expect(backoffDelay(0, 0, 2000)).toBe(2000)
    expect(backoffDelay(2, Number.NaN, 0)).toBe(4000) // a broken random source waits the full ceiling
    fc.assert(fc.property(fc.nat({ max: 100 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
      const d = backoffDelay(attempt, r, 0)
      expect(d).toBeGreaterThanOrEqual(0)
      expect(d).toBeLessThanOrEqual(30_000)
    }))
  })

  it("reconnects on 4000–4499 and standard codes, and stops on 4500–4999", () => {
    for (const code of [1000, 1001, 1006, 1009, 1011, 4000, 4001, 4002, 4003, 4004, 4005]) expect(classifyClose(code).action).toBe("reconnect")
    expect(classifyClose(4500)).toEqual({ action: "stop", reason: "unauthorized" })
    expect(classifyClose(4501)).toEqual({ action: "stop", reason: "reauth_required" })
    expect(classifyClose(4502)).toEqual({ action: "stop", reason: "upgrade_required" })
    expect(classifyClose(4503)).toEqual({ action: "stop", reason: "bad_frame" })
    expect(classifyClose(4999).action).toBe("stop")
  })
})
