import { indexedDbStore, localStorageStore, memoryStore } from "@openagents/khala-client"
import { fileStore, removeStore } from "@openagents/khala-client/node"
import { StoreSuite } from "@openagents/khala-client/testing"
import { IDBFactory } from "fake-indexeddb"
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const mapStorage = () => {
  const m = new Map<string, string>()
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) }
}

StoreSuite.run("memory", () => memoryStore())

const storage = mapStorage()
StoreSuite.run("localStorage", () => localStorageStore({ storage }), { reopen: () => localStorageStore({ storage }) })

const idb = new IDBFactory()
let idbName = 0
let currentIdb = ""
StoreSuite.run("IndexedDB", () => indexedDbStore({ name: (currentIdb = `db${idbName++}`), indexedDB: idb }), {
  reopen: () => indexedDbStore({ name: currentIdb, indexedDB: idb })
})

const dirs: Array<string> = []
let currentDir = ""
const freshDir = () => {
  currentDir = mkdtempSync(join(tmpdir(), "khala-store-"))
  dirs.push(currentDir)
  return currentDir
}
afterAll(() => dirs.forEach(removeStore))
StoreSuite.run("file", () => fileStore({ directory: freshDir(), compactAfter: 5 }), { reopen: () => fileStore({ directory: currentDir }) })

describe("file store durability", () => {
  it("discards a torn last record after a crash and keeps the documents and watermark before it together", async () => {
    const dir = freshDir()
    const store = fileStore({ directory: dir })
    await store.apply("t", { epoch: "e", watermark: 2n, upserts: [{ docKey: "a", docVersion: 1n, payload: "1" }] })
    const file = join(dir, readdirSync(dir)[0]!)
    // A crash in the middle of the next write: half a record, no newline.
    writeFileSync(file, readFileSync(file, "utf8") + `{"e":"e","w":"3","d":[["b","1"`)
    const state = await fileStore({ directory: dir }).load("t")
    expect(state).toEqual({ epoch: "e", watermark: 2n, documents: [{ docKey: "a", docVersion: 1n, payload: "1" }] })
    expect(readFileSync(file, "utf8").endsWith("\n")).toBe(true) // the torn tail was truncated
  })

  it("compacts a long log into one record without losing anything", async () => {
    const dir = freshDir()
    const store = fileStore({ directory: dir, compactAfter: 10 })
    for (let i = 1; i <= 25; i++) await store.apply("t", { epoch: "e", watermark: BigInt(i), upserts: [{ docKey: `k${i % 4}`, docVersion: BigInt(i), payload: `${i}` }] })
    const lines = readFileSync(join(dir, readdirSync(dir).find((f) => f.endsWith(".log"))!), "utf8").trim().split("\n")
    expect(lines.length).toBeLessThan(11)
    const state = await fileStore({ directory: dir }).load("t")
    expect(state?.watermark).toBe(25n)
    expect(new Map(state!.documents.map((d) => [d.docKey, d.payload]))).toEqual(new Map([["k1", "25"], ["k2", "22"], ["k3", "23"], ["k0", "24"]]))
  })
})
