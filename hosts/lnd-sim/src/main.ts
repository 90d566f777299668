// lnd-sim: simulated LND nodes for development (LND_SIM_NODES alias:port pairs, one REST server
// each, plus /healthz and /metrics). Logic lives in @openagents/lightning (LndSimulatorHost).
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Health, Prometheus } from "@openagents/host-kit"
import { LndSimulatorHost } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { createServer as createHttpsServer } from "node:https"

const main = Layer.unwrapEffect(
  Effect.gen(function*() {
    const settings = yield* LndSimulatorHost.config
    const tls = Option.map(settings.tls, (t) => ({ cert: readFileSync(t.certPath), key: readFileSync(t.keyPath) }))
    const listen = (port: number) =>
      NodeHttpServer.layer(
        () => (Option.isSome(tls) ? createHttpsServer(tls.value) : createServer()) as ReturnType<typeof createServer>,
        { port, host: settings.host }
      )
    const opsRoutes = () =>
      HttpRouter.empty.pipe(
        HttpRouter.get("/healthz", Health.response({ service: "lnd-sim", version: "0.0.0" })),
        HttpRouter.get("/metrics", Prometheus.response)
      )
    return LndSimulatorHost.layer(settings, listen, opsRoutes)
  })
)

main.pipe(Layer.provide(NodeContext.layer), Layer.launch, NodeRuntime.runMain)
