// The runtime's errors, with the stable codes of its HTTP error envelope
// {"error":{"code","message","details?"}} (UPSTREAM_SPEC §2.5) and their HTTP status.
import * as Data from "effect/Data"

export type Code = "invalid_request" | "unauthorized" | "forbidden" | "not_found" | "conflict" | "stale_cursor" | "internal_error"

export const STATUS: Record<Code, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  stale_cursor: 410,
  internal_error: 500
}

export class RuntimeError extends Data.TaggedError("RuntimeError")<{
  readonly code: Code
  readonly message: string
  readonly details?: Record<string, unknown>
}> {
  get status() {
    return STATUS[this.code]
  }
}

export const invalid = (message: string, details?: Record<string, unknown>) =>
  new RuntimeError(details === undefined ? { code: "invalid_request", message } : { code: "invalid_request", message, details })
export const forbidden = (message: string) => new RuntimeError({ code: "forbidden", message })
export const notFound = (message: string) => new RuntimeError({ code: "not_found", message })
export const conflict = (message: string, details?: Record<string, unknown>) =>
  new RuntimeError(details === undefined ? { code: "conflict", message } : { code: "conflict", message, details })
export const internal = (message: string) => new RuntimeError({ code: "internal_error", message })

const ID = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/
const EVENT_TYPE = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/

export const checkId = (field: string, value: unknown): string | RuntimeError =>
  typeof value === "string" && ID.test(value) ? value : invalid(`${field} must be 1..128 characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit`, { field })

export const checkEventType = (value: unknown, prefix?: string): string | RuntimeError =>
  typeof value === "string" && value.length <= 120 && EVENT_TYPE.test(value) && (prefix === undefined || value.startsWith(prefix))
    ? value
    : invalid(`event type must be dotted lower-case words${prefix ? ` starting with ${JSON.stringify(prefix)}` : ""} (at most 120 characters)`, { field: "type" })
