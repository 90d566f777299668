// A user never receives another user's runs or workers through Khala: the runtime's ownership
// lookup decides worker topics, the token's user decides user topics.
import { TopicAuthorizer } from "@openagents/khala-core"
import { TestClient, TestServer } from "@openagents/khala-core/testing"
import { FrameKind, SyncErrorCode } from "@openagents/proto/sync/v1"
import { PgliteClient } from "@openagents/sql-pglite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Owners from "../src/Owners.js"
import * as Workers from "../src/Workers.js"
import { runtimeLayer } from "./support.js"

const runtime = ManagedRuntime.make(runtimeLayer(PgliteClient.layer()))
let server: TestServer.TestServer
beforeAll(async () => {
  const context = (await runtime.runtime()).context
  const authorizer = await runtime.runPromise(Effect.map(TopicAuthorizer.TopicAuthorizer, (a) => a).pipe(Effect.provide(Owners.authorizerLayer)))
  server = await TestServer.start({
    storage: Layer.succeedContext(context) as never,
    authorizer: Layer.succeed(TopicAuthorizer.TopicAuthorizer, authorizer),
    server: { pollIntervalMs: 50, tickMs: 20 }
  })
})
afterAll(async () => {
  await server.dispose()
  await runtime.dispose()
})

it("lets the owner follow a worker's events and refuses everyone else, by ownership not just scope", async () => {
  await runtime.runPromise(Effect.flatMap(Workers.Workers, (w) => w.create({ userId: "alice" }, { workerId: "w-alice" })))
  await runtime.runPromise(Effect.flatMap(Workers.Workers, (w) => w.create({ userId: "bob" }, { workerId: "w-bob" })))
  const alice = await TestClient.connect(server.url)
  await alice.hello(await TestServer.token("alice"))
  const ok = await alice.subscribe(["runtime.codex_worker_events:worker:w-alice", "runtime.codex_worker_summaries:user:alice"], "own")
  expect(ok.kind).toBe(FrameKind.SUBSCRIBED)
  const denied = await alice.subscribe(["runtime.codex_worker_events:worker:w-bob"], "theirs")
  expect(denied.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
  const unknown = await alice.subscribe(["runtime.codex_worker_events:worker:w-nobody"], "unknown")
  expect(unknown.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
  const otherUser = await alice.subscribe(["runtime.codex_worker_summaries:user:bob"], "bobs")
  expect(otherUser.message.code).toBe(SyncErrorCode.FORBIDDEN_TOPIC)
  await runtime.runPromise(Effect.flatMap(Workers.Workers, (w) => w.appendEvent({ userId: "bob" }, "w-bob", { eventType: "worker.response", payload: { secret: true } })))
  await runtime.runPromise(Effect.flatMap(Workers.Workers, (w) => w.appendEvent({ userId: "alice" }, "w-alice", { eventType: "worker.response", payload: { mine: true } })))
  await alice.until("runtime.codex_worker_events:worker:w-alice", 2n)
  const seen = [...alice.applied.keys()]
  expect(seen.sort()).toEqual(["runtime.codex_worker_events:worker:w-alice", "runtime.codex_worker_summaries:user:alice"])
  expect([...alice.applied.values()].flat().map((u) => u.payload).join()).not.toContain("secret")
  await alice.close()
})
