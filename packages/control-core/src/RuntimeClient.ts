// The runtime as control sees it: the calls control makes to the runtime plane's internal API,
// each signed with the internal header (host-kit InternalSignature). Adapters: HTTP
// (runtime/http.ts) and an in-memory recorder for tests and embedding (runtime/memory.ts).
//
// - revokeSessions: POST /internal/v1/sync/sessions/revoke {session_ids, device_ids, user_id,
//   revoked_at_ms, remember_until_ms, reason}; the runtime cuts the live Khala sockets of those
//   sessions (and of that user's sockets on those devices) with reauth_required and refuses their
//   tokens until remember_until_ms. Idempotent: control may deliver a notice twice.
// - forward: the user-facing runtime proxy (`/api/runtime/codex/workers*` ->
//   `/internal/v1/codex/workers*`), with the authenticated user bound in the signature.
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { RevocationReason } from "./Storage.js"

export const REVOKE_PATH = "/internal/v1/sync/sessions/revoke"

export interface RevocationRequest {
  /** The user whose sessions and devices these are (sent as user_id; scopes the device revocation). */
  readonly userId?: string | undefined
  /**
   * When control revoked them (ms; sent as revoked_at_ms): a redelivered notice then carries the
   * same time, and does not refuse the tokens of a sign-in made on the device since.
   */
  readonly revokedAtMs?: number | undefined
  /**
   * Until when the runtime must refuse their tokens (ms; sent as remember_until_ms): the
   * revocation time plus the longest lifetime of control's tokens plus skew, since control's
   * access-token TTL is configurable and the runtime cannot know it.
   */
  readonly rememberUntilMs?: number | undefined
  readonly sessionIds: ReadonlyArray<string>
  readonly deviceIds: ReadonlyArray<string>
  readonly reason: RevocationReason
}

export interface ForwardRequest {
  readonly method: string
  /** The runtime path, starting with /internal/v1/. */
  readonly path: string
  /** The query string without "?", or "". */
  readonly query: string
  /** Headers to pass on (content-type, accept, last-event-id, x-request-id). */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  /** The authenticated user the call is made for (signed as user_id, sent as X-OA-USER-ID). */
  readonly userId: string
}

export interface ForwardResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** Streamed, so SSE streams pass through as they arrive. */
  readonly body: Stream.Stream<Uint8Array, RuntimeUnavailable>
}

export class RuntimeUnavailable extends Data.TaggedError("RuntimeUnavailable")<{ readonly detail: string; readonly status?: number; readonly cause?: unknown }> {
  override get message() {
    return `runtime unavailable: ${this.detail}`
  }
}

export interface RuntimeClientService {
  readonly revokeSessions: (request: RevocationRequest) => Effect.Effect<void, RuntimeUnavailable>
  readonly forward: (request: ForwardRequest) => Effect.Effect<ForwardResponse, RuntimeUnavailable>
}

export class RuntimeClient extends Context.Tag("@openagents/control-core/RuntimeClient")<RuntimeClient, RuntimeClientService>() {}
