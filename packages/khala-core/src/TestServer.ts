// A Khala server for tests — this package's, the client's, and apps' — over real sockets on
// 127.0.0.1: storage (memory by default, or any KhalaStorage layer), a notifier, a known HS256
// keyring with a `token(userId)` helper, the default authorizer, the snapshot endpoint on an HTTP
// port, and a chosen transport. `restart()` stops it and starts it again on the same ports with
// the same storage, as a crashed and restarted runtime would come back.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as Journal from "./Journal.js"
import * as MemoryStorage from "./storage/memory.js"
import * as Notifier from "./Notifier.js"
import * as Publisher from "./Publisher.js"
import * as Retention from "./Retention.js"
import * as Server from "./Server.js"
import * as Snapshot from "./Snapshot.js"
import * as Revocations from "./Revocations.js"
import * as SnapshotHttp from "./SnapshotHttp.js"
import type { KhalaStorage } from "./Storage.js"
import * as SyncToken from "./SyncToken.js"
import * as Topic from "./Topic.js"
import * as TopicAuthorizer from "./TopicAuthorizer.js"
import type { Transport } from "./Transport.js"
import * as UwsTransport from "./transport/uws.js"

export const KEY: SyncToken.HmacKey = { kid: "test-k1", secret: Redacted.make("s".repeat(40)) }
export const VERIFIER: SyncToken.VerifierOptions = { hmacKeys: [KEY], issuer: "https://control.test", audience: "openagents-sync", claimsVersion: "oa_sync_claims_v1" }
export const ALL_SCOPES = ["runtime.run_summaries", "runtime.codex_worker_summaries", "runtime.codex_worker_events", "runtime.notifications"]

/** A sync token for `userId`, valid for `ttlSeconds` (default 300); claims can be overridden. */
export const token = (userId: string, overrides: Record<string, unknown> = {}, ttlSeconds = 300) => {
  const now = Math.floor(Date.now() / 1000)
  return Effect.runPromise(
    SyncToken.signHmac(
      {
        iss: VERIFIER.issuer,
        aud: VERIFIER.audience,
        sub: `user:${userId}`,
        iat: now,
        exp: now + ttlSeconds,
        jti: `jti_${Math.random().toString(16).slice(2)}`,
        oa_user_id: userId,
        oa_org_id: `user:${userId}`,
        oa_sync_scopes: ALL_SCOPES,
        oa_claims_version: VERIFIER.claimsVersion,
        oa_session_id: `sess_${userId}`,
        oa_device_id: `dev_${userId}`,
        ...overrides
      },
      KEY
    )
  )
}

export interface Options {
  readonly transport?: Transport | undefined
  readonly storage?: Layer.Layer<KhalaStorage, unknown> | undefined
  readonly notifier?: Layer.Layer<Notifier.Notifier, unknown> | undefined
  readonly server?: Server.ServerOptions | undefined
  readonly authorizer?: Layer.Layer<TopicAuthorizer.TopicAuthorizer> | undefined
  readonly classes?: ReadonlyArray<Topic.TopicClass> | undefined
  /**
   * The clock the server's loops sleep on (its session tick, head poll, epoch check): a test can
   * hand one that lets it run a loop step by hand. Default: the real clock.
   */
  readonly clock?: Clock.Clock | undefined
  /** Ports to listen on (default: free ones). */
  readonly port?: number | undefined
  readonly httpPort?: number | undefined
}

type Docs = Array<{ docKey: string; docVersion: number | bigint; payload: unknown }>

export interface TestServer {
  readonly url: string
  readonly httpUrl: string
  readonly server: Server.KhalaServer
  readonly run: <A>(effect: Effect.Effect<A, unknown, any>) => Promise<A>
  readonly publish: (topic: string, docs: Docs) => Promise<unknown>
  readonly append: (topic: string, docs: Docs) => Promise<unknown>
  /**
   * Stop (sockets closed with 1001), then start again on the same ports and storage. With the uWS
   * transport this waits for the port's TIME_WAIT sockets (up to 60 s); use the ws transport in
   * tests that restart.
   */
  readonly restart: () => Promise<TestServer>
  readonly dispose: () => Promise<void>
}

export const start = async (options: Options = {}): Promise<TestServer> => {
  // The storage outlives restarts: built once, shared by every incarnation of the server.
  const storageRuntime = ManagedRuntime.make((options.storage ?? MemoryStorage.layerStorage) as Layer.Layer<KhalaStorage, unknown>)
  const storage = await storageRuntime.runtime()
  const storageLayer = Layer.succeedContext(storage.context)
  const incarnation = async (port: number | undefined, httpPort: number | undefined): Promise<TestServer> => {
    const deps = Layer.mergeAll(
      Journal.layer,
      Snapshot.layer,
      Retention.layer,
      // One node's revocations, shared by the WebSocket server and the snapshot endpoint.
      Revocations.layer({ sessionRevoked: options.server?.sessionRevoked, deviceRevoked: options.server?.deviceRevoked, ttlMs: options.server?.revocationTtlMs }),
      SyncToken.layer(VERIFIER),
      options.authorizer ?? TopicAuthorizer.layerDefault
    ).pipe(
      Layer.provideMerge(options.notifier ?? Notifier.layerMemory),
      Layer.provideMerge(storageLayer as Layer.Layer<KhalaStorage>)
    )
    const http = HttpLayerRouter.serve(SnapshotHttp.layer).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: httpPort ?? 0, host: "127.0.0.1" })))
    const layer = Layer.mergeAll(
      Server.layer({ transport: options.transport ?? UwsTransport.transport, port, ...options.server }),
      Publisher.layer,
      http
    ).pipe(
      Layer.provideMerge(deps),
      Layer.provide(Layer.succeed(Topic.TopicClasses, Topic.makeRegistry(options.classes ?? Topic.defaultClasses))),
      Layer.provide(options.clock === undefined ? Layer.empty : Layer.setClock(options.clock))
    )
    const runtime = ManagedRuntime.make(layer as Layer.Layer<any, unknown>)
    const run = <A>(effect: Effect.Effect<A, unknown, any>) => runtime.runPromise(effect) as Promise<A>
    const server = await run(Server.KhalaServerTag) as Server.KhalaServer
    const address = await run(Effect.map(HttpServer.HttpServer, (s) => s.address)) as { port: number }
    const self: TestServer = {
      url: `ws://127.0.0.1:${server.port}/sync/v1/ws`,
      httpUrl: `http://127.0.0.1:${address.port}`,
      server,
      run,
      publish: (topic, docs) => run(Effect.flatMap(Publisher.Publisher, (p) => p.publish(topic, docs))),
      append: (topic, docs) => run(Effect.flatMap(Publisher.Publisher, (p) => p.append(topic, docs))),
      restart: async () => {
        await runtime.dispose()
        // The old listener's port can take a moment to be released.
        for (let attempt = 0; ; attempt++) {
          try {
            return await incarnation(server.port, address.port)
          } catch (error) {
            if (attempt >= 40) throw error
            await new Promise((r) => setTimeout(r, 50))
          }
        }
      },
      dispose: async () => {
        await runtime.dispose()
        await storageRuntime.dispose()
      }
    }
    return self
  }
  return incarnation(options.port, options.httpPort)
}
