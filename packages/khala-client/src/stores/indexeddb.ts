// IndexedDB store: documents keyed by [topic, docKey] and one cursor row per topic, written in one
// readwrite transaction per apply — documents and watermark commit together or not at all.
import type { StoredDocument, SyncStore } from "../Store.js"

const DOCS = "documents"
const CURSORS = "cursors"

const request = <T>(r: IDBRequest<T>) =>
  new Promise<T>((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })

/** Delete a topic's documents, then continue — all within the caller's transaction. */
const deleteTopicDocs = (docs: IDBObjectStore, topic: string, then: () => void) => {
  const keys = docs.index("topic").getAllKeys(topic)
  keys.onsuccess = () => {
    for (const key of keys.result) docs.delete(key)
    then()
  }
}

export const indexedDbStore = (options: { name?: string; indexedDB?: IDBFactory } = {}): SyncStore => {
  const factory = options.indexedDB ?? (globalThis as unknown as { indexedDB?: IDBFactory }).indexedDB
  if (factory === undefined) throw new Error("IndexedDB is not available here; use localStorageStore or memoryStore")
  const opening = new Promise<IDBDatabase>((resolve, reject) => {
    const open = factory.open(options.name ?? "khala-sync", 1)
    open.onupgradeneeded = () => {
      const db = open.result
      db.createObjectStore(DOCS, { keyPath: ["topic", "docKey"] }).createIndex("topic", "topic")
      db.createObjectStore(CURSORS, { keyPath: "topic" })
    }
    open.onsuccess = () => resolve(open.result)
    open.onerror = () => reject(open.error)
  })
  const done = (tx: IDBTransaction) =>
    new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error)
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"))
    })
  return {
    load: async (topic) => {
      const db = await opening
      const tx = db.transaction([DOCS, CURSORS], "readonly")
      const cursor = await request<{ epoch: string; watermark: string } | undefined>(tx.objectStore(CURSORS).get(topic))
      if (cursor === undefined) return undefined
      const rows = await request<Array<{ docKey: string; docVersion: string; payload: string | null }>>(tx.objectStore(DOCS).index("topic").getAll(topic))
      return {
        epoch: cursor.epoch,
        watermark: BigInt(cursor.watermark),
        documents: rows.map((r): StoredDocument => ({ docKey: r.docKey, docVersion: BigInt(r.docVersion), payload: r.payload }))
      }
    },
    apply: async (topic, change) => {
      const db = await opening
      const tx = db.transaction([DOCS, CURSORS], "readwrite")
      const docs = tx.objectStore(DOCS)
      const write = () => {
        for (const d of change.upserts) docs.put({ topic, docKey: d.docKey, docVersion: d.docVersion.toString(), payload: d.payload })
        tx.objectStore(CURSORS).put({ topic, epoch: change.epoch, watermark: change.watermark.toString() })
      }
      if (change.replace) deleteTopicDocs(docs, topic, write)
      else write()
      await done(tx)
    },
    clear: async (topic) => {
      const db = await opening
      const tx = db.transaction([DOCS, CURSORS], "readwrite")
      deleteTopicDocs(tx.objectStore(DOCS), topic, () => tx.objectStore(CURSORS).delete(topic))
      await done(tx)
    },
    close: async () => (await opening).close()
  }
}
