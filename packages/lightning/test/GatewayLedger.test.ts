// The gateway's durable sales ledger (Gateway.fileLedger): entries and acknowledgements survive a
// reload, a torn last line (a crash mid-write) is ignored, a corrupt line elsewhere fails the
// load, and compaction keeps the live entries and the seq high-water mark.
import * as Effect from "effect/Effect"
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { fileLedger, type LedgerEntry } from "../src/Gateway.js"

const invoice = (seq: number): LedgerEntry => ({
  seq,
  invoice: { invoiceId: `inv_${seq}`, paywallId: "pw_1", ownerId: "owner_1", amountMsats: 1000, status: "open", paymentHash: `${seq}`.padStart(64, "0"), paymentRequest: "lnbcrt1" }
}) as LedgerEntry

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
const fresh = () => join(mkdtempSync(join(tmpdir(), "gateway-ledger-")), "nested", "ledger.jsonl")

describe("Gateway.fileLedger", () => {
  it("keeps unacknowledged entries and the seq across reloads", async () => {
    const path = fresh()
    const a = fileLedger(path)
    expect(await run(a.load)).toEqual({ seq: 0, entries: [] })
    for (const seq of [1, 2, 3]) await run(a.append(invoice(seq)))
    await run(a.ack(2))
    const b = fileLedger(path)
    expect(await run(b.load)).toEqual({ seq: 3, entries: [invoice(3)] })
    await run(b.ack(3))
    expect(await run(fileLedger(path).load)).toEqual({ seq: 3, entries: [] })
  })

  it("ignores a torn last line and refuses a corrupt one in the middle", async () => {
    const path = fresh()
    const ledger = fileLedger(path)
    await run(ledger.append(invoice(1)))
    appendFileSync(path, `{"entry":{"seq":2,"inv`)
    expect(await run(fileLedger(path).load)).toEqual({ seq: 1, entries: [invoice(1)] })
    writeFileSync(path, `{"entry":{"seq":2,"inv\n${readFileSync(path, "utf8").split("\n")[0]}\n`)
    await expect(run(fileLedger(path).load)).rejects.toThrow(/:1 is not a ledger record/)
  })

  it("compacts acknowledged lines away without losing live entries or the seq", async () => {
    const path = fresh()
    const ledger = fileLedger(path)
    await run(ledger.load)
    for (let seq = 1; seq <= 60; seq++) {
      await run(ledger.append(invoice(seq)))
      if (seq % 10 === 0) await run(ledger.ack(seq - 1))
    }
    const lines = readFileSync(path, "utf8").trim().split("\n")
    expect(lines.length).toBeLessThan(66)
    const loaded = await run(fileLedger(path).load)
    expect(loaded.seq).toBe(60)
    expect(loaded.entries.map((e) => e.seq)).toEqual([60])
  })
})
