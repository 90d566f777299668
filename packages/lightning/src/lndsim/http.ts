// lnd's REST API for one simulated node, as an @effect/platform router: the paths, JSON shapes
// (proto field names, int64 as strings, bytes as base64, payment hashes/preimages as hex),
// status codes and NDJSON streaming of lnd's grpc-gateway (LIGHTNING.md §3). Every route checks
// the `Grpc-Metadata-macaroon` header against the permission lnd requires for it; a failure is
// lnd's answer, HTTP 500 with gRPC code 2.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as Bolt11 from "../Bolt11.js"
import { fromBase64, fromHex, toBase64, toHex } from "../internal/bytes.js"
import { GrpcCode, httpStatusOf, isTerminal } from "../Lnd.js"
import type { Permission, SimInvoice, SimNode, SimPayment } from "../LndSimulator.js"

const errorBody = (grpcCode: number, message: string) => ({ code: grpcCode, message, details: [] })

const unaryError = (grpcCode: number, message: string) =>
  HttpServerResponse.unsafeJson(errorBody(grpcCode, message), { status: httpStatusOf(grpcCode) })

const streamError = (grpcCode: number, message: string) =>
  HttpServerResponse.text(`${JSON.stringify({ error: errorBody(grpcCode, message) })}\n`, {
    status: httpStatusOf(grpcCode),
    contentType: "application/json"
  })

const b64 = (hex: string) => toBase64(fromHex(hex) ?? new Uint8Array())

export const wirePayment = (p: SimPayment) => ({
  payment_hash: p.paymentHash,
  value: (p.valueMsat / 1000n).toString(),
  creation_date: (p.creationTimeNs / 1_000_000_000n).toString(),
  fee: (p.feeMsat / 1000n).toString(),
  payment_preimage: p.preimage,
  value_sat: (p.valueMsat / 1000n).toString(),
  value_msat: p.valueMsat.toString(),
  payment_request: p.paymentRequest,
  status: p.status,
  fee_sat: (p.feeMsat / 1000n).toString(),
  fee_msat: p.feeMsat.toString(),
  creation_time_ns: p.creationTimeNs.toString(),
  htlcs: [],
  payment_index: String(p.paymentIndex),
  failure_reason: p.failureReason,
  first_hop_custom_records: {}
})

export const wireInvoice = (i: SimInvoice) => ({
  memo: i.memo,
  r_preimage: b64(i.preimage),
  r_hash: b64(i.paymentHash),
  value: (i.valueMsat / 1000n).toString(),
  value_msat: i.valueMsat.toString(),
  settled: i.state === "SETTLED",
  creation_date: String(i.creationDate),
  settle_date: String(i.settleDate),
  payment_request: i.paymentRequest,
  description_hash: i.descriptionHash === undefined ? "" : b64(i.descriptionHash),
  expiry: String(i.expiry),
  fallback_addr: "",
  cltv_expiry: String(i.cltvExpiry),
  route_hints: [],
  private: false,
  add_index: String(i.addIndex),
  settle_index: String(i.settleIndex),
  amt_paid: (i.amtPaidMsat / 1000n).toString(),
  amt_paid_sat: (i.amtPaidMsat / 1000n).toString(),
  amt_paid_msat: i.amtPaidMsat.toString(),
  state: i.state,
  htlcs: [],
  features: {},
  is_keysend: false,
  payment_addr: b64(i.paymentAddr),
  is_amp: false,
  amp_invoice_state: {},
  is_blinded: false
})

const wirePayReq = (invoice: Bolt11.Invoice) => ({
  destination: invoice.payee,
  payment_hash: invoice.paymentHash,
  num_satoshis: ((invoice.amountMsats ?? 0n) / 1000n).toString(),
  timestamp: String(invoice.timestamp),
  expiry: String(invoice.expirySeconds),
  description: invoice.description ?? "",
  description_hash: invoice.descriptionHash ?? "",
  fallback_addr: "",
  cltv_expiry: String(invoice.minFinalCltvExpiry),
  route_hints: [],
  payment_addr: b64(invoice.paymentSecret),
  num_msat: (invoice.amountMsats ?? 0n).toString(),
  features: Object.fromEntries(
    invoice.features.map((bit) => [String(bit), { name: "", is_required: bit % 2 === 0, is_known: Bolt11.KNOWN_FEATURE_BITS.has(bit) }])
  ),
  blinded_paths: []
})

/** int64 fields arrive as strings or numbers. */
const bigintField = (value: unknown): bigint | undefined => {
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value)
  if (typeof value === "string" && /^[0-9]+$/.test(value)) return BigInt(value)
  return undefined
}

const searchParam = (request: HttpServerRequest.HttpServerRequest, name: string) =>
  new URL(request.url, "http://lnd").searchParams.get(name) ?? undefined

/** Break the client's TCP connection (Node servers); elsewhere the stream just ends. */
const destroyConnection = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.sync(() => {
    const source = request.source as { socket?: { destroy?: () => void } } | undefined
    source?.socket?.destroy?.()
  })

const readJson = (request: HttpServerRequest.HttpServerRequest) =>
  request.json.pipe(
    Effect.map((body) => (typeof body === "object" && body !== null ? body as Record<string, unknown> : {})),
    Effect.orElseSucceed((): Record<string, unknown> => ({}))
  )

const paymentLines = (updates: Stream.Stream<SimPayment>, noInflightUpdates: boolean) =>
  updates.pipe(
    Stream.filter((p) => !noInflightUpdates || isTerminal(p.status)),
    Stream.map((p) => `${JSON.stringify({ result: wirePayment(p) })}\n`),
    Stream.encodeText
  )

/** lnd's REST API for `node`. */
export const router = (node: SimNode): HttpRouter.HttpRouter<never, never> => {
  const guarded = <E, R>(permission: Permission, handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const denied = node.authorize(request.headers["grpc-metadata-macaroon"], permission)
      if (denied !== undefined) return unaryError(GrpcCode.unknown, denied)
      return yield* handler
    })

  return HttpRouter.empty.pipe(
    HttpRouter.get(
      "/v1/getinfo",
      guarded("info:read", Effect.sync(() =>
        HttpServerResponse.unsafeJson({
          version: "0.21.2-beta commit=lndsim",
          commit_hash: "lndsim",
          identity_pubkey: node.pubkey,
          alias: node.alias,
          color: "#3399ff",
          num_pending_channels: 0,
          num_active_channels: 1,
          num_inactive_channels: 0,
          num_peers: 1,
          block_height: 800_000,
          block_hash: "00".repeat(32),
          best_header_timestamp: String(Math.floor(Date.now() / 1000)),
          synced_to_chain: true,
          synced_to_graph: true,
          testnet: node.network === "testnet",
          chains: [{ chain: "bitcoin", network: node.network }],
          uris: [],
          features: {},
          require_htlc_interceptor: false,
          store_final_htlc_resolutions: false
        })
      ))
    ),
    HttpRouter.get(
      "/v1/balance/channels",
      guarded("offchain:read", Effect.sync(() => {
        const msat = node.balanceMsat
        const amount = (m: bigint) => ({ sat: (m / 1000n).toString(), msat: m.toString() })
        return HttpServerResponse.unsafeJson({
          balance: (msat / 1000n).toString(),
          pending_open_balance: "0",
          local_balance: amount(msat),
          remote_balance: amount(0n),
          unsettled_local_balance: amount(0n),
          unsettled_remote_balance: amount(0n),
          pending_open_local_balance: amount(0n),
          pending_open_remote_balance: amount(0n)
        })
      }))
    ),
    HttpRouter.get(
      // A wildcard, not a :param: the router caps parameters at 100 characters, and payment
      // requests are longer.
      "/v1/payreq/*",
      guarded("offchain:read", Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const payReq = new URL(request.url, "http://lnd").pathname.slice("/v1/payreq/".length)
        const decoded = Bolt11.decode(decodeURIComponent(payReq))
        if (Either.isLeft(decoded)) return unaryError(GrpcCode.unknown, `invalid payment request: ${decoded.left.reason}`)
        return HttpServerResponse.unsafeJson(wirePayReq(decoded.right))
      }))
    ),
    HttpRouter.post(
      "/v2/router/send",
      guarded("offchain:write", Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const body = yield* readJson(request)
        if (typeof body["payment_request"] !== "string") return streamError(GrpcCode.invalidArgument, "payment_request is required")
        const feeLimitMsat = bigintField(body["fee_limit_msat"]) ?? (bigintField(body["fee_limit_sat"]) ?? undefined)
        const started = yield* Effect.either(node.send({
          paymentRequest: body["payment_request"],
          feeLimitMsat: body["fee_limit_msat"] !== undefined ? feeLimitMsat : feeLimitMsat === undefined ? undefined : feeLimitMsat * 1000n,
          amtMsat: bigintField(body["amt_msat"]),
          allowSelfPayment: body["allow_self_payment"] === true
        }))
        if (Either.isLeft(started)) return streamError(started.left.grpcCode, started.left.message)
        const noInflight = body["no_inflight_updates"] === true
        let lines = paymentLines(node.updates(started.right.paymentHash), noInflight)
        if (started.right.drop) {
          // Send what lnd would have sent before the break (the IN_FLIGHT update), give it time
          // to reach the socket, then cut the connection: the client learns nothing more.
          lines = Stream.concat(
            lines.pipe(Stream.take(noInflight ? 0 : 1)),
            Stream.fromEffect(Effect.sleep(Duration.millis(50)).pipe(Effect.zipRight(destroyConnection(request)))).pipe(
              Stream.drain,
              Stream.concat(Stream.never)
            )
          )
        }
        return HttpServerResponse.stream(lines, { contentType: "application/json" })
      }))
    ),
    HttpRouter.get(
      "/v2/router/track/:payment_hash",
      guarded("offchain:read", Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const { payment_hash } = yield* HttpRouter.params
        const hash = fromBase64(payment_hash ?? "")
        if (hash === undefined || hash.length !== 32) return streamError(GrpcCode.invalidArgument, "invalid hash")
        const hex = toHex(hash)
        if (node.payment(hex) === undefined) return streamError(GrpcCode.notFound, "payment isn't initiated")
        return HttpServerResponse.stream(paymentLines(node.updates(hex), searchParam(request, "no_inflight_updates") === "true"), {
          contentType: "application/json"
        })
      }))
    ),
    HttpRouter.get(
      "/v1/payments",
      guarded("offchain:read", Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const includeIncomplete = searchParam(request, "include_incomplete") !== "false"
        const payments = node.payments().filter((p) => includeIncomplete || p.status === "SUCCEEDED")
        return HttpServerResponse.unsafeJson({
          payments: payments.map(wirePayment),
          first_index_offset: String(payments[0]?.paymentIndex ?? 0),
          last_index_offset: String(payments.at(-1)?.paymentIndex ?? 0),
          total_num_payments: "0"
        })
      }))
    ),
    HttpRouter.post(
      "/v1/invoices",
      guarded("invoices:write", Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const body = yield* readJson(request)
        const valueMsat = bigintField(body["value_msat"]) ?? ((bigintField(body["value"]) ?? 0n) * 1000n)
        const preimageB64 = typeof body["r_preimage"] === "string" && body["r_preimage"] !== "" ? fromBase64(body["r_preimage"]) : undefined
        const descriptionHash = typeof body["description_hash"] === "string" && body["description_hash"] !== ""
          ? fromBase64(body["description_hash"])
          : undefined
        const expiry = bigintField(body["expiry"])
        try {
          const invoice = node.addInvoice({
            valueMsat,
            memo: typeof body["memo"] === "string" ? body["memo"] : "",
            expiry: expiry === undefined || expiry === 0n ? undefined : Number(expiry),
            descriptionHash: descriptionHash === undefined ? undefined : toHex(descriptionHash),
            preimage: preimageB64 === undefined ? undefined : toHex(preimageB64)
          })
          return HttpServerResponse.unsafeJson({
            r_hash: b64(invoice.paymentHash),
            payment_request: invoice.paymentRequest,
            add_index: String(invoice.addIndex),
            payment_addr: b64(invoice.paymentAddr)
          })
        } catch (e) {
          const code = typeof (e as { grpcCode?: unknown }).grpcCode === "number" ? (e as { grpcCode: number }).grpcCode : GrpcCode.internal
          return unaryError(code, e instanceof Error ? e.message : String(e))
        }
      }))
    ),
    HttpRouter.get(
      "/v1/invoice/:r_hash_str",
      guarded("invoices:read", Effect.gen(function*() {
        const { r_hash_str } = yield* HttpRouter.params
        const hash = fromHex(r_hash_str ?? "")
        if (hash === undefined || hash.length !== 32) return unaryError(GrpcCode.invalidArgument, "invalid hash")
        const invoice = node.invoice(toHex(hash))
        return invoice === undefined ? unaryError(GrpcCode.notFound, "there are no existing invoices") : HttpServerResponse.unsafeJson(wireInvoice(invoice))
      }))
    ),
    HttpRouter.get(
      "/v2/invoices/lookup",
      guarded("invoices:read", Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const hash = fromBase64(searchParam(request, "payment_hash") ?? "")
        if (hash === undefined || hash.length !== 32) return unaryError(GrpcCode.invalidArgument, "invalid hash")
        const invoice = node.invoice(toHex(hash))
        return invoice === undefined ? unaryError(GrpcCode.notFound, "there are no existing invoices") : HttpServerResponse.unsafeJson(wireInvoice(invoice))
      }))
    )
  )
}
