// The set of paced (demoted) subscriptions the server's slow-consumer sweep checks every tick.
import { describe, expect, it } from "vitest"
import { PacedSubscriptions } from "../src/internal/paced.js"

interface Sub {
  readonly id: number
  readonly connection: string
}

describe("PacedSubscriptions", () => {
  it("the sweep's budget check visits only paced subscriptions, whatever the number of healthy ones, and names each connection once", () => {
    const subs: Array<Sub> = Array.from({ length: 10_000 }, (_, id) => ({ id, connection: `c${id % 100}` }))
    const paced = new PacedSubscriptions<string, Sub>()
    for (const id of [1, 101, 2]) paced.add(subs[id]!.connection, subs[id]!)
    const visited: Array<number> = []
    const behind = paced.behind((s) => {
      visited.push(s.id)
      return true
    })
    // c1's first paced subscription is behind: its second is not visited.
    expect(visited).toEqual([1, 2])
    expect(behind.map(([c, s]) => [c, s.id])).toEqual([["c1", 1], ["c2", 2]])
    // Back to live, or ended: no longer visited.
    paced.delete(subs[1]!)
    paced.delete(subs[2]!)
    visited.length = 0
    expect(paced.behind((s) => (visited.push(s.id), false))).toEqual([])
    expect(visited).toEqual([101])
    paced.delete(subs[101]!)
    expect(paced.size).toBe(0)
  })
})
