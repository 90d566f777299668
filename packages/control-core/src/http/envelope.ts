// The last resort of every route: an unknown route is a 404 envelope, and a defect (a bug) is
// logged with its cause and answered with a 500 internal_error envelope, never an empty body
// or a stack trace. Typed errors never get here: the routes answer them themselves. A body that
// is not JSON at all never reaches schema decoding: it is the 422 invalid_request a body that
// does not match the schema gets, not a 500.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerError from "@effect/platform/HttpServerError"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { envelopeResponse } from "./common.js"

const lastResort = (effect: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled>) =>
  Effect.catchAllCause(effect, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some" && HttpServerError.isServerError(failure.value) && (failure.value as { _tag: string })._tag === "RouteNotFound") {
      return Effect.succeed(envelopeResponse(404, "not_found", { message: "no such route" }))
    }
    // It can arrive as a failure or as a defect, depending on where the body was read.
    const squashed = Cause.squash(cause)
    if (HttpServerError.isServerError(squashed) && squashed._tag === "RequestError" && squashed.reason === "Decode") {
      return Effect.succeed(envelopeResponse(422, "invalid_request", { message: "the request body could not be read as JSON" }))
    }
    return Effect.as(Effect.logError("unhandled failure in a control route", cause), envelopeResponse(500, "internal_error", { message: "internal error" }))
  }) as Effect.Effect<HttpServerResponse.HttpServerResponse, HttpLayerRouter.unhandled>

export const layer = HttpLayerRouter.use((router) => router.addGlobalMiddleware(lastResort))
