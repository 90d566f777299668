// Wake-ups and revocations between nodes. After a commit, the writer calls `wake(topics)`: every
// node's hub (this one immediately) reads the new journal rows for those topics. Revocations
// reach every node's live connections the same way.
//
// A wake-up is a hint, never the data: the database is the delivery authority, and the hub also
// polls the heads of its active topics, so a lost notification (a crashed notifier, a dropped
// LISTEN connection) only delays delivery until the next poll. On the committing node a wake-up
// may carry the committed events themselves (`committed`): that node's hub publishes them without
// reading them back when they follow what it already published. Other nodes get the topics only.
//
// Adapters: in memory (one node), and Postgres LISTEN/NOTIFY (several nodes on one database;
// needs a LISTEN-capable connection, so not through a transaction-pooling proxy). Wake-ups are
// coalesced: the topics of every wake call in one event-loop turn go out as one NOTIFY.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { SqlNotify } from "@openagents/sql-pglite"
import type { JournalEvent } from "./Storage.js"
import type { RevocationReasonName } from "./SyncWire.js"

export interface Revocation {
  readonly sessionIds: ReadonlyArray<string>
  readonly deviceIds: ReadonlyArray<string>
  /**
   * Whose devices: the device ids are revoked for this user only (a device id is not unique
   * across users). Undefined: for every user.
   */
  readonly userId?: string | undefined
  /**
   * When the devices were revoked (ms; undefined: when the node hears of it): only tokens issued
   * up to then are refused, so a redelivered revocation does not reach a sign-in made since.
   */
  readonly revokedAtMs?: number | undefined
  readonly reason: RevocationReasonName
}

/** Events a commit on this node wrote, per topic, in watermark order: only ever passed locally. */
export type Committed = ReadonlyMap<string, ReadonlyArray<JournalEvent>>

export interface Listener {
  readonly wake: (topics: ReadonlyArray<string>, committed?: Committed) => void
  readonly revoke: (revocation: Revocation) => void
  /**
   * The node was deaf for a while (its LISTEN connection died and was reopened): wake-ups and
   * revocations announced meanwhile were missed. Re-check what depends on them.
   */
  readonly resync?: (() => void) | undefined
}

export interface NotifierService {
  /**
   * Announce new commits on `topics` to every node. Call after the commit, with the events it
   * wrote when they are at hand (this node's listeners get them; other nodes read).
   */
  readonly wake: (topics: Iterable<string>, committed?: Committed) => Effect.Effect<void>
  /** Announce a revocation to every node. */
  readonly revoke: (revocation: Revocation) => Effect.Effect<void>
  /** Receive wake-ups and revocations (this node's and other nodes'); unregisters when the scope closes. */
  readonly listen: (listener: Listener) => Effect.Effect<void, never, import("effect/Scope").Scope>
}

export class Notifier extends Context.Tag("@openagents/khala-core/Notifier")<Notifier, NotifierService>() {}

const makeLocal = () => {
  const listeners = new Set<Listener>()
  return {
    listeners,
    deliverWake: (topics: ReadonlyArray<string>, committed?: Committed) => {
      for (const l of listeners) l.wake(topics, committed)
    },
    deliverRevoke: (revocation: Revocation) => {
      for (const l of listeners) l.revoke(revocation)
    },
    deliverResync: () => {
      for (const l of listeners) l.resync?.()
    },
    listen: (listener: Listener) =>
      Effect.acquireRelease(Effect.sync(() => listeners.add(listener)), () => Effect.sync(() => listeners.delete(listener))).pipe(Effect.asVoid)
  }
}

/** One node: wake-ups go straight to the local listeners. */
export const layerMemory: Layer.Layer<Notifier> = Layer.sync(Notifier, () => {
  const local = makeLocal()
  return {
    wake: (topics, committed) => Effect.sync(() => local.deliverWake([...topics], committed)),
    revoke: (revocation) => Effect.sync(() => local.deliverRevoke(revocation)),
    listen: local.listen
  }
})

export const WAKE_CHANNEL = "khala_wake"
export const REVOKE_CHANNEL = "khala_revoke"
/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7_500

export interface PostgresOptions {
  /** How often the node checks its LISTEN connection by notifying itself (default 5 s). */
  readonly probeIntervalMs?: number | undefined
  /** How long without its own probe coming back before the LISTEN connection is reopened (default 15 s). */
  readonly probeTimeoutMs?: number | undefined
}

/**
 * Several nodes on one Postgres: local listeners are called at once, other nodes through
 * NOTIFY on `khala_wake` / `khala_revoke` (payload: sender node id, then one topic per line).
 *
 * A LISTEN connection can die without a word (the driver swallows its errors): the node notifies
 * itself every `probeIntervalMs` (an empty wake-up), and when its own probe has not come back for
 * `probeTimeoutMs` it reopens the LISTEN streams and tells its listeners to `resync` (wake-ups
 * missed meanwhile are caught by the hubs' head poll; revocations by re-checking live sessions).
 */
export const layerPostgresWith = (options: PostgresOptions = {}): Layer.Layer<Notifier, never, SqlNotify.SqlNotify> => Layer.scoped(
  Notifier,
  Effect.gen(function*() {
    const sql = yield* SqlNotify.SqlNotify
    const local = makeLocal()
    const nodeId = crypto.randomUUID()
    const runtime = yield* Effect.runtime<never>()
    const runFork = <A, E>(effect: Effect.Effect<A, E>) => {
      Runtime.runFork(runtime)(effect.pipe(Effect.catchAllCause((cause) => Effect.logWarning("khala notifier: NOTIFY failed", cause))))
    }

    // Coalesce the wake calls of one event-loop turn into one NOTIFY per ~7.5 KB of topics.
    let pending = new Set<string>()
    let scheduled = false
    const flush = () => {
      scheduled = false
      const topics = [...pending]
      pending = new Set()
      let chunk: Array<string> = []
      let size = nodeId.length
      const send = () => {
        if (chunk.length > 0) runFork(sql.notify(WAKE_CHANNEL, [nodeId, ...chunk].join("\n")))
        chunk = []
        size = nodeId.length
      }
      for (const topic of topics) {
        if (size + topic.length + 1 > MAX_PAYLOAD) send()
        chunk.push(topic)
        size += topic.length + 1
      }
      send()
    }

    const parse = (payload: string) => {
      const lines = payload.split("\n")
      return { sender: lines[0] ?? "", items: lines.slice(1).filter((l) => l.length > 0) }
    }
    let lastProbeSeen = Date.now()
    const listenAll = Effect.gen(function*() {
      yield* sql.listen(WAKE_CHANNEL).pipe(
        Stream.runForEach((payload) =>
          Effect.sync(() => {
            const { items, sender } = parse(payload)
            if (sender === nodeId) {
              if (items.length === 0) lastProbeSeen = Date.now() // our own probe: the connection is alive
              return
            }
            if (items.length > 0) local.deliverWake(items)
          })
        ),
        Effect.catchAllCause((cause) => Effect.logError("khala notifier: LISTEN khala_wake ended; relying on head polling", cause)),
        Effect.forkScoped
      )
      yield* sql.listen(REVOKE_CHANNEL).pipe(
        Stream.runForEach((payload) =>
          Effect.sync(() => {
            const { items, sender } = parse(payload)
            if (sender === nodeId || items[0] === undefined) return
            try {
              local.deliverRevoke(JSON.parse(items[0]) as Revocation)
            } catch {
              // not ours
            }
          })
        ),
        Effect.catchAllCause((cause) => Effect.logError("khala notifier: LISTEN khala_revoke ended", cause)),
        Effect.forkScoped
      )
      // LISTEN is asynchronous: give it a moment so that a caller's first NOTIFY is not missed.
      yield* Effect.sleep("100 millis")
    })

    // The LISTEN streams live in a scope of their own, so that they can be reopened.
    const layerScope = yield* Effect.scope
    let listening = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
    yield* Scope.extend(listenAll, listening)
    const probeIntervalMs = options.probeIntervalMs ?? 5_000
    const probeTimeoutMs = options.probeTimeoutMs ?? 15_000
    const probe = Effect.gen(function*() {
      yield* sql.notify(WAKE_CHANNEL, `${nodeId}\n`).pipe(Effect.catchAllCause((cause) => Effect.logWarning("khala notifier: probe NOTIFY failed", cause)))
      const silentMs = Date.now() - lastProbeSeen
      if (silentMs <= probeTimeoutMs) return
      yield* Effect.logWarning(`khala notifier: no notification for ${silentMs} ms (own probes included); reopening LISTEN`)
      // Closing interrupts the streams; a dead connection's UNLISTEN may fail or hang: bounded.
      yield* Scope.close(listening, Exit.void).pipe(Effect.timeout("3 seconds"), Effect.catchAllCause(() => Effect.void))
      listening = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
      yield* Scope.extend(listenAll, listening)
      lastProbeSeen = Date.now()
      local.deliverResync()
    })
    yield* probe.pipe(Effect.repeat(Schedule.spaced(`${probeIntervalMs} millis`)), Effect.forkScoped)

    return {
      wake: (topics, committed) =>
        Effect.sync(() => {
          const list = [...topics]
          if (list.length === 0) return
          // Other nodes first: a local listener that throws must not keep them from hearing it.
          for (const t of list) pending.add(t)
          if (!scheduled) {
            scheduled = true
            setImmediate(flush)
          }
          local.deliverWake(list, committed)
        }),
      revoke: (revocation) =>
        Effect.zipRight(
          Effect.sync(() => local.deliverRevoke(revocation)),
          sql.notify(REVOKE_CHANNEL, `${nodeId}\n${JSON.stringify(revocation)}`).pipe(
            Effect.catchAllCause((cause) => Effect.logError("khala notifier: revocation NOTIFY failed", cause))
          )
        ),
      listen: local.listen
    }
  })
)

/** `layerPostgresWith` with the default probe timings. */
export const layerPostgres: Layer.Layer<Notifier, never, SqlNotify.SqlNotify> = layerPostgresWith()
