// The fanout hub of one node. For every topic with subscribers on this node it keeps
// `lastPublished`, the watermark up to which live subscribers have been sent everything. On a
// wake-up it reads the journal after `lastPublished` — once per node and topic, however many
// subscribers there are — encodes each batch once per wire format, publishes it to the topic's
// live channel, and advances `lastPublished`, all in one synchronous step after the read.
//
// That step is what makes the replay→live handoff gap-free without per-subscriber buffering: a
// subscriber catching up by replay joins the live channel in the same synchronous step in which
// it observes `cursor >= lastPublished`; every later publish starts at `lastPublished + 1`, so it
// misses nothing (and may at worst receive events it already has, which clients discard).
//
// Wake-ups are coalesced per topic (a topic already being read is only marked dirty), and a poll
// of the active topics' heads catches wake-ups that never arrived.
import * as Effect from "effect/Effect"
import type { Journal } from "./Journal.js"
import * as Metrics from "./Metrics.js"
import type { JournalEvent } from "./Storage.js"
import * as SyncWire from "./SyncWire.js"
import type { TransportServer } from "./Transport.js"

interface TopicState {
  lastPublished: bigint
  ready: Promise<void>
  refs: number
  live: { binary: number; json: number }
  dirty: boolean
  reading: boolean
}

export interface HubOptions {
  readonly journal: Journal["Type"]
  readonly transport: () => TransportServer | undefined
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => void
  /** Called when the journal lost events the hub had not yet published (pruned): live subscribers must resync. */
  readonly onGap: (topic: string) => void
}

export class Hub {
  private readonly topics = new Map<string, TopicState>()
  constructor(private readonly options: HubOptions) {}

  /** Start tracking `topic` (refcounted); resolves once `lastPublished` is known. */
  activate(topic: string): Promise<void> {
    const existing = this.topics.get(topic)
    if (existing !== undefined) {
      existing.refs++
      return existing.ready
    }
    const state: TopicState = { lastPublished: 0n, ready: Promise.resolve(), refs: 1, live: { binary: 0, json: 0 }, dirty: false, reading: false }
    state.ready = new Promise<void>((resolve, reject) => {
      this.options.run(
        this.options.journal.position(topic).pipe(
          Effect.match({
            onFailure: (e) => {
              this.topics.delete(topic)
              reject(e)
            },
            onSuccess: (position) => {
              state.lastPublished = position.head
              resolve()
            }
          })
        )
      )
    })
    this.topics.set(topic, state)
    return state.ready
  }

  release(topic: string) {
    const state = this.topics.get(topic)
    if (state === undefined) return
    if (--state.refs <= 0) this.topics.delete(topic)
  }

  lastPublished(topic: string): bigint | undefined {
    return this.topics.get(topic)?.lastPublished
  }

  joined(topic: string, format: SyncWire.Format) {
    const state = this.topics.get(topic)
    if (state) state.live[format]++
  }

  left(topic: string, format: SyncWire.Format) {
    const state = this.topics.get(topic)
    if (state && state.live[format] > 0) state.live[format]--
  }

  activeTopics(): ReadonlyArray<string> {
    return [...this.topics.keys()]
  }

  /** New commits on these topics (from this node or another). */
  wake(topics: Iterable<string>) {
    for (const topic of topics) {
      const state = this.topics.get(topic)
      if (state === undefined) continue
      if (state.reading) state.dirty = true
      else this.read(topic, state)
    }
  }

  /** Compare the heads of active topics with what was published; wake those that moved. */
  poll = Effect.suspend(() => {
    const topics = this.activeTopics()
    if (topics.length === 0) return Effect.void
    return this.options.journal.positions(topics).pipe(
      Effect.map((positions) => {
        const moved: Array<string> = []
        for (const [topic, position] of positions) {
          const state = this.topics.get(topic)
          if (state !== undefined && position.head > state.lastPublished) moved.push(topic)
        }
        this.wake(moved)
      }),
      Effect.catchAllCause((cause) => Effect.logWarning("khala hub: head poll failed", cause))
    )
  })

  private read(topic: string, state: TopicState) {
    state.reading = true
    state.dirty = false
    const { journal } = this.options
    const loop: Effect.Effect<void, import("./Journal.js").ReadError> = Effect.suspend(() =>
      journal.read(topic, state.lastPublished).pipe(
        Effect.flatMap((batch) => {
          // The topic may have been released while reading.
          if (this.topics.get(topic) !== state) return Effect.void
          if (batch.events.length > 0) this.publish(topic, state, batch.events, batch.head)
          state.lastPublished = batch.next
          return batch.complete ? Effect.void : loop
        })
      )
    )
    this.options.run(
      loop.pipe(
        Effect.catchTag("StaleCursorError", () =>
          Effect.sync(() => {
            // Events this node never published were pruned: restart the topic at its head and
            // make its live subscribers resume (they will be told stale_cursor).
            this.topics.delete(topic)
            this.options.onGap(topic)
          })
        ),
        Effect.catchAllCause((cause) =>
          Effect.zipRight(Effect.logWarning(`khala hub: reading ${topic} failed; retrying on the next wake-up or poll`, cause), Effect.void)
        ),
        Effect.ensuring(
          Effect.sync(() => {
            state.reading = false
            if (state.dirty && this.topics.get(topic) === state) this.read(topic, state)
          })
        )
      )
    )
  }

  private publish(topic: string, state: TopicState, events: ReadonlyArray<JournalEvent>, head: bigint) {
    const server = this.options.transport()
    if (server === undefined) return
    const epoch = this.options.journal.epoch
    if (state.live.binary > 0) server.publish(topic, "binary", SyncWire.updateBatch("binary", topic, events, true, head, epoch))
    if (state.live.json > 0) server.publish(topic, "json", SyncWire.updateBatch("json", topic, events, true, head, epoch))
    const now = Date.now()
    Metrics.fanoutBatches.unsafeUpdate(1, [])
    for (const e of events) Metrics.fanoutLatency.unsafeUpdate(Math.max(0, now - e.insertedAt.getTime()), [])
  }
}
