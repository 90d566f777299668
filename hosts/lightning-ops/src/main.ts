// lightning-ops: compile paywall policy from the control plane and reconcile the L402 gateway, on
// an interval, or once with `--once` (exit 0 when applied, 1 otherwise). /healthz and /metrics on
// OA_LIGHTNING_OPS_PORT. Logic: @openagents/lightning (LightningOps, Reconciler, Compiler).
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Health, Prometheus } from "@openagents/host-kit"
import { ControlPlane, GatewayOps, HttpControlPlane, LightningOps, MemoryControlPlane } from "@openagents/lightning"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { createServer } from "node:http"

const once = process.argv.includes("--once")

const program = Effect.gen(function*() {
  const cfg = yield* LightningOps.config
  const controlPlane = cfg.controlPlane.mode === "api"
    ? HttpControlPlane.layer({ baseUrl: cfg.controlPlane.baseUrl, secret: cfg.controlPlane.secret })
    : MemoryControlPlane.layer(MemoryControlPlane.make({
      paywalls: yield* Option.match(cfg.controlPlane.paywallsPath, {
        onNone: () => Effect.succeed([]),
        onSome: (path) =>
          Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(path)).pipe(
            Effect.flatMap((text) => Schema.decodeUnknown(Schema.parseJson(Schema.Struct({ paywalls: Schema.Array(ControlPlane.Paywall) })))(text)),
            Effect.map((file) => file.paywalls)
          )
      })
    }))
  const ports = Layer.mergeAll(controlPlane, GatewayOps.layerHttp({ baseUrl: cfg.gateway.baseUrl, opsToken: cfg.gateway.opsToken }), LightningOps.stateLayer).pipe(
    Layer.provideMerge(NodeHttpClient.layer)
  )
  if (once) {
    const outcome = yield* LightningOps.runOnce(cfg).pipe(Effect.provide(ports))
    return yield* outcome.status === "applied" ? Effect.void : Effect.fail(new Error(`reconcile ${outcome.status}: ${outcome.failureCode ?? outcome.denyReason ?? ""}`))
  }
  const port = yield* Config.port("OA_LIGHTNING_OPS_PORT").pipe(Config.withDefault(8790))
  const host = yield* Config.string("OA_LIGHTNING_OPS_HOST").pipe(Config.withDefault("127.0.0.1"))
  const health = Effect.flatMap(LightningOps.OpsState, Ref.get).pipe(
    Effect.flatMap((s) => Health.response({ service: "lightning-ops", version: "0.0.0", checks: LightningOps.healthChecks(s) }))
  )
  const server = HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.get("/healthz", health), HttpRouter.get("/metrics", Prometheus.response))).pipe(
    HttpServer.withLogAddress,
    Layer.provide(NodeHttpServer.layer(createServer, { port, host }))
  )
  return yield* Layer.launch(Layer.merge(server, LightningOps.loop(cfg)).pipe(Layer.provide(ports)))
}).pipe(Effect.provide(NodeContext.layer))

NodeRuntime.runMain(program)
