// HTTP handler of sync-token minting: the upstream snake_case answer `{data: {...}}`.
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { ControlApi } from "../Api.js"
import { CurrentPrincipal } from "../Auth.js"
import { SyncTokens } from "../SyncTokens.js"
import { iso } from "./common.js"

export const SyncHandlers = HttpApiBuilder.group(ControlApi, "sync", (handlers) =>
  Effect.gen(function*() {
    const syncTokens = yield* SyncTokens
    const mint = ({ payload }: {
      readonly payload: {
        readonly scopes?: ReadonlyArray<string>
        readonly topics?: ReadonlyArray<string>
        readonly ttl_seconds?: number
        readonly ttlSeconds?: number
        readonly device_id?: string
        readonly deviceId?: string
      }
    }) =>
      Effect.gen(function*() {
        const principal = yield* CurrentPrincipal
        const m = yield* syncTokens.mint(principal, {
          scopes: payload.scopes ?? [],
          topics: payload.topics ?? [],
          ttlSeconds: payload.ttl_seconds ?? payload.ttlSeconds,
          deviceId: payload.device_id ?? payload.deviceId
        })
        return {
          data: {
            token: m.token,
            token_type: m.tokenType,
            expires_in: m.expiresIn,
            issued_at: iso(m.issuedAtMs),
            expires_at: iso(m.expiresAtMs),
            issuer: m.issuer,
            audience: m.audience,
            subject: m.subject,
            org_id: m.orgId,
            claims_version: m.claimsVersion,
            scopes: m.scopes,
            kid: m.kid,
            granted_topics: m.grantedTopics.map((g) => ({ topic: g.topic, required_scope: g.requiredScope })),
            token_id: m.tokenId,
            session_id: m.sessionId,
            device_id: m.deviceId
          }
        }
      })
    return handlers.handle("token", mint).handle("tokenV1", mint)
  }))
