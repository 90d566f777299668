// wallet-executor: POST /pay-bolt11 and GET /status (Bearer auth), /healthz, /metrics; pays
// through the LND REST API at LND_REST_URL; ledger in DATABASE_URL (Postgres) or PGlite in
// DATA_DIR. Logic lives in @openagents/lightning (WalletExecutor, SqlLedger, LndRest).
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Database, Health, Prometheus } from "@openagents/host-kit"
import { LndRest, SqlLedger, WalletExecutor, WalletExecutorHttp } from "@openagents/lightning"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"

const hostConfig = Config.all({
  host: Config.string("OA_LIGHTNING_WALLET_EXECUTOR_HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.port("OA_LIGHTNING_WALLET_EXECUTOR_PORT").pipe(Config.withDefault(8788)),
  authToken: Config.redacted("OA_LIGHTNING_WALLET_EXECUTOR_AUTH_TOKEN").pipe(
    Config.validate({
      message: "OA_LIGHTNING_WALLET_EXECUTOR_AUTH_TOKEN must be at least 16 characters without whitespace",
      validation: (t) => Redacted.value(t).length >= 16 && !/\s/.test(Redacted.value(t))
    })
  )
})

const main = Layer.unwrapEffect(
  Effect.gen(function*() {
    const { authToken, host, port } = yield* hostConfig
    const executor = yield* WalletExecutor.config
    const lnd = yield* LndRest.loadSettings
    const httpClient = Option.match(lnd.tlsCertPath, {
      onNone: () => NodeHttpClient.layer,
      onSome: (path) => NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer({ ca: readFileSync(path) })))
    })
    const database = Database.layerConfig("wallet-executor")
    const routes = HttpRouter.concat(
      WalletExecutorHttp.router(authToken),
      HttpRouter.empty.pipe(
        HttpRouter.get("/healthz", Effect.flatMap(Health.database, (db) => Health.response({ service: "wallet-executor", version: "0.0.0", checks: { database: db } }))),
        HttpRouter.get("/metrics", Prometheus.response)
      )
    )
    // The server is the innermost layer, so it starts listening only once the executor is built
    // (after its reconcile on start): no request can arrive before the app is there to answer it.
    return HttpServer.serve(routes).pipe(
      HttpServer.withLogAddress,
      Layer.provide(NodeHttpServer.layer(createServer, { port, host })),
      Layer.provide(WalletExecutor.layer(executor)),
      Layer.provide(Layer.merge(LndRest.layer(lnd.rest).pipe(Layer.provide(httpClient)), SqlLedger.layer)),
      Layer.provideMerge(database)
    )
  }).pipe(Effect.provide(NodeContext.layer))
)

main.pipe(Layer.launch, NodeRuntime.runMain)
