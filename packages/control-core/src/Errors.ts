// The typed errors of the control plane. Each has a stable snake_case `code` from the closed
// vocabulary of `openagents.control.v1.ControlErrorCode` and an HTTP status; on the wire every
// one is the control error envelope
//
//   {"error": {"code", "message", "details"?}, "message", "errors"?}
//
// (`errors` maps field names to messages for validation failures, as Laravel clients expect).
// `wire(Error)` is the HttpApi schema of an error class: it encodes an instance into the envelope
// with the class's status, and decodes an envelope with that code back into an instance, so a
// typed HttpApiClient gets the class back.
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Data from "effect/Data"
import * as Schema from "effect/Schema"

export interface ErrorFields {
  readonly message: string
  readonly details?: Readonly<Record<string, unknown>>
  /** Field name -> messages, for validation failures. */
  readonly errors?: Readonly<Record<string, ReadonlyArray<string>>>
}

export class Unauthorized extends Data.TaggedError("Unauthorized")<ErrorFields> {
  readonly code = "unauthorized" as const
  static readonly code = "unauthorized"
  static readonly status = 401
}

/** The session was revoked or expired: sign in again. */
export class ReauthRequired extends Data.TaggedError("ReauthRequired")<ErrorFields> {
  readonly code = "reauth_required" as const
  static readonly code = "reauth_required"
  static readonly status = 401
}

export class Forbidden extends Data.TaggedError("Forbidden")<ErrorFields> {
  readonly code = "forbidden" as const
  static readonly code = "forbidden"
  static readonly status = 403
}

export class NotFound extends Data.TaggedError("NotFound")<ErrorFields> {
  readonly code = "not_found" as const
  static readonly code = "not_found"
  static readonly status = 404
}

export class Conflict extends Data.TaggedError("Conflict")<ErrorFields> {
  readonly code = "conflict" as const
  static readonly code = "conflict"
  static readonly status = 409
}

export class InvalidRequest extends Data.TaggedError("InvalidRequest")<ErrorFields> {
  readonly code = "invalid_request" as const
  static readonly code = "invalid_request"
  static readonly status = 422
}

export class InvalidScope extends Data.TaggedError("InvalidScope")<ErrorFields> {
  readonly code = "invalid_scope" as const
  static readonly code = "invalid_scope"
  static readonly status = 422
}

/** Answered with 429 and `Retry-After: retryAfterSeconds`. */
export class RateLimited extends Data.TaggedError("RateLimited")<ErrorFields & { readonly retryAfterSeconds: number }> {
  readonly code = "rate_limited" as const
  static readonly code = "rate_limited"
  static readonly status = 429
}

export class SyncTokenUnavailable extends Data.TaggedError("SyncTokenUnavailable")<ErrorFields> {
  readonly code = "sync_token_unavailable" as const
  static readonly code = "sync_token_unavailable"
  static readonly status = 503
}

/** The identity provider or the runtime could not be reached. */
export class ServiceUnavailable extends Data.TaggedError("ServiceUnavailable")<ErrorFields> {
  readonly code = "service_unavailable" as const
  static readonly code = "service_unavailable"
  static readonly status = 503
}

export class InternalError extends Data.TaggedError("InternalError")<ErrorFields> {
  readonly code = "internal_error" as const
  static readonly code = "internal_error"
  static readonly status = 500
}

/** Control storage failed (a database error). Surfaces as internal_error; the call had no effect. */
export class StorageError extends Data.TaggedError("StorageError")<{ readonly operation: string; readonly cause: unknown }> {
  readonly code = "storage_unavailable" as const
  override get message() {
    return `control storage failed during ${this.operation}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

export type ApiError =
  | Unauthorized
  | ReauthRequired
  | Forbidden
  | NotFound
  | Conflict
  | InvalidRequest
  | InvalidScope
  | RateLimited
  | SyncTokenUnavailable
  | ServiceUnavailable
  | InternalError

// ---------------------------------------------------------------------------------------------
// Wire

const Details = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const FieldErrors = Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) })

export const envelopeSchema = <C extends string>(code: C) =>
  Schema.Struct({
    error: Schema.Struct({
      code: Schema.Literal(code),
      message: Schema.String,
      details: Schema.optionalWith(Details, { exact: true })
    }),
    message: Schema.optionalWith(Schema.String, { exact: true }),
    errors: Schema.optionalWith(FieldErrors, { exact: true })
  })

export interface Envelope {
  readonly error: { readonly code: string; readonly message: string; readonly details?: Readonly<Record<string, unknown>> }
  readonly message?: string
  readonly errors?: Readonly<Record<string, ReadonlyArray<string>>>
}

/** The envelope of an error (what goes on the wire). */
export const envelope = (code: string, fields: ErrorFields): Envelope => ({
  error: { code, message: fields.message, ...(fields.details !== undefined ? { details: fields.details } : {}) },
  message: fields.message,
  ...(fields.errors !== undefined ? { errors: fields.errors } : {})
})

type ErrorClass<A extends ErrorFields> = (new(args: any) => A) & { readonly code: string; readonly status: number }

/** The HttpApi schema of an error class: the envelope on the wire, the instance in code. */
export const wire = <A extends ErrorFields>(cls: ErrorClass<A>, description?: string) =>
  Schema.transform(envelopeSchema(cls.code), Schema.instanceOf(cls), {
    strict: false,
    decode: (e) =>
      new cls({
        message: e.error.message,
        ...(e.error.details !== undefined ? { details: e.error.details } : {}),
        ...(e.errors !== undefined ? { errors: e.errors } : {}),
        ...(cls === (RateLimited as unknown) ? { retryAfterSeconds: Number(e.error.details?.["retry_after_seconds"] ?? 0) } : {})
      }),
    encode: (a) => envelope(cls.code, a) as any
  }).annotations(HttpApiSchema.annotations({ status: cls.status, description: description ?? `${cls.code}` }))

export const UnauthorizedWire = wire(Unauthorized, "missing, invalid or expired credentials")
export const ReauthRequiredWire = wire(ReauthRequired, "the session was revoked or expired; sign in again")
export const ForbiddenWire = wire(Forbidden, "the caller may not act on this resource")
export const NotFoundWire = wire(NotFound, "no such resource")
export const ConflictWire = wire(Conflict, "the resource is in a state that does not allow this")
export const InvalidRequestWire = wire(InvalidRequest, "validation failed; `errors` names the fields")
export const InvalidScopeWire = wire(InvalidScope, "requested sync scopes or topics are not allowed")
export const RateLimitedWire = wire(RateLimited, "too many requests; retry after the Retry-After header")
export const SyncTokenUnavailableWire = wire(SyncTokenUnavailable, "sync token minting is disabled or misconfigured")
export const ServiceUnavailableWire = wire(ServiceUnavailable, "a dependency (identity provider, runtime) is unavailable")
export const InternalErrorWire = wire(InternalError, "internal error")
