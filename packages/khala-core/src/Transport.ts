// The WebSocket transport port. The Khala server speaks to sockets only through it, so the same
// protocol code runs on uWebSockets.js (the default for hosts: native topic publish, ~10× the
// fanout throughput of a `ws` send loop) and on `ws` (portable, mountable on an existing Node
// HTTP server). Both adapters pass TransportSuite over real sockets on 127.0.0.1.
//
// Live fanout uses channels: a connection joins a topic's channel once it is caught up, and
// `publish` writes one pre-encoded frame to every member. A channel is per format (binary/JSON),
// so a frame is encoded once per topic and format, never once per socket.
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Data from "effect/Data"
import type { Encoded, Format } from "./SyncWire.js"

export interface Connection {
  readonly id: number
  readonly format: Format
  readonly protocol: string
  readonly remoteAddress: string
  /**
   * Queue a frame. Never throws; a closed connection ignores it. Frames published earlier to a
   * channel this connection is in are queued ahead of it (uWS drains its topic tree for the
   * socket first; ws wrote them when they were published).
   */
  readonly send: (data: Encoded) => void
  /** Bytes queued for this socket and not yet written to the network. */
  readonly bufferedAmount: () => number
  /** Close with a code and reason (graceful). */
  readonly close: (code: number, reason: string) => void
  /** Drop the connection without a closing handshake. */
  readonly terminate: () => void
  /**
   * Join / leave the live channel of a topic. A join receives only what is published after it.
   * A leave may discard frames published to the channel and not yet queued for this socket (uWS
   * holds publishes in its topic tree until the event loop's turn ends or the socket's next
   * send): a caller that must keep them sends to the connection before leaving.
   */
  readonly join: (topic: string) => void
  readonly leave: (topic: string) => void
  readonly isOpen: () => boolean
}

export interface Handlers {
  readonly open: (connection: Connection) => void
  readonly message: (connection: Connection, data: Uint8Array, isBinary: boolean) => void
  /** The connection's send buffer drained below the transport's threshold. */
  readonly drain: (connection: Connection) => void
  readonly close: (connection: Connection, code: number, reason: string) => void
}

export interface ListenOptions {
  readonly host?: string | undefined
  /** 0 (default) picks a free port. */
  readonly port?: number | undefined
  /** The WebSocket path (default "/sync/v1/ws"). */
  readonly path?: string | undefined
  /**
   * Inbound frames larger than this end the connection in the transport itself, undelivered (ws:
   * close 1009; uWS: the socket is dropped). The server enforces its own, lower limit first.
   */
  readonly maxPayloadBytes: number
  /**
   * Outbound bytes a socket may queue before the transport closes it (uWS: closeOnBackpressureLimit).
   * The server demotes slow consumers well below this; this is the last line.
   */
  readonly maxBackpressureBytes: number
  readonly handlers: Handlers
  /**
   * How long a fixed port that is in use is retried (uWS: default 75 s, because uWebSockets.js
   * leaves TIME_WAIT sockets that block its port for up to 60 s after a restart; ws: not needed).
   */
  readonly bindRetryMs?: number | undefined
}

export interface TransportServer {
  readonly adapter: "uws" | "ws"
  /** uWS: the native binary is loaded (false: the slow pure-JS fallback is in use). */
  readonly native: boolean
  readonly port: number
  readonly publish: (topic: string, format: Format, data: Encoded) => void
  readonly connections: () => number
}

export class TransportError extends Data.TaggedError("TransportError")<{ readonly message: string; readonly cause?: unknown }> {
  readonly code = "transport_unavailable" as const
}

export interface Transport {
  readonly name: "uws" | "ws"
  /** Listen; the server stops (listener closed, every socket ended with 1001) when the scope closes. */
  readonly listen: (options: ListenOptions) => Effect.Effect<TransportServer, TransportError, Scope.Scope>
}

export const DEFAULT_PATH = "/sync/v1/ws"

/** The live channel of a topic in one format. */
export const channel = (topic: string, format: Format) => `${format === "binary" ? "b" : "j"}|${topic}`
