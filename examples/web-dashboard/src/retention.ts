// A worker's event topic grows by one document per event, for as long as the worker runs (the
// demo worker: one a second). The page shows the newest few; this store wrapper keeps IndexedDB
// bounded too: once an event topic holds twice `keep` documents, the newest `keep` (by
// docVersion, which is the event's seq) replace them, with the same watermark — through the
// store contract's `replace`, in one transaction, so documents and watermark stay together.
// Dropping older events behind the client's back is safe: they are all at or below the
// watermark, which is unchanged, so the client never asks for them again.
//
// What it does not bound: the client's own in-memory copy of a subscribed topic, which holds
// every document applied since the page loaded (khala-client has no per-topic retention). A
// reload starts from the trimmed store.
import type { SyncStore } from "@openagents/khala-client"

export const keepNewest = (inner: SyncStore, options: { readonly keep: number; readonly topics: (topic: string) => boolean }): SyncStore => {
  // Documents per trimmed topic as far as this page knows (loaded, plus upserts since: an upsert
  // of a document already there counts twice, which only trims a little early).
  const counts = new Map<string, number>()
  return {
    load: async (topic) => {
      const state = await inner.load(topic)
      if (options.topics(topic)) counts.set(topic, state?.documents.length ?? 0)
      return state
    },
    apply: async (topic, change) => {
      await inner.apply(topic, change)
      if (!options.topics(topic)) return
      const count = (change.replace === true ? 0 : (counts.get(topic) ?? 0)) + change.upserts.length
      counts.set(topic, count)
      if (count <= 2 * options.keep) return
      const state = await inner.load(topic)
      if (state === undefined) return
      const newest = [...state.documents].sort((a, b) => (a.docVersion === b.docVersion ? 0 : a.docVersion > b.docVersion ? -1 : 1)).slice(0, options.keep)
      await inner.apply(topic, { epoch: state.epoch, watermark: state.watermark, upserts: newest, replace: true })
      counts.set(topic, newest.length)
    },
    clear: async (topic) => {
      counts.delete(topic)
      await inner.clear(topic)
    },
    ...(inner.close === undefined ? {} : { close: inner.close })
  }
}
