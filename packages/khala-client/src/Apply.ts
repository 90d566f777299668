// The apply rules, pure. Per topic: an update at or below the last applied watermark is a
// duplicate and is skipped; the next update must be exactly last + 1 (anything else is a gap: the
// batch is not applied and the client resubscribes from what it has). Per document: an update
// replaces the cached document when its doc_version is >= the cached one (equal versions
// overwrite: a re-projection may re-emit); an older version is skipped but still advances the
// watermark.
import type { StoredDocument } from "./Store.js"

export interface IncomingUpdate {
  readonly watermark: bigint
  readonly docKey: string
  readonly docVersion: bigint
  /** UTF-8 JSON text, or null when hydration is required. */
  readonly payload: string | null
}

export interface ApplyResult {
  /** The watermark after this batch (unchanged when nothing new). */
  readonly watermark: bigint
  /** Documents to store (latest per key within the batch). */
  readonly upserts: ReadonlyArray<StoredDocument>
  readonly duplicates: number
  /** Set when the batch skips watermarks: nothing from the gap onward is applied. */
  readonly gapAt: bigint | undefined
}

export const applyBatch = (
  lastApplied: bigint,
  versionOf: (docKey: string) => bigint | undefined,
  updates: ReadonlyArray<IncomingUpdate>
): ApplyResult => {
  let watermark = lastApplied
  let duplicates = 0
  const upserts = new Map<string, StoredDocument>()
  for (const u of updates) {
    if (u.watermark <= watermark) {
      duplicates++
      continue
    }
    if (u.watermark !== watermark + 1n) return { watermark, upserts: [...upserts.values()], duplicates, gapAt: u.watermark }
    watermark = u.watermark
    const cached = upserts.get(u.docKey)?.docVersion ?? versionOf(u.docKey)
    if (cached !== undefined && u.docVersion < cached) continue
    upserts.set(u.docKey, { docKey: u.docKey, docVersion: u.docVersion, payload: u.payload })
  }
  return { watermark, upserts: [...upserts.values()], duplicates, gapAt: undefined }
}
