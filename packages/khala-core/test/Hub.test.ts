// The fanout hub on its own, over a scripted journal: what it reads, when, and what a lease holds.
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { Hub } from "../src/Hub.js"
import type { Journal } from "../src/Journal.js"
import type { JournalEvent } from "../src/Storage.js"
import * as SyncWire from "../src/SyncWire.js"
import * as Topic from "../src/Topic.js"
import type { Transport } from "../src/index.js"

const topic = "runtime.run_summaries:user:u1"

const scripted = (head: { value: bigint }, positionDelayMs: number) => {
  const reads: Array<bigint> = []
  const journal = {
    epoch: "ep_test",
    position: () => Effect.as(Effect.sleep(`${positionDelayMs} millis`), { head: head.value, floor: 0n }),
    positions: (topics: ReadonlyArray<string>) => Effect.sync(() => new Map(topics.map((t) => [t, { head: head.value, floor: 0n }]))),
    readMany: (rs: ReadonlyArray<{ topic: string; after: bigint }>) =>
      Effect.sync(() => {
        const out = new Map()
        for (const r of rs) {
          reads.push(r.after)
          out.set(r.topic, { topic: r.topic, events: [], head: head.value, floor: 0n, next: head.value, complete: true })
        }
        return out
      })
  } as unknown as Journal["Type"]
  return { journal, reads }
}

const noTransport = () => ({ publish: () => {} }) as unknown as Transport.TransportServer

/** A transport that records the watermarks of every update it is given to send. */
const recordingTransport = () => {
  const sent: Array<bigint> = []
  const transport = () => ({
    publish: (_t: string, _f: string, data: Uint8Array) => {
      for (const u of SyncWire.decodeServerFrame(data).message.updates as Array<any>) sent.push(u.watermark)
    }
  }) as unknown as Transport.TransportServer
  return { sent, transport }
}

describe("Hub", () => {
  it("does not read a topic before its position is known; a wake-up meanwhile is served once it is, from that position", async () => {
    const head = { value: 5n }
    const { journal, reads } = scripted(head, 50)
    const hub = new Hub({ journal, transport: noTransport, run: (e) => void Effect.runFork(e), onGap: () => {} })
    const activation = hub.activate(topic)
    await new Promise((r) => setTimeout(r, 10))
    head.value = 7n // a commit lands while the position read is in flight …
    hub.wake([topic]) // … and its wake-up arrives before the position does
    await new Promise((r) => setTimeout(r, 5))
    expect(reads).toEqual([]) // (the old hub read from 0 here, then set its position back)
    const lease = await activation
    await new Promise((r) => setTimeout(r, 10))
    // The position (5) was read before the commit: the early wake-up is served from there, once.
    expect(reads).toEqual([5n])
    expect(hub.lastPublished(lease)).toBe(7n)
  })

  it("a lease of a dropped topic state is inert: releasing it does not cut off the state a later subscriber activated", async () => {
    const head = { value: 0n }
    const { journal } = scripted(head, 0)
    let gaps = 0
    const hub = new Hub({ journal, transport: noTransport, run: (e) => void Effect.runFork(e), onGap: () => void gaps++ })
    const first = await hub.activate(topic)
    hub.release(first) // the state is gone (refs 0) …
    const second = await hub.activate(topic) // … and a new one serves the next subscriber
    hub.release(first) // a second release of the stale lease must not touch it
    hub.left(first, "binary")
    expect(hub.lastPublished(first)).toBeUndefined()
    expect(hub.lastPublished(second)).toBe(0n)
    expect(hub.activeTopics()).toEqual([topic])
    hub.release(second)
    expect(hub.activeTopics()).toEqual([])
  })

  it("publishes a local commit's events without reading them when they follow what was published; a read overlapping that sends only what is beyond it; a hole is read", async () => {
    const stored: Array<JournalEvent> = []
    const event = (w: number): JournalEvent => ({
      topic, watermark: BigInt(w), docKey: `d${w}`, docVersion: 1n, payload: "{}", payloadHash: new Uint8Array(32), payloadBytes: 2, insertedAt: new Date()
    })
    let readDelayMs = 0
    const reads: Array<bigint> = []
    const journal = {
      epoch: "ep_test",
      position: () => Effect.sync(() => ({ head: BigInt(stored.length), floor: 0n })),
      readMany: (rs: ReadonlyArray<{ topic: string; after: bigint }>) =>
        Effect.flatMap(Effect.sleep(`${readDelayMs} millis`), () =>
          Effect.sync(() => {
            const out = new Map()
            for (const r of rs) {
              reads.push(r.after)
              const events = stored.filter((e) => e.watermark > r.after)
              const head = BigInt(stored.length)
              out.set(r.topic, { topic: r.topic, events, head, floor: 0n, next: events.at(-1)?.watermark ?? r.after, complete: true })
            }
            return out
          }))
    } as unknown as Journal["Type"]
    const { sent, transport } = recordingTransport()
    const hub = new Hub({ journal, transport, run: (e) => void Effect.runFork(e), onGap: () => {} })
    const lease = await hub.activate(topic)
    hub.joined(lease, "binary")
    const commit = (...ws: Array<number>) => {
      const events = ws.map(event)
      stored.push(...events)
      return events
    }
    // 1, 2: handed over, published at once, nothing read.
    hub.wake([topic], new Map([[topic, commit(1, 2)]]))
    expect(sent).toEqual([]) // not on the committing fiber: in a microtask
    await Promise.resolve()
    expect(sent).toEqual([1n, 2n])
    expect(reads).toEqual([])
    // 3 is announced without its events (another node's commit): read, slowly; meanwhile 4, 5 are
    // committed here and handed over — they do not follow 2, so they wait for the read …
    readDelayMs = 30
    commit(3)
    hub.wake([topic])
    await new Promise((r) => setTimeout(r, 5))
    hub.wake([topic], new Map([[topic, commit(4, 5)]]))
    await Promise.resolve()
    expect(sent).toEqual([1n, 2n])
    await new Promise((r) => setTimeout(r, 100))
    expect(sent).toEqual([1n, 2n, 3n, 4n, 5n])
    // … and a read in flight when a following hand-over lands publishes only what is beyond it.
    commit(6)
    hub.wake([topic])
    await new Promise((r) => setTimeout(r, 5))
    hub.wake([topic], new Map([[topic, [event(6)]]]))
    await Promise.resolve()
    expect(sent).toEqual([1n, 2n, 3n, 4n, 5n, 6n])
    await new Promise((r) => setTimeout(r, 100))
    expect(sent).toEqual([1n, 2n, 3n, 4n, 5n, 6n])
    expect(hub.lastPublished(lease)).toBe(6n)
  })

  it("merges the hand-overs of a burst into one frame per topic, and splits a commit at the batch limits the welcome announces", async () => {
    let stored: Array<JournalEvent> = []
    const event = (w: number, payloadBytes = 2): JournalEvent => ({
      topic, watermark: BigInt(w), docKey: `d${w}`, docVersion: 1n, payload: "{}", payloadHash: new Uint8Array(32), payloadBytes, insertedAt: new Date()
    })
    const reads: Array<bigint> = []
    const journal = {
      epoch: "ep_test",
      position: () => Effect.sync(() => ({ head: BigInt(stored.length), floor: 0n })),
      readMany: (rs: ReadonlyArray<{ topic: string; after: bigint }>) =>
        Effect.sync(() => {
          const out = new Map()
          for (const r of rs) {
            reads.push(r.after)
            const events = stored.filter((e) => e.watermark > r.after).slice(0, Topic.MAX_BATCH_UPDATES)
            out.set(r.topic, { topic: r.topic, events, head: BigInt(stored.length), floor: 0n, next: events.at(-1)?.watermark ?? r.after, complete: true })
          }
          return out
        })
    } as unknown as Journal["Type"]
    const frames: Array<Array<bigint>> = []
    const transport = () => ({
      publish: (_t: string, _f: string, data: Uint8Array) => {
        frames.push((SyncWire.decodeServerFrame(data).message.updates as Array<any>).map((u) => u.watermark))
      }
    }) as unknown as Transport.TransportServer
    const hub = new Hub({ journal, transport, run: (e) => void Effect.runFork(e), onGap: () => {} })
    const lease = await hub.activate(topic)
    hub.joined(lease, "binary")
    let next = 1
    const commit = (n: number, payloadBytes = 2) => {
      const events = Array.from({ length: n }, () => event(next++, payloadBytes))
      stored = [...stored, ...events]
      hub.wake([topic], new Map([[topic, events]]))
    }
    // Three commits in one synchronous burst: one frame.
    commit(2)
    commit(1)
    commit(2)
    await Promise.resolve()
    expect(frames).toEqual([[1n, 2n, 3n, 4n, 5n]])
    // One commit of 450 events: 200 + 200 + 50, as a read would send them.
    frames.length = 0
    commit(450)
    await Promise.resolve()
    expect(frames.map((f) => f.length)).toEqual([200, 200, 50])
    expect(frames.flat()).toEqual(Array.from({ length: 450 }, (_, i) => BigInt(6 + i)))
    // Large documents: at most MAX_BATCH_BYTES of payload per frame (at least one document).
    frames.length = 0
    commit(5, 900 * 1024)
    commit(1, Topic.MAX_BATCH_BYTES + 1)
    await Promise.resolve()
    expect(frames.map((f) => f.length)).toEqual([2, 2, 1, 1])
    // Counted as a read counts them (doc key and framing too): two documents of 1 MiB − 16 B go
    // out one per frame, as a read would send them.
    frames.length = 0
    commit(1, 1024 * 1024 - 16)
    commit(1, 1024 * 1024 - 16)
    await Promise.resolve()
    expect(frames.map((f) => f.length)).toEqual([1, 1])
    expect(reads).toEqual([])
    expect(hub.lastPublished(lease)).toBe(BigInt(next - 1))
    // A read publishes a commit before its hand-over is taken up: the late hand-over is dropped,
    // and the next one in the same burst is published without another read.
    frames.length = 0
    const late = Array.from({ length: 2 }, () => event(next++))
    stored = [...stored, ...late]
    hub.wake([topic])
    await new Promise((r) => setTimeout(r, 10))
    expect(frames).toEqual([late.map((e) => e.watermark)])
    const readsBefore = reads.length
    hub.wake([topic], new Map([[topic, late]]))
    commit(1)
    await new Promise((r) => setTimeout(r, 10))
    expect(frames).toEqual([late.map((e) => e.watermark), [BigInt(next - 1)]])
    expect(reads.length).toBe(readsBefore)
  })

  it("reset (a new journal epoch) forgets every topic: old leases are inert, pending hand-overs and reads are dropped, a new activation starts from the journal's position", async () => {
    const head = { value: 3n }
    const { journal, reads } = scripted(head, 0)
    const { sent, transport } = recordingTransport()
    const hub = new Hub({ journal, transport, run: (e) => void Effect.runFork(e), onGap: () => {} })
    const event = (w: number): JournalEvent => ({
      topic, watermark: BigInt(w), docKey: `d${w}`, docVersion: 1n, payload: "{}", payloadHash: new Uint8Array(32), payloadBytes: 2, insertedAt: new Date()
    })
    const old = await hub.activate(topic)
    hub.joined(old, "binary")
    // A hand-over and a read are both due when the epoch changes …
    hub.wake([topic], new Map([[topic, [event(4)]]]))
    hub.wake(["runtime.run_summaries:user:other"])
    hub.reset()
    await new Promise((r) => setTimeout(r, 10))
    // … and neither is carried out for the forgotten state.
    expect(sent).toEqual([])
    expect(reads).toEqual([])
    expect(hub.activeTopics()).toEqual([])
    expect(hub.lastPublished(old)).toBeUndefined()
    hub.release(old) // inert
    // The new history: its head is 1; a new subscriber's topic starts there.
    head.value = 1n
    const fresh = await hub.activate(topic)
    hub.joined(fresh, "binary")
    expect(hub.lastPublished(fresh)).toBe(1n)
    hub.wake([topic], new Map([[topic, [event(2)]]]))
    await Promise.resolve()
    expect(sent).toEqual([2n])
    expect(hub.activeTopics()).toEqual([topic])
  })

  it("a hand-over that fails to publish is read and published by the next pass, and the writer never sees the failure", async () => {
    const stored = [1, 2].map((w): JournalEvent => ({
      topic, watermark: BigInt(w), docKey: `d${w}`, docVersion: 1n, payload: "{}", payloadHash: new Uint8Array(32), payloadBytes: 2, insertedAt: new Date()
    }))
    const reads: Array<bigint> = []
    const journal = {
      epoch: "ep_test",
      position: () => Effect.succeed({ head: 0n, floor: 0n }),
      readMany: (rs: ReadonlyArray<{ topic: string; after: bigint }>) =>
        Effect.sync(() => {
          const out = new Map()
          for (const r of rs) {
            reads.push(r.after)
            const events = stored.filter((e) => e.watermark > r.after)
            out.set(r.topic, { topic: r.topic, events, head: 2n, floor: 0n, next: events.at(-1)?.watermark ?? r.after, complete: true })
          }
          return out
        })
    } as unknown as Journal["Type"]
    let failures = 1
    const sent: Array<bigint> = []
    const transport = () => ({
      publish: (_t: string, _f: string, data: Uint8Array) => {
        if (failures-- > 0) throw new Error("socket boom")
        for (const u of SyncWire.decodeServerFrame(data).message.updates as Array<any>) sent.push(u.watermark)
      }
    }) as unknown as Transport.TransportServer
    const hub = new Hub({ journal, transport, run: (e) => void Effect.runFork(e), onGap: () => {} })
    const lease = await hub.activate(topic)
    hub.joined(lease, "binary")
    expect(() => hub.wake([topic], new Map([[topic, stored]]))).not.toThrow()
    await new Promise((r) => setTimeout(r, 20))
    expect(reads).toEqual([0n])
    expect(sent).toEqual([1n, 2n])
    expect(hub.lastPublished(lease)).toBe(2n)
  })

  it("a head below what was published (the database lost commits) is reported, and reset() makes every lease inert", async () => {
    const head = { value: 9n }
    const { journal } = scripted(head, 0)
    const rewound: Array<string> = []
    const hub = new Hub({ journal, transport: noTransport, run: (e) => void Effect.runFork(e), onGap: () => {}, onRewind: (t) => void rewound.push(t) })
    const lease = await hub.activate(topic)
    await Effect.runPromise(hub.poll)
    expect(rewound).toEqual([])
    head.value = 6n // a failover to a replica that had only 6 of the 9
    await Effect.runPromise(hub.poll)
    expect(rewound).toEqual([topic])
    hub.reset()
    expect(hub.activeTopics()).toEqual([])
    expect(hub.lastPublished(lease)).toBeUndefined()
    hub.release(lease) // inert
    const fresh = await hub.activate(topic)
    expect(hub.lastPublished(fresh)).toBe(6n)
  })
})
