// The reference L402 gateway: what Aperture does for the routes lightning-ops compiles, in
// process, plus the gateway operations API the reconciler drives (the upstream had only the
// client of this API: UPSTREAM_SPEC §4.1).
//
//   GET  /ops/deployment  {deployment: {deploymentId, configHash, imageDigest, appliedAtMs} | null}
//   POST /ops/deploy      {requestId, deploymentId, configHash, apertureYaml, routes} → {ok, deployment}
//   POST /ops/rollback    {requestId} → {ok, deployment}   (409 when there is nothing to roll back to)
//   anything else         the first compiled route matching Host and path: L402 paywall (price and
//                         service from the route), then proxied to the route's upstream; 404 if none.
//
// The ops routes require `Authorization: Bearer <ops token>`. A deploy is accepted only when its
// configHash is the hash of its YAML and route table (what the compiler produced), so a gateway
// never serves a table other than the one the intent names. Deployments live in memory: a
// restarted gateway serves nothing until the reconciler deploys again (it sees `deployment: null`).
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { canonicalJson } from "@openagents/proto/canonical-json"
import { sha256 } from "@noble/hashes/sha2"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { CompiledRoute } from "./Compiler.js"
import * as Compiler from "./Compiler.js"
import { equalBytes, toHex, utf8 } from "./internal/bytes.js"
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

/** The configHash the compiler gives a YAML and route table. */
export const configHashOf = (apertureYaml: string, routes: ReadonlyArray<CompiledRoute>): string =>
  `cfg_${toHex(sha256(utf8(`${apertureYaml}\n${canonicalJson(routes)}`)))}`

export interface GatewayOptions {
  readonly opsToken: Redacted.Redacted<string>
  /** Reported as the deployment's imageDigest (what is running). */
  readonly imageDigest?: string
  /** Token validity for minted L402 tokens (seconds; default 86400). */
  readonly tokenValiditySeconds?: number
}

const proxied = Metric.counter("l402_gateway_proxied_total", { description: "Paid requests proxied upstream" })

// Hop-by-hop headers are not forwarded (RFC 9110 §7.6.1), nor the client's idea of the host.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"])

export const make = (options: GatewayOptions) =>
  Effect.gen(function*() {
    const state = yield* Ref.make<{ readonly current: ActiveDeployment | undefined; readonly history: ReadonlyArray<ActiveDeployment> }>({ current: undefined, history: [] })
    const http = yield* HttpClient.HttpClient

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
        timeoutSeconds: options.tokenValiditySeconds ?? 86_400
      })(proxy(route))
    })

    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/ops/deployment", ops(Effect.map(Ref.get(state), (s) => HttpServerResponse.unsafeJson({ deployment: publicDeployment(s.current) })))),
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
          yield* Ref.update(state, (s) => ({ current: deployment, history: s.current === undefined ? s.history : [...s.history, s.current] }))
          yield* Effect.logInfo(`deployed ${d.deploymentId} (${d.configHash}, ${d.routes.length} routes)`)
          return HttpServerResponse.unsafeJson({ ok: true, deployment: publicDeployment(deployment) })
        }))
      ),
      HttpRouter.post(
        "/ops/rollback",
        ops(Effect.gen(function*() {
          const rolled = yield* Ref.modify(state, (s) => {
            const previous = s.history.at(-1)
            return previous === undefined ? [undefined, s] as const : [previous, { current: previous, history: s.history.slice(0, -1) }] as const
          })
          if (rolled === undefined) return HttpServerResponse.unsafeJson({ ok: false, error: "nothing_to_roll_back" }, { status: 409 })
          yield* Effect.logInfo(`rolled back to ${rolled.deploymentId}`)
          return HttpServerResponse.unsafeJson({ ok: true, deployment: publicDeployment(rolled) })
        }))
      )
    )

    return {
      /** The ops API and the paid routes (mount /healthz and /metrics beside it). */
      router: HttpRouter.concat(router, HttpRouter.empty.pipe(HttpRouter.all("*", paid))),
      current: Effect.map(Ref.get(state), (s) => s.current)
    }
  })
