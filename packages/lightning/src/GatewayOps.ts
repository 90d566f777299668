// The gateway as the reconciler drives it: its operations API (active deployment, deploy,
// rollback, the ledger of invoices and settlements lightning-ops ingests into control) and the probes that prove a deployment works (health, a 402 challenge, a paid request
// proxied upstream). `layerHttp` speaks to the reference gateway's /ops API (Gateway.ts) or any
// gateway implementing it.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { CompiledRoute } from "./Compiler.js"
import type { Deployment, DeploymentWithTable, LedgerPage } from "./Gateway.js"
import { Deployment as DeploymentSchema, DeploymentWithTable as DeploymentWithTableSchema, LedgerPage as LedgerPageSchema } from "./Gateway.js"

export class GatewayOpsError extends Data.TaggedError("GatewayOpsError")<{ readonly operation: string; readonly message: string; readonly status?: number | undefined }> {}

export interface ProbeResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
}

export interface GatewayOpsService {
  /** The active deployment, with the table it serves when the gateway reports it. */
  readonly activeDeployment: Effect.Effect<DeploymentWithTable | null, GatewayOpsError>
  readonly deploy: (request: {
    readonly requestId: string
    readonly deploymentId: string
    readonly configHash: string
    readonly apertureYaml: string
    readonly routes: ReadonlyArray<CompiledRoute>
  }) => Effect.Effect<Deployment, GatewayOpsError>
  /** Serve the previous deployment again; refused unless it is `deploymentId`. */
  readonly rollback: (request: { readonly requestId: string; readonly deploymentId: string }) => Effect.Effect<Deployment, GatewayOpsError>
  /** The gateway's ledger entries after `after` (invoices issued, settlements), in order. */
  readonly readLedger: (after: number, limit?: number) => Effect.Effect<LedgerPage, GatewayOpsError>
  /** Drop the ledger entries up to `through` (control has them). */
  readonly ackLedger: (through: number) => Effect.Effect<void, GatewayOpsError>
  /** GET a URL (absolute, or a path on the gateway) with optional headers; any status. */
  readonly probe: (urlOrPath: string, headers?: Readonly<Record<string, string>>) => Effect.Effect<ProbeResponse, GatewayOpsError>
}

export class GatewayOps extends Context.Tag("@openagents/lightning/GatewayOps")<GatewayOps, GatewayOpsService>() {}

export interface HttpGatewayOpsConfig {
  readonly baseUrl: string
  readonly opsToken: Redacted.Redacted<string>
  /** Per-call timeout (default 10 s). */
  readonly timeoutMs?: number
}

export const makeHttp = (config: HttpGatewayOpsConfig) =>
  Effect.map(HttpClient.HttpClient, (http): GatewayOpsService => {
    const base = config.baseUrl.replace(/\/+$/, "")
    const timeout = Duration.millis(config.timeoutMs ?? 10_000)
    const withTimeout = <A, E>(operation: string, effect: Effect.Effect<A, E>): Effect.Effect<A, GatewayOpsError> =>
      effect.pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new GatewayOpsError({ operation, message: "timed out" }) }),
        Effect.mapError((e) => e instanceof GatewayOpsError ? e : new GatewayOpsError({ operation, message: e instanceof Error ? e.message : String(e) }))
      )
    const ops = <A, I>(operation: string, request: HttpClientRequest.HttpClientRequest, schema: Schema.Schema<A, I>) =>
      withTimeout(
        operation,
        http.execute(request.pipe(HttpClientRequest.prependUrl(base), HttpClientRequest.bearerToken(Redacted.value(config.opsToken)))).pipe(
          Effect.flatMap((response) =>
            Effect.flatMap(response.json, (body) =>
              response.status >= 300
                ? Effect.fail(new GatewayOpsError({ operation, message: `HTTP ${response.status}: ${JSON.stringify(body).slice(0, 200)}`, status: response.status }))
                : Schema.decodeUnknown(schema)(body) as Effect.Effect<A, unknown>)
          )
        )
      )
    return {
      activeDeployment: ops("active_lookup", HttpClientRequest.get("/ops/deployment"), Schema.Struct({ deployment: Schema.NullOr(DeploymentWithTableSchema) })).pipe(
        Effect.map((r) => r.deployment)
      ),
      deploy: (request) =>
        ops("deploy", HttpClientRequest.post("/ops/deploy").pipe(HttpClientRequest.bodyUnsafeJson(request)), Schema.Struct({ deployment: DeploymentSchema })).pipe(
          Effect.map((r) => r.deployment)
        ),
      rollback: (request) =>
        ops("rollback", HttpClientRequest.post("/ops/rollback").pipe(HttpClientRequest.bodyUnsafeJson(request)), Schema.Struct({ deployment: DeploymentSchema })).pipe(
          Effect.map((r) => r.deployment)
        ),
      readLedger: (after, limit = 100) => ops("ledger", HttpClientRequest.get("/ops/ledger", { urlParams: { after: String(after), limit: String(limit) } }), LedgerPageSchema),
      ackLedger: (through) =>
        ops("ledger_ack", HttpClientRequest.post("/ops/ledger/ack").pipe(HttpClientRequest.bodyUnsafeJson({ through })), Schema.Struct({ ok: Schema.Literal(true) })).pipe(Effect.asVoid),
      probe: (urlOrPath, headers = {}) =>
        withTimeout(
          "probe",
          http.execute(HttpClientRequest.get(/^https?:\/\//.test(urlOrPath) ? urlOrPath : `${base}${urlOrPath}`).pipe(HttpClientRequest.setHeaders(headers))).pipe(
            Effect.tap((response) => Effect.ignore(response.arrayBuffer)),
            Effect.map((response) => ({ status: response.status, headers: response.headers }))
          )
        )
    }
  })

export const layerHttp = (config: HttpGatewayOpsConfig): Layer.Layer<GatewayOps, never, HttpClient.HttpClient> => Layer.effect(GatewayOps, makeHttp(config))
