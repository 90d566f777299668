// The LND node as this package uses it: the subset of lnd's REST API (grpc-gateway in front of
// lnd's gRPC services) that paying, invoicing and reconciliation need (LIGHTNING.md §3), as a
// port. `LndRest` is the adapter for a real node (or the LND simulator); tests can provide their
// own.
//
// Wire conventions kept here, once: JSON uses proto field names, int64/uint64 are strings,
// `bytes` are base64 in bodies and base64url in paths (hashes in Payment are hex strings), and
// streaming calls answer one `{"result": …}` or `{"error": …}` object per line.
//
// Payment semantics the executor relies on (§3.4): one payment per payment hash — sending a hash
// that is in flight or paid fails with 409 AlreadyExists; tracking an unknown hash fails with 404
// NotFound ("payment isn't initiated"), which is the only proof that lnd never saw a payment; a
// dropped stream or a client timeout says nothing about the outcome.
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"

export const PaymentStatus = Schema.Literal("UNKNOWN", "IN_FLIGHT", "SUCCEEDED", "FAILED", "INITIATED")
export type PaymentStatus = typeof PaymentStatus.Type

export const FailureReason = Schema.Literal(
  "FAILURE_REASON_NONE",
  "FAILURE_REASON_TIMEOUT",
  "FAILURE_REASON_NO_ROUTE",
  "FAILURE_REASON_ERROR",
  "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
  "FAILURE_REASON_INSUFFICIENT_BALANCE",
  "FAILURE_REASON_CANCELED"
)
export type FailureReason = typeof FailureReason.Type

const Int64 = Schema.Union(Schema.String, Schema.Number).pipe(
  Schema.transform(Schema.String, { strict: true, decode: (v) => String(v), encode: (v) => v })
)

/** lnrpc.Payment (the fields this package reads). */
export const Payment = Schema.Struct({
  payment_hash: Schema.String,
  payment_preimage: Schema.optionalWith(Schema.String, { default: () => "" }),
  payment_request: Schema.optionalWith(Schema.String, { default: () => "" }),
  status: PaymentStatus,
  value_msat: Schema.optionalWith(Int64, { default: () => "0" }),
  fee_msat: Schema.optionalWith(Int64, { default: () => "0" }),
  creation_time_ns: Schema.optionalWith(Int64, { default: () => "0" }),
  payment_index: Schema.optionalWith(Int64, { default: () => "0" }),
  failure_reason: Schema.optionalWith(FailureReason, { default: () => "FAILURE_REASON_NONE" as const })
})
export type Payment = typeof Payment.Type

export const isTerminal = (status: PaymentStatus): boolean => status === "SUCCEEDED" || status === "FAILED"

/** routerrpc.SendPaymentRequest (the fields this package sends). */
export interface SendPaymentRequest {
  readonly payment_request: string
  /** Routing fee ceiling, msat (as a string, like every int64). */
  readonly fee_limit_msat: string
  /** Path-finding timeout; not a deadline for in-flight HTLCs. */
  readonly timeout_seconds: number
  readonly no_inflight_updates?: boolean
  readonly allow_self_payment?: boolean
}

export const GetInfo = Schema.Struct({
  identity_pubkey: Schema.String,
  alias: Schema.optionalWith(Schema.String, { default: () => "" }),
  version: Schema.optionalWith(Schema.String, { default: () => "" }),
  block_height: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  synced_to_chain: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  num_active_channels: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  chains: Schema.optionalWith(Schema.Array(Schema.Struct({ chain: Schema.String, network: Schema.String })), { default: () => [] })
})
export type GetInfo = typeof GetInfo.Type

const Amount = Schema.Struct({ sat: Int64, msat: Int64 })
export const ChannelBalance = Schema.Struct({
  local_balance: Schema.optionalWith(Amount, { default: () => ({ sat: "0", msat: "0" }) }),
  remote_balance: Schema.optionalWith(Amount, { default: () => ({ sat: "0", msat: "0" }) })
})
export type ChannelBalance = typeof ChannelBalance.Type

/** lnrpc.PayReq (decode of a payment request by the node). */
export const PayReq = Schema.Struct({
  destination: Schema.String,
  payment_hash: Schema.String,
  num_satoshis: Schema.optionalWith(Int64, { default: () => "0" }),
  num_msat: Schema.optionalWith(Int64, { default: () => "0" }),
  timestamp: Schema.optionalWith(Int64, { default: () => "0" }),
  expiry: Schema.optionalWith(Int64, { default: () => "0" }),
  description: Schema.optionalWith(Schema.String, { default: () => "" }),
  description_hash: Schema.optionalWith(Schema.String, { default: () => "" }),
  cltv_expiry: Schema.optionalWith(Int64, { default: () => "0" }),
  payment_addr: Schema.optionalWith(Schema.String, { default: () => "" })
})
export type PayReq = typeof PayReq.Type

export const InvoiceState = Schema.Literal("OPEN", "SETTLED", "CANCELED", "ACCEPTED")
export type InvoiceState = typeof InvoiceState.Type

/** lnrpc.Invoice (the fields this package reads). */
export const Invoice = Schema.Struct({
  memo: Schema.optionalWith(Schema.String, { default: () => "" }),
  r_preimage: Schema.optionalWith(Schema.String, { default: () => "" }),
  r_hash: Schema.String,
  value_msat: Schema.optionalWith(Int64, { default: () => "0" }),
  payment_request: Schema.String,
  creation_date: Schema.optionalWith(Int64, { default: () => "0" }),
  settle_date: Schema.optionalWith(Int64, { default: () => "0" }),
  expiry: Schema.optionalWith(Int64, { default: () => "0" }),
  amt_paid_msat: Schema.optionalWith(Int64, { default: () => "0" }),
  state: InvoiceState,
  add_index: Schema.optionalWith(Int64, { default: () => "0" }),
  settle_index: Schema.optionalWith(Int64, { default: () => "0" })
})
export type Invoice = typeof Invoice.Type

export interface AddInvoiceRequest {
  readonly memo?: string
  readonly value_msat: string
  /** Seconds (lnd default 86400). */
  readonly expiry?: string
  /** base64 */
  readonly description_hash?: string
  /** base64; lnd draws one when absent. */
  readonly r_preimage?: string
}

export const AddInvoiceResponse = Schema.Struct({
  r_hash: Schema.String,
  payment_request: Schema.String,
  add_index: Schema.optionalWith(Int64, { default: () => "0" }),
  payment_addr: Schema.optionalWith(Schema.String, { default: () => "" })
})
export type AddInvoiceResponse = typeof AddInvoiceResponse.Type

export const ListPaymentsResponse = Schema.Struct({
  payments: Schema.optionalWith(Schema.Array(Payment), { default: () => [] })
})

/** gRPC status codes lnd's REST proxy maps onto HTTP statuses. */
export const GrpcCode = {
  ok: 0,
  cancelled: 1,
  unknown: 2,
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  alreadyExists: 6,
  permissionDenied: 7,
  resourceExhausted: 8,
  failedPrecondition: 9,
  aborted: 10,
  internal: 13,
  unavailable: 14,
  unauthenticated: 16
} as const

/** HTTP status of a gRPC code, as grpc-gateway maps it. */
export const httpStatusOf = (grpcCode: number): number => {
  switch (grpcCode) {
    case GrpcCode.invalidArgument:
    case GrpcCode.failedPrecondition:
      return 400
    case GrpcCode.unauthenticated:
      return 401
    case GrpcCode.permissionDenied:
      return 403
    case GrpcCode.notFound:
      return 404
    case GrpcCode.alreadyExists:
    case GrpcCode.aborted:
      return 409
    case GrpcCode.resourceExhausted:
      return 429
    case GrpcCode.unavailable:
      return 503
    case GrpcCode.deadlineExceeded:
      return 504
    default:
      return 500
  }
}

export type LndErrorCode =
  /** The node could not be reached, or the connection broke before an answer. */
  | "lnd_unreachable"
  /** The macaroon was missing, invalid, or lacks the permission. */
  | "lnd_unauthorized"
  /** 409: this payment hash is in flight or already paid. */
  | "payment_already_exists"
  /** 404: lnd has no payment (or invoice) for this hash. */
  | "not_found"
  /** 400: lnd refused the request (bad payment request, wrong network, expired, …). */
  | "invalid_argument"
  /** A stream ended or broke before a terminal status: the outcome is unknown. */
  | "stream_interrupted"
  /** The answer did not decode. */
  | "bad_response"
  | "lnd_error"

export class LndError extends Data.TaggedError("LndError")<{
  readonly code: LndErrorCode
  readonly message: string
  readonly httpStatus?: number | undefined
  readonly grpcCode?: number | undefined
}> {}

export interface TrackOptions {
  /** Only the terminal update (lnd `no_inflight_updates`). */
  readonly noInflightUpdates?: boolean
}

export interface LndService {
  readonly getInfo: Effect.Effect<GetInfo, LndError>
  readonly channelBalance: Effect.Effect<ChannelBalance, LndError>
  /** The node's own decode of a payment request (`GET /v1/payreq/{pay_req}`). */
  readonly decodePayReq: (paymentRequest: string) => Effect.Effect<PayReq, LndError>
  /** `POST /v2/router/send`: the payment's updates, ending with its terminal status. */
  readonly sendPayment: (request: SendPaymentRequest) => Stream.Stream<Payment, LndError>
  /** `GET /v2/router/track/{hash}`: fails with `not_found` when lnd never saw the hash. */
  readonly trackPayment: (paymentHashHex: string, options?: TrackOptions) => Stream.Stream<Payment, LndError>
  readonly listPayments: (options?: { readonly includeIncomplete?: boolean }) => Effect.Effect<ReadonlyArray<Payment>, LndError>
  readonly addInvoice: (request: AddInvoiceRequest) => Effect.Effect<AddInvoiceResponse, LndError>
  /** `GET /v1/invoice/{r_hash_str}` (hex). */
  readonly lookupInvoice: (paymentHashHex: string) => Effect.Effect<Invoice, LndError>
}

export class Lnd extends Context.Tag("@openagents/lightning/Lnd")<Lnd, LndService>() {}
