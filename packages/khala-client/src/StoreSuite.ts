// The store conformance suite: every SyncStore — memory, localStorage, IndexedDB, the Node file
// store, or one you write for React Native or a desktop app — must pass it.
//
//   import { StoreSuite } from "@openagents/khala-client/testing"
//   StoreSuite.run("sqlite", () => mySqliteStore())
import { describe, expect, it } from "vitest"
import type { SyncStore } from "./Store.js"

export interface SuiteOptions {
  /** Open the same store again (a process restart); omit for stores that live in memory only. */
  readonly reopen?: () => SyncStore | Promise<SyncStore>
}

export const run = (name: string, make: () => SyncStore | Promise<SyncStore>, options: SuiteOptions = {}) =>
  describe(`sync store conformance: ${name}`, () => {
    it("loads nothing for an unknown topic", async () => {
      const store = await make()
      expect(await store.load("t:none")).toBeUndefined()
    })

    it("applies documents and the watermark together, merging by doc key", async () => {
      const store = await make()
      await store.apply("t:a", { epoch: "ep1", watermark: 2n, upserts: [{ docKey: "x", docVersion: 1n, payload: `{"v":1}` }, { docKey: "y", docVersion: 1n, payload: null }] })
      await store.apply("t:a", { epoch: "ep1", watermark: 5n, upserts: [{ docKey: "x", docVersion: 3n, payload: `{"v":3}` }] })
      const state = await store.load("t:a")
      expect(state?.epoch).toBe("ep1")
      expect(state?.watermark).toBe(5n)
      expect(new Map(state!.documents.map((d) => [d.docKey, [d.docVersion, d.payload]]))).toEqual(new Map([["x", [3n, `{"v":3}`]], ["y", [1n, null]]]))
    })

    it("replaces a topic's documents on a snapshot, and keeps topics apart", async () => {
      const store = await make()
      await store.apply("t:b", { epoch: "ep1", watermark: 9n, upserts: [{ docKey: "old", docVersion: 1n, payload: "{}" }] })
      await store.apply("t:c", { epoch: "ep1", watermark: 1n, upserts: [{ docKey: "other", docVersion: 1n, payload: "{}" }] })
      await store.apply("t:b", { epoch: "ep2", watermark: 40n, upserts: [{ docKey: "new", docVersion: 7n, payload: `{"n":1}` }], replace: true })
      const b = await store.load("t:b")
      expect(b?.documents.map((d) => d.docKey)).toEqual(["new"])
      expect([b?.epoch, b?.watermark]).toEqual(["ep2", 40n])
      expect((await store.load("t:c"))?.documents.map((d) => d.docKey)).toEqual(["other"])
    })

    it("keeps 64-bit watermarks and versions exactly", async () => {
      const store = await make()
      const big = 2n ** 63n - 1n
      await store.apply("t:big", { epoch: "e", watermark: big, upserts: [{ docKey: "k", docVersion: big - 1n, payload: "[]" }] })
      const state = await store.load("t:big")
      expect(state?.watermark).toBe(big)
      expect(state?.documents[0]?.docVersion).toBe(big - 1n)
    })

    it("clears a topic", async () => {
      const store = await make()
      await store.apply("t:d", { epoch: "e", watermark: 1n, upserts: [] })
      await store.clear("t:d")
      expect(await store.load("t:d")).toBeUndefined()
    })

    it("serialises concurrent applies without losing one", async () => {
      const store = await make()
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.apply("t:e", { epoch: "e", watermark: BigInt(i + 1), upserts: [{ docKey: `k${i}`, docVersion: 1n, payload: `${i}` }] })))
      const state = await store.load("t:e")
      expect(state?.documents.length).toBe(20)
      expect(state?.watermark).toBe(20n)
    })

    if (options.reopen !== undefined) {
      it("survives being reopened (a process restart)", async () => {
        const store = await make()
        await store.apply("t:f", { epoch: "e", watermark: 3n, upserts: [{ docKey: "k", docVersion: 2n, payload: `"kept"` }] })
        await store.close?.()
        const again = await options.reopen!()
        const state = await again.load("t:f")
        expect(state?.watermark).toBe(3n)
        expect(state?.documents).toEqual([{ docKey: "k", docVersion: 2n, payload: `"kept"` }])
      })
    }
  })
