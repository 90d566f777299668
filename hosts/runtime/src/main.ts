// The runtime host: read and validate the configuration (RuntimeHost.loadConfig; a bad setting
// stops here with a message naming the variable), then serve the runtime API on Node's HTTP
// server and Khala on its WebSocket port, over Postgres (DATABASE_URL) or embedded PGlite
// (DATA_DIR, default .data/runtime). Everything else is in @openagents/runtime-core (RuntimeHost).
// SIGINT/SIGTERM close everything in order (runMain interrupts the launched layer).
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Database } from "@openagents/host-kit"
import { RuntimeHost } from "@openagents/runtime-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"

const Main = Layer.unwrapEffect(
  Effect.map(RuntimeHost.loadConfig, (config) =>
    RuntimeHost.layer(config).pipe(
      Layer.provide(NodeHttpServer.layer(createServer, { host: config.host, port: config.port })),
      Layer.provide(Database.layerConfig("runtime")),
      Layer.tap(() => Effect.logInfo(`runtime API on http://${config.host}:${config.port}, Khala on ws://${config.khala.host}:${config.khala.port}/sync/v1/ws (${config.khala.transport})`))
    ))
)

Layer.launch(Main).pipe(NodeRuntime.runMain)
