// The Effect API of the Khala client: the same client as a scoped service, with documents,
// status and events as Streams. `effect` is an optional peer dependency: apps that do not use
// Effect import the main entry and never load it.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { type ClientEvent, type ClientOptions, createClient, type Document, type KhalaClient, KhalaClientError, type Status } from "./Client.js"

export class KhalaSync extends Context.Tag("@openagents/khala-client/KhalaSync")<KhalaSync, KhalaClient>() {}

/** A client for the layer's lifetime (closed when the scope closes). */
export const layer = (options: ClientOptions): Layer.Layer<KhalaSync> =>
  Layer.scoped(KhalaSync, Effect.acquireRelease(Effect.sync(() => createClient(options)), (client) => Effect.promise(() => client.close())))

/** Every client event, for as long as the stream runs. */
export const events: Stream.Stream<ClientEvent, never, KhalaSync> = Stream.unwrap(
  Effect.map(KhalaSync, (client) => Stream.async<ClientEvent>((emit) => {
    const off = client.on((event) => void emit.single(event))
    return Effect.sync(off)
  }))
)

/** The connection status: the current one, then every change. */
export const status: Stream.Stream<Status, never, KhalaSync> = Stream.unwrap(
  Effect.map(KhalaSync, (client) =>
    Stream.concat(
      Stream.succeed(client.status),
      events.pipe(Stream.filter((e): e is Extract<ClientEvent, { type: "status" }> => e.type === "status"), Stream.map((e) => e.status))
    ).pipe(Stream.changes))
)

/** Subscribe to a topic and follow its documents: the current ones, then after every change. */
export const documents = <T = unknown>(topic: string): Stream.Stream<ReadonlyMap<string, Document<T>>, never, KhalaSync> =>
  Stream.unwrap(
    Effect.map(KhalaSync, (client) => {
      client.subscribe(topic)
      const current = () => new Map(client.documents<T>(topic))
      // Listen first, then emit the current documents: a change between the two is never missed.
      return Stream.async<ReadonlyMap<string, Document<T>>>((emit) => {
        const off = client.on((e) => {
          if ((e.type === "change" || e.type === "resynced" || e.type === "restored") && e.topic === topic) void emit.single(current())
        })
        void emit.single(current())
        return Effect.sync(off)
      })
    })
  )

/**
 * Wait until a topic has caught up. Fails if it never can: the server refused the topic
 * (`topic_failed`, `forbidden_topic`, `bad_subscription`), it was unsubscribed (`not_subscribed`),
 * or the client closed or stopped (`closed`, `reauth_required`, `upgrade_required`, …).
 */
export const live = (topic: string): Effect.Effect<void, KhalaClientError, KhalaSync> =>
  Effect.flatMap(KhalaSync, (client) => {
    client.subscribe(topic)
    return Effect.tryPromise({
      try: () => client.live(topic),
      catch: (error) => (error instanceof KhalaClientError ? error : new KhalaClientError("internal", String(error), [topic]))
    })
  })
