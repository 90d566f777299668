// Delivery of session revocations to the runtime, through an outbox: the transaction that
// revokes sessions also writes a notice (AuthStorage.enqueueRevocation); after commit the relay
// is kicked and sends it (RuntimeClient.revokeSessions), and a background fiber retries
// undelivered notices with exponential backoff. A revocation therefore reaches the runtime even
// when the runtime is down at the time, or control restarts before sending it. Delivery is at
// least once; the runtime's revocation endpoint is idempotent. Each notice tells the runtime how
// long to remember it (remember_until_ms: the revocation time plus the longest lifetime of
// control's tokens, tokenLifetimeMs, plus skew), since only control knows its access-token TTL.
//
// A 4xx answer means the runtime refuses the notice itself (a bug, or a version skew between the
// planes), so waiting will not help; but dropping it would leave the sessions live on the runtime.
// Such a notice is still retried, and every refusal is logged as an error and counted in
// control_runtime_revocations_refused_total (not in _failed_total, which counts transient
// failures: the runtime unreachable or answering 5xx), so an operator sees it.
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type { StorageError } from "./Errors.js"
import { randomId } from "./internal/crypto.js"
import { RuntimeClient, type RuntimeUnavailable } from "./RuntimeClient.js"
import { AuthStorage, type RevocationNotice, type RevocationReason } from "./Storage.js"

export interface RelayOptions {
  /** How often undelivered notices are retried without a kick; default 5 s. */
  readonly interval?: Duration.DurationInput | undefined
  readonly batchSize?: number | undefined
  /** Delay before retry number `attempts` (1-based); default 1 s doubling up to 5 min. */
  readonly backoffMs?: ((attempts: number) => number) | undefined
  /**
   * The longest a token of a revoked session can live: max(access-token TTL, longest sync-token
   * TTL), in ms; default 3,600,000 (a 3600 s access token). The runtime refuses the revoked
   * sessions' tokens until the revocation time plus this plus REVOCATION_SKEW_MS.
   */
  readonly tokenLifetimeMs?: number | undefined
}

export const DEFAULT_TOKEN_LIFETIME_MS = 3_600_000
/** Clock skew allowed between control (which stamps the tokens) and the runtime. */
export const REVOCATION_SKEW_MS = 30_000

export interface RevocationRelayService {
  /** Ask the relay to deliver now (after a commit that enqueued notices). */
  readonly kick: Effect.Effect<void>
  /** Deliver the notices that are due; the number delivered. */
  readonly deliverDue: Effect.Effect<number, StorageError>
}

export class RevocationRelay extends Context.Tag("@openagents/control-core/RevocationRelay")<RevocationRelay, RevocationRelayService>() {}

const delivered = Metric.counter("control_runtime_revocations_delivered_total", { description: "Session revocation notices acknowledged by the runtime" })
const failed = Metric.counter("control_runtime_revocations_failed_total", { description: "Attempts to deliver a session revocation that failed transiently (runtime unreachable or 5xx)" })
const refused = Metric.counter("control_runtime_revocations_refused_total", {
  description: "Attempts to deliver a session revocation that the runtime refused (4xx); retried, but they need an operator"
})

/** A 4xx: the runtime read the notice and refused it. */
const isRefusal = (error: RuntimeUnavailable) => error.status !== undefined && error.status >= 400 && error.status < 500

const defaultBackoff = (attempts: number) => Math.min(1000 * 2 ** Math.max(0, attempts - 1), 300_000)

/** A notice for the outbox. */
export const notice = (input: {
  readonly userId: string
  readonly sessionIds: ReadonlyArray<string>
  readonly deviceIds: ReadonlyArray<string>
  readonly reason: RevocationReason
  readonly nowMs: number
}): RevocationNotice => ({
  id: randomId("rev"),
  userId: input.userId,
  sessionIds: [...input.sessionIds],
  deviceIds: [...input.deviceIds],
  reason: input.reason,
  createdAtMs: input.nowMs,
  attempts: 0,
  nextAttemptAtMs: input.nowMs,
  deliveredAtMs: undefined,
  lastError: undefined
})

export const make = (options: RelayOptions = {}) =>
  Effect.gen(function*() {
    const storage = yield* AuthStorage
    const runtime = yield* RuntimeClient
    const backoff = options.backoffMs ?? defaultBackoff
    const rememberMs = (options.tokenLifetimeMs ?? DEFAULT_TOKEN_LIFETIME_MS) + REVOCATION_SKEW_MS
    const kicks = yield* Queue.sliding<void>(1)
    const lock = yield* Effect.makeSemaphore(1)

    const deliverDue = lock.withPermits(1)(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const due = yield* storage.dueRevocations(now, options.batchSize ?? 50)
      let count = 0
      for (const n of due) {
        const result = yield* Effect.either(runtime.revokeSessions({
          userId: n.userId,
          revokedAtMs: n.createdAtMs,
          // From the revocation, not the delivery: a token signed just before it lives that long.
          rememberUntilMs: n.createdAtMs + rememberMs,
          sessionIds: n.sessionIds,
          deviceIds: n.deviceIds,
          reason: n.reason
        }))
        const at = yield* Clock.currentTimeMillis
        if (result._tag === "Right") {
          yield* storage.markRevocationDelivered(n.id, at)
          yield* Metric.increment(delivered)
          count++
        } else {
          yield* storage.markRevocationFailed(n.id, result.left.detail, at + backoff(n.attempts + 1))
          if (isRefusal(result.left)) {
            yield* Metric.increment(refused)
            yield* Effect.logError(`session revocation ${n.id} REFUSED by the runtime (attempt ${n.attempts + 1}; retried, but the sessions stay live on the runtime until it accepts it): ${result.left.detail}`)
          } else {
            yield* Metric.increment(failed)
            yield* Effect.logWarning(`session revocation ${n.id} not delivered to the runtime (attempt ${n.attempts + 1}): ${result.left.detail}`)
          }
        }
      }
      return count
    }))

    yield* Effect.raceFirst(Queue.take(kicks), Effect.sleep(options.interval ?? Duration.seconds(5))).pipe(
      Effect.zipRight(deliverDue),
      Effect.catchAllCause((cause) => Effect.logWarning("revocation relay failed", cause)),
      Effect.forever,
      Effect.forkScoped
    )

    const service: RevocationRelayService = { kick: Effect.asVoid(Queue.offer(kicks, undefined)), deliverDue }
    return service
  })

/** The relay with its background delivery fiber (stopped with the layer). */
export const layer = (options: RelayOptions = {}): Layer.Layer<RevocationRelay, never, AuthStorage | RuntimeClient> =>
  Layer.scoped(RevocationRelay, make(options))
