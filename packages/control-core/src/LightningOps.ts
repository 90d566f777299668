// The internal API lightning-ops uses, served two ways over the same operations (ControlPlane):
//
// - the typed @effect/rpc group `LightningOpsRpcs` (contract: LightningOpsRpc.ts) at RPC_PATH,
//   HTTP + ndjson, the operations secret in the `x-oa-ops-secret` header;
// - the upstream JSON route `POST /api/internal/lightning-ops/control-plane/{query|mutation}`
//   with `{functionName, args}` and the secret in `args.secret` (UPSTREAM_SPEC §3.4): 500
//   ops_secret_unconfigured, 401 invalid_ops_secret, 404 unsupported_function, 422
//   invalid_arguments (`missing_<field>` / `invalid_<field>`), 409 conflict, 503
//   control_plane_unavailable, as `{ok: false, error: {code, message, details?}}`.
//
// Both fail closed: with no operations secret configured, or one shorter than 32 characters,
// every call is refused with ops_secret_unconfigured — no request is ever let through. The
// presented secret is compared in constant time.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { ControlPlane, type ControlPlaneService } from "./ControlPlane.js"
import { safeEqual } from "./internal/crypto.js"
import {
  FUNCTION_NAMES,
  InvalidArguments,
  InvalidOpsSecret,
  LightningOpsRpcs,
  MIN_OPS_SECRET_LENGTH,
  OPS_SECRET_HEADER,
  type OperationTag,
  OpsAuthentication,
  OpsSecretUnconfigured,
  RPC_PATH
} from "./LightningOpsRpc.js"

export const JSON_ROUTE = "/api/internal/lightning-ops/control-plane/:kind"

/** The configured operations secret (OA_LIGHTNING_OPS_SECRET); undefined refuses every call. */
export class OpsSecret extends Context.Tag("@openagents/control-core/OpsSecret")<OpsSecret, Redacted.Redacted<string> | undefined>() {}

export const layerSecret = (secret: Redacted.Redacted<string> | undefined): Layer.Layer<OpsSecret> => Layer.succeed(OpsSecret, secret)

export const checkSecret = (configured: Redacted.Redacted<string> | undefined, presented: unknown): Effect.Effect<void, OpsSecretUnconfigured | InvalidOpsSecret> => {
  if (configured === undefined || Redacted.value(configured).length < MIN_OPS_SECRET_LENGTH) {
    return Effect.fail(new OpsSecretUnconfigured({ message: "the lightning-ops secret is not configured" }))
  }
  if (typeof presented !== "string" || !safeEqual(presented, Redacted.value(configured))) {
    return Effect.fail(new InvalidOpsSecret({ message: "invalid lightning-ops secret" }))
  }
  return Effect.void
}

/** The operations, by RPC tag: what both transports run. */
export const operations = (plane: ControlPlaneService): { readonly [K in OperationTag]: (payload: any) => Effect.Effect<any, any> } => ({
  listPaywallControlPlaneState: (p) => plane.listPaywallControlPlaneState(p.statuses),
  getControlPlaneSecurityState: () => plane.getControlPlaneSecurityState,
  recordGatewayCompileIntent: plane.recordGatewayCompileIntent,
  recordGatewayDeploymentEvent: plane.recordGatewayDeploymentEvent,
  ingestInvoiceLifecycle: plane.ingestInvoiceLifecycle,
  ingestSettlement: plane.ingestSettlement,
  setGlobalPause: plane.setGlobalPause,
  setOwnerKillSwitch: plane.setOwnerKillSwitch,
  rotateCredentialRole: plane.rotateCredentialRole,
  activateCredentialRole: plane.activateCredentialRole,
  revokeCredentialRole: plane.revokeCredentialRole
})

export const handlersLayer = LightningOpsRpcs.toLayer(Effect.map(ControlPlane, (plane) =>
  LightningOpsRpcs.of({
    listPaywallControlPlaneState: (p) => plane.listPaywallControlPlaneState(p.statuses),
    getControlPlaneSecurityState: () => plane.getControlPlaneSecurityState,
    recordGatewayCompileIntent: (p) => plane.recordGatewayCompileIntent(p),
    recordGatewayDeploymentEvent: (p) => plane.recordGatewayDeploymentEvent(p),
    ingestInvoiceLifecycle: (p) => plane.ingestInvoiceLifecycle(p),
    ingestSettlement: (p) => plane.ingestSettlement(p),
    setGlobalPause: (p) => plane.setGlobalPause(p),
    setOwnerKillSwitch: (p) => plane.setOwnerKillSwitch(p),
    rotateCredentialRole: (p) => plane.rotateCredentialRole(p),
    activateCredentialRole: (p) => plane.activateCredentialRole(p),
    revokeCredentialRole: (p) => plane.revokeCredentialRole(p)
  })))

export const authenticationLayer: Layer.Layer<OpsAuthentication, never, OpsSecret> = Layer.effect(
  OpsAuthentication,
  Effect.map(OpsSecret, (secret) => OpsAuthentication.of(({ headers }) => checkSecret(secret, headers[OPS_SECRET_HEADER])))
)

/** The RPC group on the HttpLayerRouter in context. */
export const rpcRoute = RpcServer.layerHttpRouter({ group: LightningOpsRpcs, path: RPC_PATH, protocol: "http" }).pipe(
  Layer.provide([handlersLayer, authenticationLayer, RpcSerialization.layerNdjson])
)

// ---------------------------------------------------------------------------------------------
// The upstream JSON route

const STATUS: Record<string, number> = {
  OpsSecretUnconfigured: 500,
  InvalidOpsSecret: 401,
  InvalidArguments: 422,
  ControlPlaneConflict: 409,
  ControlPlaneUnavailable: 503
}

const failure = (status: number, code: string, message: string, details?: Record<string, unknown>) =>
  HttpServerResponse.unsafeJson({ ok: false, error: { code, message, ...(details !== undefined ? { details } : {}) } }, { status })

const argumentsError = (error: ParseResult.ParseError): InvalidArguments => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  const field = issue?.path.map(String).join(".") || "args"
  return new InvalidArguments({ message: `${issue?._tag === "Missing" ? "missing" : "invalid"}_${field}`, field })
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

export const jsonRoute = HttpLayerRouter.add(
  "POST",
  JSON_ROUTE,
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const { kind } = yield* HttpLayerRouter.params
    const plane = yield* ControlPlane
    const secret = yield* OpsSecret
    const ops = operations(plane)
    if (kind !== "query" && kind !== "mutation") return failure(404, "unsupported_function", `unknown route ${kind}`)
    const body = yield* Effect.orElseSucceed(request.json, () => undefined)
    if (!isRecord(body)) return failure(422, "invalid_arguments", "invalid_json")
    const args = body["args"] === undefined ? {} : body["args"]
    if (!isRecord(args)) return failure(422, "invalid_arguments", "invalid_args")
    // The secret first: nothing about the functions is revealed to an unauthenticated caller.
    const auth = yield* Effect.either(checkSecret(secret, args["secret"]))
    if (auth._tag === "Left") return failure(STATUS[auth.left._tag]!, auth.left.code, auth.left.message)
    const functionName = body["functionName"]
    if (typeof functionName !== "string" || functionName.length === 0 || functionName.length > 180) {
      return failure(422, "invalid_arguments", "missing_functionName")
    }
    const tag = FUNCTION_NAMES[kind][functionName]
    if (tag === undefined) return failure(404, "unsupported_function", `unsupported ${kind} function ${functionName}`)
    const rpc = LightningOpsRpcs.requests.get(tag)!
    const { secret: _secret, ...rest } = args
    const result = yield* Schema.decodeUnknown(rpc.payloadSchema as Schema.Schema<unknown, unknown>)(rest).pipe(
      Effect.mapError(argumentsError),
      Effect.flatMap((payload) => ops[tag](payload)),
      Effect.flatMap((value) => Schema.encode(rpc.successSchema as Schema.Schema<unknown, unknown>)(value)),
      Effect.either
    )
    if (result._tag === "Right") return HttpServerResponse.unsafeJson(result.right)
    const error = result.left as { readonly _tag: string; readonly code?: string; readonly message: string; readonly field?: string; readonly id?: string }
    const status = STATUS[error._tag]
    if (status === undefined || error.code === undefined) return yield* Effect.die(error)
    return failure(status, error.code, error.message, error.field !== undefined ? { field: error.field } : error.id !== undefined ? { id: error.id } : undefined)
  })
)

/** Both transports of the lightning-ops API (needs ControlPlane and OpsSecret). */
export const routes = Layer.mergeAll(rpcRoute, jsonRoute)
