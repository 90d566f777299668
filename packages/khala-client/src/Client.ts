// The Khala client: connect with a sync token, subscribe to topics, resume each from its persisted
// watermark, apply updates exactly once, recover from stale cursors by snapshot, and keep going
// across network failures, server restarts and token expiry — without Effect or a protobuf
// runtime in the bundle (the Effect API wraps this one: `@openagents/khala-client/effect`).
//
// Lifecycle: idle → connecting → connected ⇄ reconnecting → closed. Reconnects use exponential
// backoff with full jitter, floored by the server's retry_after_ms; close codes 4500–4999
// (unauthorized, reauth_required, upgrade_required, bad_frame) stop the client and are reported
// as events instead of looping. Heartbeats are sent at the server's interval; a server silent for
// longer than `silenceTimeoutMs` is abandoned. The token is refreshed on the open socket before it
// expires.
//
// Apply: batches are applied in arrival order by one queue; an update at or below the topic's
// last applied watermark is dropped (a whole batch by its envelope `seq`, without decoding it); a
// gap makes the client resubscribe; a document is replaced when doc_version ≥ cached. Documents
// and the watermark are persisted together (SyncStore.apply), and only then shown to the app.
import { applyBatch, type IncomingUpdate } from "./Apply.js"
import * as Backoff from "./Backoff.js"
import * as Wire from "./internal/wire.js"
import { memoryStore, type StoredDocument, type SyncStore } from "./Store.js"

export type Status = "idle" | "connecting" | "connected" | "reconnecting" | "closed"

export interface Document<T = unknown> {
  readonly docKey: string
  readonly docVersion: bigint
  /** The parsed document; undefined when it must be hydrated over HTTP. */
  readonly value: T | undefined
  readonly json: string | null
  readonly hydrationRequired: boolean
}

export class KhalaClientError extends Error {
  override readonly name = "KhalaClientError"
  constructor(readonly code: string, message: string, readonly topics: ReadonlyArray<string> = [], readonly details?: unknown) {
    super(message)
  }
}

export type ClientEvent =
  | { readonly type: "status"; readonly status: Status }
  | { readonly type: "change"; readonly topic: string; readonly changed: ReadonlyArray<string>; readonly watermark: bigint }
  | { readonly type: "live"; readonly topic: string }
  | { readonly type: "resynced"; readonly topic: string; readonly watermark: bigint; readonly via: "snapshot" | "head"; readonly gap: boolean }
  /**
   * A topic's documents were restored from the store (once per subscribe, when the store held
   * any): what `documents(topic)` shows before the server sends anything newer. Not a `change`:
   * nothing was applied, and an app that handles each change as new updates must not see them twice.
   */
  | { readonly type: "restored"; readonly topic: string; readonly watermark: bigint; readonly documents: number }
  | { readonly type: "reauth_required"; readonly reason: number }
  | { readonly type: "upgrade_required"; readonly details: unknown }
  | { readonly type: "unauthorized"; readonly reason: number; readonly message: string }
  | { readonly type: "error"; readonly error: KhalaClientError }

/**
 * An event handler property. Declared through a method so that its parameter is checked
 * bivariantly, as TypeScript checks methods: implementations type their handlers with their own
 * event classes (`ws`'s `(event: WebSocket.Event) => void`, the DOM's `(ev: Event) => any`), and
 * must be assignable without a cast.
 */
type Handler<E> = { handle(event: E): void }["handle"]

/** The subset of the WHATWG WebSocket the client uses (browsers, React Native, Node ≥ 22, `ws`). */
export interface WebSocketLike {
  binaryType: string
  readonly readyState: number
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  onopen: Handler<unknown> | null
  onmessage: Handler<{ data: unknown }> | null
  onclose: Handler<{ code: number; reason: string }> | null
  onerror: Handler<unknown> | null
}
export type WebSocketConstructor = new (url: string, protocols: Array<string>) => WebSocketLike

export interface ClientOptions {
  /** The Khala endpoint, e.g. wss://runtime.example.com/sync/v1/ws. */
  readonly url: string
  /** Returns a fresh sync token; called for every connection and before expiry. */
  readonly tokenProvider: () => string | Promise<string>
  /** Base URL for snapshot recovery (default: `url` with http(s) and no path). */
  readonly snapshotBaseUrl?: string
  readonly store?: SyncStore
  /** WebSocket implementation (default: globalThis.WebSocket; pass `ws` on Node 20). */
  readonly WebSocket?: WebSocketConstructor
  readonly fetch?: typeof fetch
  readonly client?: { readonly surface?: number; readonly buildId?: string; readonly appVersion?: string; readonly deviceId?: string }
  readonly backoff?: Partial<Backoff.BackoffOptions>
  /** Abandon a connection that has heard nothing for this long (default: 2 × heartbeat + 5 s). */
  readonly silenceTimeoutMs?: number
  /**
   * Give up on a connection whose WebSocket upgrade and Welcome, or whose Subscribed, do not
   * arrive within this (default 10 s).
   */
  readonly requestTimeoutMs?: number
  /** Abort a snapshot fetch (stale-cursor recovery) that has not completed within this (default 30 s). */
  readonly snapshotTimeoutMs?: number
  /** For tests: the random source of the jitter. */
  readonly random?: () => number
  /**
   * Bound a topic: return N to keep only its newest N documents (by doc_version), in memory and
   * in the store, or undefined to keep everything (the default). For event streams, where every
   * event is a document of its own. A topic is trimmed back to N once it holds more than 2N, so the
   * store is rewritten once per N new documents; the watermark is kept, so nothing trimmed is
   * fetched again.
   */
  readonly keepNewest?: (topic: string) => number | undefined
}

interface TopicEntry {
  readonly topic: string
  epoch: string
  watermark: bigint
  readonly docs: Map<string, Document>
  loaded: Promise<void>
  phase: "pending" | "subscribing" | "replaying" | "live" | "failed" | "recovering"
  liveWaiters: Array<{ readonly resolve: () => void; readonly reject: (error: KhalaClientError) => void }>
}

interface QueuedBatch {
  readonly topic: string
  readonly serial: number
  /** The journal epoch of the connection it came on (what its watermarks count in). */
  readonly epoch: string
  readonly updates: ReadonlyArray<IncomingUpdate>
  readonly complete: boolean
}

/** The least time between two token refreshes of a client whose token is already due, whatever the expiry says. */
const MIN_REFRESH_INTERVAL_MS = 5_000

const textDecoder = new TextDecoder()

const toDocument = (d: StoredDocument): Document => ({
  docKey: d.docKey,
  docVersion: d.docVersion,
  json: d.payload,
  value: d.payload === null ? undefined : JSON.parse(d.payload),
  hydrationRequired: d.payload === null
})

export class KhalaClient {
  status: Status = "idle"
  private readonly store: SyncStore
  private readonly topics = new Map<string, TopicEntry>()
  private readonly listeners = new Set<(event: ClientEvent) => void>()
  private socket: WebSocketLike | undefined
  private serial = 0
  private attempt = 0
  private retryFloorMs = 0
  private closedByUser = false
  private readonly timers = new Set<ReturnType<typeof setTimeout>>()
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  private lastFrameAt = 0
  private heartbeatMs = 15_000
  private journalEpoch = ""
  private token = ""
  private requestSeq = 0
  private readonly pendingRequests = new Map<string, ReadonlyArray<string>>()
  private queue: Array<QueuedBatch> = []
  private processing: Promise<void> | undefined
  /** Batches enqueued / finished so far: a subscribe waits until what was enqueued before it is applied. */
  private enqueued = 0
  private drained = 0
  private drainWaiters: Array<{ readonly mark: number; readonly resolve: () => void }> = []
  /** The server's clock minus ours, from the last Welcome (token expiries are in server time). */
  private clockOffsetMs = 0
  private lastRefreshAt = 0
  private terminalError: ClientEvent | undefined

  constructor(readonly options: ClientOptions) {
    this.store = options.store ?? memoryStore()
  }

  /** Listen to client events; returns the unsubscribe function. */
  on(listener: (event: ClientEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Subscribe to a topic (idempotent). Connects the client if it is idle. */
  subscribe(topic: string): void {
    if (this.topics.has(topic)) return
    const entry: TopicEntry = { topic, epoch: "", watermark: 0n, docs: new Map(), loaded: Promise.resolve(), phase: "pending", liveWaiters: [] }
    entry.loaded = this.store.load(topic).then(
      async (state) => {
        if (state === undefined || this.topics.get(topic) !== entry) return
        entry.epoch = state.epoch
        entry.watermark = state.watermark
        for (const d of state.documents) entry.docs.set(d.docKey, toDocument(d))
        await this.trim(entry)
        // Announced, so hooks and streams that rendered nothing yet show them.
        if (entry.docs.size > 0) this.emit({ type: "restored", topic, watermark: entry.watermark, documents: entry.docs.size })
      },
      async (error) => {
        // A record that cannot be read (corrupt, or the store failed) is not fatal: it is dropped
        // and the topic starts from nothing — a full replay, or stale_cursor and a snapshot that
        // replaces it. The server holds everything it held.
        entry.epoch = ""
        entry.watermark = 0n
        entry.docs.clear()
        this.emit({ type: "error", error: new KhalaClientError("store_failed", `loading ${topic} failed (syncing it from the start): ${String(error)}`, [topic]) })
        await this.store.clear(topic).catch(() => undefined)
      }
    )
    this.topics.set(topic, entry)
    if (this.status === "idle") this.connect()
    else if (this.status === "connected") this.subscribeAll()
  }

  /** Stop receiving a topic (its persisted state is kept). */
  unsubscribe(topic: string): void {
    const entry = this.topics.get(topic)
    if (entry === undefined) return
    this.topics.delete(topic)
    this.settleLive(entry, new KhalaClientError("not_subscribed", `unsubscribed from ${topic}`, [topic]))
    if (this.status === "connected") this.send(Wire.unsubscribe({ topics: [topic], requestId: this.nextRequestId() }))
  }

  /** Keep the topic's newest `keepNewest(topic)` documents once it holds more than twice that. */
  private async trim(entry: TopicEntry): Promise<void> {
    const keep = this.options.keepNewest?.(entry.topic)
    if (keep === undefined) return
    if (!Number.isSafeInteger(keep) || keep < 1) {
      this.emit({ type: "error", error: new KhalaClientError("invalid_option", `keepNewest(${entry.topic}) must be a positive integer, got ${String(keep)}`, [entry.topic]) })
      return
    }
    if (entry.docs.size <= 2 * keep) return
    const kept = [...entry.docs.values()].sort((a, b) => (a.docVersion === b.docVersion ? 0 : a.docVersion > b.docVersion ? -1 : 1)).slice(0, keep)
    try {
      await this.store.apply(entry.topic, {
        epoch: entry.epoch,
        watermark: entry.watermark,
        upserts: kept.map((d) => ({ docKey: d.docKey, docVersion: d.docVersion, payload: d.json })),
        replace: true
      })
    } catch (error) {
      // Nothing is lost: the store still holds everything; the next apply tries again.
      this.emit({ type: "error", error: new KhalaClientError("store_failed", `trimming ${entry.topic} failed: ${String(error)}`, [entry.topic]) })
      return
    }
    entry.docs.clear()
    for (const d of kept) entry.docs.set(d.docKey, d)
  }

  /** The topic's documents as applied (and persisted) so far. */
  documents<T = unknown>(topic: string): ReadonlyMap<string, Document<T>> {
    return (this.topics.get(topic)?.docs ?? new Map()) as ReadonlyMap<string, Document<T>>
  }

  /** The last applied watermark of a topic. */
  watermark(topic: string): bigint {
    return this.topics.get(topic)?.watermark ?? 0n
  }

  /** Resolves once the topic has caught up (replay complete) on the current or a later connection. */
  live(topic: string): Promise<void> {
    const entry = this.topics.get(topic)
    if (entry === undefined) return Promise.reject(new KhalaClientError("not_subscribed", `not subscribed to ${topic}`, [topic]))
    if (entry.phase === "live") return Promise.resolve()
    if (entry.phase === "failed") return Promise.reject(new KhalaClientError("topic_failed", `${topic} was refused by the server`, [topic]))
    if (this.status === "closed") return Promise.reject(new KhalaClientError("closed", "the client is closed", [topic]))
    return new Promise((resolve, reject) => entry.liveWaiters.push({ resolve, reject }))
  }

  /** Settle a topic's live() waiters: resolve them (undefined) or reject them with `error`. */
  private settleLive(entry: TopicEntry, error?: KhalaClientError) {
    const waiters = entry.liveWaiters
    entry.liveWaiters = []
    for (const w of waiters) {
      if (error === undefined) w.resolve()
      else w.reject(error)
    }
  }

  /** The client stopped (closed, or a close the app must act on): nothing it waits for will come. */
  private settleAllLive(code: string, message: string) {
    for (const entry of this.topics.values()) this.settleLive(entry, new KhalaClientError(code, message, [entry.topic]))
  }

  /** Open the connection (done by the first subscribe). */
  connect(): void {
    if (this.status === "connecting" || this.status === "connected") return
    this.closedByUser = false
    this.terminalError = undefined
    void this.open()
  }

  /** Close for good: no reconnect; pending applies finish first. */
  async close(): Promise<void> {
    this.closedByUser = true
    this.clearTimers()
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.detach(1000, "client closed")
    await this.queueIdle()
    this.setStatus("closed")
    this.settleAllLive("closed", "the client was closed")
    await this.store.close?.()
  }

  // -------------------------------------------------------------------------------------------

  private emit(event: ClientEvent) {
    for (const l of [...this.listeners]) {
      try {
        l(event)
      } catch {
        // a listener's failure is its own
      }
    }
  }

  private setStatus(status: Status) {
    if (this.status === status) return
    this.status = status
    this.emit({ type: "status", status })
  }

  private nextRequestId() {
    return `r${++this.requestSeq}`
  }

  private send(data: Uint8Array) {
    try {
      this.socket?.send(data)
    } catch {
      // a socket that is closing: the close handler reconnects
    }
  }

  private clearTimers() {
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.awaiting.clear()
  }

  private later(ms: number, f: () => void) {
    const t = setTimeout(() => {
      this.timers.delete(t)
      f()
    }, ms)
    this.timers.add(t)
    return t
  }

  private get snapshotBase() {
    if (this.options.snapshotBaseUrl) return this.options.snapshotBaseUrl.replace(/\/$/, "")
    const u = new URL(this.options.url)
    return `${u.protocol === "wss:" ? "https:" : "http:"}//${u.host}`
  }

  private async open() {
    this.setStatus(this.attempt === 0 && this.status === "idle" ? "connecting" : this.status === "reconnecting" ? "reconnecting" : "connecting")
    const serial = ++this.serial
    let token: string
    try {
      token = await this.options.tokenProvider()
    } catch (error) {
      this.emit({ type: "error", error: new KhalaClientError("token_unavailable", `tokenProvider failed: ${String(error)}`) })
      return this.scheduleReconnect(serial)
    }
    if (serial !== this.serial || this.closedByUser) return
    this.token = token
    const Ctor = this.options.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket
    if (Ctor === undefined) throw new KhalaClientError("no_websocket", "no WebSocket implementation: pass options.WebSocket (for example `ws` on Node 20)")
    let socket: WebSocketLike
    try {
      socket = new Ctor(this.options.url, [Wire.SUBPROTOCOL])
    } catch (error) {
      this.emit({ type: "error", error: new KhalaClientError("connect_failed", String(error)) })
      return this.scheduleReconnect(serial)
    }
    socket.binaryType = "arraybuffer"
    this.socket = socket
    this.lastFrameAt = Date.now()
    // From here: a server (or proxy) that accepts the TCP connection but never completes the
    // upgrade, or never welcomes, is abandoned like one that never answers a request.
    this.expectReply(serial, "welcome")
    socket.onopen = () => {
      if (serial !== this.serial) return
      this.lastFrameAt = Date.now()
      const c = this.options.client ?? {}
      this.send(Wire.hello({
        token,
        surface: c.surface ?? 0,
        clientBuildId: c.buildId ?? "",
        protocolVersion: Wire.PROTOCOL_VERSION,
        minSchemaVersion: Wire.SCHEMA_VERSION,
        maxSchemaVersion: Wire.SCHEMA_VERSION,
        appVersion: c.appVersion ?? "",
        deviceId: c.deviceId ?? ""
      }))
      this.watchSilence(serial)
    }
    socket.onmessage = (event) => {
      if (serial !== this.serial) return
      this.lastFrameAt = Date.now()
      const data = event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : event.data instanceof Uint8Array ? event.data : undefined
      if (data === undefined) return
      try {
        this.onFrame(serial, Wire.envelope(data))
      } catch (error) {
        this.emit({ type: "error", error: new KhalaClientError("bad_frame", `undecodable server frame: ${String(error)}`) })
        this.detach(4503, "undecodable frame")
        this.scheduleReconnect(serial)
      }
    }
    socket.onclose = (event) => this.onClose(serial, event.code, event.reason)
    socket.onerror = () => {
      // followed by onclose
    }
  }

  /** Drop the current socket without waiting for its close handshake. */
  private detach(code: number, reason: string) {
    const socket = this.socket
    this.socket = undefined
    this.serial++
    this.clearTimers()
    if (socket === undefined) return
    socket.onopen = socket.onmessage = null
    socket.onclose = null
    // Not null: a Node `ws` socket closed while still connecting emits "error" on the next tick,
    // and an EventEmitter with no error listener throws.
    socket.onerror = () => {}
    try {
      socket.close(code >= 4000 && code <= 4999 ? code : 1000, reason)
    } catch {
      // already closed
    }
    for (const entry of this.topics.values()) if (entry.phase !== "failed") entry.phase = "pending"
  }

  private onClose(serial: number, code: number, reason: string) {
    if (serial !== this.serial) return
    this.socket = undefined
    this.serial++
    this.clearTimers()
    for (const entry of this.topics.values()) if (entry.phase !== "failed") entry.phase = "pending"
    if (this.closedByUser) return this.setStatus("closed")
    const verdict = Backoff.classifyClose(code)
    if (verdict.action === "stop") {
      this.setStatus("closed")
      const event = this.terminalError ?? (verdict.reason === "bad_frame"
        ? { type: "error" as const, error: new KhalaClientError("bad_frame", reason || "the server refused a frame") }
        : { type: "unauthorized" as const, reason: 0, message: reason })
      this.emit(event)
      this.settleAllLive(verdict.reason, `the connection was closed (${verdict.reason}); the client stopped until connect() is called`)
      return
    }
    this.scheduleReconnect(this.serial)
  }

  private scheduleReconnect(serial: number) {
    if (serial !== this.serial && this.socket !== undefined) return
    if (this.closedByUser) return
    this.setStatus("reconnecting")
    const options = { ...Backoff.defaultBackoff, ...this.options.backoff }
    const ms = Backoff.delay(this.attempt++, (this.options.random ?? Math.random)(), this.retryFloorMs, options)
    this.retryFloorMs = 0
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      void this.open()
    }, ms)
  }

  private awaiting = new Set<string>()
  /** Reconnect when an expected reply (Welcome, Subscribed) does not come in time. */
  private expectReply(serial: number, what: string) {
    this.awaiting.add(what)
    this.later(this.options.requestTimeoutMs ?? 10_000, () => {
      if (serial !== this.serial || !this.awaiting.has(what)) return
      this.emit({ type: "error", error: new KhalaClientError("request_timeout", `no ${what.replace(/:.*/, "")} within ${this.options.requestTimeoutMs ?? 10_000} ms; reconnecting`) })
      this.detach(4000, `${what} timeout`)
      this.scheduleReconnect(this.serial)
    })
  }

  private watchSilence(serial: number) {
    const check = () => {
      if (serial !== this.serial) return
      const limit = this.options.silenceTimeoutMs ?? this.heartbeatMs * 2 + 5_000
      if (Date.now() - this.lastFrameAt > limit) {
        this.emit({ type: "error", error: new KhalaClientError("server_silent", `no frame from the server for ${limit} ms; reconnecting`) })
        this.detach(4000, "server silent")
        return this.scheduleReconnect(this.serial)
      }
      this.later(Math.min(1000, limit / 4), check)
    }
    this.later(Math.min(1000, (this.options.silenceTimeoutMs ?? 35_000) / 4), check)
  }

  private onFrame(serial: number, frame: Wire.Envelope) {
    if (frame.schemaVersion !== Wire.SCHEMA_VERSION) throw new Error(`schema_version ${frame.schemaVersion}`)
    switch (frame.kind) {
      case Wire.Kind.WELCOME:
        return this.onWelcome(serial, Wire.payload(frame))
      case Wire.Kind.UPDATE_BATCH: {
        const entry = this.topics.get(frame.topic)
        if (entry === undefined) return
        // A live batch wholly at or below what is applied is dropped without decoding it.
        if (entry.phase === "live" && frame.seq !== 0n && frame.seq <= entry.watermark) return
        const batch = Wire.payload(frame)
        const updates: Array<IncomingUpdate> = batch.updates.map((u: any) => ({
          watermark: u.watermark,
          docKey: u.docKey,
          docVersion: u.docVersion,
          payload: u.hydrationRequired ? null : textDecoder.decode(u.payload)
        }))
        this.enqueue({ topic: frame.topic, serial, epoch: this.journalEpoch, updates, complete: batch.replayComplete })
        return
      }
      case Wire.Kind.SUBSCRIBED: {
        const m = Wire.payload(frame)
        this.pendingRequests.delete(m.requestId)
        this.awaiting.delete(`subscribed:${m.requestId}`)
        for (const t of m.topics as Array<string>) {
          const entry = this.topics.get(t)
          if (entry && entry.phase === "subscribing") entry.phase = "replaying"
        }
        return
      }
      case Wire.Kind.HEARTBEAT:
        return this.checkPositions(Wire.payload(frame).watermarks)
      case Wire.Kind.TOKEN_REFRESHED:
        return this.scheduleRefresh(serial, Number(Wire.payload(frame).tokenExpiresAtMs))
      case Wire.Kind.ERROR:
        return this.onError(serial, Wire.payload(frame))
      default:
        return // heartbeats, unsubscribed: activity only
    }
  }

  private onWelcome(serial: number, welcome: any) {
    this.awaiting.delete("welcome")
    this.journalEpoch = welcome.journalEpoch
    this.heartbeatMs = welcome.heartbeatIntervalMs || 15_000
    const serverTime = Number(welcome.serverTimeMs ?? 0)
    this.clockOffsetMs = serverTime > 0 ? serverTime - Date.now() : 0
    // The backoff is reset once the connection has proved itself (every topic live, or none to
    // sync), not at Welcome: a failure after Welcome (a snapshot that cannot be fetched, a store
    // that cannot write) must back off like any other, not retry within a second forever.
    this.resetBackoffIfProven()
    this.setStatus("connected")
    const beat = () => {
      if (serial !== this.serial) return
      this.send(Wire.heartbeat(Date.now()))
      this.later(this.heartbeatMs, beat)
    }
    this.later(this.heartbeatMs, beat)
    this.scheduleRefresh(serial, Number(welcome.tokenExpiresAtMs))
    this.subscribeAll()
  }

  /**
   * A connection has proved itself once every topic is live (or refused for good, or there are
   * none): the next failure starts the backoff from the beginning.
   */
  private resetBackoffIfProven() {
    for (const e of this.topics.values()) if (e.phase !== "live" && e.phase !== "failed") return
    this.attempt = 0
  }

  /** Subscribe every pending topic (errors are reported, never left unhandled). */
  private subscribeAll() {
    this.sendSubscribe([...this.topics.values()]).catch((error) =>
      this.emit({ type: "error", error: new KhalaClientError("internal", `subscribing failed: ${String(error)}`) })
    )
  }

  private scheduleRefresh(serial: number, expiresAtMs: number) {
    if (!expiresAtMs) return
    // The expiry is in the server's time: compare it with the server's clock as the Welcome gave
    // it, not with this device's (which may be minutes off either way).
    const remaining = expiresAtMs - (Date.now() + this.clockOffsetMs)
    const margin = Math.min(30_000, Math.max(remaining * 0.25, 0))
    // Never refresh in a loop, whatever the expiry says: when it is already due, refresh now, but
    // no sooner than MIN_REFRESH_INTERVAL_MS after the previous refresh of this client.
    const due = remaining - margin
    const wait = due > 0 ? due : Math.max(0, MIN_REFRESH_INTERVAL_MS - (Date.now() - this.lastRefreshAt))
    this.later(wait, async () => {
      if (serial !== this.serial) return
      this.lastRefreshAt = Date.now()
      try {
        const token = await this.options.tokenProvider()
        if (serial !== this.serial) return
        this.token = token
        this.send(Wire.refreshToken(token, this.nextRequestId()))
      } catch (error) {
        this.emit({ type: "error", error: new KhalaClientError("token_unavailable", `token refresh failed: ${String(error)}`) })
        this.later(2_000, () => this.scheduleRefresh(serial, expiresAtMs))
      }
    })
  }

  private async sendSubscribe(entries: ReadonlyArray<TopicEntry>) {
    const serial = this.serial
    await Promise.all(entries.map((e) => e.loaded))
    // Batches that arrived before this (on an earlier connection too) are applied first, so the
    // resume positions include them and carry the epoch they were applied in.
    await this.appliedUpTo(this.enqueued)
    if (serial !== this.serial || this.status !== "connected") return
    const ready = entries.filter((e) => e.phase === "pending" && this.topics.get(e.topic) === e)
    if (ready.length === 0) return
    for (const e of ready) e.phase = "subscribing"
    const requestId = this.nextRequestId()
    this.pendingRequests.set(requestId, ready.map((e) => e.topic))
    this.expectReply(serial, `subscribed:${requestId}`)
    this.send(Wire.subscribe({
      topics: ready.map((e) => e.topic),
      resumeAfter: ready.filter((e) => e.watermark > 0n || e.epoch !== "").map((e) => ({ topic: e.topic, watermark: e.watermark, epoch: e.epoch })),
      requestId,
      replayBatchSize: 0
    }))
  }

  private onError(serial: number, error: any) {
    const code = error.code as number
    const name = Wire.ERROR_CODE_NAMES[code] ?? "internal"
    const requested = this.pendingRequests.get(error.requestId) ?? []
    this.pendingRequests.delete(error.requestId)
    this.awaiting.delete(`subscribed:${error.requestId}`)
    switch (code) {
      case Wire.ErrorCode.STALE_CURSOR:
        return void this.recover(serial, error.details?.value)
      case Wire.ErrorCode.FORBIDDEN_TOPIC:
      case Wire.ErrorCode.BAD_SUBSCRIPTION: {
        const topics: Array<string> = code === Wire.ErrorCode.FORBIDDEN_TOPIC ? error.details?.value?.forbiddenTopics ?? requested : requested
        const failure = new KhalaClientError(name, error.message, topics, error.details?.value)
        for (const t of topics) {
          const entry = this.topics.get(t)
          if (entry) {
            entry.phase = "failed"
            this.settleLive(entry, failure)
          }
        }
        this.emit({ type: "error", error: failure })
        return
      }
      case Wire.ErrorCode.RATE_LIMITED:
        this.retrySubscribe(requested, error.retryAfterMs)
        return
      case Wire.ErrorCode.SLOW_CONSUMER:
        this.retryFloorMs = Math.max(this.retryFloorMs, error.retryAfterMs || error.details?.value?.reconnectAfterMs || 0)
        return
      case Wire.ErrorCode.REAUTH_REQUIRED:
        this.terminalError = { type: "reauth_required", reason: error.details?.value?.reason ?? 0 }
        return
      case Wire.ErrorCode.UPGRADE_REQUIRED:
        this.terminalError = { type: "upgrade_required", details: error.details?.value }
        return
      case Wire.ErrorCode.UNAUTHORIZED:
        this.terminalError = { type: "unauthorized", reason: error.details?.value?.reason ?? 0, message: error.message }
        return
      case Wire.ErrorCode.TOKEN_EXPIRED:
      case Wire.ErrorCode.GOING_AWAY:
        return // the close follows; reconnect with a fresh token
      case Wire.ErrorCode.INTERNAL:
        // A server-side failure it asks us to retry after: of a subscribe request (its storage
        // failed; the connection stays), or of the connection (it could not check revocation;
        // the close follows).
        if (requested.length > 0) this.retrySubscribe(requested, error.retryAfterMs)
        else if (error.retryAfterMs > 0) this.retryFloorMs = Math.max(this.retryFloorMs, error.retryAfterMs)
        this.emit({ type: "error", error: new KhalaClientError(name, error.message, requested, error.details?.value) })
        return
      default:
        this.emit({ type: "error", error: new KhalaClientError(name, error.message, requested, error.details?.value) })
    }
  }

  /** The server did not take these topics now: subscribe them again after `retryAfterMs`. */
  private retrySubscribe(requested: ReadonlyArray<string>, retryAfterMs: number) {
    if (requested.length === 0) return
    for (const t of requested) {
      const entry = this.topics.get(t)
      if (entry && entry.phase === "subscribing") entry.phase = "pending"
    }
    this.later(Math.max(retryAfterMs, 100), () => this.subscribeAll())
  }

  /**
   * Positioning: a server heartbeat carries each topic's published watermark. A live topic that
   * is behind it with nothing left to apply has lost a batch in transit: resume from what is
   * applied (the server re-sends the rest).
   */
  private checkPositions(watermarks: ReadonlyArray<{ topic: string; watermark: bigint }>) {
    if (this.processing !== undefined || this.queue.length > 0) return
    for (const w of watermarks) {
      const entry = this.topics.get(w.topic)
      if (entry?.phase === "live" && w.watermark > entry.watermark) {
        this.emit({ type: "error", error: new KhalaClientError("position_lost", `${w.topic} is at ${w.watermark} on the server, ${entry.watermark} here; resuming`, [w.topic]) })
        this.detach(4000, "position lost")
        this.scheduleReconnect(this.serial)
        return
      }
    }
  }

  /**
   * Stale cursor: recover each topic from its snapshot (or from the head), then resubscribe. A
   * recovery belongs to its connection: if that connection is gone by the time a snapshot
   * arrives, the snapshot is dropped (the new connection recovers the topic itself), so an older
   * snapshot can never land after a newer one.
   */
  private async recover(serial: number, details: any) {
    const plan = new Map<string, any>((details?.snapshotPlan?.topics ?? []).map((t: any) => [t.topic, t]))
    const current = (entry: TopicEntry) => serial === this.serial && this.topics.get(entry.topic) === entry
    for (const stale of (details?.staleTopics ?? []) as Array<any>) {
      const entry = this.topics.get(stale.topic)
      if (entry === undefined) continue
      entry.phase = "recovering"
      const planned = plan.get(stale.topic)
      try {
        await this.queueIdle()
        if (!current(entry)) continue
        if (planned?.snapshot?.path) {
          const documents = await this.fetchSnapshot(stale.topic, planned.snapshot.path)
          if (!current(entry)) continue
          await this.store.apply(stale.topic, { epoch: documents.epoch, watermark: documents.watermark, upserts: documents.documents, replace: true })
          entry.docs.clear()
          for (const d of documents.documents) entry.docs.set(d.docKey, toDocument(d))
          entry.epoch = documents.epoch
          entry.watermark = documents.watermark
          await this.trim(entry)
          this.emit({ type: "resynced", topic: stale.topic, watermark: documents.watermark, via: "snapshot", gap: false })
          this.emit({ type: "change", topic: stale.topic, changed: documents.documents.map((d) => d.docKey), watermark: documents.watermark })
        } else {
          // No snapshot for this class (event streams): continue from the head; the interval is lost.
          const head = BigInt(planned?.headWatermark ?? stale.headWatermark ?? 0n)
          const epoch = stale.epoch || this.journalEpoch
          await this.store.apply(stale.topic, { epoch, watermark: head, upserts: [] })
          entry.epoch = epoch
          entry.watermark = head
          this.emit({ type: "resynced", topic: stale.topic, watermark: head, via: "head", gap: true })
        }
        if (entry.phase === "recovering") entry.phase = "pending"
      } catch (error) {
        if (entry.phase === "recovering") entry.phase = "pending"
        this.emit({ type: "error", error: error instanceof KhalaClientError ? error : new KhalaClientError("snapshot_failed", String(error), [stale.topic]) })
        // Try again through a reconnect (which backs off, at least as long as the server asked).
        if (serial === this.serial) {
          this.detach(4000, "snapshot recovery failed")
          this.scheduleReconnect(this.serial)
        }
        return
      }
    }
    if (serial === this.serial) this.subscribeAll()
  }

  /** GET a topic's snapshot, within `snapshotTimeoutMs`; a Retry-After answer sets the reconnect floor. */
  private async fetchSnapshot(topic: string, path: string): Promise<{ epoch: string; watermark: bigint; documents: Array<StoredDocument> }> {
    const timeoutMs = this.options.snapshotTimeoutMs ?? 30_000
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), timeoutMs)
    try {
      const response = await (this.options.fetch ?? fetch)(`${this.snapshotBase}${path}`, {
        headers: { authorization: `Bearer ${this.token}`, accept: "application/x-protobuf" },
        signal: abort.signal
      })
      if (!response.ok) {
        const retryAfter = retryAfterMs(response.headers.get("retry-after"))
        if (retryAfter !== undefined) this.retryFloorMs = Math.max(this.retryFloorMs, retryAfter)
        throw new KhalaClientError("snapshot_failed", `snapshot of ${topic}: HTTP ${response.status}`, [topic])
      }
      const snapshot = Wire.snapshot(new Uint8Array(await response.arrayBuffer()))
      return {
        epoch: snapshot.epoch,
        watermark: snapshot.watermark,
        documents: snapshot.documents.map((d: any) => ({ docKey: d.docKey, docVersion: d.docVersion, payload: textDecoder.decode(d.payload) }))
      }
    } catch (error) {
      if (abort.signal.aborted) throw new KhalaClientError("snapshot_failed", `snapshot of ${topic}: no answer within ${timeoutMs} ms`, [topic])
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  // -------------------------------------------------------------------------------------------
  // The apply queue

  private enqueue(batch: QueuedBatch) {
    this.queue.push(batch)
    this.enqueued++
    if (this.processing === undefined) this.processing = this.drain().finally(() => (this.processing = undefined))
  }

  /** Resolves once every batch enqueued so far is applied (later ones are not waited for). */
  private queueIdle(): Promise<void> {
    return this.appliedUpTo(this.enqueued)
  }

  /** Resolves once the first `mark` enqueued batches have been applied (or dropped). */
  private appliedUpTo(mark: number): Promise<void> {
    if (this.drained >= mark) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push({ mark, resolve }))
  }

  private batchesDone(n: number) {
    this.drained += n
    if (this.drainWaiters.length === 0) return
    const due = this.drainWaiters.filter((w) => w.mark <= this.drained)
    this.drainWaiters = this.drainWaiters.filter((w) => w.mark > this.drained)
    for (const w of due) w.resolve()
  }

  private async drain() {
    while (this.queue.length > 0) {
      // Coalesce consecutive batches of one topic into one store write.
      const first = this.queue.shift()!
      const updates = [...first.updates]
      let complete = first.complete
      let taken = 1
      while (this.queue.length > 0 && this.queue[0]!.topic === first.topic && this.queue[0]!.serial === first.serial) {
        const next = this.queue.shift()!
        updates.push(...next.updates)
        complete = next.complete
        taken++
      }
      try {
        await this.applyQueued(first, updates, complete)
      } catch (error) {
        // A bug or a malformed document must not stall the queue or surface as an unhandled
        // rejection: report it and resume from what is applied.
        this.emit({ type: "error", error: new KhalaClientError("internal", `applying ${first.topic} failed: ${String(error)}`, [first.topic]) })
        if (first.serial === this.serial) {
          this.detach(4000, "apply failed")
          this.scheduleReconnect(this.serial)
        }
      } finally {
        this.batchesDone(taken)
      }
    }
  }

  private async applyQueued(first: QueuedBatch, updates: ReadonlyArray<IncomingUpdate>, complete: boolean): Promise<void> {
    const entry = this.topics.get(first.topic)
    if (entry === undefined || entry.phase === "recovering") return
    const result = applyBatch(entry.watermark, (k) => entry.docs.get(k)?.docVersion, updates)
    if (result.watermark > entry.watermark) {
      // Its watermarks count in the epoch of the connection it came on (a batch of an earlier
      // connection can be applied after a later one welcomed the client in another epoch).
      const epoch = entry.epoch || first.epoch
      try {
        await this.store.apply(first.topic, { epoch, watermark: result.watermark, upserts: result.upserts })
      } catch (error) {
        this.emit({ type: "error", error: new KhalaClientError("store_failed", `persisting ${first.topic} failed: ${String(error)}`, [first.topic]) })
        if (first.serial === this.serial) {
          this.detach(4000, "store failed")
          this.scheduleReconnect(this.serial)
        }
        return
      }
      entry.epoch = epoch
      entry.watermark = result.watermark
      for (const d of result.upserts) entry.docs.set(d.docKey, toDocument(d))
      await this.trim(entry)
      this.emit({ type: "change", topic: first.topic, changed: result.upserts.map((d) => d.docKey), watermark: result.watermark })
    }
    if (result.gapAt !== undefined) {
      // Something was lost in transit: resume from what is applied.
      if (first.serial === this.serial) {
        this.detach(4000, "gap")
        this.scheduleReconnect(this.serial)
      }
      return
    }
    if (complete && first.serial === this.serial && entry.phase !== "live") {
      entry.phase = "live"
      this.settleLive(entry)
      this.emit({ type: "live", topic: first.topic })
      this.resetBackoffIfProven()
    }
  }
}

/** Milliseconds from a Retry-After header (seconds or an HTTP date), at most 5 minutes. */
const retryAfterMs = (header: string | null): number | undefined => {
  if (header === null || header.trim() === "") return undefined
  const seconds = Number(header)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now()
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 300_000) : undefined
}

/** Create a client. It connects on the first `subscribe`. */
export const createClient = (options: ClientOptions): KhalaClient => new KhalaClient(options)
