// `ws` transport: portable (pure JS, any Node), and mountable on an existing Node HTTP server
// (`listen` with `server`) or owning its listener. Publishing frames each message once
// (WebSocket.Sender.frame) and writes the same buffers to every member socket, so a fanout costs
// one encode and one framing per topic rather than one per socket.
import * as Http from "node:http"
import type { Duplex } from "node:stream"
import * as Effect from "effect/Effect"
import WebSocket, { WebSocketServer } from "ws"
import type { Connection, ListenOptions, Transport, TransportServer } from "../Transport.js"
import { channel, DEFAULT_PATH, TransportError } from "../Transport.js"
import * as SyncWire from "../SyncWire.js"

interface RawSocket {
  readonly _socket?: { write: (chunk: Buffer) => boolean; writableLength: number; cork: () => void; uncork: () => void; on: (e: string, f: () => void) => void }
}

class WsConnection implements Connection {
  readonly channels = new Set<string>()
  constructor(
    readonly id: number,
    readonly socket: WebSocket,
    readonly format: SyncWire.Format,
    readonly protocol: string,
    readonly remoteAddress: string,
    private readonly channelsOf: Map<string, Set<WsConnection>>
  ) {}
  isOpen() {
    return this.socket.readyState === WebSocket.OPEN
  }
  send(data: SyncWire.Encoded): void {
    if (this.isOpen()) this.socket.send(data, { binary: typeof data !== "string" })
  }
  bufferedAmount() {
    return this.socket.bufferedAmount
  }
  close(code: number, reason: string): void {
    if (this.isOpen()) this.socket.close(code, reason)
    this.leaveAll()
  }
  terminate(): void {
    this.socket.terminate()
    this.leaveAll()
  }
  join(topic: string): void {
    const key = channel(topic, this.format)
    let members = this.channelsOf.get(key)
    if (members === undefined) this.channelsOf.set(key, members = new Set())
    members.add(this)
    this.channels.add(key)
  }
  leave(topic: string): void {
    this.leaveChannel(channel(topic, this.format))
  }
  leaveAll(): void {
    for (const key of [...this.channels]) this.leaveChannel(key)
  }
  private leaveChannel(key: string) {
    const members = this.channelsOf.get(key)
    members?.delete(this)
    if (members?.size === 0) this.channelsOf.delete(key)
    this.channels.delete(key)
  }
}

export interface WsListenOptions extends ListenOptions {
  /** Mount on this HTTP server (its `upgrade` events on `path`) instead of listening. */
  readonly server?: Http.Server | undefined
}

export const transport: Transport & { readonly listen: (options: WsListenOptions) => ReturnType<Transport["listen"]> } = {
  name: "ws",
  listen: (options: WsListenOptions) =>
    Effect.gen(function*() {
      const path = options.path ?? DEFAULT_PATH
      const channels = new Map<string, Set<WsConnection>>()
      const connections = new Set<WsConnection>()
      let nextId = 0
      const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes, perMessageDeflate: false, clientTracking: false })

      const onUpgrade = (request: Http.IncomingMessage, socket: Duplex, head: Buffer) => {
        const url = new URL(request.url ?? "/", "http://localhost")
        if (url.pathname !== path) {
          if (options.server === undefined) socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n")
          return // a mounted server may route other upgrade paths itself
        }
        const negotiated = SyncWire.negotiate(request.headers["sec-websocket-protocol"])
        if (negotiated === undefined) {
          socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nunsupported subprotocol")
          return
        }
        wss.handleUpgrade(request, socket, head, (ws) => {
          const connection = new WsConnection(++nextId, ws, negotiated.format, negotiated.protocol, request.socket.remoteAddress ?? "", channels)
          connections.add(connection)
          ws.binaryType = "nodebuffer"
          ;(ws as unknown as RawSocket)._socket?.on("drain", () => options.handlers.drain(connection))
          ws.on("message", (data: Buffer, isBinary: boolean) => {
            options.handlers.message(connection, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), isBinary)
          })
          ws.on("close", (code: number, reason: Buffer) => {
            connections.delete(connection)
            connection.leaveAll()
            options.handlers.close(connection, code, reason.toString())
          })
          ws.on("error", () => {
            /* followed by close */
          })
          // Outbound backpressure beyond the hard limit: drop the socket; the client resumes.
          options.handlers.open(connection)
        })
      }
      // ws's protocol selection: always the negotiated one.
      ;(wss.options as { handleProtocols?: unknown }).handleProtocols = (protocols: Set<string>) =>
        SyncWire.negotiate([...protocols].join(","))?.protocol || false

      const server = options.server ?? Http.createServer((_req, res) => res.writeHead(426, { "content-type": "text/plain" }).end("upgrade required"))
      server.on("upgrade", onUpgrade)
      let port = 0
      if (options.server === undefined) {
        port = yield* Effect.acquireRelease(
          Effect.async<number, TransportError>((resume) => {
            const onError = (cause: Error) => resume(Effect.fail(new TransportError({ message: `cannot listen on ${options.host ?? "127.0.0.1"}:${options.port ?? 0}: ${cause.message}`, cause })))
            server.once("error", onError)
            server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
              server.off("error", onError)
              const address = server.address()
              resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
            })
          }),
          () =>
            Effect.async<void>((resume) => {
              for (const c of [...connections]) c.close(1001, "server shutting down")
              server.close(() => resume(Effect.void))
              setTimeout(() => {
                for (const c of [...connections]) c.terminate()
                server.closeAllConnections?.()
              }, 200).unref()
            })
        )
      } else {
        const address = options.server.address()
        port = typeof address === "object" && address !== null ? address.port : 0
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            options.server!.off("upgrade", onUpgrade)
            for (const c of [...connections]) c.close(1001, "server shutting down")
          })
        )
      }

      const frameOnce = (data: SyncWire.Encoded): Array<Buffer> | undefined => {
        const frame = (WebSocket as unknown as { Sender?: { frame?: (d: Buffer, o: object) => Array<Buffer> } }).Sender?.frame
        if (frame === undefined) return undefined
        const payload = typeof data === "string" ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
        return frame(payload, { fin: true, rsv1: false, opcode: typeof data === "string" ? 1 : 2, mask: false, readOnly: true })
      }

      const transportServer: TransportServer = {
        adapter: "ws",
        native: true,
        port,
        publish: (topic, format, data) => {
          const members = channels.get(channel(topic, format))
          if (members === undefined || members.size === 0) return
          const frame = frameOnce(data)
          for (const member of members) {
            if (!member.isOpen()) continue
            const raw = (member.socket as unknown as RawSocket)._socket
            if (frame === undefined || raw === undefined) {
              member.send(data)
            } else {
              raw.cork()
              for (const chunk of frame) raw.write(chunk)
              raw.uncork()
            }
            if (member.bufferedAmount() > options.maxBackpressureBytes) member.terminate()
          }
        },
        connections: () => connections.size
      }
      return transportServer
    })
}
