// The server side of one Khala connection, as pure transitions: (state, event) → (state,
// actions). No I/O and no clock here — `now` arrives with each event — so every rule below is a
// table-testable function; Server.ts executes the actions (verify a token, run a subscription,
// send, close). The spec, with the diagram, is docs/sync/PROTOCOL.md.
//
//   awaiting_hello ──Hello──▶ authenticating ──Verified──▶ ready ──(close)──▶ closed
//        │ deadline                 │ Refused / gate              │ idle, token expiry,
//        ▼                          ▼                             ▼ revocation, bad frame
//      closed (4003)              closed (4500/4002/4502)        closed
//
// Rules kept here:
// - the first frame must be Hello, within helloTimeoutMs; anything else first is bad_frame;
// - compatibility gates (protocol version, schema range, client build) → upgrade_required;
// - heartbeats: the server sends one every heartbeatIntervalMs; a client silent for
//   idleTimeoutMs is closed (4000) — any client frame counts as activity;
// - the token's expiry is enforced on the open connection: refresh before it (RefreshToken,
//   same subject) or be closed with token_expired (4002);
// - subscribe validation: non-empty trimmed topics, at most maxTopicsPerConnection in all (held
//   and in flight), watermarks are cursors of requested topics, subscribe rate limited per second;
// - `topics` is exactly what the server streams to the connection: a topic enters it only when a
//   subscribe installs it (SubscribeSettled) and leaves it when the client unsubscribes or the
//   server ends it (Unsubscribed: stale, forbidden, scope narrowed). A subscribe in flight holds
//   its topics in `pending`, where they count against the limit; an unsubscribe takes a topic out
//   of every pending subscribe too, and the server installs only what `wanted` still lists, so a
//   topic unsubscribed while its subscribe was in flight is never installed;
// - a revoked session is closed with reauth_required (4501).
import type { Subscribe } from "@openagents/proto/sync/v1"
import type { ClientFrame, UpgradeReasonName } from "./SyncWire.js"
import { FrameError } from "./SyncWire.js"
import type { SyncPrincipal } from "./SyncToken.js"
import { SyncTokenError } from "./SyncToken.js"

export interface CompatibilityGate {
  readonly protocolVersion: string
  readonly minClientBuildId: string
  /** Empty: no upper bound. */
  readonly maxClientBuildId: string
  readonly minSchemaVersion: number
  readonly maxSchemaVersion: number
}

export interface SessionConfig {
  readonly helloTimeoutMs: number
  readonly heartbeatIntervalMs: number
  readonly idleTimeoutMs: number
  readonly maxTopicsPerConnection: number
  readonly maxSubscribesPerSecond: number
  /** Undefined: compatibility is not enforced. */
  readonly gate: CompatibilityGate | undefined
}

export const defaultConfig: SessionConfig = {
  helloTimeoutMs: 5_000,
  heartbeatIntervalMs: 15_000,
  idleTimeoutMs: 60_000,
  maxTopicsPerConnection: 100,
  maxSubscribesPerSecond: 10,
  gate: undefined
}

export type Phase = "awaiting_hello" | "authenticating" | "ready" | "closed"

export interface State {
  readonly phase: Phase
  readonly openedAt: number
  readonly lastClientActivityAt: number
  readonly lastHeartbeatAt: number
  readonly principal: SyncPrincipal | undefined
  /** Unix ms; the connection is closed at this instant unless refreshed. */
  readonly tokenExpiresAtMs: number
  /** Topics subscribed on this connection: exactly those the server streams (or replays) to it. */
  readonly topics: ReadonlySet<string>
  /** Subscribes in flight, by id: the topics each may still install (an unsubscribe removes some). */
  readonly pending: ReadonlyMap<number, ReadonlyArray<string>>
  readonly nextSubscribeId: number
  /** Times of recent subscribe frames (for the rate limit). */
  readonly subscribeTimes: ReadonlyArray<number>
  readonly refreshing: boolean
}

export type Event =
  | { readonly _tag: "Frame"; readonly frame: ClientFrame; readonly now: number }
  | { readonly _tag: "BadFrame"; readonly error: FrameError; readonly now: number }
  | { readonly _tag: "TooLarge"; readonly size: number; readonly limit: number; readonly now: number }
  | { readonly _tag: "Verified"; readonly principal: SyncPrincipal; readonly purpose: "hello" | "refresh"; readonly requestId: string; readonly now: number }
  | { readonly _tag: "Refused"; readonly error: SyncTokenError; readonly purpose: "hello" | "refresh"; readonly requestId: string; readonly now: number }
  /** Subscribe `id` is over; it installed `accepted` (a subset of `wanted(state, id)`), nothing else. */
  | { readonly _tag: "SubscribeSettled"; readonly id: number; readonly accepted: ReadonlyArray<string>; readonly now: number }
  /** The server ended these subscriptions (stale, forbidden, a refresh without their scope). */
  | { readonly _tag: "Unsubscribed"; readonly topics: ReadonlyArray<string>; readonly now: number }
  | { readonly _tag: "Tick"; readonly now: number }
  | { readonly _tag: "Revoked"; readonly reason: "user_requested" | "admin_revoked" | "token_replay" | "device_replaced" | "security_policy"; readonly now: number }

export type CloseReason =
  | { readonly _tag: "hello_timeout" }
  | { readonly _tag: "bad_frame"; readonly error: FrameError }
  | { readonly _tag: "too_large"; readonly size: number; readonly limit: number }
  | { readonly _tag: "unauthorized"; readonly error: SyncTokenError }
  | { readonly _tag: "token_expired"; readonly error?: SyncTokenError }
  | { readonly _tag: "upgrade_required"; readonly reason: UpgradeReasonName; readonly gate: CompatibilityGate }
  | { readonly _tag: "idle_timeout" }
  | { readonly _tag: "reauth_required"; readonly reason: "user_requested" | "admin_revoked" | "token_replay" | "device_replaced" | "security_policy" }

export type Action =
  | { readonly _tag: "Verify"; readonly token: string; readonly purpose: "hello" | "refresh"; readonly requestId: string }
  | { readonly _tag: "Welcome"; readonly principal: SyncPrincipal }
  | { readonly _tag: "TokenRefreshed"; readonly expiresAtMs: number; readonly requestId: string }
  /**
   * Authorize, stale-check and start the subscription (Server.ts); answer Subscribed or an error,
   * then settle `id`. Only topics `wanted(state, id)` still lists when it installs may be installed.
   */
  | { readonly _tag: "Subscribe"; readonly id: number; readonly request: Subscribe; readonly topics: ReadonlyArray<string> }
  | { readonly _tag: "Unsubscribe"; readonly topics: ReadonlyArray<string>; readonly requestId: string }
  /** Topics no longer covered by the refreshed token's scopes. */
  | { readonly _tag: "Revoke"; readonly principal: SyncPrincipal }
  | { readonly _tag: "Heartbeat" }
  | { readonly _tag: "RequestError"; readonly code: "bad_subscription" | "rate_limited" | "bad_frame"; readonly message: string; readonly requestId: string; readonly retryAfterMs?: number }
  | { readonly _tag: "Close"; readonly reason: CloseReason }

/** No subscribe in flight: one shared empty map (states are never mutated), not one per idle connection. */
const NONE_PENDING: ReadonlyMap<number, ReadonlyArray<string>> = new Map()

export const initial = (now: number): State => ({
  phase: "awaiting_hello",
  openedAt: now,
  lastClientActivityAt: now,
  lastHeartbeatAt: now,
  principal: undefined,
  tokenExpiresAtMs: Number.POSITIVE_INFINITY,
  topics: new Set(),
  pending: NONE_PENDING,
  nextSubscribeId: 1,
  subscribeTimes: [],
  refreshing: false
})

type Result = readonly [State, ReadonlyArray<Action>]

/** The topics subscribe `id` may still install: those requested and not unsubscribed since. */
export const wanted = (state: State, id: number): ReadonlyArray<string> => state.pending.get(id) ?? []

/** Topics held or being subscribed: what counts against maxTopicsPerConnection. */
const claimed = (state: State): Set<string> => {
  const all = new Set(state.topics)
  for (const topics of state.pending.values()) for (const t of topics) all.add(t)
  return all
}

const close = (state: State, reason: CloseReason): Result => [{ ...state, phase: "closed" }, [{ _tag: "Close", reason }]]

const BUILD_ID = /^\d{8}T\d{6}Z$/

/** The compatibility gate's verdict on a Hello; undefined when it passes. */
export const checkGate = (
  gate: CompatibilityGate,
  hello: { protocolVersion: string; clientBuildId: string; minSchemaVersion: number; maxSchemaVersion: number }
): UpgradeReasonName | undefined => {
  if (hello.protocolVersion !== gate.protocolVersion) return "unsupported_protocol_version"
  const min = hello.minSchemaVersion || 1
  const max = hello.maxSchemaVersion || min
  if (max < gate.minSchemaVersion || min > gate.maxSchemaVersion) return "unsupported_schema_version"
  if (!BUILD_ID.test(hello.clientBuildId)) return "invalid_client_build"
  if (hello.clientBuildId < gate.minClientBuildId) return "upgrade_required"
  if (gate.maxClientBuildId !== "" && hello.clientBuildId > gate.maxClientBuildId) return "unsupported_client_build"
  return undefined
}

const onFrame = (state: State, frame: ClientFrame, now: number, config: SessionConfig): Result => {
  const active = { ...state, lastClientActivityAt: now }
  if (state.phase === "awaiting_hello") {
    if (frame.kind !== "hello") {
      return close(active, { _tag: "bad_frame", error: new FrameError("malformed", `expected hello first, got ${frame.kind}`) })
    }
    if (config.gate !== undefined) {
      const verdict = checkGate(config.gate, frame.hello)
      if (verdict !== undefined) return close(active, { _tag: "upgrade_required", reason: verdict, gate: config.gate })
    }
    return [{ ...active, phase: "authenticating" }, [{ _tag: "Verify", token: frame.hello.token, purpose: "hello", requestId: "" }]]
  }
  if (state.phase !== "ready") {
    // Frames that arrive while the hello is being verified are protocol errors (the client must
    // wait for Welcome); after close, nothing happens.
    if (state.phase === "closed") return [state, []]
    return close(active, { _tag: "bad_frame", error: new FrameError("malformed", `${frame.kind} before welcome`) })
  }
  switch (frame.kind) {
    case "hello":
      return close(active, { _tag: "bad_frame", error: new FrameError("malformed", "hello sent twice") })
    case "heartbeat":
      return [active, []]
    case "refresh_token":
      if (state.refreshing) {
        return [active, [{ _tag: "RequestError", code: "rate_limited", message: "a token refresh is already in progress", requestId: frame.refresh.requestId }]]
      }
      return [{ ...active, refreshing: true }, [{ _tag: "Verify", token: frame.refresh.token, purpose: "refresh", requestId: frame.refresh.requestId }]]
    case "unsubscribe": {
      const topics = [...new Set(frame.unsubscribe.topics.map((t) => t.trim()).filter((t) => t.length > 0))]
      const gone = new Set(topics)
      const remaining = new Set([...state.topics].filter((t) => !gone.has(t)))
      // A subscribe still in flight must not install what the client no longer wants.
      const pending = state.pending.size === 0 ? state.pending : new Map([...state.pending].map(([id, ts]) => [id, ts.filter((t) => !gone.has(t))] as const))
      return [{ ...active, topics: remaining, pending }, [{ _tag: "Unsubscribe", topics, requestId: frame.unsubscribe.requestId }]]
    }
    case "subscribe": {
      const request = frame.subscribe
      const recent = state.subscribeTimes.filter((t) => now - t < 1000)
      if (recent.length >= config.maxSubscribesPerSecond) {
        return [{ ...active, subscribeTimes: recent }, [{ _tag: "RequestError", code: "rate_limited", message: `at most ${config.maxSubscribesPerSecond} subscribe frames per second`, requestId: request.requestId, retryAfterMs: 1000 - (now - recent[0]!) }]]
      }
      const withThis = { ...active, subscribeTimes: [...recent, now] }
      const topics = [...new Set(request.topics.map((t) => t.trim()))]
      const bad = (message: string): Result => [withThis, [{ _tag: "RequestError", code: "bad_subscription", message, requestId: request.requestId }]]
      if (topics.length === 0 || topics.some((t) => t.length === 0)) return bad("topics must be a non-empty list of non-empty strings")
      const held = claimed(state)
      const fresh = topics.filter((t) => !held.has(t))
      if (held.size + fresh.length > config.maxTopicsPerConnection) {
        return bad(`at most ${config.maxTopicsPerConnection} topics per connection`)
      }
      const requested = new Set(topics)
      const strays = request.resumeAfter.filter((c) => !requested.has(c.topic.trim()))
      if (strays.length > 0) return bad(`resume_after names topics that are not subscribed: ${strays.map((c) => c.topic).join(", ")}`)
      const seen = new Set<string>()
      for (const c of request.resumeAfter) {
        if (seen.has(c.topic)) return bad(`resume_after names ${c.topic} twice`)
        seen.add(c.topic)
      }
      const id = state.nextSubscribeId
      const pending = new Map(state.pending).set(id, topics)
      return [{ ...withThis, pending, nextSubscribeId: id + 1 }, [{ _tag: "Subscribe", id, request, topics }]]
    }
  }
}

export const transition = (state: State, event: Event, config: SessionConfig): Result => {
  if (state.phase === "closed") return [state, []]
  switch (event._tag) {
    case "Frame":
      return onFrame(state, event.frame, event.now, config)
    case "BadFrame":
      return close(state, { _tag: "bad_frame", error: event.error })
    case "TooLarge":
      return close(state, { _tag: "too_large", size: event.size, limit: event.limit })
    case "Verified": {
      const expiresAtMs = event.principal.expiresAt * 1000
      if (event.purpose === "hello") {
        if (state.phase !== "authenticating") return [state, []]
        return [
          { ...state, phase: "ready", principal: event.principal, tokenExpiresAtMs: expiresAtMs, lastHeartbeatAt: event.now },
          [{ _tag: "Welcome", principal: event.principal }]
        ]
      }
      // A refresh must keep the same holder; scopes may change (topics no longer granted are dropped).
      if (state.principal === undefined || event.principal.subject !== state.principal.subject) {
        return close({ ...state, refreshing: false }, {
          _tag: "unauthorized",
          error: new SyncTokenError({ reason: "claim_mismatch", claim: "sub", detail: "a refreshed token must have the same subject" })
        })
      }
      return [
        { ...state, principal: event.principal, tokenExpiresAtMs: expiresAtMs, refreshing: false },
        [{ _tag: "TokenRefreshed", expiresAtMs, requestId: event.requestId }, { _tag: "Revoke", principal: event.principal }]
      ]
    }
    case "Refused":
      if (event.purpose === "refresh" && state.phase === "ready" && event.error.reason !== "token_expired") {
        // A bad refresh token does not end a connection whose current token is still valid.
        return [{ ...state, refreshing: false }, [{ _tag: "RequestError", code: "bad_frame", message: event.error.message, requestId: event.requestId }]]
      }
      return event.error.reason === "token_expired"
        ? close(state, { _tag: "token_expired", error: event.error })
        : close(state, { _tag: "unauthorized", error: event.error })
    case "SubscribeSettled": {
      // What the subscribe installed is held; the rest of its claim is released. Topics the
      // connection held before are untouched: a refused re-subscribe leaves them as they were,
      // and a held topic the server ended meanwhile (stale, forbidden) came as Unsubscribed.
      if (!state.pending.has(event.id)) return [state, []]
      const remaining = new Map(state.pending)
      remaining.delete(event.id)
      const pending = remaining.size === 0 ? NONE_PENDING : remaining
      const topics = new Set(state.topics)
      for (const t of event.accepted) topics.add(t)
      return [{ ...state, topics, pending }, []]
    }
    case "Unsubscribed": {
      const topics = new Set(state.topics)
      for (const t of event.topics) topics.delete(t)
      return [{ ...state, topics }, []]
    }
    case "Revoked":
      return close(state, { _tag: "reauth_required", reason: event.reason })
    case "Tick": {
      const now = event.now
      if (state.phase === "awaiting_hello" || state.phase === "authenticating") {
        return now - state.openedAt >= config.helloTimeoutMs ? close(state, { _tag: "hello_timeout" }) : [state, []]
      }
      if (now >= state.tokenExpiresAtMs) return close(state, { _tag: "token_expired" })
      if (now - state.lastClientActivityAt >= config.idleTimeoutMs) return close(state, { _tag: "idle_timeout" })
      if (now - state.lastHeartbeatAt >= config.heartbeatIntervalMs) return [{ ...state, lastHeartbeatAt: now }, [{ _tag: "Heartbeat" }]]
      return [state, []]
    }
  }
}
