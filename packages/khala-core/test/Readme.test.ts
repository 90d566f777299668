// The README's example, run as written.
import { Journal, MemoryStorage } from "@openagents/khala-core"
import { Effect } from "effect"
import { expect, it } from "vitest"

it("README example: publish then read from watermark 0", async () => {
  const program = Effect.gen(function*() {
    const journal = yield* Journal.Journal
    const topic = "runtime.run_summaries:user:42"
    yield* journal.publish(topic, [{ docKey: "runtime/run_summary:run_1", docVersion: 1, payload: { status: "running" } }])
    const batch = yield* journal.read(topic, 0n)
    return batch.events.map((e) => [e.watermark, e.docKey, e.payload])
  })
  expect(await Effect.runPromise(program.pipe(Effect.provide(MemoryStorage.layer)))).toEqual([[1n, "runtime/run_summary:run_1", `{"status":"running"}`]])
})

it("README example: the server layer accepts a hello and delivers a published document", async () => {
  const { Layer, Redacted, ManagedRuntime } = await import("effect")
  const { Journal: J, MemoryStorage: M, Notifier, Publisher, Server, SyncToken, TopicAuthorizer } = await import("@openagents/khala-core")
  const { TestClient } = await import("@openagents/khala-core/testing")
  const secret = "k".repeat(40)
  const Khala = Layer.mergeAll(Server.layer({ port: 0 }), Publisher.layer).pipe(
    Layer.provideMerge(Layer.mergeAll(J.layer, Notifier.layerMemory, TopicAuthorizer.layerDefault,
      SyncToken.layer({ hmacKeys: [{ kid: "k1", secret: Redacted.make(secret) }],
        issuer: "https://control.example", audience: "openagents-sync", claimsVersion: "oa_sync_claims_v1" }))),
    Layer.provideMerge(M.layerStorage))
  const runtime = ManagedRuntime.make(Khala)
  try {
    const server = await runtime.runPromise(Server.KhalaServerTag)
    const now = Math.floor(Date.now() / 1000)
    const token = await Effect.runPromise(SyncToken.signHmac({
      iss: "https://control.example", aud: "openagents-sync", sub: "user:42", iat: now, exp: now + 60, jti: "j1",
      oa_org_id: "user:42", oa_sync_scopes: ["runtime.run_summaries"], oa_claims_version: "oa_sync_claims_v1",
      oa_session_id: "s1", oa_device_id: "d1"
    }, { kid: "k1", secret: Redacted.make(secret) }))
    const client = await TestClient.connect(`ws://127.0.0.1:${server.port}/sync/v1/ws`)
    await client.hello(token)
    await client.subscribe(["runtime.run_summaries:user:42"])
    await runtime.runPromise(Effect.flatMap(Publisher.Publisher, (p) => p.publish("runtime.run_summaries:user:42", [{ docKey: "run:1", docVersion: 1, payload: { ok: true } }])))
    await client.until("runtime.run_summaries:user:42", 1n)
    expect(client.applied.get("runtime.run_summaries:user:42")![0]!.payload).toBe(`{"ok":true}`)
    await client.close()
  } finally {
    await runtime.dispose()
  }
})
