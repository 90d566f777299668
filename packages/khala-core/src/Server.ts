// The Khala WebSocket server: sessions (Session.ts, pure) driven by transport callbacks, the
// node's fanout hub (Hub.ts), and per-connection catch-up.
//
// Subscribe, in order: topics parsed (bad_subscription) → every topic's class granted by the
// token's scopes and its owner accepted by the TopicAuthorizer (all or nothing: forbidden_topic)
// → resume points checked against the journal (stale topics get stale_cursor with a snapshot
// plan; the others proceed) → Subscribed → replay in batches of at most 200 updates / 2 MiB,
// the last one marked replay_complete → live (see Hub.ts for why the handoff has no gap).
//
// Catch-up runs in one fiber per connection, one batch per topic in turn, and only while the
// socket's send buffer is below `resumeBelowBytes`. A live subscriber whose buffer grows past
// `softLimitBytes` is demoted to that paced catch-up (it falls behind, it loses nothing) and
// takes a strike; `maxStrikes` strikes within `strikeWindowMs`, or falling further behind than
// the topic's replay budget, ends the connection with slow_consumer and reconnect_after_ms.
import type { Subscribe } from "@openagents/proto/sync/v1"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { StaleCursorError } from "./Errors.js"
import { Hub, type TopicLease } from "./Hub.js"
import { Journal } from "./Journal.js"
import * as Metrics from "./Metrics.js"
import { Notifier, type Revocation } from "./Notifier.js"
import * as Revocations from "./Revocations.js"
import * as Session from "./Session.js"
import * as Staleness from "./Staleness.js"
import * as SyncWire from "./SyncWire.js"
import { SyncTokenVerifier } from "./SyncToken.js"
import * as Topic from "./Topic.js"
import { TopicAuthorizer } from "./TopicAuthorizer.js"
import { PacedSubscriptions } from "./internal/paced.js"
import type { Connection, Transport, TransportError, TransportServer } from "./Transport.js"
import * as UwsTransport from "./transport/uws.js"

const { SyncCloseCode, SyncErrorCode } = SyncWire
/** How long a client waits before reconnecting when this node cannot check a revocation. */
const REVOCATION_RETRY_MS = 1_000

export interface SlowConsumerOptions {
  /** A live subscriber with more than this queued is demoted to paced catch-up (default 1 MiB). */
  readonly softLimitBytes: number
  /** Catch-up sends only while the buffer is below this (default 256 KiB). */
  readonly resumeBelowBytes: number
  readonly maxStrikes: number
  readonly strikeWindowMs: number
  readonly reconnectAfterMs: number
}

export interface ServerOptions {
  readonly transport?: Transport | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly path?: string | undefined
  readonly session?: Partial<Session.SessionConfig> | undefined
  /** Largest inbound frame (default 64 KiB); larger ones get payload_too_large and close 1009. */
  readonly maxInboundFrameBytes?: number | undefined
  /** Inbound frames per second per connection before it is closed as a flood (default 50, burst 100). */
  readonly maxFramesPerSecond?: number | undefined
  /** Hard cap on a socket's queued output; the transport drops the socket beyond it (default 16 MiB). */
  readonly maxBackpressureBytes?: number | undefined
  readonly slowConsumer?: Partial<SlowConsumerOptions> | undefined
  /** Head poll of active topics, the safety net for lost wake-ups (default 1000 ms). */
  readonly pollIntervalMs?: number | undefined
  /**
   * How often to ask the journal whether the database was restored or failed over, which renews
   * its epoch (default 30 000 ms; 0: only when the notifier reconnects or a head moves back).
   * On a new epoch every connection is closed with server_restart and its clients' cursors are
   * refused as epoch_mismatch when they resume: they refetch snapshots.
   */
  readonly epochCheckIntervalMs?: number | undefined
  /** Session clock resolution (default 250 ms). */
  readonly tickMs?: number | undefined
  /** How long revoked session and device ids are refused (default 15 min, longer than any token). */
  readonly revocationTtlMs?: number | undefined
  /**
   * A durable record of revoked sessions, consulted when a token is verified (hello and refresh),
   * so a node that started after a revocation still refuses that session's tokens (live
   * revocations reach running nodes through the Notifier). When the lookup fails, the token is
   * not accepted: the connection gets an `internal` error with `retry_after_ms` and is closed with
   * 4005 (reconnect), at hello and at refresh alike.
   */
  readonly sessionRevoked?: ((sessionId: string) => Effect.Effect<boolean, unknown>) | undefined
  /**
   * The durable record of revoked devices, consulted like `sessionRevoked`: whether the device was
   * revoked for `userId` (or for every user) at or after `issuedAtSeconds` (the token's `iat`;
   * later tokens are a new sign-in).
   */
  readonly deviceRevoked?: ((deviceId: string, issuedAtSeconds: number, userId: string) => Effect.Effect<boolean, unknown>) | undefined
}

export interface KhalaServer {
  readonly port: number
  readonly adapter: "uws" | "ws"
  readonly native: boolean
  readonly connections: () => number
  /** Revoke sessions/devices on every node (through the Notifier). */
  readonly revoke: (revocation: Revocation) => Effect.Effect<void>
}

export class KhalaServerTag extends Context.Tag("@openagents/khala-core/KhalaServer")<KhalaServerTag, KhalaServer>() {}

/** A subscribe that could not be served now (a topic's hub state could not be read): retry. */
class SubscribeUnavailable extends Data.TaggedError("SubscribeUnavailable")<{ readonly reason: string }> {}

/** How long a client waits before retrying a subscribe the server could not serve. */
const SUBSCRIBE_RETRY_AFTER_MS = 1000

interface Sub {
  readonly topic: Topic.Topic
  /** This subscription's hold on the topic in the hub. */
  readonly lease: TopicLease
  cursor: bigint
  mode: "replaying" | "live" | "paced"
  /** Requested replay batch size, clamped. */
  readonly batchRows: number
  sentComplete: boolean
}

interface Conn {
  readonly connection: Connection
  session: Session.State
  readonly subs: Map<string, Sub>
  queue: Array<string>
  replaying: boolean
  drained: Deferred.Deferred<void> | undefined
  strikes: Array<number>
  /** Send-buffer size at the previous sweep: only a buffer that stays high and does not shrink counts. */
  lastBuffered: number
  frameTokens: number
  frameRefillAt: number
  closed: boolean
}

const defaultSlow: SlowConsumerOptions = {
  softLimitBytes: 1024 * 1024,
  resumeBelowBytes: 256 * 1024,
  maxStrikes: 3,
  strikeWindowMs: 60_000,
  reconnectAfterMs: 2_000
}

const closeCodeOf = (reason: Session.CloseReason): number => {
  switch (reason._tag) {
    case "hello_timeout":
      return SyncCloseCode.HELLO_TIMEOUT
    case "bad_frame":
      return SyncCloseCode.BAD_FRAME
    case "too_large":
      return SyncCloseCode.MESSAGE_TOO_BIG
    case "unauthorized":
      return SyncCloseCode.UNAUTHORIZED
    case "token_expired":
      return SyncCloseCode.TOKEN_EXPIRED
    case "upgrade_required":
      return SyncCloseCode.UPGRADE_REQUIRED
    case "idle_timeout":
      return SyncCloseCode.IDLE_TIMEOUT
    case "reauth_required":
      return SyncCloseCode.REAUTH_REQUIRED
  }
}

export const make = (
  options: ServerOptions = {}
): Effect.Effect<KhalaServer, TransportError, Scope.Scope | Journal | SyncTokenVerifier | TopicAuthorizer | Notifier> =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const verifier = yield* SyncTokenVerifier
    const authorizer = yield* TopicAuthorizer
    const notifier = yield* Notifier
    const registry = yield* Topic.TopicClasses
    const run = yield* FiberSet.makeRuntime<never>()
    const runEffect = <A, E>(effect: Effect.Effect<A, E>) => {
      run(effect.pipe(Effect.catchAllCause((cause) => Effect.logError("khala server: unexpected failure", cause))))
    }

    const config: Session.SessionConfig = { ...Session.defaultConfig, ...options.session }
    const slow: SlowConsumerOptions = { ...defaultSlow, ...options.slowConsumer }
    const maxInbound = options.maxInboundFrameBytes ?? 64 * 1024
    const maxFrames = options.maxFramesPerSecond ?? 50
    // The node's revocations: shared with the snapshot endpoint when the host provides them (it
    // should), else this server's own, from its options.
    const revocations = Option.getOrElse(
      yield* Effect.serviceOption(Revocations.Revocations),
      () => Revocations.makeStore({ ttlMs: options.revocationTtlMs, sessionRevoked: options.sessionRevoked, deviceRevoked: options.deviceRevoked })
    )
    const conns = new Set<Conn>()
    // The demoted subscriptions, which the sweep checks against their replay budget.
    const paced = new PacedSubscriptions<Conn, Sub>()
    // Set once the transport listens; the hub publishes through it.
    const transportRef: { current: TransportServer | undefined } = { current: undefined }

    // A new journal epoch (the database was restored or failed over, and commits this node
    // published may be gone, their watermarks to be reused): what the hub published and every
    // cursor of the old epoch are void. The hub starts over and every client resumes, which
    // refuses its cursors as epoch_mismatch, so it refetches snapshots. One check at a time; one
    // asked for meanwhile runs after it (the running one may be stuck on a dying connection while
    // the reason to check again — a reopened LISTEN connection — comes from the new primary).
    let checkingEpoch = false
    let checkAgain = false
    const checkOnce = journal.refreshEpoch.pipe(
      Effect.timeout("10 seconds"),
      Effect.flatMap((changed) =>
        changed
          ? Effect.sync(() => {
            hub.reset()
            for (const c of [...conns]) closeNow(c, SyncCloseCode.SERVER_RESTART, "journal epoch changed: resume")
          }).pipe(Effect.zipRight(Effect.logWarning(`khala: the journal epoch changed to ${journal.epoch}: every connection was closed to resume`)))
          : Effect.void
      ),
      Effect.catchAllCause((cause) => Effect.logWarning("khala: checking the journal epoch failed; retrying at the next check", cause))
    )
    const checkEpoch: Effect.Effect<void> = Effect.suspend(() => {
      if (checkingEpoch) {
        checkAgain = true
        return Effect.void
      }
      checkingEpoch = true
      const loop: Effect.Effect<void> = Effect.suspend(() => {
        checkAgain = false
        return Effect.zipRight(checkOnce, Effect.suspend(() => (checkAgain ? loop : Effect.void)))
      })
      return loop.pipe(Effect.ensuring(Effect.sync(() => {
        checkingEpoch = false
      })))
    })

    const hub = new Hub({
      journal,
      transport: () => transportRef.current,
      run: runEffect,
      onGap: (topic) => {
        for (const c of conns) {
          if (c.subs.has(topic)) closeNow(c, SyncCloseCode.SERVER_RESTART, "journal gap: resume")
        }
      },
      onRewind: () => runEffect(checkEpoch)
    })

    // ---------------------------------------------------------------------------------------
    // Sending and closing

    const send = (c: Conn, data: SyncWire.Encoded) => {
      if (!c.closed) c.connection.send(data)
    }
    const sendError = (c: Conn, error: Parameters<typeof SyncWire.error>[1], topic = "") => send(c, SyncWire.error(c.connection.format, error, topic))

    const cleanup = (c: Conn) => {
      if (c.closed) return
      c.closed = true
      conns.delete(c)
      for (const sub of c.subs.values()) dropSub(c, sub)
      c.subs.clear()
      if (c.drained) Deferred.unsafeDone(c.drained, Effect.void)
      Metrics.connections.unsafeUpdate(conns.size, [])
    }

    const closeNow = (c: Conn, code: number, reason: string) => {
      if (c.closed) return
      Metrics.closes.unsafeUpdate(String(code), [])
      c.connection.close(code, reason.slice(0, 120))
      cleanup(c)
    }

    const dropSub = (c: Conn, sub: Sub) => {
      paced.delete(sub)
      if (sub.mode === "live") {
        c.connection.leave(sub.topic.topic)
        hub.left(sub.lease, c.connection.format)
      }
      hub.release(sub.lease)
      Metrics.subscriptions.unsafeModify(-1, [])
    }

    // ---------------------------------------------------------------------------------------
    // Session actions

    const dispatch = (c: Conn, event: Session.Event) => {
      if (c.closed) return
      const [state, actions] = Session.transition(c.session, event, config)
      c.session = state
      for (const action of actions) execute(c, action)
    }

    const execute = (c: Conn, action: Session.Action) => {
      const format = c.connection.format
      switch (action._tag) {
        case "Verify":
          runEffect(
            verifier.verify(action.token).pipe(
              Effect.flatMap((principal) => Effect.map(revocations.check(principal), (verdict) => ({ principal, verdict }))),
              Effect.match({
                onFailure: (error) => {
                  Metrics.authFailures.unsafeUpdate(error.reason, [])
                  dispatch(c, { _tag: "Refused", error, purpose: action.purpose, requestId: action.requestId, now: Date.now() })
                },
                onSuccess: ({ principal, verdict }) => {
                  if (verdict === "unknown") {
                    // Fail closed, but retryably: the session may have been revoked, and this
                    // node cannot tell. The client reconnects with backoff (4005 is not terminal).
                    Metrics.authFailures.unsafeUpdate("revocation_check_unavailable", [])
                    sendError(c, SyncWire.simple(SyncErrorCode.INTERNAL, "cannot check whether this session was revoked; retry", action.requestId, REVOCATION_RETRY_MS))
                    closeNow(c, SyncCloseCode.SERVER_RESTART, "revocation check unavailable")
                    return
                  }
                  // A revocation announced while the lookup ran found no principal on this
                  // connection to cut: it is in the store now.
                  const reason = verdict ?? revocations.reasonOf(principal)
                  dispatch(c, { _tag: "Verified", principal, purpose: action.purpose, requestId: action.requestId, now: Date.now() })
                  if (reason !== undefined) dispatch(c, { _tag: "Revoked", reason, now: Date.now() })
                }
              })
            )
          )
          return
        case "Welcome":
          send(
            c,
            SyncWire.welcome(format, {
              $typeName: "openagents.sync.v1.Welcome",
              connectionId: `conn_${c.connection.id}`,
              grantedScopes: [...action.principal.scopes],
              grantedTopics: [...action.principal.topics],
              limits: {
                $typeName: "openagents.sync.v1.ConnectionLimits",
                maxInboundFrameBytes: maxInbound,
                maxTopicsPerConnection: config.maxTopicsPerConnection,
                maxBatchUpdates: Topic.MAX_BATCH_UPDATES,
                maxBatchBytes: Topic.MAX_BATCH_BYTES,
                maxUpdatePayloadBytes: Topic.MAX_UPDATE_PAYLOAD_BYTES,
                maxSubscribesPerSecond: config.maxSubscribesPerSecond
              },
              heartbeatIntervalMs: config.heartbeatIntervalMs,
              idleTimeoutMs: config.idleTimeoutMs,
              journalEpoch: journal.epoch,
              tokenExpiresAtMs: BigInt(action.principal.expiresAt * 1000),
              protocolVersion: SyncWire.PROTOCOL_VERSION,
              schemaVersion: SyncWire.SCHEMA_VERSION,
              serverTimeMs: BigInt(Date.now())
            })
          )
          return
        case "TokenRefreshed":
          send(c, SyncWire.tokenRefreshed(format, action.expiresAtMs, action.requestId))
          return
        case "Revoke": {
          // After a refresh: topics whose class the new token no longer grants are dropped.
          const lost = [...c.subs.values()].filter((s) => !action.principal.scopes.includes(s.topic.topicClass.name))
          if (lost.length === 0) return
          for (const sub of lost) {
            dropSub(c, sub)
            c.subs.delete(sub.topic.topic)
          }
          dispatch(c, { _tag: "Unsubscribed", topics: lost.map((s) => s.topic.topic), now: Date.now() })
          sendError(c, SyncWire.forbiddenTopics(lost.map((s) => s.topic.topic), ""))
          return
        }
        case "Subscribe":
          runEffect(subscribe(c, action.id, action.request, action.topics).pipe(
            // The storage failed under the subscribe (its resume check, a topic's position): the
            // client is told to retry it and nothing is subscribed, rather than left waiting.
            Effect.catchAll((error) =>
              Effect.zipRight(
                Effect.logWarning(`khala server: subscribe of ${action.topics.join(", ")} failed; the client will retry`, error),
                Effect.sync(() => {
                  const invalid = error._tag === "InvalidWatermarkError"
                  sendError(
                    c,
                    invalid
                      ? SyncWire.simple(SyncErrorCode.BAD_SUBSCRIPTION, error.message, action.request.requestId)
                      : SyncWire.simple(SyncErrorCode.INTERNAL, "the subscription could not be served now; retry", action.request.requestId, SUBSCRIBE_RETRY_AFTER_MS)
                  )
                  dispatch(c, { _tag: "SubscribeSettled", id: action.id, accepted: [], now: Date.now() })
                })
              )
            ),
            // Whatever ended it (a defect, the server stopping), its claim on the topics is released;
            // settling a subscribe that already settled changes nothing.
            Effect.ensuring(Effect.sync(() => dispatch(c, { _tag: "SubscribeSettled", id: action.id, accepted: [], now: Date.now() })))
          ))
          return
        case "Unsubscribe": {
          for (const topic of action.topics) {
            const sub = c.subs.get(topic)
            if (sub === undefined) continue
            dropSub(c, sub)
            c.subs.delete(topic)
          }
          send(c, SyncWire.unsubscribed(format, [...c.subs.keys()], action.requestId))
          return
        }
        case "Heartbeat":
          send(
            c,
            SyncWire.heartbeat(
              format,
              [...c.subs.values()].map((s) => ({
                $typeName: "openagents.sync.v1.TopicCursor" as const,
                topic: s.topic.topic,
                watermark: s.mode === "live" ? (hub.lastPublished(s.lease) ?? s.cursor) : s.cursor,
                epoch: journal.epoch
              })),
              Date.now()
            )
          )
          return
        case "RequestError": {
          const code = action.code === "bad_subscription"
            ? SyncErrorCode.BAD_SUBSCRIPTION
            : action.code === "rate_limited"
            ? SyncErrorCode.RATE_LIMITED
            : SyncErrorCode.BAD_FRAME
          sendError(c, SyncWire.simple(code, action.message, action.requestId, action.retryAfterMs ?? 0))
          return
        }
        case "Close": {
          const reason = action.reason
          switch (reason._tag) {
            case "hello_timeout":
              sendError(c, SyncWire.helloTimeout())
              break
            case "bad_frame":
              Metrics.badFrames.unsafeUpdate(reason.error.reason, [])
              sendError(c, SyncWire.simple(SyncErrorCode.BAD_FRAME, reason.error.detail))
              break
            case "too_large":
              Metrics.badFrames.unsafeUpdate("too_large", [])
              sendError(c, SyncWire.payloadTooLarge(reason.size, reason.limit))
              break
            case "unauthorized":
              sendError(c, SyncWire.authError(reason.error))
              break
            case "token_expired":
              sendError(c, reason.error ? SyncWire.authError(reason.error) : SyncWire.simple(SyncErrorCode.TOKEN_EXPIRED, "the sync token expired; reconnect with a fresh one"))
              break
            case "upgrade_required":
              sendError(c, SyncWire.upgradeRequired(reason.reason, reason.gate))
              break
            case "idle_timeout":
              sendError(c, SyncWire.simple(SyncErrorCode.GOING_AWAY, `no client frame for ${config.idleTimeoutMs} ms`))
              break
            case "reauth_required":
              sendError(c, SyncWire.reauthRequired(reason.reason))
              break
          }
          closeNow(c, closeCodeOf(reason), reason._tag)
          return
        }
      }
    }

    // ---------------------------------------------------------------------------------------
    // Subscribe: authorize, stale-check, start catch-up

    // What a connection holds (c.subs) and what its session counts (Session.State.topics) are the
    // same set at every step: a subscribe installs only the topics its session still wants and
    // settles them in the same synchronous step; a refused subscribe leaves the subscriptions the
    // connection held as they were, except that a topic an error names as stale or forbidden is
    // no longer served on this connection, held or not (the client was told; it recovers or stops).
    const subscribe = (c: Conn, id: number, request: Subscribe, topics: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const principal = c.session.principal!
        const settle = (accepted: ReadonlyArray<string>) => dispatch(c, { _tag: "SubscribeSettled", id, accepted, now: Date.now() })
        const endHeld = (named: ReadonlyArray<string>) => {
          const ended: Array<string> = []
          for (const topic of named) {
            const sub = c.subs.get(topic)
            if (sub === undefined) continue
            dropSub(c, sub)
            c.subs.delete(topic)
            ended.push(topic)
          }
          if (ended.length > 0) dispatch(c, { _tag: "Unsubscribed", topics: ended, now: Date.now() })
        }
        const parsed: Array<Topic.Topic> = []
        const invalid: Array<string> = []
        for (const t of topics) {
          const p = registry.parse(t)
          if ("topicClass" in p) parsed.push(p)
          else invalid.push(`${t} (${p.reason})`)
        }
        if (invalid.length > 0) {
          sendError(c, SyncWire.simple(SyncErrorCode.BAD_SUBSCRIPTION, `invalid topics: ${invalid.join("; ")}`, request.requestId))
          return settle([])
        }
        const forbidden: Array<string> = []
        for (const t of parsed) {
          const allowed = principal.scopes.includes(t.topicClass.name) && (yield* authorizer.authorize(principal, t))
          if (!allowed) forbidden.push(t.topic)
        }
        if (forbidden.length > 0) {
          sendError(c, SyncWire.forbiddenTopics(forbidden, request.requestId))
          endHeld(forbidden)
          return settle([])
        }
        const cursors = new Map(request.resumeAfter.map((r) => [r.topic.trim(), r]))
        const points = parsed.map((t) => {
          const cursor = cursors.get(t.topic)
          return { topic: t.topic, cursor: { watermark: cursor?.watermark ?? 0n, epoch: cursor?.epoch || undefined } }
        })
        // Check each point on its own so a stale topic does not hold up the others.
        const checked = yield* Effect.forEach(points, (p) =>
          journal.checkResume([p]).pipe(
            Effect.map((positions) => ({ point: p, position: positions.get(p.topic)!, stale: undefined as StaleCursorError | undefined })),
            Effect.catchTag("StaleCursorError", (stale) => Effect.succeed({ point: p, position: undefined, stale }))
          ))
        const staleErrors = checked.filter((x) => x.stale !== undefined)
        if (staleErrors.length > 0) {
          Metrics.staleCursors.unsafeUpdate(staleErrors.length, [])
          const merged = new StaleCursorError({ staleTopics: staleErrors.flatMap((x) => x.stale!.staleTopics) })
          const plan = Staleness.snapshotPlan(merged.staleTopics.map((s) => ({ topic: parsed.find((t) => t.topic === s.topic)!, stale: s })))
          sendError(c, SyncWire.staleCursor(merged, plan, request.requestId))
          endHeld(merged.staleTopics.map((s) => s.topic))
        }
        const fresh = checked.filter((x) => x.stale === undefined)
        if (c.closed || fresh.length === 0) return settle([])
        const batchRows = request.replayBatchSize > 0 ? Math.min(request.replayBatchSize, Topic.MAX_BATCH_UPDATES) : Topic.MAX_BATCH_UPDATES
        // Every topic's hub state first; a topic whose state could not be read is not subscribed
        // (the client is told to retry), and the leases taken are returned.
        const leases = yield* Effect.forEach(fresh, ({ point }) =>
          Effect.either(Effect.tryPromise(() => hub.activate(point.topic))))
        const taken = leases.flatMap((l) => (l._tag === "Right" ? [l.right] : []))
        const giveBack = () => {
          for (const lease of taken) hub.release(lease)
        }
        if (c.closed) {
          giveBack()
          return settle([])
        }
        if (taken.length < leases.length) {
          giveBack()
          return yield* new SubscribeUnavailable({ reason: "the journal position of a topic could not be read" })
        }
        // The grants in force now, not those of the token the request arrived with: a refresh
        // that narrowed the scopes while this subscribe awaited the journal has already dropped
        // what the connection held, and must also stop what it was about to get.
        const now = c.session.principal
        const revoked = fresh.filter(({ point }) => now === undefined || !now.scopes.includes(parsed.find((t) => t.topic === point.topic)!.topicClass.name))
        if (revoked.length > 0) {
          giveBack()
          sendError(c, SyncWire.forbiddenTopics(revoked.map((x) => x.point.topic), request.requestId))
          endHeld(revoked.map((x) => x.point.topic))
          return settle([])
        }
        // Topics unsubscribed while this subscribe was in flight are not installed: the client
        // was answered Unsubscribed for them, and Subscribed leaves them out.
        const wanted = new Set(Session.wanted(c.session, id))
        const accepted: Array<Topic.Topic> = []
        const heads: Array<bigint> = []
        fresh.forEach(({ point, position }, i) => {
          const topic = parsed.find((t) => t.topic === point.topic)!
          if (!wanted.has(topic.topic)) {
            hub.release(taken[i]!)
            return
          }
          const existing = c.subs.get(topic.topic)
          if (existing !== undefined) dropSub(c, existing)
          c.subs.set(topic.topic, { topic, lease: taken[i]!, cursor: point.cursor.watermark, mode: "replaying", batchRows, sentComplete: false })
          Metrics.subscriptions.unsafeModify(1, [])
          Metrics.replayLag.unsafeUpdate(Number(position!.head - point.cursor.watermark), [])
          accepted.push(topic)
          heads.push(position!.head)
        })
        settle(accepted.map((t) => t.topic))
        send(
          c,
          SyncWire.subscribed(c.connection.format, {
            subscriptionId: `sub_${c.connection.id}`,
            requestId: request.requestId,
            topics: accepted.map((t) => t.topic),
            currentWatermarks: accepted.map((t) => ({ topic: t.topic, watermark: c.subs.get(t.topic)!.cursor, epoch: journal.epoch })),
            headWatermarks: accepted.map((t, i) => ({ topic: t.topic, watermark: heads[i]!, epoch: journal.epoch }))
          })
        )
        for (const t of accepted) enqueue(c, t.topic)
      })

    // ---------------------------------------------------------------------------------------
    // Catch-up (replay and paced) and the handoff to live

    const enqueue = (c: Conn, topic: string) => {
      if (!c.queue.includes(topic)) c.queue.push(topic)
      if (!c.replaying) {
        c.replaying = true
        runEffect(catchUp(c))
      }
    }

    const waitForDrain = (c: Conn) =>
      Effect.gen(function*() {
        while (!c.closed && c.connection.bufferedAmount() > slow.resumeBelowBytes) {
          const drained = yield* Deferred.make<void>()
          c.drained = drained
          yield* Deferred.await(drained).pipe(Effect.timeout("250 millis"), Effect.ignore)
          c.drained = undefined
        }
      })

    const goLive = (c: Conn, sub: Sub, head: bigint) => {
      if (!sub.sentComplete) {
        // The subscriber learns that catch-up is over even when there was nothing to replay.
        send(c, SyncWire.updateBatch(c.connection.format, sub.topic.topic, [], true, head, journal.epoch))
        sub.sentComplete = true
      }
      sub.mode = "live"
      paced.delete(sub)
      c.connection.join(sub.topic.topic)
      hub.joined(sub.lease, c.connection.format)
    }

    const catchUp = (c: Conn): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (!c.closed) {
          const topic = c.queue.shift()
          if (topic === undefined) break
          const sub = c.subs.get(topic)
          if (sub === undefined || sub.mode === "live") continue
          yield* waitForDrain(c)
          if (c.closed || c.subs.get(topic) !== sub) continue
          const published = hub.lastPublished(sub.lease)
          if (published === undefined) {
            // The hub dropped the topic (a journal gap) after this subscription took its lease:
            // it cannot go live here; the client resumes on a new connection.
            closeNow(c, SyncCloseCode.SERVER_RESTART, "journal gap: resume")
            return
          }
          if (sub.cursor >= published) {
            goLive(c, sub, published)
            continue
          }
          if (sub.mode === "paced" && published - sub.cursor > BigInt(sub.topic.topicClass.replayBudgetEvents)) {
            disconnectSlow(c, topic)
            return
          }
          const result = yield* journal.read(topic, sub.cursor, { maxRows: sub.batchRows }).pipe(Effect.either)
          if (c.closed || c.subs.get(topic) !== sub) continue
          if (result._tag === "Left") {
            const error = result.left
            if (error._tag === "StaleCursorError") {
              const plan = Staleness.snapshotPlan(error.staleTopics.map((s) => ({ topic: sub.topic, stale: s })))
              sendError(c, SyncWire.staleCursor(error, plan), topic)
              dropSub(c, sub)
              c.subs.delete(topic)
              dispatch(c, { _tag: "Unsubscribed", topics: [topic], now: Date.now() })
            } else {
              yield* Effect.logWarning(`khala server: catch-up read of ${topic} failed`, error)
              yield* Effect.sleep("200 millis")
              c.queue.push(topic)
            }
            continue
          }
          const batch = result.right
          if (batch.events.length > 0 || (batch.complete && !sub.sentComplete)) {
            send(c, SyncWire.updateBatch(c.connection.format, topic, batch.events, batch.complete, batch.head, journal.epoch))
            if (batch.complete) sub.sentComplete = true
            Metrics.replayBatches.unsafeUpdate(1, [])
            Metrics.replayEvents.unsafeUpdate(batch.events.length, [])
          }
          sub.cursor = batch.next
          // Fairness: one batch per topic per turn.
          c.queue.push(topic)
        }
      }).pipe(Effect.ensuring(Effect.sync(() => {
        c.replaying = false
        if (!c.closed && c.queue.length > 0) enqueue(c, c.queue[0]!)
      })))

    const disconnectSlow = (c: Conn, topic: string) => {
      Metrics.slowConsumerDisconnects.unsafeUpdate(1, [])
      sendError(
        c,
        SyncWire.slowConsumer("disconnect", {
          topic,
          queueDepth: c.queue.length,
          queueLimit: config.maxTopicsPerConnection,
          reconnectAfterMs: slow.reconnectAfterMs,
          strikes: c.strikes.length,
          maxStrikes: slow.maxStrikes,
          bufferedBytes: c.connection.bufferedAmount()
        })
      )
      closeNow(c, SyncCloseCode.SLOW_CONSUMER, "slow consumer")
    }

    /**
     * Demote a connection whose live output is backing up; strike it; disconnect on too many
     * strikes, or when paced catch-up has fallen further behind than the topic's replay budget
     * (checked here because a socket that never drains never reaches the catch-up loop's check).
     * The budget check visits the paced subscriptions only; the buffer check is one read of each
     * connection's buffer size, and a connection's subscriptions are walked only to demote it.
     */
    const sweepSlow = () => {
      const now = Date.now()
      const behind = paced.behind((s) => {
        const published = hub.lastPublished(s.lease)
        return published !== undefined && published - s.cursor > BigInt(s.topic.topicClass.replayBudgetEvents)
      })
      for (const [c, sub] of behind) disconnectSlow(c, sub.topic.topic)
      for (const c of conns) {
        if (c.closed) continue
        const buffered = c.connection.bufferedAmount()
        const previous = c.lastBuffered
        c.lastBuffered = buffered
        // A large batch can exceed the limit for an instant on a healthy socket; a slow one stays
        // over it and does not drain between two sweeps.
        if (buffered <= slow.softLimitBytes || previous <= slow.softLimitBytes || buffered < previous) continue
        const live = [...c.subs.values()].filter((s) => s.mode === "live")
        if (live.length === 0) continue
        c.strikes = [...c.strikes.filter((t) => now - t < slow.strikeWindowMs), now]
        Metrics.slowConsumerDemotions.unsafeUpdate(1, [])
        if (c.strikes.length >= slow.maxStrikes) {
          disconnectSlow(c, live[0]!.topic.topic)
          continue
        }
        // The throttle notice goes out before the subscriptions leave their channels, and that
        // order is what makes the cursors below true. A demoted subscription resumes after
        // `lastPublished`, claiming that everything published so far is in this socket's buffer.
        // uWS keeps a publish in its topic tree until the event loop's turn ends or the socket's
        // next send, and a leave before that discards it for this socket: a send queues every
        // frame published to the socket's channels ahead of it (the Connection contract; ws
        // writes publishes at once), so after this one nothing published is left to lose.
        sendError(
          c,
          SyncWire.slowConsumer("throttle", {
            topic: live[0]!.topic.topic,
            queueDepth: live.length,
            queueLimit: config.maxTopicsPerConnection,
            reconnectAfterMs: 0,
            strikes: c.strikes.length,
            maxStrikes: slow.maxStrikes,
            bufferedBytes: buffered
          })
        )
        for (const sub of live) {
          // Everything published so far is now in this socket's buffer (see above).
          sub.cursor = hub.lastPublished(sub.lease) ?? sub.cursor
          c.connection.leave(sub.topic.topic)
          hub.left(sub.lease, c.connection.format)
          sub.mode = "paced"
          paced.add(c, sub)
        }
        for (const sub of live) enqueue(c, sub.topic.topic)
      }
    }

    // ---------------------------------------------------------------------------------------
    // Revocation

    const onRevoke = (revocation: Revocation) => {
      revocations.add(revocation)
      for (const c of conns) {
        const p = c.session.principal
        if (p !== undefined && Revocations.covers(revocation, p)) {
          dispatch(c, { _tag: "Revoked", reason: revocation.reason, now: Date.now() })
        }
      }
    }
    // After a deaf spell (the node's LISTEN connection was reopened): commits announced meanwhile
    // are found by an immediate head poll, and revocations by checking every live session and
    // device against the durable record.
    const onResync = () => {
      // A reopened LISTEN connection is also what a failover looks like: check the epoch first.
      runEffect(Effect.zipRight(checkEpoch, hub.poll))
      for (const c of conns) {
        const principal = c.session.principal
        if (principal === undefined) continue
        runEffect(Effect.map(revocations.check(principal), (verdict) => {
          if (verdict !== undefined && verdict !== "unknown") dispatch(c, { _tag: "Revoked", reason: verdict, now: Date.now() })
        }))
      }
    }
    yield* notifier.listen({ wake: (topics, committed) => hub.wake(topics, committed), revoke: onRevoke, resync: onResync })

    // ---------------------------------------------------------------------------------------
    // Transport

    const byConnection = new Map<number, Conn>()
    const transport = options.transport ?? UwsTransport.transport
    const server = yield* transport.listen({
      host: options.host,
      port: options.port,
      path: options.path,
      maxPayloadBytes: Math.max(maxInbound * 4, 1024 * 1024),
      maxBackpressureBytes: options.maxBackpressureBytes ?? 16 * 1024 * 1024,
      handlers: {
        open: (connection) => {
          const now = Date.now()
          const c: Conn = {
            connection,
            session: Session.initial(now),
            subs: new Map(),
            queue: [],
            replaying: false,
            drained: undefined,
            strikes: [],
            lastBuffered: 0,
            frameTokens: maxFrames * 2,
            frameRefillAt: now,
            closed: false
          }
          conns.add(c)
          byConnection.set(connection.id, c)
          Metrics.connections.unsafeUpdate(conns.size, [])
        },
        message: (connection, data) => {
          const c = byConnection.get(connection.id)
          if (c === undefined || c.closed) return
          const now = Date.now()
          c.frameTokens = Math.min(maxFrames * 2, c.frameTokens + ((now - c.frameRefillAt) / 1000) * maxFrames)
          c.frameRefillAt = now
          if (--c.frameTokens < 0) {
            Metrics.badFrames.unsafeUpdate("flood", [])
            sendError(c, SyncWire.simple(SyncErrorCode.RATE_LIMITED, `more than ${maxFrames} frames per second`, "", 1000))
            closeNow(c, SyncCloseCode.RATE_LIMITED, "frame flood")
            return
          }
          if (data.length > maxInbound) {
            dispatch(c, { _tag: "TooLarge", size: data.length, limit: maxInbound, now })
            return
          }
          const frame = SyncWire.decodeClientFrame(data, connection.format)
          dispatch(c, frame instanceof SyncWire.FrameError ? { _tag: "BadFrame", error: frame, now } : { _tag: "Frame", frame, now })
        },
        drain: (connection) => {
          const c = byConnection.get(connection.id)
          if (c?.drained) Deferred.unsafeDone(c.drained, Effect.void)
        },
        close: (connection) => {
          const c = byConnection.get(connection.id)
          byConnection.delete(connection.id)
          if (c !== undefined) cleanup(c)
        }
      }
    })

    transportRef.current = server
    const tickMs = options.tickMs ?? 250
    yield* Effect.sync(() => {
      const now = Date.now()
      for (const c of [...conns]) dispatch(c, { _tag: "Tick", now })
      sweepSlow()
      revocations.sweep()
    }).pipe(Effect.repeat(Schedule.spaced(`${tickMs} millis`)), Effect.forkScoped)
    yield* hub.poll.pipe(Effect.repeat(Schedule.spaced(`${options.pollIntervalMs ?? 1000} millis`)), Effect.forkScoped)
    const epochCheckMs = options.epochCheckIntervalMs ?? 30_000
    if (epochCheckMs > 0) {
      yield* checkEpoch.pipe(Effect.delay(`${epochCheckMs} millis`), Effect.forever, Effect.forkScoped)
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const c of [...conns]) closeNow(c, SyncCloseCode.GOING_AWAY, "server shutting down")
      })
    )
    yield* Effect.logInfo(`khala: listening on ${options.host ?? "127.0.0.1"}:${server.port} (${server.adapter}${server.native ? "" : ", pure-JS fallback"})`)

    return {
      port: server.port,
      adapter: server.adapter,
      native: server.native,
      connections: () => conns.size,
      revoke: notifier.revoke
    }
  })

export const layer = (options: ServerOptions = {}) => Layer.scoped(KhalaServerTag, make(options))
