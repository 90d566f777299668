// In-memory Khala storage, for tests, browsers and embedding. Every operation is one synchronous
// step on shared state, so it is atomic by construction. `transaction` blocks run one at a time
// (operations outside a block wait for it) and undo what they changed when they fail, so a
// rolled-back append leaves no gap here either. State lives as long as the layer.
//
// The undo log costs each write inside a block one closure, instead of copying the whole state
// when the block starts; operations outside a block take no permit unless a block is running.
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Checkpoints from "../Checkpoints.js"
import { eventOf, updateCost } from "../internal/prepare.js"
import * as Journal from "../Journal.js"
import * as ReadModels from "../ReadModels.js"
import * as Retention from "../Retention.js"
import * as Snapshot from "../Snapshot.js"
import type { Position } from "../Staleness.js"
import type { Checkpoint, JournalEvent, KhalaStorageService, PreparedEntry, StoredDocument, StoredRead } from "../Storage.js"
import { KhalaStorage } from "../Storage.js"
import type { Topic } from "../Topic.js"

interface TopicState {
  head: bigint
  floor: bigint
  /** Retained events; events[i].watermark === floor + 1 + i. */
  events: Array<JournalEvent>
}

const randomEpoch = () => {
  const bytes = new Uint8Array(16)
  globalThis.crypto.getRandomValues(bytes)
  return `ep_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`
}


export const make: Effect.Effect<KhalaStorageService> = Effect.gen(function*() {
  const topics = new Map<string, TopicState>()
  const tables = new Map<string, Map<string, Map<string, StoredDocument>>>()
  const checkpoints = new Map<string, Map<string, Checkpoint>>()
  const epoch = randomEpoch()

  // One transaction at a time. A plain operation is one synchronous step, so it only has to wait
  // for a running transaction (not for other plain operations), unless it runs inside it.
  const permit = yield* Effect.makeSemaphore(1)
  const inTransaction = FiberRef.unsafeMake(false)
  /** How deeply `transaction` calls nest on this fiber (0: the outermost), for `transactionDepth`. */
  const depth = FiberRef.unsafeMake(0)
  let transactionRunning = false
  /** What the running transaction changed, newest last: run in reverse to roll it back. */
  let undo: Array<() => void> | undefined
  // Reads go through it too: a running transaction's writes are not visible outside it until it
  // commits (a rollback would otherwise un-publish what a reader already saw, and reuse its
  // watermarks). Decided when the operation runs, not when it is built.
  const exclusive = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.suspend(() =>
      transactionRunning
        ? Effect.withFiberRuntime<A, E, R>((fiber) => (fiber.getFiberRef(inTransaction) ? effect : permit.withPermits(1)(effect)))
        : effect
    )

  const topicState = (topic: string) => {
    let state = topics.get(topic)
    if (state === undefined) {
      state = { head: 0n, floor: 0n, events: [] }
      topics.set(topic, state)
      if (undo !== undefined) undo.push(() => topics.delete(topic))
    }
    return state
  }
  const docsOf = (table: string, topic: string) => {
    let byTopic = tables.get(table)
    if (byTopic === undefined) tables.set(table, byTopic = new Map())
    let docs = byTopic.get(topic)
    if (docs === undefined) byTopic.set(topic, docs = new Map())
    return docs
  }

  const appendNow = (topic: Topic, entries: ReadonlyArray<PreparedEntry>, now: Date) => {
    const state = topicState(topic.topic)
    if (undo !== undefined && entries.length > 0) {
      const { head, events } = state
      const length = events.length
      undo.push(() => {
        state.head = head
        state.events = events
        events.length = length
      })
    }
    const out: Array<JournalEvent> = []
    for (const e of entries) {
      state.head += 1n
      const event = eventOf(topic.topic, state.head, e, now)
      state.events.push(event)
      out.push(event)
    }
    return out
  }

  const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))

  const readNow = (topic: string, after: bigint, maxRows: number, maxBytes: number): StoredRead => {
    const state = topics.get(topic)
    if (state === undefined) return { head: 0n, floor: 0n, events: [] }
    const start = after < state.floor ? 0 : Number(after - state.floor)
    const events: Array<JournalEvent> = []
    let bytes = 0
    for (let i = start; i < state.events.length && events.length < maxRows; i++) {
      const e = state.events[i]!
      bytes += updateCost(e)
      if (events.length > 0 && bytes > maxBytes) break
      events.push(e)
    }
    return { head: state.head, floor: state.floor, events }
  }

  const service: KhalaStorageService = {
    epoch,
    append: (topic, entries) => exclusive(Effect.map(now, (at) => appendNow(topic, entries, at))),
    publish: (topic, entries) =>
      exclusive(Effect.map(now, (at) => {
        const table = topic.topicClass.readModelTable
        if (table === undefined) return { events: appendNow(topic, entries, at), skipped: [] }
        const docs = docsOf(table, topic.topic)
        const accepted: Array<PreparedEntry> = []
        const skipped: Array<string> = []
        for (const e of entries) {
          const current = docs.get(e.docKey)
          if (current !== undefined && current.docVersion > e.docVersion) {
            skipped.push(e.docKey)
            continue
          }
          if (undo !== undefined) undo.push(current === undefined ? () => docs.delete(e.docKey) : () => docs.set(e.docKey, current))
          docs.set(e.docKey, { topic: topic.topic, docKey: e.docKey, docVersion: e.docVersion, payload: e.document, payloadHash: e.payloadHash, updatedAt: at })
          accepted.push(e)
        }
        return { events: appendNow(topic, accepted, at), skipped }
      })),
    read: (topic, after, maxRows, maxBytes) => exclusive(Effect.sync(() => readNow(topic, after, maxRows, maxBytes))),
    readMany: (reads, maxRows, maxBytes) =>
      exclusive(Effect.sync(() => {
        const out = new Map<string, StoredRead>()
        for (const r of reads) out.set(r.topic, readNow(r.topic, r.after, maxRows, maxBytes))
        return out
      })),
    positions: (list) =>
      exclusive(Effect.sync(() => {
        const out = new Map<string, Position>()
        for (const topic of list) {
          const state = topics.get(topic)
          out.set(topic, state === undefined ? { head: 0n, floor: 0n } : { head: state.head, floor: state.floor })
        }
        return out
      })),
    getDocument: (table, topic, docKey) => exclusive(Effect.sync(() => tables.get(table)?.get(topic)?.get(docKey))),
    snapshot: (table, topic) =>
      exclusive(Effect.sync(() => ({
        watermark: topics.get(topic)?.head ?? 0n,
        documents: [...(tables.get(table)?.get(topic)?.values() ?? [])].sort((a, b) => (a.docKey < b.docKey ? -1 : a.docKey > b.docKey ? 1 : 0))
      }))),
    expiredTopics: (className, cutoff, limit) =>
      exclusive(Effect.sync(() => {
        const out: Array<string> = []
        for (const [topic, state] of topics) {
          if (out.length >= limit) break
          const oldest = state.events[0]
          if (topic.startsWith(`${className}:`) && oldest !== undefined && oldest.insertedAt < cutoff) out.push(topic)
        }
        return out
      })),
    pruneBatch: (topic, cutoff, batchSize) =>
      exclusive(Effect.sync(() => {
        const state = topics.get(topic)
        if (state === undefined) return { pruned: 0, floor: 0n }
        let n = 0
        while (n < batchSize && n < state.events.length && state.events[n]!.insertedAt < cutoff) n++
        if (n > 0) {
          if (undo !== undefined) {
            const { events, floor } = state
            undo.push(() => {
              state.floor = floor
              state.events = events
            })
          }
          state.floor = state.events[n - 1]!.watermark
          state.events = state.events.slice(n)
        }
        return { pruned: n, floor: state.floor }
      })),
    getCheckpoint: (projectionName, entityId) => exclusive(Effect.sync(() => checkpoints.get(projectionName)?.get(entityId))),
    putCheckpoint: (checkpoint) =>
      exclusive(Effect.sync(() => {
        let byEntity = checkpoints.get(checkpoint.projectionName)
        if (byEntity === undefined) checkpoints.set(checkpoint.projectionName, byEntity = new Map())
        if (undo !== undefined) {
          const map = byEntity
          const previous = map.get(checkpoint.entityId)
          undo.push(previous === undefined ? () => map.delete(checkpoint.entityId) : () => map.set(checkpoint.entityId, previous))
        }
        byEntity.set(checkpoint.entityId, checkpoint)
      })),
    listCheckpoints: (projectionName, afterEntityId, limit) =>
      exclusive(Effect.sync(() =>
        [...(checkpoints.get(projectionName)?.values() ?? [])]
          .filter((c) => c.entityId > afterEntityId)
          .sort((a, b) => (a.entityId < b.entityId ? -1 : 1))
          .slice(0, limit)
      )),
    inTransaction: FiberRef.get(inTransaction),
    // A nested transaction commits or rolls back with the outer one (no savepoints); it still
    // counts as nested: what it wrote is not committed when it ends.
    transactionDepth: Effect.flatMap(FiberRef.get(inTransaction), (inside) => (inside ? FiberRef.get(depth) : Effect.succeed(undefined))),
    transaction: (effect) =>
      Effect.flatMap(FiberRef.get(inTransaction), (inside) =>
        inside
          ? Effect.flatMap(FiberRef.get(depth), (d) => Effect.locally(effect, depth, d + 1))
          : permit.withPermits(1)(
            Effect.suspend(() => {
              transactionRunning = true
              const log: Array<() => void> = []
              undo = log
              return Effect.locally(effect, inTransaction, true).pipe(
                Effect.onExit((exit) =>
                  Effect.sync(() => {
                    transactionRunning = false
                    undo = undefined
                    if (!Exit.isSuccess(exit)) for (let i = log.length - 1; i >= 0; i--) log[i]!()
                  })
                )
              )
            })
          ))
  }
  return service
})

/** The storage alone. */
export const layerStorage: Layer.Layer<KhalaStorage> = Layer.effect(KhalaStorage, make)

/** Every Khala port over one in-memory store. */
export const layer = Layer.mergeAll(Snapshot.layer, Retention.layer, Checkpoints.layer, ReadModels.layer).pipe(
  Layer.provideMerge(Journal.layer),
  Layer.provideMerge(layerStorage)
)
