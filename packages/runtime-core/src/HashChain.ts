// The run event hash chain, language-neutral (the upstream hashed Erlang terms):
//
//   payload_hash = hex(sha256(canonical_json(payload)))
//   event_hash   = hex(sha256(run_id "|" seq "|" event_type "|" payload_hash "|" (prev_hash or "root")))
//
// with canonical JSON as in @openagents/proto/canonical-json (keys by UTF-8 bytes, no whitespace).
// Any party holding the events can recompute the chain; a changed, removed or reordered event
// changes every hash after it.
import { sha256 } from "@noble/hashes/sha2"
import { canonicalJson, toHex } from "@openagents/proto/canonical-json"

const encoder = new TextEncoder()
const hex = (text: string) => toHex(sha256(encoder.encode(text)))

export const payloadHash = (payload: unknown): string => hex(canonicalJson(payload))

export const eventHash = (runId: string, seq: bigint, eventType: string, payloadDigest: string, prevHash: string | null): string =>
  hex(`${runId}|${seq}|${eventType}|${payloadDigest}|${prevHash ?? "root"}`)

export interface ChainedEvent {
  readonly seq: bigint
  readonly eventType: string
  readonly payloadHash: string
  readonly prevHash: string | null
  readonly eventHash: string
}

export type ChainProblem =
  | { readonly kind: "seq_gap"; readonly seq: bigint; readonly expected: bigint }
  | { readonly kind: "prev_hash_mismatch"; readonly seq: bigint }
  | { readonly kind: "event_hash_mismatch"; readonly seq: bigint; readonly stored: string; readonly recomputed: string }

/** Recompute a run's chain from its events (in seq order) and report every break. */
export const verify = (runId: string, events: ReadonlyArray<ChainedEvent & { readonly payload?: unknown }>) => {
  const problems: Array<ChainProblem> = []
  let prev: string | null = null
  let expected = 1n
  for (const e of events) {
    if (e.seq !== expected) problems.push({ kind: "seq_gap", seq: e.seq, expected })
    expected = e.seq + 1n
    if ((e.prevHash ?? null) !== prev) problems.push({ kind: "prev_hash_mismatch", seq: e.seq })
    const digest = e.payload !== undefined ? payloadHash(e.payload) : e.payloadHash
    const recomputed = eventHash(runId, e.seq, e.eventType, digest, prev)
    if (recomputed !== e.eventHash) problems.push({ kind: "event_hash_mismatch", seq: e.seq, stored: e.eventHash, recomputed })
    prev = e.eventHash
  }
  return { head: prev, count: events.length, problems }
}
