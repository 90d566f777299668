// The revocation relay against a runtime that fails: a transient failure (unreachable, 5xx) is a
// warning and control_runtime_revocations_failed_total; a refusal (4xx) is an error and
// control_runtime_revocations_refused_total. Either way the notice stays in the outbox and is retried.
import { describe, expect, it } from "@effect/vitest"
import { MemoryStorage, Revocations, RuntimeClient, Storage } from "@openagents/control-core"
import { Prometheus } from "@openagents/host-kit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"

const counter = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(Prometheus.render())?.[1] ?? 0)

/** A runtime whose every revocation answer is `status` (undefined: unreachable). */
const failingRuntime = (status: number | undefined) =>
  Layer.succeed(RuntimeClient.RuntimeClient, {
    revokeSessions: () => Effect.fail(new RuntimeClient.RuntimeUnavailable({ detail: `answered ${status ?? "nothing"}`, ...(status === undefined ? {} : { status }) })),
    forward: () => Effect.fail(new RuntimeClient.RuntimeUnavailable({ detail: "no proxy here" }))
  })

const attempt = (status: number | undefined) =>
  Effect.gen(function*() {
    const logs: Array<{ level: LogLevel.LogLevel["label"]; message: string }> = []
    const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ logLevel, message }) => logs.push({ level: logLevel.label, message: String(message) })))
    const storage = yield* Storage.AuthStorage
    const relay = yield* Revocations.RevocationRelay
    const now = Date.now()
    yield* storage.enqueueRevocation(Revocations.notice({ userId: "usr_1", sessionIds: ["sess_1"], deviceIds: [], reason: "user_requested", nowMs: now }))
    const before = { failed: counter("control_runtime_revocations_failed_total"), refused: counter("control_runtime_revocations_refused_total") }
    expect(yield* relay.deliverDue.pipe(Effect.provide(capture))).toBe(0)
    const after = { failed: counter("control_runtime_revocations_failed_total"), refused: counter("control_runtime_revocations_refused_total") }
    // Still in the outbox, due again after the backoff.
    const pending = yield* storage.dueRevocations(now + 10 * 60_000, 10)
    return { logs, delta: { failed: after.failed - before.failed, refused: after.refused - before.refused }, pending: pending.map((n) => n.sessionIds) }
  }).pipe(
    Effect.provide(Revocations.layer({ interval: "1 hour" }).pipe(Layer.provideMerge(failingRuntime(status)), Layer.provideMerge(MemoryStorage.layer))),
    Effect.scoped
  )

describe("RevocationRelay", () => {
  it.live("a notice the runtime refuses (4xx) is kept and retried, logged as an error and counted as refused", () =>
    Effect.gen(function*() {
      const result = yield* attempt(400)
      expect(result.delta).toEqual({ failed: 0, refused: 1 })
      expect(result.logs.map((l) => l.level)).toEqual(["ERROR"])
      expect(result.logs[0]!.message).toContain("REFUSED")
      expect(result.pending).toEqual([["sess_1"]])
    }))

  it.live("a runtime that is down (5xx or unreachable) is a transient failure: a warning, counted as failed, retried", () =>
    Effect.gen(function*() {
      for (const status of [503, undefined]) {
        const result = yield* attempt(status)
        expect(result.delta).toEqual({ failed: 1, refused: 0 })
        expect(result.logs.map((l) => l.level)).toEqual(["WARN"])
        expect(result.pending).toEqual([["sess_1"]])
      }
    }))
})
