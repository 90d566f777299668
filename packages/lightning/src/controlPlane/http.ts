// The control plane over the upstream internal JSON API (UPSTREAM_SPEC §3.4):
//
//   POST {base}/api/internal/lightning-ops/control-plane/query     {functionName, args}
//   POST {base}/api/internal/lightning-ops/control-plane/mutation  {functionName, args}
//
// authenticated by `args.secret` (compared in constant time by the server). Errors: 500
// ops_secret_unconfigured, 401 invalid_ops_secret, 404 unsupported_function, 422 invalid_arguments,
// 409 conflict, 503 control_plane_unavailable; any other answer is bad_response.
// `layer` is the client; `router` serves any ControlPlaneService on the same wire (a development
// stand-in for control, and the test double of the client).
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { ControlPlaneErrorCode, ControlPlaneService, DeploymentIntent, GatewayEvent, InvoiceLifecycle, PaywallStatus, Settlement } from "../ControlPlane.js"
import { ControlPlane, ControlPlaneError, Paywall, SecurityState } from "../ControlPlane.js"
import { equalBytes, utf8 } from "../internal/bytes.js"

export const QUERY_PATH = "/api/internal/lightning-ops/control-plane/query"
export const MUTATION_PATH = "/api/internal/lightning-ops/control-plane/mutation"

export const FUNCTIONS = {
  listPaywalls: "lightning/ops:listPaywallControlPlaneState",
  securityState: "lightning/security:getControlPlaneSecurityState",
  recordIntent: "lightning/ops:recordGatewayCompileIntent",
  recordEvent: "lightning/ops:recordGatewayDeploymentEvent",
  ingestInvoice: "lightning/settlements:ingestInvoiceLifecycle",
  ingestSettlement: "lightning/settlements:ingestSettlement"
} as const

export interface HttpControlPlaneConfig {
  readonly baseUrl: string
  readonly secret: Redacted.Redacted<string>
}

const codes: ReadonlyArray<ControlPlaneErrorCode> = ["ops_secret_unconfigured", "invalid_ops_secret", "unsupported_function", "invalid_arguments", "conflict", "control_plane_unavailable"]

export const make = (config: HttpControlPlaneConfig): Effect.Effect<ControlPlaneService, never, HttpClient.HttpClient> =>
  Effect.map(HttpClient.HttpClient, (http) => {
    const base = config.baseUrl.replace(/\/+$/, "")
    const call = <A, I>(kind: "query" | "mutation", functionName: string, args: Record<string, unknown>, schema: Schema.Schema<A, I>) =>
      http.execute(
        HttpClientRequest.post(`${base}${kind === "query" ? QUERY_PATH : MUTATION_PATH}`).pipe(
          HttpClientRequest.bodyUnsafeJson({ functionName, args: { ...args, secret: Redacted.value(config.secret) } })
        )
      ).pipe(
        Effect.flatMap((response) => Effect.map(response.json, (body) => ({ status: response.status, body: body as Record<string, unknown> }))),
        Effect.mapError((e) => new ControlPlaneError({ code: "control_plane_unavailable", message: e.message, functionName })),
        Effect.flatMap(({ body, status }) => {
          if (status >= 300 || body["ok"] === false) {
            const error = (body["error"] ?? {}) as { code?: string; message?: string }
            const code = typeof body["error"] === "string" ? body["error"] : error.code
            return Effect.fail(new ControlPlaneError({
              code: codes.includes(code as ControlPlaneErrorCode) ? code as ControlPlaneErrorCode : status >= 500 ? "control_plane_unavailable" : "bad_response",
              message: error.message ?? (typeof body["message"] === "string" ? body["message"] : `HTTP ${status}`),
              functionName
            }))
          }
          return Schema.decodeUnknown(schema)(body).pipe(
            Effect.mapError((e) => new ControlPlaneError({ code: "bad_response", message: e.message, functionName }))
          )
        })
      )

    const Any = Schema.Record({ key: Schema.String, value: Schema.Unknown })
    return {
      listPaywallsForCompile: (statuses?: ReadonlyArray<PaywallStatus>) =>
        call("query", FUNCTIONS.listPaywalls, statuses === undefined ? {} : { statuses }, Schema.Struct({ paywalls: Schema.Array(Paywall) })).pipe(
          Effect.map((r) => r.paywalls)
        ),
      getSecurityState: call("query", FUNCTIONS.securityState, {}, SecurityState),
      recordDeploymentIntent: (intent: DeploymentIntent) =>
        call("mutation", FUNCTIONS.recordIntent, { ...intent }, Schema.Struct({ deployment: Any })).pipe(Effect.map((r) => r.deployment as unknown as DeploymentIntent)),
      recordGatewayEvent: (event: GatewayEvent) =>
        call("mutation", FUNCTIONS.recordEvent, { ...event }, Schema.Struct({ event: Any })).pipe(
          Effect.map((r) => r.event as unknown as GatewayEvent & { eventId: string })
        ),
      ingestInvoiceLifecycle: (invoice: InvoiceLifecycle) =>
        call("mutation", FUNCTIONS.ingestInvoice, { ...invoice }, Schema.Struct({ changed: Schema.Boolean, invoice: Any })).pipe(
          Effect.map((r) => ({ changed: r.changed, invoice: r.invoice as unknown as InvoiceLifecycle }))
        ),
      ingestSettlement: (settlement: Settlement) =>
        call("mutation", FUNCTIONS.ingestSettlement, { ...settlement }, Schema.Struct({ existed: Schema.Boolean, settlement: Any })).pipe(
          Effect.map((r) => ({ existed: r.existed, paymentProofRef: String(r.settlement["paymentProofRef"] ?? "") }))
        )
    } satisfies ControlPlaneService
  })

export const layer = (config: HttpControlPlaneConfig): Layer.Layer<ControlPlane, never, HttpClient.HttpClient> => Layer.effect(ControlPlane, make(config))

// --- the same wire, served ----------------------------------------------------------------------

const STATUS: Partial<Record<ControlPlaneErrorCode, number>> = { invalid_arguments: 422, conflict: 409, control_plane_unavailable: 503 }

const errorResponse = (status: number, code: ControlPlaneErrorCode, message: string) =>
  HttpServerResponse.unsafeJson({ ok: false, error: { code, message } }, { status })

/** Serve `service` on the upstream wire; `secret` undefined answers 500 ops_secret_unconfigured. */
export const router = (service: ControlPlaneService, secret: Redacted.Redacted<string> | undefined) => {
  const handle = (kind: "query" | "mutation") =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const body = (yield* Effect.orElseSucceed(request.json, () => ({}))) as { functionName?: unknown; args?: Record<string, unknown> }
      if (secret === undefined) return errorResponse(500, "ops_secret_unconfigured", "OA_LIGHTNING_OPS_SECRET is not configured")
      const given = typeof body.args?.["secret"] === "string" ? utf8(body.args["secret"]) : new Uint8Array()
      const expected = utf8(Redacted.value(secret))
      if (given.length !== expected.length || !equalBytes(given, expected)) return errorResponse(401, "invalid_ops_secret", "invalid ops secret")
      const fn = typeof body.functionName === "string" ? body.functionName.slice(0, 180) : ""
      const { secret: _secret, ...args } = body.args ?? {}
      const run = (effect: Effect.Effect<Record<string, unknown>, ControlPlaneError>) =>
        effect.pipe(
          Effect.map((result) => HttpServerResponse.unsafeJson({ ok: true, ...result })),
          Effect.catchAll((e) => Effect.succeed(errorResponse(STATUS[e.code] ?? 500, e.code, e.message)))
        )
      const queries: Record<string, () => Effect.Effect<Record<string, unknown>, ControlPlaneError>> = {
        [FUNCTIONS.listPaywalls]: () =>
          Effect.map(service.listPaywallsForCompile(args["statuses"] as ReadonlyArray<PaywallStatus> | undefined), (paywalls) => ({ paywalls })),
        [FUNCTIONS.securityState]: () => Effect.map(service.getSecurityState, (s) => ({ ...s }))
      }
      const mutations: Record<string, () => Effect.Effect<Record<string, unknown>, ControlPlaneError>> = {
        [FUNCTIONS.recordIntent]: () => Effect.map(service.recordDeploymentIntent(args as unknown as DeploymentIntent), (deployment) => ({ deployment })),
        [FUNCTIONS.recordEvent]: () => Effect.map(service.recordGatewayEvent(args as unknown as GatewayEvent), (event) => ({ event })),
        [FUNCTIONS.ingestInvoice]: () => Effect.map(service.ingestInvoiceLifecycle(args as unknown as InvoiceLifecycle), (r) => ({ ...r })),
        [FUNCTIONS.ingestSettlement]: () =>
          Effect.map(service.ingestSettlement(args as unknown as Settlement), (r) => ({ existed: r.existed, settlement: { ...args, paymentProofRef: r.paymentProofRef } }))
      }
      const table = kind === "query" ? queries : mutations
      const f = Object.hasOwn(table, fn) ? table[fn] : undefined
      if (f === undefined) return errorResponse(404, "unsupported_function", `unsupported ${kind} ${fn}`)
      return yield* run(f())
    })
  return HttpRouter.empty.pipe(HttpRouter.post(QUERY_PATH, handle("query")), HttpRouter.post(MUTATION_PATH, handle("mutation")))
}
