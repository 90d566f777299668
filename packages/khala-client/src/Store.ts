// Where a client keeps, per topic, the documents it has applied and the watermark they reach.
//
// The contract, which every store keeps and which is what makes a crash safe: `apply` writes the
// documents AND the watermark atomically — both or neither. A client never persists a watermark
// ahead of the documents it covers, so after a crash it resumes from a watermark whose documents
// it has, and the server re-sends everything after it (duplicates are discarded on apply).
//
// Stores here: memory (default), localStorage and IndexedDB (browsers), and a file store for Node
// (`@openagents/khala-client/node`). React Native and desktop apps implement this interface over
// SQLite/MMKV: one transaction per `apply`.
export interface StoredDocument {
  readonly docKey: string
  readonly docVersion: bigint
  /** The document as canonical JSON text; null when it must be hydrated over HTTP. */
  readonly payload: string | null
}

export interface TopicState {
  /** The journal epoch the watermark belongs to ("" when unknown). */
  readonly epoch: string
  /** Everything up to this watermark is applied. */
  readonly watermark: bigint
  readonly documents: ReadonlyArray<StoredDocument>
}

export interface TopicChange {
  readonly epoch: string
  readonly watermark: bigint
  /** Documents to insert or replace. */
  readonly upserts: ReadonlyArray<StoredDocument>
  /** Replace the topic's documents with `upserts` (snapshot recovery) instead of merging. */
  readonly replace?: boolean
}

export interface SyncStore {
  /** The persisted state of a topic, or undefined when there is none. */
  readonly load: (topic: string) => Promise<TopicState | undefined>
  /** Apply documents and watermark atomically. */
  readonly apply: (topic: string, change: TopicChange) => Promise<void>
  /** Forget a topic. */
  readonly clear: (topic: string) => Promise<void>
  readonly close?: () => Promise<void>
}

/** Keeps everything in memory: survives reconnects, not restarts. */
export const memoryStore = (): SyncStore => {
  const topics = new Map<string, { epoch: string; watermark: bigint; documents: Map<string, StoredDocument> }>()
  return {
    load: async (topic) => {
      const t = topics.get(topic)
      return t === undefined ? undefined : { epoch: t.epoch, watermark: t.watermark, documents: [...t.documents.values()] }
    },
    apply: async (topic, change) => {
      let t = topics.get(topic)
      if (t === undefined || change.replace) topics.set(topic, t = { epoch: change.epoch, watermark: change.watermark, documents: new Map() })
      for (const doc of change.upserts) t.documents.set(doc.docKey, doc)
      t.epoch = change.epoch
      t.watermark = change.watermark
    },
    clear: async (topic) => {
      topics.delete(topic)
    }
  }
}

// Serialisation shared by the string-based stores (localStorage, files).
export interface SerializedTopic {
  readonly e: string
  readonly w: string
  readonly d: ReadonlyArray<readonly [string, string, string | null]>
}
export const serialize = (state: TopicState): SerializedTopic => ({
  e: state.epoch,
  w: state.watermark.toString(),
  d: state.documents.map((doc) => [doc.docKey, doc.docVersion.toString(), doc.payload] as const)
})
export const deserialize = (s: SerializedTopic): TopicState => ({
  epoch: s.e,
  watermark: BigInt(s.w),
  documents: s.d.map(([docKey, docVersion, payload]) => ({ docKey, docVersion: BigInt(docVersion), payload }))
})
/** Merge a change into a state (what every store's `apply` does). */
export const merge = (state: TopicState | undefined, change: TopicChange): TopicState => {
  const docs = new Map<string, StoredDocument>()
  if (state !== undefined && !change.replace) for (const d of state.documents) docs.set(d.docKey, d)
  for (const d of change.upserts) docs.set(d.docKey, d)
  return { epoch: change.epoch, watermark: change.watermark, documents: [...docs.values()] }
}
