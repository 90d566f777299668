// Server-sent event streams of a run's or a worker's authority events (UPSTREAM_SPEC §2.5).
//
// Cursor rules: the cursor is the last seq the client has (`Last-Event-ID`, or `?cursor`; both
// given and different → 400). Without one the stream starts after the latest event. A cursor
// ahead of the log → 400; a cursor whose next event is no longer retained → 410 stale_cursor.
//
// The stream reads the authority table after the cursor in pages, so a client that reconnects
// with the last id it saw gets exactly the events it missed. New events are noticed through the
// Khala Notifier's wake-ups for the entity's topic (every node's commits, after commit), with a
// five-second poll as the safety net for a lost wake-up (an idle stream costs one read per poll,
// so the poll is slow; wake-ups carry the latency); a stream with nothing to send for
// `tail_ms` ends (the client reconnects with its Last-Event-ID) and sends a comment line every
// 15 s meanwhile so proxies keep it open. A revoked session's streams end with an
// `event: error` carrying reauth_required.
import { Notifier, Revocations } from "@openagents/khala-core"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import type { Caller } from "./Api.js"
import { RevokedSessions } from "./Auth.js"
import * as Errors from "./Errors.js"

export const DEFAULT_TAIL_MS = 30_000
export const MAX_TAIL_MS = 600_000
export const KEEP_ALIVE_MS = 15_000
export const POLL_MS = 5_000
export const PAGE = 500

const UINT64_MAX = 18446744073709551615n

const parseSeq = (raw: string, what: string): bigint | Errors.RuntimeError => {
  if (!/^\d{1,20}$/.test(raw)) return Errors.invalid(`${what} must be a non-negative integer`, { field: "cursor" })
  const n = BigInt(raw)
  return n > UINT64_MAX ? Errors.invalid(`${what} is out of range`, { field: "cursor" }) : n
}

export interface StreamParams {
  /** undefined: start after the latest event. */
  readonly cursor: bigint | undefined
  readonly tailMs: number
}

/** The cursor and tail of a stream request (Last-Event-ID header, ?cursor, ?tail_ms). */
export const params = (lastEventId: string | undefined, query: { readonly cursor?: string | undefined; readonly tail_ms?: string | undefined }): StreamParams | Errors.RuntimeError => {
  const header = lastEventId?.trim()
  const fromHeader = header === undefined || header === "" ? undefined : parseSeq(header, "Last-Event-ID")
  if (fromHeader instanceof Errors.RuntimeError) return fromHeader
  const fromQuery = query.cursor === undefined || query.cursor === "" ? undefined : parseSeq(query.cursor, "cursor")
  if (fromQuery instanceof Errors.RuntimeError) return fromQuery
  if (fromHeader !== undefined && fromQuery !== undefined && fromHeader !== fromQuery) {
    return Errors.invalid("Last-Event-ID and ?cursor disagree; send one", { field: "cursor" })
  }
  let tailMs = DEFAULT_TAIL_MS
  if (query.tail_ms !== undefined) {
    if (!/^\d{1,7}$/.test(query.tail_ms) || Number(query.tail_ms) > MAX_TAIL_MS) {
      return Errors.invalid(`tail_ms must be an integer from 0 to ${MAX_TAIL_MS}`, { field: "tail_ms" })
    }
    tailMs = Number(query.tail_ms)
  }
  return { cursor: fromHeader ?? fromQuery, tailMs }
}

export interface Item {
  readonly seq: bigint
}

export interface Source<A extends Item> {
  /** The Khala topic whose wake-ups announce new events of this entity. */
  readonly topic: string
  /** Events after `seq`, in order, at most `limit`. */
  readonly after: (seq: bigint, limit: number) => Effect.Effect<ReadonlyArray<A>, Errors.RuntimeError>
  /** The latest seq and the lowest retained seq (undefined when nothing is retained). */
  readonly bounds: Effect.Effect<{ readonly latest: bigint; readonly first: bigint | undefined }, Errors.RuntimeError>
  /** One SSE message (without the trailing blank line). */
  readonly format: (item: A) => string
  /** After this event the stream ends with `data: [DONE]`. */
  readonly isTerminal?: ((item: A) => boolean) | undefined
}

const encoder = new TextEncoder()


/**
 * Check the cursor against the log, then answer with the event stream. Fails (before any byte is
 * sent) with 400 for a cursor ahead of the log and 410 stale_cursor for one behind retention.
 */
export const respond = <A extends Item>(caller: Caller, source: Source<A>, p: StreamParams) =>
  Effect.gen(function*() {
    const notifier = yield* Notifier.Notifier
    const store = yield* Effect.serviceOption(RevokedSessions)
    const { first, latest } = yield* source.bounds
    const start = p.cursor ?? latest
    if (start > latest) return yield* Effect.fail(Errors.invalid(`cursor ${start} is ahead of the stream (latest ${latest})`, { field: "cursor", latest_seq: latest.toString() }))
    if (start < latest && (first === undefined || first > start + 1n)) {
      return yield* Effect.fail(
        new Errors.RuntimeError({
          code: "stale_cursor",
          message: `events after ${start} are no longer retained`,
          details: { cursor: start.toString(), retained_from: first?.toString() ?? null, latest_seq: latest.toString() }
        })
      )
    }

    const body = Stream.unwrapScoped(
      Effect.gen(function*() {
        let wake = Deferred.unsafeMake<void>(FiberId.none)
        const revoked = yield* Deferred.make<void>()
        // The durable record, for what was announced when this stream did not listen: between
        // the request's authentication and the listener below, or while this node was deaf (its
        // LISTEN connection reopened). A lookup that fails leaves the stream as it is (the
        // request was authenticated; the next announcement still cuts it).
        const recheck = Option.isNone(store) || caller.sessionId === undefined
          ? Effect.void
          : Effect.gen(function*() {
            const s = store.value
            const gone = (yield* s.isRevoked(caller.sessionId!)) ||
              (caller.deviceId !== undefined && caller.issuedAt !== undefined && (yield* s.isDeviceRevoked(caller.deviceId, caller.issuedAt, caller.userId)))
            if (gone) yield* Deferred.succeed(revoked, undefined)
          }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("runtime stream: the revocation re-check failed", cause)))
        const runFork = Runtime.runFork(yield* Effect.runtime<never>())
        yield* notifier.listen({
          wake: (topics) => {
            if (topics.includes(source.topic)) Deferred.unsafeDone(wake, Exit.void)
          },
          revoke: (revocation) => {
            if (Revocations.covers(revocation, caller)) Deferred.unsafeDone(revoked, Exit.void)
          },
          resync: () => void runFork(recheck)
        })
        yield* recheck
        let cursor = start
        let done = false
        let idleSince = Date.now()
        let lastSent = Date.now()

        const step: Effect.Effect<Uint8Array, Option.Option<Errors.RuntimeError>> = Effect.gen(function*() {
          while (true) {
            if (done) return yield* Effect.fail(Option.none())
            if (yield* Deferred.isDone(revoked)) {
              done = true
              return encoder.encode(`event: error\ndata: ${JSON.stringify({ code: "reauth_required", message: "the session was revoked" })}\n\n`)
            }
            // A fresh wake signal before reading: a commit after this point wakes the wait below.
            wake = Deferred.unsafeMake<void>(FiberId.none)
            const items = yield* Effect.mapError(source.after(cursor, PAGE), Option.some)
            if (items.length > 0) {
              let text = ""
              for (const item of items) {
                text += source.format(item) + "\n\n"
                cursor = item.seq
                if (source.isTerminal?.(item) === true) {
                  text += "data: [DONE]\n\n"
                  done = true
                  break
                }
              }
              idleSince = lastSent = Date.now()
              return encoder.encode(text)
            }
            const now = Date.now()
            const remaining = p.tailMs - (now - idleSince)
            if (remaining <= 0) return yield* Effect.fail(Option.none())
            if (now - lastSent >= KEEP_ALIVE_MS) {
              lastSent = now
              return encoder.encode(": keep-alive\n\n")
            }
            yield* Effect.raceFirst(
              Effect.raceFirst(Deferred.await(wake), Deferred.await(revoked)),
              Effect.sleep(Math.min(remaining, POLL_MS, KEEP_ALIVE_MS - (now - lastSent)))
            )
          }
        })
        // A comment first, so the status and headers reach the client before the first event.
        return Stream.concat(Stream.succeed(encoder.encode(": stream\n\n")), Stream.repeatEffectOption(step))
      })
    )

    return HttpServerResponse.stream(
      // A failure after the headers were sent can only end the stream: report it as an event.
      Stream.catchAll(body, (e) => Stream.succeed(encoder.encode(`event: error\ndata: ${JSON.stringify({ code: e.code, message: e.message })}\n\n`))),
      {
        contentType: "text/event-stream",
        headers: { "cache-control": "no-store", "x-accel-buffering": "no", connection: "keep-alive" }
      }
    )
  })

/** `id: <seq>` / `event: <name>` / `data: <json>`. */
export const message = (seq: bigint, event: string, data: unknown) => `id: ${seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}`
