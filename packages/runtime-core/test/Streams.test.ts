// SSE streams and revocations that were not announced to them: one recorded between the request's
// authentication and the stream's listener, and one recorded while the node was deaf (its LISTEN
// connection reopened, the listener's `resync`). Both end the stream with reauth_required.
import type * as HttpBody from "@effect/platform/HttpBody"
import { Notifier } from "@openagents/khala-core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import type { Caller } from "../src/Api.js"
import * as Auth from "../src/Auth.js"
import * as Streams from "../src/Streams.js"

const listeners = new Set<Notifier.Listener>()
const notifier = Layer.succeed(Notifier.Notifier, {
  wake: () => Effect.void,
  revoke: () => Effect.void,
  listen: (listener) => Effect.asVoid(Effect.acquireRelease(Effect.sync(() => listeners.add(listener)), () => Effect.sync(() => listeners.delete(listener))))
})
const source: Streams.Source<{ readonly seq: bigint }> = {
  topic: "runtime.runs:test",
  after: () => Effect.succeed([]),
  bounds: Effect.succeed({ latest: 0n, first: undefined }),
  format: (item) => `id: ${item.seq}`
}
const nowSeconds = () => Math.floor(Date.now() / 1000)

/** Open a stream for `caller` and collect its text until it ends (tail `tailMs`). */
const open = (caller: Caller, tailMs: number) =>
  Effect.gen(function*() {
    const response = yield* Streams.respond(caller, source, { cursor: undefined, tailMs })
    const body = response.body as HttpBody.Stream
    return Effect.map(Stream.runCollect(body.stream as Stream.Stream<Uint8Array>), (chunks) =>
      Chunk.toArray(chunks).map((c) => new TextDecoder().decode(c)).join(""))
  })

const run = <A>(effect: Effect.Effect<A, unknown, Auth.RevokedSessions | Notifier.Notifier>) =>
  Effect.runPromise(effect.pipe(Effect.provide(Layer.merge(Auth.layerRevokedSessionsMemory, notifier))))

describe("runtime SSE streams and unannounced revocations", () => {
  it("a session revoked before the stream listens (no announcement reaches it) ends the stream at once", async () => {
    const text = await run(Effect.gen(function*() {
      const store = yield* Auth.RevokedSessions
      yield* store.record({ sessionIds: ["sess_quiet"], deviceIds: [], reason: "user_requested", ttlMs: 60_000 })
      const collect = yield* open({ userId: "u1", via: "bearer", sessionId: "sess_quiet", deviceId: "dev_1", issuedAt: nowSeconds() }, 5_000)
      return yield* collect
    }))
    expect(text).toContain('"code":"reauth_required"')
  })

  it("a device revoked while the node was deaf ends the stream on resync; an unrevoked stream goes on", async () => {
    const [revokedText, keptText] = await run(Effect.gen(function*() {
      const store = yield* Auth.RevokedSessions
      const issuedAt = nowSeconds() - 5
      const doomed = yield* Effect.fork(Effect.flatten(open({ userId: "u2", via: "bearer", sessionId: "sess_d", deviceId: "dev_deaf", issuedAt }, 3_000)))
      const kept = yield* Effect.fork(Effect.flatten(open({ userId: "u3", via: "bearer", sessionId: "sess_k", deviceId: "dev_deaf", issuedAt }, 1_500)))
      yield* Effect.sleep("100 millis")
      // Recorded by another node, its announcement missed by this one: nothing happens yet …
      yield* store.record({ sessionIds: [], deviceIds: ["dev_deaf"], userId: "u2", reason: "user_requested", ttlMs: 60_000 })
      yield* Effect.sleep("100 millis")
      // … until the node reopens LISTEN and resyncs.
      for (const l of listeners) l.resync?.()
      const started = Date.now()
      const text = yield* Fiber.join(doomed)
      expect(Date.now() - started).toBeLessThan(2_000)
      return [text, yield* Fiber.join(kept)] as const
    }))
    expect(revokedText).toContain('"code":"reauth_required"')
    expect(keptText).not.toContain("reauth_required")
  })
})
