// Projection checkpoints and parity. A projector records, per (projection, entity), the last
// authority seq it folded in, the projection version and the hash of the summary it wrote. The
// parity check compares those records with the read model and with the authority:
//
//   missing        the checkpoint names a document the read model does not have
//   hash_mismatch  the stored document does not hash to the checkpoint's summary hash, or its
//                  stored payload_hash does not match its payload (a tampered read model)
//   lag            the document or the checkpoint is behind the authority's latest seq
//
// Drift is repaired by re-projecting from the authority's event log, never by editing rows.
import { canonicalJson, toHex } from "@openagents/proto/canonical-json"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { JournalStorageError } from "./Errors.js"
import { hashCanonical } from "./internal/prepare.js"
import type { Checkpoint } from "./Storage.js"
import { KhalaStorage } from "./Storage.js"
import * as Topic from "./Topic.js"

export type { Checkpoint } from "./Storage.js"

export type ParityIssue =
  | { readonly kind: "missing"; readonly checkpoint: Checkpoint }
  | { readonly kind: "hash_mismatch"; readonly checkpoint: Checkpoint; readonly storedHash: string; readonly recomputedHash: string }
  | { readonly kind: "lag"; readonly checkpoint: Checkpoint; readonly documentVersion: bigint | undefined; readonly authoritySeq: bigint | undefined }
  | { readonly kind: "unsupported_projection"; readonly checkpoint: Checkpoint }

export interface ParityReport {
  readonly projectionName: string
  readonly checked: number
  readonly issues: ReadonlyArray<ParityIssue>
  /** issues / checked (0 when nothing was checked). */
  readonly mismatchRate: number
}

export interface ParityOptions {
  /** The authority's latest seq for an entity, when the caller can supply it (for lag). */
  readonly latestSeq?: ((entityId: string) => Effect.Effect<bigint | undefined>) | undefined
  /** Most checkpoints to examine (default: all). */
  readonly limit?: number | undefined
}

export interface CheckpointsService {
  readonly get: (projectionName: string, entityId: string) => Effect.Effect<Checkpoint | undefined, JournalStorageError>
  /** Record a checkpoint; call it in the transaction that publishes the summary. */
  readonly put: (checkpoint: Checkpoint) => Effect.Effect<void, JournalStorageError>
  readonly parity: (projectionName: string, options?: ParityOptions) => Effect.Effect<ParityReport, JournalStorageError>
}

export class Checkpoints extends Context.Tag("@openagents/khala-core/Checkpoints")<Checkpoints, CheckpointsService>() {}

/** The summary hash recorded in checkpoints: lower-case hex SHA-256 of the canonical JSON. */
export const summaryHash = (summary: unknown): string => toHex(hashCanonical(canonicalJson(summary)))

export const make: Effect.Effect<CheckpointsService, never, KhalaStorage> = Effect.gen(function*() {
  const storage = yield* KhalaStorage
  const registry = yield* Topic.TopicClasses

  const checkOne = (cp: Checkpoint, options?: ParityOptions) =>
    Effect.gen(function*() {
      const parsed = registry.parse(cp.topic)
      const table = "topicClass" in parsed ? parsed.topicClass.readModelTable : undefined
      if (table === undefined) return [{ kind: "unsupported_projection", checkpoint: cp }] as Array<ParityIssue>
      const doc = yield* storage.getDocument(table, cp.topic, cp.documentId)
      if (doc === undefined) return [{ kind: "missing", checkpoint: cp }] as Array<ParityIssue>
      const issues: Array<ParityIssue> = []
      const recomputed = toHex(hashCanonical(doc.payload))
      const stored = toHex(doc.payloadHash)
      if (recomputed !== stored || recomputed !== cp.summaryHash) {
        issues.push({ kind: "hash_mismatch", checkpoint: cp, storedHash: stored, recomputedHash: recomputed })
      }
      const authoritySeq = options?.latestSeq ? yield* options.latestSeq(cp.entityId) : undefined
      if (doc.docVersion < cp.lastRuntimeSeq || (authoritySeq !== undefined && authoritySeq > cp.lastRuntimeSeq)) {
        issues.push({ kind: "lag", checkpoint: cp, documentVersion: doc.docVersion, authoritySeq })
      }
      return issues
    })

  return {
    get: storage.getCheckpoint,
    put: storage.putCheckpoint,
    parity: (projectionName, options) =>
      Effect.gen(function*() {
        const limit = options?.limit ?? Number.MAX_SAFE_INTEGER
        const issues: Array<ParityIssue> = []
        let checked = 0
        let after = ""
        while (checked < limit) {
          const page = yield* storage.listCheckpoints(projectionName, after, Math.min(500, limit - checked))
          if (page.length === 0) break
          for (const cp of page) issues.push(...(yield* checkOne(cp, options)))
          checked += page.length
          after = page[page.length - 1]!.entityId
        }
        return { projectionName, checked, issues, mismatchRate: checked === 0 ? 0 : issues.length / checked }
      })
  }
})

export const layer: Layer.Layer<Checkpoints, never, KhalaStorage> = Layer.effect(Checkpoints, make)
