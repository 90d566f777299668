// Running the simulator as a process (the lnd-sim host): configuration from the environment,
// node keys and macaroon root keys kept in a data directory (so node ids and macaroons survive
// restarts, like lnd's), the macaroons written where lnd writes them, and one HTTP(S) server per
// node. Payments and invoices live in memory: a restart forgets them, as a wiped regtest would.
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as Path from "@effect/platform/Path"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Bolt11 from "../Bolt11.js"
import { fromHex } from "../internal/bytes.js"
import type { SimNetwork, SimNode } from "../LndSimulator.js"
import * as LndSimulator from "../LndSimulator.js"
import * as Macaroon from "../Macaroon.js"

export interface NodeSpec {
  readonly alias: string
  readonly port: number
}

export interface SimulatorConfig {
  readonly network: Bolt11.Network
  readonly host: string
  readonly nodes: ReadonlyArray<NodeSpec>
  readonly dataDir: string
  readonly balanceMsat: bigint
  readonly feeMsat: bigint
  readonly tls: Option.Option<{ readonly certPath: string; readonly keyPath: string }>
}

const parseNodes = (text: string): ReadonlyArray<NodeSpec> | undefined => {
  const specs = text.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => {
    const m = /^([a-z][a-z0-9_-]{0,31}):(\d{1,5})$/.exec(s)
    return m === null ? undefined : { alias: m[1]!, port: Number(m[2]) }
  })
  if (specs.length === 0 || specs.some((s) => s === undefined || s.port > 65535)) return undefined
  const ok = specs as Array<NodeSpec>
  return new Set(ok.map((s) => s.alias)).size === ok.length ? ok : undefined
}

/**
 * LND_SIM_NETWORK (regtest), LND_SIM_HOST (127.0.0.1), LND_SIM_NODES ("wallet:8080,gateway:8081":
 * alias:port pairs), LND_SIM_DATA_DIR (.data/lnd-sim), LND_SIM_BALANCE_SAT (10000000 per node),
 * LND_SIM_FEE_MSAT (0), LND_SIM_TLS_CERT_PATH + LND_SIM_TLS_KEY_PATH (both or neither: HTTPS).
 */
export const config: Config.Config<SimulatorConfig> = Config.all({
  network: Config.literal("mainnet", "testnet", "signet", "regtest", "simnet")("LND_SIM_NETWORK").pipe(Config.withDefault("regtest" as const)),
  host: Config.string("LND_SIM_HOST").pipe(Config.withDefault("127.0.0.1")),
  nodes: Config.string("LND_SIM_NODES").pipe(
    Config.withDefault("wallet:8080,gateway:8081"),
    Config.mapOrFail((text) => {
      const nodes = parseNodes(text)
      return nodes === undefined
        ? Either.left(ConfigError.InvalidData(["LND_SIM_NODES"], "LND_SIM_NODES must be comma-separated alias:port pairs with distinct lower-case aliases, e.g. wallet:8080,gateway:8081"))
        : Either.right(nodes)
    })
  ),
  dataDir: Config.string("LND_SIM_DATA_DIR").pipe(Config.withDefault(".data/lnd-sim")),
  balanceMsat: Config.integer("LND_SIM_BALANCE_SAT").pipe(
    Config.withDefault(10_000_000),
    Config.validate({ message: "LND_SIM_BALANCE_SAT must be >= 0", validation: (n) => n >= 0 }),
    Config.map((sat) => BigInt(sat) * 1000n)
  ),
  feeMsat: Config.integer("LND_SIM_FEE_MSAT").pipe(
    Config.withDefault(0),
    Config.validate({ message: "LND_SIM_FEE_MSAT must be >= 0", validation: (n) => n >= 0 }),
    Config.map(BigInt)
  ),
  tls: Config.all({ certPath: Config.option(Config.string("LND_SIM_TLS_CERT_PATH")), keyPath: Config.option(Config.string("LND_SIM_TLS_KEY_PATH")) }).pipe(
    Config.validate({
      message: "set both LND_SIM_TLS_CERT_PATH and LND_SIM_TLS_KEY_PATH, or neither",
      validation: ({ certPath, keyPath }) => Option.isSome(certPath) === Option.isSome(keyPath)
    }),
    Config.map(({ certPath, keyPath }) =>
      Option.isSome(certPath) && Option.isSome(keyPath) ? Option.some({ certPath: certPath.value, keyPath: keyPath.value }) : Option.none()
    )
  )
})

/** Read a 32-byte hex secret from `file`, creating it (mode 0600) on first use. */
const secretFile = (file: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    if (yield* fs.exists(file)) {
      const text = (yield* fs.readFileString(file)).trim()
      if (fromHex(text)?.length === 32) return text
      return yield* Effect.dieMessage(`${file} does not hold a 32-byte hex key`)
    }
    const fresh = Bolt11.randomPrivateKey()
    yield* fs.writeFileString(file, `${fresh}\n`, { mode: 0o600 })
    return fresh
  })

/**
 * Add a node whose node key and macaroon root key live in `<dataDir>/<alias>/`, and write its
 * macaroons there as lnd does (`admin.macaroon`, `invoice.macaroon`, `readonly.macaroon`, binary).
 */
export const openNode = (network: SimNetwork, dataDir: string, alias: string, balanceMsat: bigint) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.join(dataDir, alias)
    yield* fs.makeDirectory(dir, { recursive: true })
    const privateKey = yield* secretFile(path.join(dir, "node.key"))
    const macaroonRootKey = yield* secretFile(path.join(dir, "macaroons.rootkey"))
    const node = network.addNode({ alias, privateKey, macaroonRootKey, balanceMsat })
    for (const [role, hex] of Object.entries(node.macaroons)) {
      yield* fs.writeFile(path.join(dir, `${role}.macaroon`), fromHex(hex)!, { mode: 0o600 })
    }
    return node
  })

/** Macaroon hex of a binary macaroon file (what lnd clients put in Grpc-Metadata-macaroon). */
export const readMacaroonFile = (file: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const bytes = yield* fs.readFile(file)
    // Accept a hex text file too.
    const text = new TextDecoder().decode(bytes).trim()
    return /^[0-9a-fA-F]+$/.test(text) ? text.toLowerCase() : Macaroon.toHexString(yield* Macaroon.deserialize(bytes))
  })

/**
 * The simulator process: a network, its nodes, and one server per node serving lnd's REST API
 * plus `extraRoutes` (the host's /healthz and /metrics). `listen(port)` provides the server.
 */
export const layer = <E>(
  settings: SimulatorConfig,
  listen: (port: number) => Layer.Layer<HttpServer.HttpServer, ServeError | E>,
  extraRoutes: (node: SimNode) => HttpRouter.HttpRouter<unknown, never> = () => HttpRouter.empty
): Layer.Layer<never, ServeError | E, FileSystem.FileSystem | Path.Path> =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const network = yield* LndSimulator.makeNetwork({ network: settings.network, feeMsat: settings.feeMsat })
      const servers: Array<Layer.Layer<never, ServeError | E>> = []
      for (const spec of settings.nodes) {
        const node = yield* openNode(network, settings.dataDir, spec.alias, settings.balanceMsat)
        yield* Effect.logInfo(`lnd-sim node ${spec.alias} ${node.pubkey} on ${settings.host}:${spec.port}; macaroons in ${settings.dataDir}/${spec.alias}/`)
        const app = HttpRouter.concat(LndSimulator.router(node), extraRoutes(node))
        servers.push(HttpServer.serve(app).pipe(Layer.provide(listen(spec.port))))
      }
      return Layer.mergeAll(...(servers as [Layer.Layer<never, ServeError | E>]))
    }).pipe(Effect.orDie)
  )
