// The control plane's HTTP surface as HttpLayerRouter routes: the HttpApi (sign-in, sessions,
// sync tokens, paywalls) with its OpenAPI document at /openapi.json, the lightning-ops internal
// API (RPC and the upstream JSON route), the runtime proxy (/api/runtime/codex/workers*), and
// the last-resort error envelopes. A host serves `layer` on an HttpServer and provides the
// services (Auth, AccessTokens, SyncTokens, ControlPlane, storage, identity provider, runtime
// client, OpsSecret); ControlHost does all of that from configuration.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as Layer from "effect/Layer"
import { ControlApi } from "./Api.js"
import { AuthenticationLive, AuthHandlers, SessionsHandlers } from "./http/auth.js"
import * as Envelope from "./http/envelope.js"
import { PaywallHandlers } from "./http/paywalls.js"
import * as RuntimeProxy from "./http/runtimeProxy.js"
import { SyncHandlers } from "./http/sync.js"
import * as LightningOps from "./LightningOps.js"

export const OPENAPI_PATH = "/openapi.json"

/** The HttpApi routes and the OpenAPI document. */
export const apiRoutes = HttpLayerRouter.addHttpApi(ControlApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([AuthHandlers, SessionsHandlers, SyncHandlers, PaywallHandlers])
)

/** Every control route on the HttpLayerRouter in context. */
export const routes = Layer.mergeAll(apiRoutes, LightningOps.routes, RuntimeProxy.routes, Envelope.layer).pipe(Layer.provide(AuthenticationLive))

/**
 * Serve the control routes (plus `extraRoutes`, e.g. /healthz and /metrics) on the HttpServer in
 * context. `disableLogger` turns off the per-request log line.
 */
export const layer = <E = never, R = never>(options: {
  readonly extraRoutes?: Layer.Layer<never, E, R> | undefined
  readonly disableLogger?: boolean | undefined
} = {}) =>
  HttpLayerRouter.serve(Layer.mergeAll(routes, options.extraRoutes ?? (Layer.empty as Layer.Layer<never, E, R>)), {
    disableLogger: options.disableLogger ?? false
  })
