// The server session's pure transitions, as a table: (state, event) → (state, actions).
import { Session, SyncToken, type SyncWire } from "@openagents/khala-core"
import { describe, expect, it } from "vitest"

const config: Session.SessionConfig = { ...Session.defaultConfig, helloTimeoutMs: 5000, heartbeatIntervalMs: 15000, idleTimeoutMs: 60000, maxTopicsPerConnection: 2, maxSubscribesPerSecond: 2 }
const principal: SyncToken.SyncPrincipal = {
  subject: "user:1", userId: "1", orgId: "user:1", scopes: ["runtime.run_summaries"], topics: [], sessionId: "s", deviceId: "d",
  tokenId: "j", claimsVersion: "v1", issuedAt: 0, expiresAt: 1000
}
const hello = (extra: Partial<{ protocolVersion: string; clientBuildId: string }> = {}) =>
  ({ kind: "hello", hello: { token: "t", protocolVersion: "khala.ws.v1", clientBuildId: "20261124T000000Z", minSchemaVersion: 1, maxSchemaVersion: 1, ...extra } }) as unknown as SyncWire.ClientFrame
const subscribe = (topics: Array<string>, requestId = "r", resumeAfter: Array<{ topic: string; watermark: bigint }> = []) =>
  ({ kind: "subscribe", subscribe: { topics, requestId, resumeAfter, replayBatchSize: 0 } }) as unknown as SyncWire.ClientFrame

const run = (events: Array<Session.Event>, cfg = config) => {
  let state = Session.initial(0)
  const actions: Array<Session.Action> = []
  for (const e of events) {
    const [next, out] = Session.transition(state, e, cfg)
    state = next
    actions.push(...out)
  }
  return { state, actions, tags: actions.map((a) => (a._tag === "Close" ? `Close:${a.reason._tag}` : a._tag === "RequestError" ? `RequestError:${a.code}` : a._tag)) }
}
const ready: Array<Session.Event> = [
  { _tag: "Frame", frame: hello(), now: 10 },
  { _tag: "Verified", principal, purpose: "hello", requestId: "", now: 20 }
]

describe("Session transitions", () => {
  it.each([
    ["hello → verify → welcome", ready, ["Verify", "Welcome"], "ready"],
    ["a first frame other than hello is bad_frame", [{ _tag: "Frame", frame: subscribe(["x"]), now: 1 }], ["Close:bad_frame"], "closed"],
    ["no hello within the deadline", [{ _tag: "Tick", now: 4999 }, { _tag: "Tick", now: 5000 }], ["Close:hello_timeout"], "closed"],
    ["a hello still being verified at the deadline", [{ _tag: "Frame", frame: hello(), now: 1 }, { _tag: "Tick", now: 5000 }], ["Verify", "Close:hello_timeout"], "closed"],
    ["a refused token closes as unauthorized", [{ _tag: "Frame", frame: hello(), now: 1 }, { _tag: "Refused", error: new SyncToken.SyncTokenError({ reason: "unknown_kid", detail: "" }), purpose: "hello", requestId: "", now: 2 }], ["Verify", "Close:unauthorized"], "closed"],
    ["an expired token closes as token_expired", [{ _tag: "Frame", frame: hello(), now: 1 }, { _tag: "Refused", error: new SyncToken.SyncTokenError({ reason: "token_expired", detail: "" }), purpose: "hello", requestId: "", now: 2 }], ["Verify", "Close:token_expired"], "closed"],
    ["frames before welcome are bad_frame", [{ _tag: "Frame", frame: hello(), now: 1 }, { _tag: "Frame", frame: subscribe(["x"]), now: 2 }], ["Verify", "Close:bad_frame"], "closed"],
    ["a second hello is bad_frame", [...ready, { _tag: "Frame", frame: hello(), now: 30 }], ["Verify", "Welcome", "Close:bad_frame"], "closed"],
    ["heartbeat due", [...ready, { _tag: "Tick", now: 15_020 }], ["Verify", "Welcome", "Heartbeat"], "ready"],
    ["idle client", [...ready, { _tag: "Tick", now: 60_010 }], ["Verify", "Welcome", "Close:idle_timeout"], "closed"],
    ["a client heartbeat counts as activity", [...ready, { _tag: "Frame", frame: { kind: "heartbeat", heartbeat: {} } as never, now: 50_000 }, { _tag: "Tick", now: 60_010 }], ["Verify", "Welcome", "Heartbeat"], "ready"],
    ["token expiry on an open connection", [...ready, { _tag: "Frame", frame: { kind: "heartbeat", heartbeat: {} } as never, now: 999_000 }, { _tag: "Tick", now: 1_000_000 }], ["Verify", "Welcome", "Close:token_expired"], "closed"],
    ["revocation", [...ready, { _tag: "Revoked", reason: "admin_revoked", now: 40 }], ["Verify", "Welcome", "Close:reauth_required"], "closed"],
    ["subscribe", [...ready, { _tag: "Frame", frame: subscribe(["a"]), now: 30 }], ["Verify", "Welcome", "Subscribe"], "ready"],
    ["empty topics", [...ready, { _tag: "Frame", frame: subscribe([]), now: 30 }], ["Verify", "Welcome", "RequestError:bad_subscription"], "ready"],
    ["too many topics", [...ready, { _tag: "Frame", frame: subscribe(["a", "b", "c"]), now: 30 }], ["Verify", "Welcome", "RequestError:bad_subscription"], "ready"],
    ["a cursor for a topic not requested", [...ready, { _tag: "Frame", frame: subscribe(["a"], "r", [{ topic: "b", watermark: 1n }]), now: 30 }], ["Verify", "Welcome", "RequestError:bad_subscription"], "ready"],
    ["subscribe rate", [...ready, ...[31, 32, 33].map((now) => ({ _tag: "Frame" as const, frame: subscribe(["a"]), now }))], ["Verify", "Welcome", "Subscribe", "Subscribe", "RequestError:rate_limited"], "ready"],
    ["a refresh with the same subject", [...ready, { _tag: "Frame", frame: { kind: "refresh_token", refresh: { token: "t2", requestId: "x" } } as never, now: 30 }, { _tag: "Verified", principal: { ...principal, expiresAt: 5000 }, purpose: "refresh", requestId: "x", now: 31 }], ["Verify", "Welcome", "Verify", "TokenRefreshed", "Revoke"], "ready"],
    ["a refresh with another subject", [...ready, { _tag: "Frame", frame: { kind: "refresh_token", refresh: { token: "t2", requestId: "x" } } as never, now: 30 }, { _tag: "Verified", principal: { ...principal, subject: "user:2" }, purpose: "refresh", requestId: "x", now: 31 }], ["Verify", "Welcome", "Verify", "Close:unauthorized"], "closed"],
    ["a bad refresh token leaves a valid connection open", [...ready, { _tag: "Frame", frame: { kind: "refresh_token", refresh: { token: "bad", requestId: "x" } } as never, now: 30 }, { _tag: "Refused", error: new SyncToken.SyncTokenError({ reason: "invalid_signature", detail: "" }), purpose: "refresh", requestId: "x", now: 31 }], ["Verify", "Welcome", "Verify", "RequestError:bad_frame"], "ready"]
  ] as const)("%s", (_name, events, tags, phase) => {
    const result = run(events as unknown as Array<Session.Event>)
    expect(result.tags).toEqual(tags)
    expect(result.state.phase).toBe(phase)
  })

  it("applies compatibility gates before verifying the token", () => {
    const gate = { protocolVersion: "khala.ws.v1", minClientBuildId: "20260101T000000Z", maxClientBuildId: "20271231T235959Z", minSchemaVersion: 1, maxSchemaVersion: 1 }
    const gated = { ...config, gate }
    const verdict = (extra: Parameters<typeof hello>[0]) => {
      const r = run([{ _tag: "Frame", frame: hello(extra), now: 1 }], gated)
      const close = r.actions.find((a) => a._tag === "Close")
      return close && close._tag === "Close" && close.reason._tag === "upgrade_required" ? close.reason.reason : r.tags[0]
    }
    expect(verdict({})).toBe("Verify")
    expect(verdict({ clientBuildId: "20251231T000000Z" })).toBe("upgrade_required")
    expect(verdict({ clientBuildId: "20280101T000000Z" })).toBe("unsupported_client_build")
    expect(verdict({ clientBuildId: "nightly" })).toBe("invalid_client_build")
    expect(verdict({ protocolVersion: "khala.ws.v2" })).toBe("unsupported_protocol_version")
  })

  const unsubscribe = (topics: Array<string>) => ({ kind: "unsubscribe", unsubscribe: { topics, requestId: "u" } }) as unknown as SyncWire.ClientFrame
  const idOf = (r: ReturnType<typeof run>) => (r.actions.filter((a) => a._tag === "Subscribe").at(-1) as { id: number }).id

  it("holds exactly the topics a subscribe installed, and forgets unsubscribed ones", () => {
    const r = run([...ready, { _tag: "Frame", frame: subscribe(["a", "b"]), now: 30 }])
    expect([...r.state.topics]).toEqual([])
    expect(Session.wanted(r.state, idOf(r))).toEqual(["a", "b"])
    const [settled] = Session.transition(r.state, { _tag: "SubscribeSettled", id: idOf(r), accepted: ["a"], now: 31 }, config)
    expect([...settled.topics]).toEqual(["a"])
    expect(settled.pending.size).toBe(0)
    // An idle connection holds no map of its own for subscribes in flight (memory per connection).
    expect(settled.pending).toBe(Session.initial(0).pending)
    const [after] = Session.transition(settled, { _tag: "Frame", frame: unsubscribe(["a"]), now: 40 }, config)
    expect([...after.topics]).toEqual([])
    expect(after.pending).toBe(Session.initial(0).pending)
  })

  it("a refused re-subscribe of held topics leaves them held, and their slots taken", () => {
    const first = run([...ready, { _tag: "Frame", frame: subscribe(["a", "b"]), now: 30 }])
    const held = run([...ready, { _tag: "Frame", frame: subscribe(["a", "b"]), now: 30 }, { _tag: "SubscribeSettled", id: idOf(first), accepted: ["a", "b"], now: 31 }, { _tag: "Frame", frame: subscribe(["a", "b"], "again"), now: 1100 }])
    const [refused] = Session.transition(held.state, { _tag: "SubscribeSettled", id: idOf(held), accepted: [], now: 1101 }, config)
    expect([...refused.topics].sort()).toEqual(["a", "b"])
    const [, actions] = Session.transition(refused, { _tag: "Frame", frame: subscribe(["c"], "more"), now: 1200 }, config)
    expect(actions.map((a) => a._tag === "RequestError" ? a.code : a._tag)).toEqual(["bad_subscription"])
    // A held topic the server ended (stale, forbidden) frees its slot.
    const [ended] = Session.transition(refused, { _tag: "Unsubscribed", topics: ["a"], now: 1201 }, config)
    expect([...ended.topics]).toEqual(["b"])
  })

  it("a subscribe in flight counts against the limit, and an unsubscribe meanwhile takes its topic out of what it may install", () => {
    const r = run([...ready, { _tag: "Frame", frame: subscribe(["a", "b"]), now: 30 }, { _tag: "Frame", frame: subscribe(["c"], "r2"), now: 31 }])
    expect(r.tags.at(-1)).toBe("RequestError:bad_subscription")
    const id = idOf(r)
    const [after] = Session.transition(r.state, { _tag: "Frame", frame: unsubscribe(["a"]), now: 40 }, config)
    expect(Session.wanted(after, id)).toEqual(["b"])
    const [, actions] = Session.transition(after, { _tag: "Frame", frame: subscribe(["c"], "r3"), now: 1100 }, config)
    expect(actions.map((a) => a._tag)).toEqual(["Subscribe"])
  })
})
