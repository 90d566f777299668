// The runtime's answer to Khala's ownership question: who owns a worker or a run. With this,
// `runtime.codex_worker_events:worker:<id>` is granted only to the worker's owner (scope alone is
// not enough), and user partitions are decided by the token's user.
import { TopicAuthorizer } from "@openagents/khala-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Runs } from "./Runs.js"
import { Workers } from "./Workers.js"

export const authorizerLayer: Layer.Layer<TopicAuthorizer.TopicAuthorizer, never, Runs | Workers> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const runs = yield* Runs
    const workers = yield* Workers
    return TopicAuthorizer.layerWithOwners((partition, id) =>
      partition === "worker" ? workers.ownerOf(id) : partition === "run" ? runs.ownerOf(id) : Effect.succeed(undefined)
    )
  })
)
