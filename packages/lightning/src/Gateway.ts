// The reference L402 gateway: what Aperture does for the routes lightning-ops compiles, in
// process, plus the gateway operations API the reconciler drives (the upstream had only the
// client of this API: UPSTREAM_SPEC §4.1).
//
//   GET  /ops/deployment  {deployment: {deploymentId, configHash, imageDigest, appliedAtMs, apertureYaml, routes} | null}
//   POST /ops/deploy      {requestId, deploymentId, configHash, apertureYaml, routes} → {ok, deployment}
//   POST /ops/rollback    {requestId, deploymentId?} → {ok, deployment}   (409 nothing_to_roll_back when
//                         there is no previous deployment; 409 rollback_target_mismatch when the
//                         previous one is not `deploymentId`: a rollback never lands on another table)
//   GET  /ops/ledger?after=<seq>&limit=<n>  {entries: [{seq, invoice} | {seq, settlement}], next}
//   POST /ops/ledger/ack  {through: <seq>} → {ok}    (drops the entries up to seq)
//   anything else         the first compiled route matching Host and path: L402 paywall (price and
//                         service from the route), then proxied to the route's upstream; 404 if none.
//
// The ops routes require `Authorization: Bearer <ops token>`. A deploy is accepted only when its
// configHash is the hash of its YAML and route table (what the compiler produced), so a gateway
// never serves a table other than the one the intent names. Deployments live in memory, and in a
// DeploymentStore when one is given (`fileStore`: the host's L402_GATEWAY_STATE_PATH): a restarted
// gateway then serves its last deployment again without a redeploy (each stored deployment is
// checked against its configHash on load; a store that does not check out is ignored, and the
// gateway serves nothing until the reconciler deploys). A deploy or rollback is answered only once
// it is stored. Without a store, a restarted gateway serves nothing until the next reconcile.
//
// The ledger: what control records of the gateway's sales (UPSTREAM_SPEC §3.3, §3.4), journalled
// in order for lightning-ops to ingest — an OPEN invoice per challenge (`inv_<payment hash>`, for
// the route's paywall and owner) and, the first time a credential for a payment hash is accepted,
// a settlement (`set_<payment hash>`, proof = the preimage) that also settles its invoice. The ids
// derive from the payment hash, so a replay names the same records and control dedupes it. Entries
// stay until lightning-ops acknowledges them after control accepted them. The journal is bounded
// (ledgerCapacity) without ever losing a sale: past the capacity the oldest *invoice* entries give
// way (anyone can make the gateway issue invoices, by asking unauthenticated); an unacknowledged
// settlement is never dropped, and once settlements alone fill the capacity new challenges are
// refused with 503 (no invoice is created) until lightning-ops ingests. With a LedgerStore (fileLedger) an
// entry is fsynced before it counts — before the 402 goes out, before the paid request is proxied —
// so a crash loses no sale record; without one the journal is in memory only.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs"
import { dirname } from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { CompiledRoute } from "./Compiler.js"
import * as Compiler from "./Compiler.js"
import type * as L402 from "./L402.js"
import { equalBytes, utf8 } from "./internal/bytes.js"
import { InvoiceLifecycle, Settlement } from "./ControlPlane.js"
import * as L402Middleware from "./L402Middleware.js"

export const Deployment = Schema.Struct({
  deploymentId: Schema.String,
  configHash: Schema.String,
  imageDigest: Schema.optional(Schema.String),
  appliedAtMs: Schema.optional(Schema.Number)
})
export type Deployment = typeof Deployment.Type

export interface ActiveDeployment extends Deployment {
  readonly apertureYaml: string
  readonly routes: ReadonlyArray<CompiledRoute>
}

const CompiledRouteSchema = Schema.Struct({
  id: Schema.String,
  service: Schema.String,
  paywallId: Schema.String,
  ownerId: Schema.String,
  routeId: Schema.String,
  host: Schema.String,
  hostKind: Schema.Literal("literal", "wildcard", "any"),
  hostRegexp: Schema.String,
  path: Schema.String,
  pathKind: Schema.Literal("exact", "prefix", "regex", "catchall"),
  pathRegexp: Schema.String,
  upstream: Schema.Struct({ url: Schema.String, protocol: Schema.Literal("http", "https"), timeoutMs: Schema.Number }),
  priceMsats: Schema.Number,
  priority: Schema.Number
})

export const DeployRequest = Schema.Struct({
  requestId: Schema.String,
  deploymentId: Schema.String,
  configHash: Schema.String,
  apertureYaml: Schema.String,
  routes: Schema.Array(CompiledRouteSchema)
})
export type DeployRequest = typeof DeployRequest.Type

export const RollbackRequest = Schema.Struct({ requestId: Schema.String, deploymentId: Schema.optional(Schema.String) })

/**
 * What `GET /ops/deployment` answers: the active deployment and the table it serves. A gateway
 * may leave the table out; the reconciler then relies on nothing it would have said (conflicts
 * fall back to creation order; no rollback while an owner is killed).
 */
export const DeploymentWithTable = Schema.Struct({
  ...Deployment.fields,
  apertureYaml: Schema.optional(Schema.String),
  routes: Schema.optional(Schema.Array(CompiledRouteSchema))
})
export type DeploymentWithTable = typeof DeploymentWithTable.Type

/** The configHash the compiler gives a YAML and route table. */
export const configHashOf = Compiler.configHashOf

export const LedgerEntry = Schema.Union(
  Schema.Struct({ seq: Schema.Number, invoice: InvoiceLifecycle }),
  Schema.Struct({ seq: Schema.Number, settlement: Settlement })
)
export type LedgerEntry = typeof LedgerEntry.Type

export const LedgerPage = Schema.Struct({ entries: Schema.Array(LedgerEntry), next: Schema.Number })
export type LedgerPage = typeof LedgerPage.Type

const ActiveDeploymentSchema = Schema.Struct({
  ...Deployment.fields,
  apertureYaml: Schema.String,
  routes: Schema.Array(CompiledRouteSchema)
})

export const GatewayState = Schema.Struct({
  current: Schema.optional(ActiveDeploymentSchema),
  /** Earlier deployments, oldest first, for rollbacks (at most HISTORY_LIMIT). */
  history: Schema.Array(ActiveDeploymentSchema)
})
export type GatewayState = typeof GatewayState.Type

export const HISTORY_LIMIT = 10

/** Where the gateway keeps its deployments across restarts. */
export interface DeploymentStore {
  readonly load: Effect.Effect<GatewayState | undefined, Error>
  readonly save: (state: GatewayState) => Effect.Effect<void, Error>
}

/** A JSON file, replaced atomically (write a temporary file, then rename). */
export const fileStore = (path: string): Effect.Effect<DeploymentStore, never, FileSystem.FileSystem> =>
  Effect.map(FileSystem.FileSystem, (fs) => ({
    load: Effect.gen(function*() {
      if (!(yield* fs.exists(path))) return undefined
      return yield* Schema.decodeUnknown(Schema.parseJson(GatewayState))(yield* fs.readFileString(path))
    }).pipe(Effect.mapError((e) => new Error(`reading ${path}: ${e.message}`))),
    save: (state) =>
      Effect.gen(function*() {
        const temporary = `${path}.${process.pid}.tmp`
        // The directory may not exist yet on a fresh machine.
        yield* fs.makeDirectory(dirname(path), { recursive: true })
        yield* fs.writeFileString(temporary, JSON.stringify(Schema.encodeSync(GatewayState)(state)))
        yield* fs.rename(temporary, path)
      }).pipe(Effect.mapError((e) => new Error(`writing ${path}: ${e.message}`)))
  }))

/** Where the gateway keeps its unacknowledged ledger across restarts and crashes. */
export interface LedgerStore {
  /** The entries not yet acknowledged, in order, and the last seq ever used. */
  readonly load: Effect.Effect<{ readonly seq: number; readonly entries: ReadonlyArray<LedgerEntry> }, Error>
  /** Record an entry durably (it counts only once this succeeds). */
  readonly append: (entry: LedgerEntry) => Effect.Effect<void, Error>
  /** Record durably that the entries up to `through` were ingested. */
  readonly ack: (through: number) => Effect.Effect<void, Error>
}

const decodeLedgerEntry = Schema.decodeUnknownSync(LedgerEntry)

/**
 * An append-only JSON-lines file: one fsynced line per entry (`{"entry": …}`) or acknowledgement
 * (`{"ack": seq}`). A torn last line (a crash mid-write) is ignored on load; any other unreadable
 * line fails the load. The file is rewritten (atomically) without acknowledged entries once it
 * holds more acknowledged lines than live ones.
 */
export const fileLedger = (path: string): LedgerStore => {
  const appendLine = (line: string) => {
    mkdirSync(dirname(path), { recursive: true })
    const fd = openSync(path, "a")
    try {
      writeSync(fd, `${line}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  }
  const read = () => {
    if (!existsSync(path)) return { seq: 0, acked: 0, entries: [] as Array<LedgerEntry>, lines: 0 }
    const text = readFileSync(path, "utf8")
    const raw = text.split("\n")
    if (raw.at(-1) === "") raw.pop()
    let seq = 0
    let acked = 0
    const entries: Array<LedgerEntry> = []
    raw.forEach((line, i) => {
      let record: { entry?: unknown; ack?: unknown }
      try {
        record = JSON.parse(line)
      } catch (error) {
        if (i === raw.length - 1 && !text.endsWith("\n")) return // torn last write
        throw new Error(`${path}:${i + 1} is not a ledger record: ${error instanceof Error ? error.message : String(error)}`)
      }
      if (typeof record.ack === "number") acked = Math.max(acked, record.ack)
      else {
        const entry = decodeLedgerEntry(record.entry)
        seq = Math.max(seq, entry.seq)
        entries.push(entry)
      }
    })
    return { seq: Math.max(seq, acked), acked, entries: entries.filter((e) => e.seq > acked), lines: raw.length }
  }
  return {
    load: Effect.try({
      try: () => {
        const loaded = read()
        return { seq: loaded.seq, entries: loaded.entries }
      },
      catch: (e) => (e instanceof Error ? e : new Error(String(e)))
    }),
    append: (entry) => Effect.try({ try: () => appendLine(JSON.stringify({ entry })), catch: (e) => new Error(`writing ${path}: ${e instanceof Error ? e.message : String(e)}`) }),
    ack: (through) =>
      Effect.try({
        try: () => {
          appendLine(JSON.stringify({ ack: through }))
          const live = read()
          if (live.lines > 2 * live.entries.length + 16) {
            // Compact: the live entries and the high-water mark, replaced atomically.
            const temporary = `${path}.${process.pid}.tmp`
            const body = [...live.entries.map((entry) => JSON.stringify({ entry })), JSON.stringify({ ack: live.acked })]
            const fd = openSync(temporary, "w")
            try {
              writeSync(fd, `${body.join("\n")}\n`)
              fsyncSync(fd)
            } finally {
              closeSync(fd)
            }
            renameSync(temporary, path)
          }
        },
        catch: (e) => new Error(`writing ${path}: ${e instanceof Error ? e.message : String(e)}`)
      })
  }
}

export interface GatewayOptions {
  readonly opsToken: Redacted.Redacted<string>
  /** Reported as the deployment's imageDigest (what is running). */
  readonly imageDigest?: string
  /** Token validity for minted L402 tokens (seconds; default 86400). */
  readonly tokenValiditySeconds?: number
  /**
   * Ledger entries kept until acknowledged (default 10000). Beyond it the oldest invoice entries
   * are dropped; settlements never are: when they alone fill it, new challenges get 503.
   */
  readonly ledgerCapacity?: number
  /** Keep deployments across restarts (default: memory only). */
  readonly store?: DeploymentStore
  /** Keep the unacknowledged ledger across restarts and crashes (default: memory only). */
  readonly ledgerStore?: LedgerStore
}

const proxied = Metric.counter("l402_gateway_proxied_total", { description: "Paid requests proxied upstream" })
const ledgerDropped = Metric.counter("l402_gateway_ledger_dropped_total", { description: "Unacknowledged invoice entries dropped from the full sales journal" })
const ledgerFullRefusals = Metric.counter("l402_gateway_ledger_full_refusals_total", {
  description: "Challenges refused with 503 because unacknowledged settlements fill the sales journal"
})

// Hop-by-hop headers are not forwarded (RFC 9110 §7.6.1), nor the client's idea of the host.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"])

export const make = (options: GatewayOptions) =>
  Effect.gen(function*() {
    const restored = options.store === undefined ? undefined : yield* options.store.load.pipe(
      Effect.flatMap((loaded) => {
        const all = loaded === undefined ? [] : [...loaded.history, ...(loaded.current === undefined ? [] : [loaded.current])]
        const forged = all.find((d) => configHashOf(d.apertureYaml, d.routes) !== d.configHash)
        return forged === undefined ? Effect.succeed(loaded) : Effect.fail(new Error(`stored deployment ${forged.deploymentId} does not match its configHash`))
      }),
      Effect.tap((loaded) => loaded?.current === undefined ? Effect.void : Effect.logInfo(`serving stored deployment ${loaded.current.deploymentId} (${loaded.current.configHash})`)),
      Effect.catchAll((e) => Effect.as(Effect.logError(`ignoring the stored deployments: ${e.message}; serving nothing until a deploy`), undefined))
    )
    const state = yield* Ref.make<GatewayState>(restored ?? { history: [] })
    // Deploys and rollbacks one at a time: the next state is stored before it is served.
    const transitions = yield* Effect.makeSemaphore(1)
    const transition = <A>(next: (s: GatewayState) => readonly [A, GatewayState | undefined]) =>
      transitions.withPermits(1)(Effect.gen(function*() {
        const [answer, updated] = next(yield* Ref.get(state))
        if (updated === undefined) return answer
        if (options.store !== undefined) yield* options.store.save(updated)
        yield* Ref.set(state, updated)
        return answer
      }))
    const persistFailed = (e: Error) =>
      Effect.as(Effect.logError(`deployment not stored: ${e.message}`), HttpServerResponse.unsafeJson({ ok: false, error: "persist_failed" }, { status: 500 }))
    const http = yield* HttpClient.HttpClient
    // The ledger is plain mutable state: every access is one synchronous step (Effect.sync), so
    // nothing interleaves; maps evict in insertion order beyond the capacity.
    const capacity = options.ledgerCapacity ?? 10_000
    const ledger = { seq: 0, entries: [] as Array<LedgerEntry>, settlements: 0, dropped: 0, refused: 0, issued: new Map<string, InvoiceLifecycle>(), settled: new Set<string>() }
    const countSettlements = () => void (ledger.settlements = ledger.entries.filter((e) => "settlement" in e).length)
    if (options.ledgerStore !== undefined) {
      // An unreadable ledger stops the gateway: selling without recording is worse than not selling.
      const loaded = yield* options.ledgerStore.load
      ledger.seq = loaded.seq
      ledger.entries = [...loaded.entries]
      countSettlements()
      for (const e of loaded.entries) {
        if ("invoice" in e) ledger.issued.set(e.invoice.paymentHash ?? "", e.invoice)
        else ledger.settled.add(e.settlement.settlementId.replace(/^set_/, ""))
      }
      if (loaded.entries.length > 0) yield* Effect.logInfo(`ledger: ${loaded.entries.length} unacknowledged entries restored (through seq ${loaded.seq})`)
    }
    const bounded = <K>(keys: { readonly size: number; keys(): IterableIterator<K>; delete(key: K): boolean }) => {
      for (const key of keys.keys()) {
        if (keys.size <= capacity) break
        keys.delete(key)
      }
    }
    // Appends are serialised so seqs stay in file order; a failed write is a defect of the request
    // (it answers 500 and nothing counts: no 402 without its invoice record, no proxy without its settlement).
    const appends = yield* Effect.makeSemaphore(1)
    const journal = (entry: { readonly invoice: InvoiceLifecycle } | { readonly settlement: Settlement }) =>
      appends.withPermits(1)(Effect.suspend(() => {
        const record = { seq: ledger.seq + 1, ...entry } as LedgerEntry
        return (options.ledgerStore === undefined ? Effect.void : Effect.orDie(options.ledgerStore.append(record))).pipe(Effect.as(record))
      }).pipe(Effect.flatMap((record) => Effect.suspend(() => {
        ledger.seq = record.seq
        ledger.entries.push(record)
        if ("settlement" in record) ledger.settlements++
        const excess = ledger.entries.length - capacity
        if (excess <= 0) return Effect.void
        // Only invoice entries give way, oldest first, never the one just written: a settlement is
        // a sale control may not have yet. In place (usually one entry, near the front): this runs
        // on every unpaid 402 while the journal is full.
        let dropped = 0
        for (let i = 0; dropped < excess && i < ledger.entries.length - 1;) {
          if ("invoice" in ledger.entries[i]!) {
            ledger.entries.splice(i, 1)
            dropped++
          } else i++
        }
        if (dropped === 0) return Effect.void
        const before = ledger.dropped
        ledger.dropped += dropped
        // Warn on the first drop and then once per 1,000, not on every request (the metric counts each).
        const warn = before === 0 || Math.floor(before / 1000) !== Math.floor(ledger.dropped / 1000)
        return Effect.zipRight(
          Metric.incrementBy(ledgerDropped, dropped),
          warn ? Effect.logWarning(`ledger full: ${ledger.dropped} unacknowledged invoice entries dropped so far (is lightning-ops ingesting?)`) : Effect.void
        )
      }))))
    // Settlements alone fill the journal: sell nothing more (no invoice is made) until they are ingested.
    const ledgerFull = Effect.suspend(() =>
      ledger.settlements < capacity
        ? Effect.succeed(undefined)
        : Effect.as(
          Effect.zipRight(
            Metric.increment(ledgerFullRefusals),
            // The first refusal and then one per 1,000 are logged (the metric counts each).
            ledger.refused++ % 1000 === 0
              ? Effect.logWarning(`ledger full of ${ledger.settlements} unacknowledged settlements: refusing new challenges (503) until lightning-ops ingests them (${ledger.refused} refused so far)`)
              : Effect.void
          ),
          HttpServerResponse.text("ledger full\n", { status: 503, headers: { "retry-after": "30" } })
        )
    )
    const invoiceIssued = (route: CompiledRoute) => (issued: L402Middleware.IssuedInvoice) =>
      Effect.suspend(() => {
        const invoice: InvoiceLifecycle = {
          invoiceId: `inv_${issued.paymentHash}`,
          paywallId: route.paywallId,
          ownerId: route.ownerId,
          amountMsats: Number(issued.amountMsats),
          status: "open",
          paymentHash: issued.paymentHash,
          paymentRequest: issued.paymentRequest
        }
        // Remember what the invoice was for: its settlement names the same paywall and amount
        // even after a redeploy changed the route.
        ledger.issued.set(issued.paymentHash, invoice)
        bounded(ledger.issued)
        return journal({ invoice })
      })
    const credentialAccepted = (route: CompiledRoute) => (token: L402.VerifiedToken) =>
      Effect.suspend(() => {
        const hash = token.identifier.paymentHash
        if (ledger.settled.has(hash)) return Effect.void
        const invoice = ledger.issued.get(hash)
        return Effect.zipLeft(journal({
          settlement: {
            settlementId: `set_${hash}`,
            invoiceId: `inv_${hash}`,
            paywallId: invoice?.paywallId ?? route.paywallId,
            ownerId: invoice?.ownerId ?? route.ownerId,
            amountMsats: invoice?.amountMsats ?? route.priceMsats,
            paymentProofType: "lightning_preimage",
            paymentProofValue: token.preimageHex
          }
        }), Effect.sync(() => {
          // Only once recorded: a failed write lets the next use of the credential record it.
          ledger.settled.add(hash)
          bounded(ledger.settled)
        }))
      })

    const authorized = (request: HttpServerRequest.HttpServerRequest) => {
      const m = /^Bearer\s+(.+)$/i.exec((request.headers["authorization"] ?? "").trim())
      const given = utf8(m?.[1] ?? "")
      const expected = utf8(Redacted.value(options.opsToken))
      return given.length === expected.length && equalBytes(given, expected)
    }
    const ops = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        authorized(request) ? handler : Effect.succeed(HttpServerResponse.unsafeJson({ ok: false, error: "unauthorized" }, { status: 401 })))

    const publicDeployment = (d: ActiveDeployment | undefined) =>
      d === undefined ? null : { deploymentId: d.deploymentId, configHash: d.configHash, imageDigest: d.imageDigest, appliedAtMs: d.appliedAtMs }
    const withTable = (d: ActiveDeployment | undefined) => d === undefined ? null : { ...publicDeployment(d), apertureYaml: d.apertureYaml, routes: d.routes }

    const proxy = (route: CompiledRoute) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const incoming = new URL(request.url, "http://gateway")
        const upstream = new URL(route.upstream.url)
        const prefix = upstream.pathname.replace(/\/+$/, "")
        const target = `${upstream.origin}${prefix}${incoming.pathname}${incoming.search}`
        const headers: Record<string, string> = {}
        for (const [k, v] of Object.entries(request.headers)) if (!HOP_BY_HOP.has(k)) headers[k] = v
        headers["x-oa-paywall-id"] = route.paywallId
        headers["x-oa-route-id"] = route.routeId
        headers["x-forwarded-host"] = request.headers["host"] ?? ""
        const body = request.method === "GET" || request.method === "HEAD" ? undefined : yield* Effect.orElseSucceed(request.arrayBuffer, () => new ArrayBuffer(0))
        let out = HttpClientRequest.make(request.method as "GET")(target).pipe(HttpClientRequest.setHeaders(headers))
        if (body !== undefined) out = HttpClientRequest.bodyUint8Array(out, new Uint8Array(body), request.headers["content-type"])
        const response = yield* http.execute(out).pipe(Effect.timeout(Duration.millis(route.upstream.timeoutMs)))
        const bytes = yield* response.arrayBuffer
        yield* Metric.increment(proxied)
        const responseHeaders: Record<string, string> = {}
        for (const [k, v] of Object.entries(response.headers)) if (!HOP_BY_HOP.has(k) && k !== "content-type") responseHeaders[k] = v
        return HttpServerResponse.uint8Array(new Uint8Array(bytes), {
          status: response.status,
          headers: responseHeaders,
          ...(response.headers["content-type"] !== undefined ? { contentType: response.headers["content-type"] } : {})
        })
      }).pipe(
        Effect.catchAll((e) =>
          Effect.as(
            Effect.logWarning(`upstream of ${route.id} failed: ${e instanceof Error ? e.message : String(e)}`),
            HttpServerResponse.text("upstream unavailable\n", { status: e._tag === "TimeoutException" ? 504 : 502 })
          )
        )
      )

    const paid = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const { current } = yield* Ref.get(state)
      const path = new URL(request.url, "http://gateway").pathname
      const route = current === undefined ? undefined : Compiler.match(current.routes, request.headers["host"] ?? "", path)
      if (route === undefined) return HttpServerResponse.text("no such route\n", { status: 404 })
      return yield* L402Middleware.paywall({
        service: route.service,
        priceMsats: BigInt(route.priceMsats),
        timeoutSeconds: options.tokenValiditySeconds ?? 86_400,
        onInvoice: invoiceIssued(route),
        onAccepted: credentialAccepted(route),
        beforeChallenge: ledgerFull
      })(proxy(route))
    })

    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/ops/deployment", ops(Effect.map(Ref.get(state), (s) => HttpServerResponse.unsafeJson({ deployment: withTable(s.current) })))),
      HttpRouter.post(
        "/ops/deploy",
        ops(Effect.gen(function*() {
          const request = yield* HttpServerRequest.HttpServerRequest
          const body = yield* Effect.either(Effect.flatMap(request.json, Schema.decodeUnknown(DeployRequest)))
          if (body._tag === "Left") return HttpServerResponse.unsafeJson({ ok: false, error: "invalid_request" }, { status: 400 })
          const d = body.right
          if (configHashOf(d.apertureYaml, d.routes) !== d.configHash) {
            return HttpServerResponse.unsafeJson({ ok: false, error: "config_hash_mismatch" }, { status: 400 })
          }
          const badPattern = d.routes.find((r) => {
            try {
              new RegExp(r.hostRegexp)
              new RegExp(r.pathRegexp)
              return false
            } catch {
              return true
            }
          })
          if (badPattern !== undefined) return HttpServerResponse.unsafeJson({ ok: false, error: "invalid_route_pattern" }, { status: 400 })
          const deployment: ActiveDeployment = {
            deploymentId: d.deploymentId,
            configHash: d.configHash,
            ...(options.imageDigest !== undefined ? { imageDigest: options.imageDigest } : {}),
            appliedAtMs: Date.now(),
            apertureYaml: d.apertureYaml,
            routes: d.routes
          }
          yield* transition((s) => [undefined, { current: deployment, history: s.current === undefined ? s.history : [...s.history, s.current].slice(-HISTORY_LIMIT) }])
          yield* Effect.logInfo(`deployed ${d.deploymentId} (${d.configHash}, ${d.routes.length} routes)`)
          return HttpServerResponse.unsafeJson({ ok: true, deployment: publicDeployment(deployment) })
        }).pipe(Effect.catchIf((e): e is Error => e instanceof Error, persistFailed)))
      ),
      HttpRouter.post(
        "/ops/rollback",
        ops(Effect.gen(function*() {
          // An operator may roll back by hand with no body (to whatever came before).
          const text = yield* Effect.orElseSucceed((yield* HttpServerRequest.HttpServerRequest).text, () => "")
          const body = text.trim() === ""
            ? { _tag: "Right" as const, right: { deploymentId: undefined } }
            : yield* Effect.either(Schema.decodeUnknown(Schema.parseJson(RollbackRequest))(text))
          if (body._tag === "Left") return HttpServerResponse.unsafeJson({ ok: false, error: "invalid_request" }, { status: 400 })
          const target = body.right.deploymentId
          const rolled = yield* transition((s): readonly [ActiveDeployment | "nothing_to_roll_back" | "rollback_target_mismatch", GatewayState | undefined] => {
            const previous = s.history.at(-1)
            if (previous === undefined) return ["nothing_to_roll_back", undefined] as const
            // The caller decided what may be served again from what it knew of that deployment.
            if (target !== undefined && previous.deploymentId !== target) return ["rollback_target_mismatch", undefined] as const
            return [previous, { current: previous, history: s.history.slice(0, -1) }] as const
          })
          if (typeof rolled === "string") return HttpServerResponse.unsafeJson({ ok: false, error: rolled }, { status: 409 })
          yield* Effect.logInfo(`rolled back to ${rolled.deploymentId}`)
          return HttpServerResponse.unsafeJson({ ok: true, deployment: publicDeployment(rolled) })
        }).pipe(Effect.catchIf((e): e is Error => e instanceof Error, persistFailed)))
      )
    )

    const ledgerRoutes = HttpRouter.empty.pipe(
      HttpRouter.get(
        "/ops/ledger",
        ops(Effect.gen(function*() {
          const params = new URL((yield* HttpServerRequest.HttpServerRequest).url, "http://gateway").searchParams
          const after = Number(params.get("after") ?? "0")
          const limit = Math.min(Math.max(Number(params.get("limit") ?? "100"), 1), 1_000)
          if (!Number.isSafeInteger(after) || !Number.isSafeInteger(limit)) return HttpServerResponse.unsafeJson({ ok: false, error: "invalid_request" }, { status: 400 })
          const entries = ledger.entries.filter((e) => e.seq > after).slice(0, limit)
          return HttpServerResponse.unsafeJson({ entries, next: entries.at(-1)?.seq ?? Math.max(after, 0) } satisfies LedgerPage)
        }))
      ),
      HttpRouter.post(
        "/ops/ledger/ack",
        ops(Effect.gen(function*() {
          const body = yield* Effect.either(Effect.flatMap((yield* HttpServerRequest.HttpServerRequest).json, Schema.decodeUnknown(Schema.Struct({ through: Schema.Number }))))
          if (body._tag === "Left") return HttpServerResponse.unsafeJson({ ok: false, error: "invalid_request" }, { status: 400 })
          const through = body.right.through
          if (options.ledgerStore !== undefined) {
            const stored = yield* Effect.either(options.ledgerStore.ack(through))
            if (stored._tag === "Left") {
              yield* Effect.logError(`ledger ack not stored: ${stored.left.message}`)
              return HttpServerResponse.unsafeJson({ ok: false, error: "persist_failed" }, { status: 500 })
            }
          }
          ledger.entries = ledger.entries.filter((e) => e.seq > through)
          countSettlements()
          return HttpServerResponse.unsafeJson({ ok: true })
        }))
      )
    )

    return {
      /** The ops API and the paid routes (mount /healthz and /metrics beside it). */
      router: HttpRouter.concat(HttpRouter.concat(router, ledgerRoutes), HttpRouter.empty.pipe(HttpRouter.all("*", paid))),
      /** The unacknowledged ledger entries, in order. */
      ledger: Effect.sync((): ReadonlyArray<LedgerEntry> => [...ledger.entries]),
      current: Effect.map(Ref.get(state), (s) => s.current)
    }
  })
