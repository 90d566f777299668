// l402-gateway: the reference L402 gateway (paid routes from the deployed route table, the /ops
// API for lightning-ops, /healthz, /metrics). Invoices come from LND_REST_URL with an invoice
// macaroon; token root keys derive from L402_GATEWAY_ROOT_SECRET. With L402_GATEWAY_STATE_PATH the
// deployments are kept in that file and served again after a restart; with L402_GATEWAY_LEDGER_PATH
// the sales ledger is fsynced there entry by entry until lightning-ops acknowledges it. Logic: @openagents/lightning.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Health, Prometheus } from "@openagents/host-kit"
import { Gateway, L402, LndRest } from "@openagents/lightning"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"

const secret = (name: string, min: number) =>
  Config.redacted(name).pipe(
    Config.validate({ message: `${name} must be at least ${min} characters without whitespace`, validation: (t) => Redacted.value(t).length >= min && !/\s/.test(Redacted.value(t)) })
  )

const main = Layer.unwrapEffect(
  Effect.gen(function*() {
    const host = yield* Config.string("L402_GATEWAY_HOST").pipe(Config.withDefault("127.0.0.1"))
    const port = yield* Config.port("L402_GATEWAY_PORT").pipe(Config.withDefault(8081))
    const opsToken = yield* secret("L402_GATEWAY_OPS_TOKEN", 16)
    const rootSecret = yield* secret("L402_GATEWAY_ROOT_SECRET", 32)
    const tokenValiditySeconds = yield* Config.integer("L402_GATEWAY_TOKEN_VALIDITY_SECS").pipe(Config.withDefault(86_400))
    const statePath = yield* Config.option(Config.string("L402_GATEWAY_STATE_PATH"))
    const store = Option.isSome(statePath) ? { store: yield* Gateway.fileStore(statePath.value) } : {}
    const ledgerPath = yield* Config.option(Config.string("L402_GATEWAY_LEDGER_PATH"))
    const ledger = Option.isSome(ledgerPath) ? { ledgerStore: Gateway.fileLedger(ledgerPath.value) } : {}
    const lnd = yield* LndRest.loadSettings
    const lndClient = Option.match(lnd.tlsCertPath, {
      onNone: () => NodeHttpClient.layer,
      onSome: (path) => NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer({ ca: readFileSync(path) })))
    })
    const services = Layer.mergeAll(
      LndRest.layer(lnd.rest).pipe(Layer.provide(lndClient)),
      L402.derivedSecrets(Redacted.make(new TextEncoder().encode(Redacted.value(rootSecret)))),
      NodeHttpClient.layer
    )
    const app = Layer.unwrapEffect(Effect.map(Gateway.make({ opsToken, tokenValiditySeconds, ...store, ...ledger }), (gateway) =>
      HttpServer.serve(HttpRouter.concat(
        HttpRouter.empty.pipe(
          HttpRouter.get("/healthz", Health.response({ service: "l402-gateway", version: "0.0.0" })),
          HttpRouter.get("/metrics", Prometheus.response)
        ),
        gateway.router
      ))))
    // The server layer is innermost: it listens once everything the app needs is built.
    return app.pipe(HttpServer.withLogAddress, Layer.provide(NodeHttpServer.layer(createServer, { port, host })), Layer.provide(services))
  }).pipe(Effect.provide(NodeContext.layer))
)

main.pipe(Layer.launch, NodeRuntime.runMain)
