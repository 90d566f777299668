// localStorage store: one key per topic, the whole topic state written with one setItem, which
// is atomic. Simple and synchronous; fine for small topics; prefer IndexedDB for large ones.
import { deserialize, merge, type SerializedTopic, serialize, type SyncStore } from "../Store.js"

interface StorageLike {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

export const localStorageStore = (options: { prefix?: string; storage?: StorageLike } = {}): SyncStore => {
  const storage = options.storage ?? (globalThis as unknown as { localStorage?: StorageLike }).localStorage
  if (storage === undefined) throw new Error("localStorage is not available here")
  const key = (topic: string) => `${options.prefix ?? "khala:"}${topic}`
  const read = (topic: string) => {
    const raw = storage.getItem(key(topic))
    return raw === null ? undefined : deserialize(JSON.parse(raw) as SerializedTopic)
  }
  return {
    load: async (topic) => read(topic),
    apply: async (topic, change) => storage.setItem(key(topic), JSON.stringify(serialize(merge(read(topic), change)))),
    clear: async (topic) => storage.removeItem(key(topic))
  }
}
