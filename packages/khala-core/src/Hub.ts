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
// Wake-ups are coalesced: the topics woken in one synchronous burst (a commit spanning many
// topics, many commits completing together) are read in one pass, one `Journal.readMany` for all
// of them, on one fiber; topics woken while a pass is reading wait for the next pass of the same
// fiber, so a topic is never read twice at once. A poll of the active topics' heads catches
// wake-ups that never arrived.
//
// A wake-up from a commit on this node may carry the events it wrote (Notifier `Committed`). They
// are taken up in a microtask (not on the committing fiber, so the writer neither waits for the
// sends nor sees their failures): when they follow `lastPublished` without a hole, the hub
// publishes them and advances, in one synchronous step as a pass does, and reads nothing;
// otherwise, or if publishing them throws, the topic is read. A pass whose read overlaps such a
// step publishes only what is beyond `lastPublished` when it lands.
import * as Effect from "effect/Effect"
import { StaleCursorError } from "./Errors.js"
import type { Journal } from "./Journal.js"
import * as Metrics from "./Metrics.js"
import type { Committed } from "./Notifier.js"
import { MAX_BATCH_BYTES, MAX_BATCH_UPDATES } from "./Topic.js"
import { updateCost } from "./internal/prepare.js"
import type { JournalEvent } from "./Storage.js"
import * as SyncWire from "./SyncWire.js"
import type { TransportServer } from "./Transport.js"

interface TopicState {
  readonly topic: string
  lastPublished: bigint
  /** False until `lastPublished` is known: a topic is not read before that. */
  ready: boolean
  /** Woken while not ready: read as soon as it is. */
  wokenEarly: boolean
  ready$: Promise<void>
  refs: number
  live: { binary: number; json: number }
}

/**
 * One subscriber's hold on a topic of the hub, from `activate`. Release, join and leave through
 * it: a lease of a topic state the hub has since dropped (a journal gap, a failed activation) is
 * inert, so it cannot decrement the state a later subscriber activated.
 */
export interface TopicLease {
  readonly topic: string
  /** @internal */
  readonly state: TopicState
}

const NO_TAGS: Array<never> = []

/**
 * The end (exclusive) of the batch starting at `start`: at most MAX_BATCH_UPDATES events costing
 * at most MAX_BATCH_BYTES (at least one event) — the limits the welcome announces, counted as a
 * read counts them (`updateCost`).
 */
const batchEnd = (events: ReadonlyArray<JournalEvent>, start: number) => {
  let bytes = updateCost(events[start]!)
  let end = start + 1
  const max = Math.min(events.length, start + MAX_BATCH_UPDATES)
  while (end < max) {
    const cost = updateCost(events[end]!)
    if (bytes + cost > MAX_BATCH_BYTES) break
    bytes += cost
    end++
  }
  return end
}

/** `events` start right after `lastPublished` and have no hole. */
const follows = (events: ReadonlyArray<JournalEvent>, lastPublished: bigint) => {
  if (events.length === 0 || events[0]!.watermark !== lastPublished + 1n) return false
  for (let i = 1; i < events.length; i++) if (events[i]!.watermark !== events[i - 1]!.watermark + 1n) return false
  return true
}

export interface HubOptions {
  readonly journal: Journal["Type"]
  readonly transport: () => TransportServer | undefined
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => void
  /** Called when the journal lost events the hub had not yet published (pruned): live subscribers must resync. */
  readonly onGap: (topic: string) => void
  /**
   * Called when a topic's head is below what the hub already published: the database lost
   * commits (a restore, a failover to a replica that was behind). The server checks the epoch.
   */
  readonly onRewind?: ((topic: string) => void) | undefined
}

export class Hub {
  private readonly topics = new Map<string, TopicState>()
  /** Topics woken and not yet read. */
  private pending = new Set<string>()
  private scheduled = false
  private passing = false
  constructor(private readonly options: HubOptions) {}

  /**
   * Start tracking `topic` (refcounted); resolves with a lease once `lastPublished` is known, or
   * rejects (the storage failed): then the caller holds nothing and must not subscribe.
   */
  activate(topic: string): Promise<TopicLease> {
    const existing = this.topics.get(topic)
    if (existing !== undefined) {
      existing.refs++
      return existing.ready$.then(() => ({ topic, state: existing }))
    }
    const state: TopicState = { topic, lastPublished: 0n, ready: false, wokenEarly: false, ready$: Promise.resolve(), refs: 1, live: { binary: 0, json: 0 } }
    // Registered before the read starts: a storage that answers synchronously settles it inside
    // the call below, and a failed state must not stay registered.
    this.topics.set(topic, state)
    state.ready$ = new Promise<void>((resolve, reject) => {
      this.options.run(
        this.options.journal.position(topic).pipe(
          Effect.match({
            onFailure: (e) => {
              if (this.topics.get(topic) === state) this.topics.delete(topic)
              reject(e)
            },
            onSuccess: (position) => {
              state.lastPublished = position.head
              state.ready = true
              // Commits after the position read woke the topic while it was not ready.
              if (state.wokenEarly && this.topics.get(topic) === state) {
                this.pending.add(topic)
                this.schedule()
              }
              resolve()
            }
          })
        )
      )
    })
    return state.ready$.then(() => ({ topic, state }))
  }

  release(lease: TopicLease) {
    const state = lease.state
    if (this.topics.get(lease.topic) !== state) return
    if (--state.refs <= 0) this.topics.delete(lease.topic)
  }

  /** Up to where the lease's topic was published live; undefined when the hub dropped that state. */
  lastPublished(lease: TopicLease): bigint | undefined {
    const state = lease.state
    return this.topics.get(lease.topic) === state && state.ready ? state.lastPublished : undefined
  }

  joined(lease: TopicLease, format: SyncWire.Format) {
    if (this.topics.get(lease.topic) === lease.state) lease.state.live[format]++
  }

  left(lease: TopicLease, format: SyncWire.Format) {
    const state = lease.state
    if (this.topics.get(lease.topic) === state && state.live[format] > 0) state.live[format]--
  }

  /**
   * Forget every topic (the journal's epoch changed: what was published belongs to the old
   * history). Every lease becomes inert; the server closes the subscribers, and new ones activate
   * topics afresh.
   */
  reset() {
    this.topics.clear()
    this.pending.clear()
    this.offers = []
  }

  activeTopics(): ReadonlyArray<string> {
    const out: Array<string> = []
    for (const [topic, state] of this.topics) if (state.ready) out.push(topic)
    return out
  }

  /** New commits on these topics (from this node or another), with their events when this node wrote them. */
  wake(topics: Iterable<string>, committed?: Committed) {
    for (const topic of topics) {
      const state = this.topics.get(topic)
      if (state === undefined) continue
      if (!state.ready) {
        state.wokenEarly = true
        continue
      }
      const events = committed?.get(topic)
      if (events === undefined || events.length === 0) {
        this.pending.add(topic)
        continue
      }
      this.offers.push({ topic, state, events })
    }
    if (this.offers.length > 0 && !this.offering) {
      this.offering = true
      queueMicrotask(this.takeOffers)
    }
    this.schedule()
  }

  /** Committed events handed over, in the order their wake-ups came. */
  private offers: Array<{ readonly topic: string; readonly state: TopicState; readonly events: ReadonlyArray<JournalEvent> }> = []
  private offering = false

  /**
   * Publish what was handed over since the last call: per topic, the offers that follow on from
   * what was published are merged (a burst of commits to one topic goes out as one frame, not one
   * per commit) and split at the batch limits the welcome announced, as a read would be. An offer
   * that does not follow (a hole: another node's commit, or an offer out of order) sends the topic
   * to a read, which also covers the offers after it.
   */
  private readonly takeOffers = () => {
    this.offering = false
    const offers = this.offers
    this.offers = []
    const publishStart = performance.now()
    const merged = new Map<string, { state: TopicState; events: ReadonlyArray<JournalEvent>; owned: boolean; last: bigint; broken: boolean }>()
    for (const offer of offers) {
      const { state, topic } = offer
      // Dropped meanwhile (released, a gap, an epoch reset): nothing to publish to.
      if (this.topics.get(topic) !== state) continue
      const m = merged.get(topic)
      // What a read published meanwhile is dropped from the offer, not sent to another read.
      const after = m === undefined ? state.lastPublished : m.last
      const events = offer.events.length > 0 && offer.events[0]!.watermark <= after
        ? offer.events.filter((e) => e.watermark > after)
        : offer.events
      if (events.length === 0) continue
      if (m === undefined) {
        const ok = follows(events, state.lastPublished)
        if (!ok) this.pending.add(topic)
        merged.set(topic, { state, events: ok ? events : [], owned: false, last: ok ? events[events.length - 1]!.watermark : state.lastPublished, broken: !ok })
        continue
      }
      if (m.broken) continue
      if (!follows(events, m.last)) {
        m.broken = true
        this.pending.add(topic)
        continue
      }
      // Copy only when a second offer joins (the common case is one offer per topic).
      const list: Array<JournalEvent> = m.owned ? (m.events as Array<JournalEvent>) : [...m.events]
      for (const e of events) list.push(e)
      m.events = list
      m.owned = true
      m.last = events[events.length - 1]!.watermark
    }
    for (const [topic, { events, last, state }] of merged) {
      if (events.length === 0) continue
      try {
        let start = 0
        while (start < events.length) {
          const end = batchEnd(events, start)
          this.publish(topic, state, start === 0 && end === events.length ? events : events.slice(start, end), last)
          state.lastPublished = events[end - 1]!.watermark
          start = end
        }
      } catch {
        // Read and published by the next pass instead (a format already sent is sent again:
        // clients discard what they have).
        this.pending.add(topic)
      }
    }
    Metrics.fanoutPublishSeconds.unsafeUpdate((performance.now() - publishStart) / 1000, NO_TAGS)
    this.schedule()
  }

  private schedule() {
    if (this.scheduled || this.passing || this.pending.size === 0) return
    this.scheduled = true
    // A microtask, not a fiber per wake-up: every wake-up of the current synchronous burst joins
    // this pass, and it still runs before any I/O callback.
    queueMicrotask(this.startPass)
  }

  private readonly startPass = () => {
    this.scheduled = false
    if (this.passing || this.pending.size === 0) return
    this.passing = true
    this.options.run(
      this.pass.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("khala hub: reading woken topics failed; retrying on the next wake-up or poll", cause)),
        Effect.ensuring(Effect.sync(() => {
          this.passing = false
          this.schedule()
        }))
      )
    )
  }

  /**
   * Read every pending topic after its `lastPublished` in one `readMany`, then publish and advance
   * each in one synchronous step; repeat while topics are pending (woken meanwhile, or with more
   * than one batch due).
   */
  private readonly pass: Effect.Effect<void, import("./Journal.js").ReadError> = Effect.suspend(() => {
    if (this.pending.size === 0) return Effect.void
    const reads: Array<{ topic: string; after: bigint }> = []
    const states: Array<TopicState> = []
    for (const topic of this.pending) {
      const state = this.topics.get(topic)
      if (state === undefined || !state.ready) continue
      reads.push({ topic, after: state.lastPublished })
      states.push(state)
    }
    this.pending.clear()
    if (reads.length === 0) return Effect.void
    const readStart = performance.now()
    return Effect.flatMap(this.options.journal.readMany(reads), (results) => {
      // Two counter updates per pass (not per topic): what reading and publishing cost this node.
      const publishStart = performance.now()
      Metrics.fanoutReadSeconds.unsafeUpdate((publishStart - readStart) / 1000, NO_TAGS)
      for (let i = 0; i < reads.length; i++) {
        const { topic } = reads[i]!
        const state = states[i]!
        // The topic may have been released while reading.
        if (this.topics.get(topic) !== state) continue
        const result = results.get(topic)
        if (result === undefined) continue
        if (result instanceof StaleCursorError) {
          // Events this node never published were pruned: restart the topic at its head and
          // make its live subscribers resume (they will be told stale_cursor).
          this.topics.delete(topic)
          this.options.onGap(topic)
          continue
        }
        // Committed events handed over while this read ran may already be published.
        const fresh = result.events.length > 0 && result.events[0]!.watermark <= state.lastPublished
          ? result.events.filter((e) => e.watermark > state.lastPublished)
          : result.events
        if (fresh.length > 0) this.publish(topic, state, fresh, result.head)
        if (result.next > state.lastPublished) state.lastPublished = result.next
        if (!result.complete) this.pending.add(topic)
      }
      Metrics.fanoutPublishSeconds.unsafeUpdate((performance.now() - publishStart) / 1000, NO_TAGS)
      return this.pass
    })
  })

  /** Compare the heads of active topics with what was published; wake those that moved. */
  poll = Effect.suspend(() => {
    const topics = this.activeTopics()
    if (topics.length === 0) return Effect.void
    // What was published when the heads were asked for: a pass may publish more meanwhile, and a
    // head read before that is not a head that moved back.
    const before = new Map(topics.map((t) => [t, this.topics.get(t)!.lastPublished]))
    return this.options.journal.positions(topics).pipe(
      Effect.map((positions) => {
        const moved: Array<string> = []
        let rewound: string | undefined
        for (const [topic, position] of positions) {
          const state = this.topics.get(topic)
          if (state === undefined) continue
          if (position.head > state.lastPublished) moved.push(topic)
          else if (position.head < state.lastPublished && position.head < (before.get(topic) ?? 0n)) rewound ??= topic
        }
        this.wake(moved)
        if (rewound !== undefined) this.options.onRewind?.(rewound)
      }),
      Effect.catchAllCause((cause) => Effect.logWarning("khala hub: head poll failed", cause))
    )
  })

  private publish(topic: string, state: TopicState, events: ReadonlyArray<JournalEvent>, head: bigint) {
    const server = this.options.transport()
    if (server === undefined) return
    const epoch = this.options.journal.epoch
    if (state.live.binary > 0) server.publish(topic, "binary", SyncWire.updateBatch("binary", topic, events, true, head, epoch))
    if (state.live.json > 0) server.publish(topic, "json", SyncWire.updateBatch("json", topic, events, true, head, epoch))
    // One latency observation per batch, of its oldest event (the batch's worst), not one per
    // event: a histogram update per event was a measurable share of a one-event commit's cost.
    Metrics.fanoutBatches.unsafeUpdate(1, NO_TAGS)
    Metrics.fanoutLatency.unsafeUpdate(Math.max(0, Date.now() - events[0]!.insertedAt.getTime()), NO_TAGS)
  }
}
