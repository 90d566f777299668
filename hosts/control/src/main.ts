// The control host: read and validate the configuration (ControlHost.loadConfig; a bad setting
// stops here with a message naming the variable), then serve control over Node's HTTP server on
// Postgres (DATABASE_URL) or embedded PGlite (DATA_DIR, default .data/control). Everything else
// is in @openagents/control-core (ControlHost).
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { ControlHost } from "@openagents/control-core"
import { Database } from "@openagents/host-kit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"

const Main = Layer.unwrapEffect(
  Effect.map(ControlHost.loadConfig, (config) =>
    ControlHost.layer(config).pipe(
      Layer.provide(NodeHttpServer.layer(createServer, { host: config.host, port: config.port })),
      Layer.provide(Database.layerConfig("control"))
    ))
)

Layer.launch(Main).pipe(NodeRuntime.runMain)
