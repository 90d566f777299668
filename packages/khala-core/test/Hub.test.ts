// The fanout hub on its own, over a scripted journal: what it reads, when, and what a lease holds.
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import { Hub } from "../src/Hub.js"
import type { Journal } from "../src/Journal.js"
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
