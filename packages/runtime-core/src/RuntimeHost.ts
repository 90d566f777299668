// The runtime host, assembled from configuration: everything `hosts/runtime` runs except the
// process itself (the Node HTTP server and the database come from the host). Configuration is
// read with Effect Config and validated before anything starts; a wrong setting stops the host
// with a message naming the variable.
//
// What runs: the runtime API (RuntimeServer: runs, workers, SSE, revocation, the Khala snapshot
// endpoint, /openapi.json) plus /healthz and /metrics on the HTTP port; the Khala WebSocket
// server (uWebSockets.js by default) on its own port; Khala's retention job; the pruning of
// expired revocations; and, with OA_RUNTIME_DEMO_WORKER (development), the demo worker adapter
// (DemoWorker.ts). Wake-ups and revocations travel through Postgres LISTEN/NOTIFY (PGlite's
// in-process notify when embedded), so several runtime hosts can share one Postgres.
//
// Shutdown (SIGINT/SIGTERM, through the host's runMain): the scopes close in reverse order —
// the Khala listener stops and every socket is closed with 1001 (going away), the HTTP server
// stops accepting and in-flight requests finish, background jobs stop, the database closes last.
import type * as Etag from "@effect/platform/Etag"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type * as HttpPlatform from "@effect/platform/HttpPlatform"
import type * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import type * as Path from "@effect/platform/Path"
import type { MigrationError } from "@effect/sql/Migrator"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import {
  Checkpoints,
  Journal,
  Notifier,
  Publisher,
  ReadModels,
  Retention,
  Revocations,
  Server,
  Snapshot,
  SqlStorage,
  SyncToken,
  Topic,
  UwsTransport,
  WsTransport
} from "@openagents/khala-core"
import { Health, type InternalSignature, Prometheus } from "@openagents/host-kit"
// Named here so the declaration build can name the layers' types (TS2742).
import type { Storage, TopicAuthorizer, Transport } from "@openagents/khala-core"
import type { SqlNotify } from "@openagents/sql-pglite"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type { JSONWebKeySet } from "jose"
import * as Auth from "./Auth.js"
import * as DemoWorker from "./DemoWorker.js"
import { migrate } from "./migrations.js"
import * as Owners from "./Owners.js"
import * as Runs from "./Runs.js"
import * as RuntimeServer from "./RuntimeServer.js"
import * as Workers from "./Workers.js"

export interface RuntimeHostConfig {
  readonly host: string
  readonly port: number
  readonly khala: {
    readonly host: string
    readonly port: number
    readonly transport: "uws" | "ws"
  }
  /** Control's public URL (issuer of access tokens); undefined: bearer tokens are refused. */
  readonly controlUrl: string | undefined
  /** A static copy of control's JWKS (otherwise fetched from `<controlUrl>/.well-known/jwks.json`). */
  readonly controlJwks: JSONWebKeySet | undefined
  /** Keys of the signed internal header (current, previous); empty: internal calls are refused. */
  readonly internalKeys: ReadonlyArray<InternalSignature.Key>
  readonly sync: SyncToken.VerifierOptions
  readonly retentionIntervalMs: number
  /** Drive workers created with adapter "demo" (development; DemoWorker.ts); undefined: off. */
  readonly demoWorker?: DemoWorker.Options | undefined
}

const invalid = (path: string, message: string) => ConfigError.InvalidData([path], message)

const jwksConfig = Config.option(Config.string("OA_CONTROL_JWKS")).pipe(
  Config.mapOrFail((raw) => {
    if (Option.isNone(raw)) return Either.right(undefined)
    try {
      const parsed = JSON.parse(raw.value) as { keys?: unknown }
      if (!Array.isArray(parsed.keys) || parsed.keys.length === 0) return Either.left(invalid("OA_CONTROL_JWKS", "OA_CONTROL_JWKS must be a JSON Web Key Set ({\"keys\": [...]}) with at least one key"))
      return Either.right(parsed as JSONWebKeySet)
    } catch {
      return Either.left(invalid("OA_CONTROL_JWKS", "OA_CONTROL_JWKS is not JSON"))
    }
  })
)

const internalKeysConfig = Config.all({
  kid: Config.string("OA_RUNTIME_SIGNING_KEY_ID").pipe(Config.withDefault("runtime-internal-v1")),
  secret: Config.option(Config.redacted("OA_RUNTIME_SIGNING_KEY")),
  previousKid: Config.option(Config.string("OA_RUNTIME_PREVIOUS_SIGNING_KEY_ID")),
  previousSecret: Config.option(Config.redacted("OA_RUNTIME_PREVIOUS_SIGNING_KEY"))
}).pipe(
  Config.mapOrFail((c) => {
    const keys: Array<InternalSignature.Key> = []
    const check = (name: string, s: Redacted.Redacted<string>) => Redacted.value(s).length >= 32 ? undefined : invalid(name, `${name} must be at least 32 characters`)
    if (Option.isSome(c.secret)) {
      const e = check("OA_RUNTIME_SIGNING_KEY", c.secret.value)
      if (e) return Either.left(e)
      keys.push({ kid: c.kid, secret: c.secret.value })
    }
    if (Option.isSome(c.previousKid) !== Option.isSome(c.previousSecret)) {
      return Either.left(invalid("OA_RUNTIME_PREVIOUS_SIGNING_KEY", "set both OA_RUNTIME_PREVIOUS_SIGNING_KEY_ID and OA_RUNTIME_PREVIOUS_SIGNING_KEY, or neither"))
    }
    if (Option.isSome(c.previousKid) && Option.isSome(c.previousSecret)) {
      const e = check("OA_RUNTIME_PREVIOUS_SIGNING_KEY", c.previousSecret.value)
      if (e) return Either.left(e)
      if (keys.length === 0) return Either.left(invalid("OA_RUNTIME_SIGNING_KEY", "a previous key needs a current key (OA_RUNTIME_SIGNING_KEY)"))
      if (c.previousKid.value === c.kid) return Either.left(invalid("OA_RUNTIME_PREVIOUS_SIGNING_KEY_ID", "the previous key id must differ from OA_RUNTIME_SIGNING_KEY_ID"))
      keys.push({ kid: c.previousKid.value, secret: c.previousSecret.value })
    }
    return Either.right(keys as ReadonlyArray<InternalSignature.Key>)
  })
)

/** The host's configuration from the environment (docs/runtime/CONFIGURATION.md lists every variable). */
export const loadConfig: Effect.Effect<RuntimeHostConfig, ConfigError.ConfigError> = Effect.gen(function*() {
  const host = yield* Config.string("HOST").pipe(Config.withDefault("127.0.0.1"))
  const port = yield* Config.port("PORT").pipe(Config.withDefault(4100))
  const khalaPort = yield* Config.port("OA_KHALA_PORT").pipe(Config.withDefault(4101))
  if (khalaPort === port && port !== 0) return yield* Effect.fail(invalid("OA_KHALA_PORT", `OA_KHALA_PORT must differ from PORT (${port})`))
  const controlUrl = Option.getOrUndefined(yield* Config.option(Config.string("OA_CONTROL_PUBLIC_URL").pipe(
    Config.validate({ message: "OA_CONTROL_PUBLIC_URL must be an http(s) URL", validation: (u) => /^https?:\/\/[^/]+/.test(u) })
  )))
  const controlJwks = yield* jwksConfig
  if (controlJwks !== undefined && controlUrl === undefined) {
    return yield* Effect.fail(invalid("OA_CONTROL_PUBLIC_URL", "OA_CONTROL_JWKS needs OA_CONTROL_PUBLIC_URL (the tokens' issuer)"))
  }
  return {
    host,
    port,
    khala: {
      host: yield* Config.string("OA_KHALA_HOST").pipe(Config.withDefault(host)),
      port: khalaPort,
      transport: yield* Config.literal("uws", "ws")("OA_KHALA_TRANSPORT").pipe(Config.withDefault("uws" as const))
    },
    controlUrl,
    controlJwks,
    internalKeys: yield* internalKeysConfig,
    sync: yield* SyncToken.configWith({ issuer: controlUrl }),
    retentionIntervalMs: yield* Config.integer("OA_KHALA_RETENTION_INTERVAL_MS").pipe(
      Config.withDefault(60_000),
      Config.validate({ message: "OA_KHALA_RETENTION_INTERVAL_MS must be between 1000 and 86400000", validation: (n) => n >= 1000 && n <= 86_400_000 })
    ),
    demoWorker: (yield* Config.boolean("OA_RUNTIME_DEMO_WORKER").pipe(Config.withDefault(false)))
      ? {
        intervalMs: yield* Config.integer("OA_RUNTIME_DEMO_WORKER_INTERVAL_MS").pipe(
          Config.withDefault(1_000),
          Config.validate({ message: "OA_RUNTIME_DEMO_WORKER_INTERVAL_MS must be between 100 and 60000", validation: (n) => n >= 100 && n <= 60_000 })
        )
      }
      : undefined
  }
})

const warnings = (c: RuntimeHostConfig) =>
  Effect.gen(function*() {
    if (c.controlUrl === undefined) yield* Effect.logWarning("auth: OA_CONTROL_PUBLIC_URL is unset; bearer access tokens are refused (only signed internal calls are served)")
    if (c.demoWorker !== undefined) yield* Effect.logWarning(`OA_RUNTIME_DEMO_WORKER is on: the runtime itself appends events to every running worker with adapter "${DemoWorker.ADAPTER}" (development only)`)
    if (c.internalKeys.length === 0) yield* Effect.logWarning("auth: OA_RUNTIME_SIGNING_KEY is unset; signed internal calls (control's proxy, session revocation) are refused")
  })

/** Background jobs: Khala retention, and forgetting expired revocations. */
const jobs = (c: RuntimeHostConfig) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const retention = yield* Retention.Retention
      const revoked = yield* Auth.RevokedSessions
      yield* Effect.forkScoped(retention.run(Duration.millis(c.retentionIntervalMs)))
      yield* revoked.prune.pipe(
        Effect.catchAll((e) => Effect.logWarning(`revocation pruning: ${e.message}`)),
        Effect.repeat(Schedule.spaced(Duration.minutes(5))),
        Effect.forkScoped
      )
    })
  )

/** Everything `services` provides (and `layer` keeps in its output). */
export type Services =
  | Auth.RevokedSessions
  | Auth.Authenticator
  | Topic.TopicClasses
  | Storage.KhalaStorage
  | Checkpoints.Checkpoints
  | Journal.Journal
  | Notifier.Notifier
  | ReadModels.ReadModels
  | Publisher.Publisher
  | Snapshot.Snapshot
  | Retention.Retention
  | Revocations.Revocations
  | TopicAuthorizer.TopicAuthorizer
  | SyncToken.SyncTokenVerifier
  | Runs.Runs
  | Workers.Workers

/**
 * The runtime's services over the SqlClient (and SqlNotify) in context: Khala's SQL storage and
 * ports, the LISTEN/NOTIFY notifier, runs and workers, auth, and the node's sync revocations
 * (announced ones and the revoked-sessions table), which the Khala server and the snapshot
 * endpoint both consult — a Server.layer provided with these services uses them. Migrations run first.
 */
export const services = (c: RuntimeHostConfig): Layer.Layer<Services, SqlError | MigrationError, SqlClient.SqlClient | SqlNotify.SqlNotify> => {
  const khala = Layer.mergeAll(Checkpoints.layer, ReadModels.layer, Publisher.layer, Snapshot.layer, Retention.layer).pipe(
    Layer.provideMerge(Layer.mergeAll(Journal.layer, Notifier.layerPostgres)),
    Layer.provideMerge(SqlStorage.layerStorage)
  )
  const migrated = Layer.effectDiscard(migrate).pipe(Layer.provideMerge(khala))
  const domain = Layer.mergeAll(Runs.layer, Workers.layer).pipe(Layer.provideMerge(migrated))
  const auth = Auth.layerAuthenticator({
    accessTokens: c.controlUrl === undefined ? undefined : { issuer: c.controlUrl, jwks: c.controlJwks },
    internalKeys: c.internalKeys
  }).pipe(Layer.provideMerge(Auth.layerRevokedSessionsSql))
  // At hello, at refresh and on every snapshot, so a node started after a revocation refuses that
  // session's sync tokens too.
  const revocations = Layer.unwrapEffect(
    Effect.map(Auth.RevokedSessions, (revoked) => Revocations.layer({ sessionRevoked: revoked.isRevoked, deviceRevoked: revoked.isDeviceRevoked }))
  )
  return Layer.mergeAll(Owners.authorizerLayer, revocations.pipe(Layer.provideMerge(auth)), SyncToken.layer(c.sync)).pipe(
    Layer.provideMerge(domain),
    Layer.provideMerge(Layer.succeed(Topic.TopicClasses, Topic.makeRegistry(Topic.defaultClasses)))
  )
}

/** /healthz (database check) and /metrics. */
export const operationalRoutes = Layer.mergeAll(
  HttpLayerRouter.add(
    "GET",
    "/healthz",
    Effect.flatMap(Health.database, (database) => Health.response({ service: RuntimeServer.SERVICE, version: RuntimeServer.VERSION, checks: { database } }))
  ),
  HttpLayerRouter.add("GET", "/metrics", Prometheus.response)
)

/** The whole host from a configuration (its services stay in the output, for embedding and tests); needs an HttpServer, a SqlClient and SqlNotify. */
export const layer = (
  c: RuntimeHostConfig,
  options: { readonly disableHttpLogger?: boolean | undefined } = {}
): Layer.Layer<
  Services | Server.KhalaServerTag,
  SqlError | MigrationError | Transport.TransportError | ServeError,
  SqlClient.SqlClient | SqlNotify.SqlNotify | HttpServer.HttpServer | HttpPlatform.HttpPlatform | FileSystem.FileSystem | Path.Path | Etag.Generator
> => {
  // The Khala server takes the node's revocations from the services (shared with the snapshot endpoint).
  const khalaServer = Server.layer({
    transport: c.khala.transport === "ws" ? WsTransport.transport : UwsTransport.transport,
    host: c.khala.host,
    port: c.khala.port
  })
  const http = HttpLayerRouter.serve(Layer.mergeAll(RuntimeServer.routes(), operationalRoutes), { disableLogger: options.disableHttpLogger ?? false })
  const demo = c.demoWorker === undefined ? Layer.empty : DemoWorker.layer(c.demoWorker)
  return Layer.mergeAll(http, khalaServer, jobs(c), demo).pipe(
    Layer.provideMerge(services(c)),
    Layer.tap(() => warnings(c))
  )
}

/** The host from the environment (fails with a ConfigError naming the variable). */
export const layerConfig: Layer.Layer<
  Services | Server.KhalaServerTag,
  SqlError | MigrationError | Transport.TransportError | ServeError | ConfigError.ConfigError,
  SqlClient.SqlClient | SqlNotify.SqlNotify | HttpServer.HttpServer | HttpPlatform.HttpPlatform | FileSystem.FileSystem | Path.Path | Etag.Generator
> = Layer.unwrapEffect(Effect.map(loadConfig, layer))
