// An in-memory RuntimeClient that records what control asked of the runtime (each revocation as
// sent, rememberUntilMs included), for tests and for embedding control without a runtime. `failing` makes every call fail (a runtime outage);
// `forwardWith` scripts the proxy's answers.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { type ForwardRequest, type ForwardResponse, type RevocationRequest, RuntimeClient, RuntimeUnavailable } from "../RuntimeClient.js"

export interface RecorderService {
  readonly revocations: Effect.Effect<ReadonlyArray<RevocationRequest>>
  readonly forwarded: Effect.Effect<ReadonlyArray<ForwardRequest>>
  readonly setFailing: (failing: boolean) => Effect.Effect<void>
  readonly forwardWith: (handler: (request: ForwardRequest) => ForwardResponse) => Effect.Effect<void>
}

export class RuntimeRecorder extends Context.Tag("@openagents/control-core/RuntimeRecorder")<RuntimeRecorder, RecorderService>() {}

const notFound = (): ForwardResponse => ({
  status: 404,
  headers: { "content-type": "application/json" },
  body: Stream.make(new TextEncoder().encode(JSON.stringify({ error: { code: "not_found", message: "no runtime" } })))
})

export const layer: Layer.Layer<RuntimeClient | RuntimeRecorder> = Layer.effectContext(Effect.gen(function*() {
  const revocations = yield* Ref.make<ReadonlyArray<RevocationRequest>>([])
  const forwarded = yield* Ref.make<ReadonlyArray<ForwardRequest>>([])
  const failing = yield* Ref.make(false)
  const handler = yield* Ref.make<(request: ForwardRequest) => ForwardResponse>(notFound)
  const guard = Effect.flatMap(Ref.get(failing), (f) => (f ? Effect.fail(new RuntimeUnavailable({ detail: "the runtime is down (recorder)" })) : Effect.void))
  return Context.make(RuntimeClient, {
    revokeSessions: (request) => Effect.zipRight(guard, Ref.update(revocations, (all) => [...all, request])),
    forward: (request) =>
      Effect.zipRight(guard, Effect.zipRight(Ref.update(forwarded, (all) => [...all, request]), Effect.map(Ref.get(handler), (h) => h(request))))
  }).pipe(Context.add(RuntimeRecorder, {
    revocations: Ref.get(revocations),
    forwarded: Ref.get(forwarded),
    setFailing: (f) => Ref.set(failing, f),
    forwardWith: (h) => Ref.set(handler, h)
  }))
}))
