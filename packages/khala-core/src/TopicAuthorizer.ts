// Who may subscribe to which topic. The server checks two things for every requested topic:
// scope — the token grants the topic's class — and ownership, asked of this port. Topics are
// owner-partitioned (ADR 0004), so this is one decision per topic at subscribe time, never a
// filter per document.
//
// The default authorizer decides user partitions itself (the topic's owner is the token's user)
// and refuses every other partition; the runtime supplies `layerWithOwners` with a lookup from a
// worker or run id to its owning user.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { SyncPrincipal } from "./SyncToken.js"
import type { PartitionKind, Topic } from "./Topic.js"

export interface TopicAuthorizerService {
  /** True when `principal` may read `topic` (its scope was already checked). */
  readonly authorize: (principal: SyncPrincipal, topic: Topic) => Effect.Effect<boolean>
}

export class TopicAuthorizer extends Context.Tag("@openagents/khala-core/TopicAuthorizer")<TopicAuthorizer, TopicAuthorizerService>() {}

/** The owner of a user partition is the user; of an org partition, the token's organisation. */
const direct = (principal: SyncPrincipal, topic: Topic): boolean | undefined => {
  if (topic.partition === "user") return topic.owner === principal.userId
  if (topic.partition === "org") return `org:${topic.owner}` === principal.orgId || `user:${topic.owner}` === principal.orgId
  return undefined
}

export const layerDefault: Layer.Layer<TopicAuthorizer> = Layer.succeed(TopicAuthorizer, {
  authorize: (principal, topic) => Effect.succeed(direct(principal, topic) ?? false)
})

/**
 * `ownerOf(partition, id)` returns the user id owning a worker or run (undefined: unknown, refused).
 * Lookup failures refuse the topic (fail closed).
 */
export const layerWithOwners = <E>(
  ownerOf: (partition: PartitionKind, id: string) => Effect.Effect<string | undefined, E>
): Layer.Layer<TopicAuthorizer> =>
  Layer.succeed(TopicAuthorizer, {
    authorize: (principal, topic) => {
      const decided = direct(principal, topic)
      if (decided !== undefined) return Effect.succeed(decided)
      return ownerOf(topic.partition, topic.owner).pipe(
        Effect.map((owner) => owner !== undefined && owner === principal.userId),
        Effect.catchAllCause((cause) => Effect.as(Effect.logWarning(`topic authorizer lookup failed for ${topic.topic}`, cause), false))
      )
    }
  })
