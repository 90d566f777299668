// SQL-specific behaviour: the journal joins the caller's transaction, watermarks become visible
// in commit order under real concurrency, and the epoch is fixed per database.
import { describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Journal, SqlStorage } from "@openagents/khala-core"
import { JournalSuite } from "@openagents/khala-core/testing/vitest"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { KhalaStorage } from "../src/Storage.js"

class AuthorityWriteFailed extends Error {}

for (const engine of SqlTesting.engines()) {
  const storage = SqlStorage.layerStorage.pipe(Layer.provideMerge(engine.layer))
  describe(`SQL storage on ${engine.name}`, () => {
    layer(JournalSuite.portsLayer(storage), { excludeTestServices: true })((it) => {
      it.effect("appends inside the caller's transaction: the authority row and the journal commit or roll back together", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const journal = yield* Journal.Journal
          const topic = JournalSuite.freshTopic("suite.docs")
          yield* sql`CREATE TABLE IF NOT EXISTS authority_rows (id text PRIMARY KEY)`
          const write = (id: string, fail: boolean) =>
            sql.withTransaction(
              Effect.gen(function*() {
                yield* sql`INSERT INTO authority_rows (id) VALUES (${id})`
                yield* journal.publish(topic, [{ docKey: id, docVersion: 1, payload: { id } }])
                if (fail) return yield* Effect.fail(new AuthorityWriteFailed())
              })
            )
          yield* write(`${topic}-a`, false)
          expect(Exit.isFailure(yield* Effect.exit(write(`${topic}-b`, true)))).toBe(true)
          yield* write(`${topic}-c`, false)
          const rows = yield* sql<{ id: string }>`SELECT id FROM authority_rows WHERE id LIKE ${`${topic}-%`} ORDER BY id`
          expect(rows.map((r) => r.id)).toEqual([`${topic}-a`, `${topic}-c`])
          const events = yield* JournalSuite.readAll(topic, 0n)
          expect(events.map((e) => [e.watermark, e.docKey])).toEqual([[1n, `${topic}-a`], [2n, `${topic}-c`]])
        }))

      it.effect("keeps the same epoch when the storage is rebuilt on the same database, and migrations run once", () =>
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          expect(journal.epoch).toMatch(/^ep_[0-9a-f]{32}$/)
          const again = yield* SqlStorage.make
          expect(again.epoch).toBe(journal.epoch)
          expect(yield* SqlStorage.migrate).toEqual([])
        }))

      it.effect("gives the journal a new epoch when the database comes back on another cluster or timeline (a restore, a failover), once", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const journal = yield* Journal.Journal
          const [before] = yield* sql<{ epoch: string; cluster: string | null }>`SELECT epoch, cluster FROM runtime.sync_journal_meta`
          expect(before!.epoch).toBe(journal.epoch)
          expect(before!.cluster).toMatch(/^\d+:\d+$/)
          // The recorded cluster is not this one: the data came from elsewhere.
          yield* sql`UPDATE runtime.sync_journal_meta SET cluster = '1:1'`
          const restored = yield* SqlStorage.make
          expect(restored.epoch).not.toBe(journal.epoch)
          expect(restored.epoch).toMatch(/^ep_[0-9a-f]{32}$/)
          // Renewed once: the next start keeps it.
          expect((yield* SqlStorage.make).epoch).toBe(restored.epoch)
          // A journal from before migration 0002 (no cluster recorded) keeps its epoch.
          yield* sql`UPDATE runtime.sync_journal_meta SET cluster = NULL`
          expect((yield* SqlStorage.make).epoch).toBe(restored.epoch)
          yield* sql`UPDATE runtime.sync_journal_meta SET epoch = ${before!.epoch}, cluster = ${before!.cluster}`
        }))

      it.effect("a running storage learns of a restore or failover when asked (refreshEpoch): one of several nodes renews, the others adopt its epoch", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const journal = yield* Journal.Journal
          const before = journal.epoch
          const other = yield* SqlStorage.make
          expect(yield* journal.refreshEpoch).toBe(false)
          yield* sql`UPDATE runtime.sync_journal_meta SET cluster = '1:1'`
          expect(yield* journal.refreshEpoch).toBe(true)
          expect(journal.epoch).not.toBe(before)
          expect(journal.epoch).toMatch(/^ep_[0-9a-f]{32}$/)
          // The other node: nothing to renew any more, the database's epoch to adopt.
          expect(other.epoch).toBe(before)
          expect(yield* other.refreshEpoch!).toBe(true)
          expect(other.epoch).toBe(journal.epoch)
          expect(yield* other.refreshEpoch!).toBe(false)
          expect(yield* journal.refreshEpoch).toBe(false)
          const [meta] = yield* sql<{ epoch: string }>`SELECT epoch FROM runtime.sync_journal_meta`
          expect(meta!.epoch).toBe(journal.epoch)
          yield* sql`UPDATE runtime.sync_journal_meta SET epoch = ${before}`
          expect(yield* journal.refreshEpoch).toBe(true)
          expect(journal.epoch).toBe(before)
        }))

      it.effect("the Publisher hands a commit's events to this node's hub only when they are committed: not from a savepoint, nor from inside a caller's transaction", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const { publisher, wakes } = yield* JournalSuite.recordingPublisher
          const topic = JournalSuite.freshTopic("suite.events")
          const entry = (key: string) => [{ docKey: key, docVersion: 1, payload: { key } }]
          yield* publisher.append(topic, entry("a"))
          yield* publisher.transaction(Effect.zipRight(publisher.append(topic, entry("b")), publisher.append(topic, entry("c"))))
          // A savepoint that rolls back while the transaction commits: its watermark is reused.
          yield* publisher.transaction(Effect.gen(function*() {
            yield* Effect.either(sql.withTransaction(Effect.zipRight(publisher.append(topic, entry("lost")), Effect.fail("no"))))
            yield* publisher.append(topic, entry("d"))
          }))
          // Ours is only a savepoint of the caller's transaction: nothing is committed when it ends.
          yield* sql.withTransaction(publisher.transaction(publisher.append(topic, entry("e"))))
          // A statement failed and the caller went on: COMMIT would roll back without a word. The
          // transaction fails instead, and nothing is handed over.
          yield* sql`CREATE TABLE IF NOT EXISTS publisher_guard (id text PRIMARY KEY)`
          yield* sql`INSERT INTO publisher_guard (id) VALUES (${topic}) ON CONFLICT DO NOTHING`
          const aborted = yield* Effect.exit(publisher.transaction(Effect.gen(function*() {
            yield* publisher.append(topic, entry("phantom"))
            yield* Effect.ignore(sql`INSERT INTO publisher_guard (id) VALUES (${topic})`)
          })))
          expect(Exit.isFailure(aborted)).toBe(true)
          expect(wakes).toEqual([[1n], [2n, 3n], undefined, undefined])
          const events = yield* JournalSuite.readAll(topic, 0n)
          expect(events.map((e) => [e.watermark, e.docKey])).toEqual([[1n, "a"], [2n, "b"], [3n, "c"], [4n, "d"], [5n, "e"]])
        }))

      it.effect("reads each payload's UTF-8 right even when a row's payload_bytes is wrong", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const journal = yield* Journal.Journal
          const topic = JournalSuite.freshTopic("suite.events")
          yield* journal.append(topic, ["ä", "日本", "🙂", "plain"].map((text, i) => ({ docKey: `k${i}`, docVersion: 1, payload: { text } })))
          // Rows not written by the adapter: one claims fewer bytes than it has, one more.
          yield* sql`UPDATE runtime.sync_stream_events SET payload_bytes = payload_bytes - 1 WHERE topic = ${topic} AND watermark = 2`
          yield* sql`UPDATE runtime.sync_stream_events SET payload_bytes = payload_bytes + 3 WHERE topic = ${topic} AND watermark = 3`
          const events = yield* JournalSuite.readAll(topic, 0n)
          expect(events.map((e) => new TextDecoder().decode(e.payloadUtf8))).toEqual(events.map((e) => e.payload))
          expect(events.map((e) => e.payload)).toEqual(["ä", "日本", "🙂", "plain"].map((text) => JSON.stringify({ text })))
        }))

      it.effect("sends concurrent appends to one topic outside a transaction together: fewer transactions, each caller its own events", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const journal = yield* Journal.Journal
          const topic = JournalSuite.freshTopic("suite.events")
          const results = yield* Effect.forEach(
            Array.from({ length: 16 }, (_, w) => w),
            (w) => journal.append(topic, [{ docKey: `w${w}:a`, docVersion: 1, payload: { w } }, { docKey: `w${w}:b`, docVersion: 1, payload: { w } }]),
            { concurrency: "unbounded" }
          )
          results.forEach((events, w) => {
            expect(events.map((e) => e.docKey)).toEqual([`w${w}:a`, `w${w}:b`])
            expect(events[1]!.watermark).toBe(events[0]!.watermark + 1n)
          })
          expect(results.flat().map((e) => e.watermark).sort((a, b) => (a < b ? -1 : 1))).toEqual(Array.from({ length: 32 }, (_, i) => BigInt(i + 1)))
          // The first append goes out alone; the others arrive while it is in flight and share
          // the next transaction (rows of one transaction share xmin). Usually that is 2
          // transactions; a scheduler yield between the forks can split the queue once more.
          const transactions = yield* sql<{ n: string }>`SELECT count(DISTINCT xmin::text) AS n FROM runtime.sync_stream_events WHERE topic = ${topic}`
          expect(Number(transactions[0]!.n)).toBeLessThanOrEqual(4)
        }))

      if (engine.concurrent) {
        it.effect("makes watermarks visible in commit order: a later writer waits for the earlier one's commit", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const journal = yield* Journal.Journal
            const topic = JournalSuite.freshTopic("suite.events")
            const allocated = yield* Deferred.make<bigint>()
            const release = yield* Deferred.make<void>()
            const first = yield* sql.withTransaction(
              Effect.gen(function*() {
                const [event] = yield* journal.append(topic, [{ docKey: "first", docVersion: 1, payload: {} }])
                yield* Deferred.succeed(allocated, event!.watermark)
                yield* Deferred.await(release)
              })
            ).pipe(Effect.fork)
            expect(yield* Deferred.await(allocated)).toBe(1n)
            const second = yield* journal.append(topic, [{ docKey: "second", docVersion: 1, payload: {} }]).pipe(Effect.fork)
            yield* Effect.sleep("150 millis")
            // The second writer is blocked on the sequence row, and readers see neither event yet.
            expect(second.unsafePoll()).toBeNull()
            expect(yield* journal.position(topic)).toEqual({ head: 0n, floor: 0n })
            expect((yield* journal.read(topic, 0n)).events).toEqual([])
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(first)
            const [secondEvent] = yield* Fiber.join(second)
            expect(secondEvent!.watermark).toBe(2n)
            expect((yield* JournalSuite.readAll(topic, 0n)).map((e) => e.docKey)).toEqual(["first", "second"])
          }))

        it.effect("a prune that waits for an appender of its topic raises the floor only over what it pruned, and the appended events stay readable", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const journal = yield* Journal.Journal
            const storage = yield* KhalaStorage
            const topic = JournalSuite.freshTopic("suite.docs")
            const old = yield* journal.append(topic, [1, 2, 3].map((i) => ({ docKey: `d${i}`, docVersion: 1, payload: { i } })))
            const cutoff = new Date(old[2]!.insertedAt.getTime() + 1)
            yield* Effect.sleep("50 millis")
            const appended = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            const writer = yield* sql.withTransaction(
              Effect.gen(function*() {
                yield* journal.append(topic, [4, 5].map((i) => ({ docKey: `d${i}`, docVersion: 1, payload: { i } })))
                yield* Deferred.succeed(appended, undefined)
                yield* Deferred.await(release)
              })
            ).pipe(Effect.fork)
            yield* Deferred.await(appended)
            const prune = yield* storage.pruneBatch(topic, cutoff, 5000).pipe(Effect.fork)
            yield* Effect.sleep("150 millis")
            expect(prune.unsafePoll()).toBeNull() // waiting for the writer's lock on the topic
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(writer)
            expect(yield* Fiber.join(prune)).toEqual({ pruned: 3, floor: 3n })
            expect(yield* journal.position(topic)).toEqual({ head: 5n, floor: 3n })
            expect((yield* JournalSuite.readAll(topic, 3n)).map((e) => e.watermark)).toEqual([4n, 5n])
          }))
      }
    })
  })
}
