// uWebSockets.js transport. It loads the official `uWebSockets.js` module when the user has
// installed it (from its GitHub release, as its authors distribute it) and otherwise the npm
// republish `@trufflesuite/uws-js-unofficial`, whose native binaries cover Node 16/18/20 only;
// without a binary for the running Node it silently falls back to a slow pure-JS implementation,
// which this adapter detects, reports (`native: false`) and warns about.
import { createRequire } from "node:module"
import * as Effect from "effect/Effect"
import type { Connection, ListenOptions, Transport, TransportServer } from "../Transport.js"
import { channel, DEFAULT_PATH, TransportError } from "../Transport.js"
import * as SyncWire from "../SyncWire.js"

type Uws = typeof import("@trufflesuite/uws-js-unofficial")

const require = createRequire(import.meta.url)

export interface Loaded {
  readonly uws: Uws
  readonly module: "uWebSockets.js" | "@trufflesuite/uws-js-unofficial"
  readonly native: boolean
}

let loaded: Loaded | undefined
export const load = (): Loaded => {
  if (loaded !== undefined) return loaded
  let uws: Uws
  let module: Loaded["module"]
  try {
    uws = require("uWebSockets.js") as Uws
    module = "uWebSockets.js"
  } catch {
    uws = require("@trufflesuite/uws-js-unofficial") as Uws
    module = "@trufflesuite/uws-js-unofficial"
  }
  loaded = { uws, module, native: String(uws.App).includes("[native code]") }
  return loaded
}

interface UserData {
  readonly id: number
  readonly format: SyncWire.Format
  readonly protocol: string
  readonly remoteAddress: string
  connection?: UwsConnection
}

class UwsConnection implements Connection {
  open = true
  readonly id: number
  readonly format: SyncWire.Format
  readonly protocol: string
  readonly remoteAddress: string
  constructor(readonly ws: import("@trufflesuite/uws-js-unofficial").WebSocket<UserData>, data: UserData) {
    this.id = data.id
    this.format = data.format
    this.protocol = data.protocol
    this.remoteAddress = data.remoteAddress
  }
  send(data: SyncWire.Encoded): void {
    if (this.open) this.ws.send(data, typeof data !== "string")
  }
  bufferedAmount() {
    return this.open ? this.ws.getBufferedAmount() : 0
  }
  close(code: number, reason: string): void {
    if (!this.open) return
    this.open = false
    this.ws.end(code, reason)
  }
  terminate(): void {
    if (!this.open) return
    this.open = false
    this.ws.close()
  }
  join(topic: string): void {
    if (this.open) this.ws.subscribe(channel(topic, this.format))
  }
  leave(topic: string): void {
    if (this.open) this.ws.unsubscribe(channel(topic, this.format))
  }
  isOpen() {
    return this.open
  }
}

const decoder = new TextDecoder()

export const transport: Transport = {
  name: "uws",
  listen: (options: ListenOptions) =>
    Effect.gen(function*() {
      const { module, native, uws } = load()
      if (!native) {
        yield* Effect.logWarning(`${module} has no native binary for Node ${process.version}: using its slow pure-JS fallback`)
      }
      const sockets = new Set<UwsConnection>()
      let nextId = 0
      const app = uws.App()
      app.ws<UserData>(options.path ?? DEFAULT_PATH, {
        compression: uws.DISABLED,
        maxPayloadLength: options.maxPayloadBytes,
        maxBackpressure: options.maxBackpressureBytes,
        closeOnBackpressureLimit: 1,
        idleTimeout: 0,
        sendPingsAutomatically: false,
        upgrade: (res, req, context) => {
          const offered = req.getHeader("sec-websocket-protocol")
          const key = req.getHeader("sec-websocket-key")
          const extensions = req.getHeader("sec-websocket-extensions")
          const negotiated = SyncWire.negotiate(offered)
          if (negotiated === undefined) {
            res.writeStatus("400 Bad Request").end(`unsupported subprotocol; offer ${SyncWire.SUBPROTOCOL_BINARY} or ${SyncWire.SUBPROTOCOL_JSON}`)
            return
          }
          const remoteAddress = decoder.decode(res.getRemoteAddressAsText())
          res.upgrade<UserData>(
            { id: ++nextId, format: negotiated.format, protocol: negotiated.protocol, remoteAddress },
            key,
            negotiated.protocol,
            extensions,
            context
          )
        },
        open: (ws) => {
          const data = ws.getUserData()
          const connection = new UwsConnection(ws, data)
          data.connection = connection
          sockets.add(connection)
          options.handlers.open(connection)
        },
        message: (ws, message, isBinary) => {
          const connection = ws.getUserData().connection!
          // The ArrayBuffer is only valid during this callback: copy it.
          options.handlers.message(connection, new Uint8Array(message.slice(0)), isBinary)
        },
        drain: (ws) => {
          const connection = ws.getUserData().connection
          if (connection) options.handlers.drain(connection)
        },
        close: (ws, code, message) => {
          const connection = ws.getUserData().connection
          if (connection === undefined) return
          connection.open = false
          sockets.delete(connection)
          options.handlers.close(connection, code, decoder.decode(message))
        }
      })
      const host = options.host ?? "127.0.0.1"
      const port = options.port ?? 0
      const tryListen = Effect.async<import("@trufflesuite/uws-js-unofficial").us_listen_socket, TransportError>((resume) => {
        app.listen(host, port, (socket) => {
          resume(socket ? Effect.succeed(socket) : Effect.fail(new TransportError({ message: `cannot listen on ${host}:${port} (in use?)` })))
        })
      })
      // uWebSockets.js does not set SO_REUSEADDR, so the TIME_WAIT sockets a previous process left
      // on this port (after a restart or a crash) block binding it for up to 60 s on Linux. A
      // fixed port is therefore retried for a while, with a warning that says why.
      const bindRetryMs = port === 0 ? 0 : options.bindRetryMs ?? 75_000
      const started = Date.now()
      const listenWithRetry: Effect.Effect<import("@trufflesuite/uws-js-unofficial").us_listen_socket, TransportError> = tryListen.pipe(
        Effect.catchAll((error) =>
          Date.now() - started >= bindRetryMs
            ? Effect.fail(error)
            : Effect.logWarning(
              `khala uws: ${host}:${port} is in use; if a previous process used it, its connections in TIME_WAIT block uWebSockets.js (no SO_REUSEADDR) for up to 60 s — retrying`
            ).pipe(Effect.when(() => Date.now() - started < 600), Effect.zipRight(Effect.sleep("500 millis")), Effect.zipRight(Effect.suspend(() => listenWithRetry)))
        )
      )
      const listenSocket = yield* Effect.acquireRelease(
        listenWithRetry,
        (socket) =>
          Effect.sync(() => {
            uws.us_listen_socket_close(socket)
            for (const connection of [...sockets]) connection.close(1001, "server shutting down")
          })
      )
      const server: TransportServer = {
        adapter: "uws",
        native,
        port: uws.us_socket_local_port(listenSocket as any),
        publish: (topic, format, data) => {
          app.publish(channel(topic, format), data, typeof data !== "string")
        },
        connections: () => sockets.size
      }
      return server
    })
}
