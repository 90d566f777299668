// A Khala server over real sockets on 127.0.0.1 for tests: storage (memory or SQL), the memory
// notifier (or Postgres), a known HS256 keyring, the default authorizer, and a transport.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Journal, MemoryStorage, Notifier, Publisher, Retention, Server, Snapshot, SnapshotHttp, SyncToken, Topic, TopicAuthorizer } from "@openagents/khala-core"
import { createServer } from "node:http"
import type { Storage, Transport } from "@openagents/khala-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"

export const KEY = { kid: "test-k1", secret: Redacted.make("s".repeat(40)) }
export const VERIFIER = { hmacKeys: [KEY], issuer: "https://control.test", audience: "openagents-sync", claimsVersion: "oa_sync_claims_v1" }

export const tokenFor = (userId: string, overrides: Record<string, unknown> = {}) => {
  const now = Math.floor(Date.now() / 1000)
  return Effect.runPromise(
    SyncToken.signHmac(
      {
        iss: VERIFIER.issuer,
        aud: VERIFIER.audience,
        sub: `user:${userId}`,
        iat: now,
        exp: now + 300,
        jti: `jti_${Math.random().toString(16).slice(2)}`,
        oa_user_id: userId,
        oa_org_id: `user:${userId}`,
        oa_sync_scopes: ["runtime.run_summaries", "runtime.codex_worker_summaries", "runtime.codex_worker_events", "runtime.notifications"],
        oa_claims_version: VERIFIER.claimsVersion,
        oa_session_id: `sess_${userId}`,
        oa_device_id: `dev_${userId}`,
        ...overrides
      },
      KEY
    )
  )
}

export interface HarnessOptions {
  readonly transport: Transport.Transport
  readonly storage?: Layer.Layer<Storage.KhalaStorage, unknown> | undefined
  readonly notifier?: Layer.Layer<Notifier.Notifier, unknown>
  readonly server?: Server.ServerOptions
  readonly authorizer?: Layer.Layer<TopicAuthorizer.TopicAuthorizer>
  readonly classes?: ReadonlyArray<Topic.TopicClass>
}

export const start = async (options: HarnessOptions) => {
  const storage = options.storage ?? MemoryStorage.layerStorage
  const deps = Layer.mergeAll(
    Journal.layer,
    Snapshot.layer,
    Retention.layer,
    options.notifier ?? Notifier.layerMemory,
    SyncToken.layer(VERIFIER),
    options.authorizer ?? TopicAuthorizer.layerDefault
  ).pipe(Layer.provideMerge(storage))
  const http = HttpLayerRouter.serve(SnapshotHttp.layer).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
  const layer = Layer.mergeAll(Server.layer({ transport: options.transport, ...options.server }), Publisher.layer, http).pipe(
    Layer.provideMerge(deps),
    Layer.provide(Layer.succeed(Topic.TopicClasses, Topic.makeRegistry(options.classes ?? Topic.defaultClasses)))
  )
  const runtime = ManagedRuntime.make(layer as Layer.Layer<any, unknown>)
  const server = (await runtime.runPromise(Server.KhalaServerTag)) as Server.KhalaServer
  const run = <A>(effect: Effect.Effect<A, unknown, any>) => runtime.runPromise(effect) as Promise<A>
  const address = (await run(Effect.map(HttpServer.HttpServer, (s) => s.address))) as { port: number }
  return {
    server,
    runtime,
    run,
    url: `ws://127.0.0.1:${server.port}/sync/v1/ws`,
    httpUrl: `http://127.0.0.1:${address.port}`,
    publish: (topic: string, docs: Array<{ docKey: string; docVersion: number | bigint; payload: unknown }>) =>
      run(Effect.flatMap(Publisher.Publisher, (p) => p.publish(topic, docs))),
    append: (topic: string, docs: Array<{ docKey: string; docVersion: number | bigint; payload: unknown }>) =>
      run(Effect.flatMap(Publisher.Publisher, (p) => p.append(topic, docs))),
    dispose: () => runtime.dispose()
  }
}

export type Harness = Awaited<ReturnType<typeof start>>

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
