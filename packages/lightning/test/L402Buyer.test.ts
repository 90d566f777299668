// The L402 buyer against a real paywall (invoices from the LND simulator) with a scripted payer:
// a payment with an unknown outcome is resumed — same invoice, same request id — instead of paying
// a second invoice; and the host policy compares hosts the way DNS does (case, trailing dot).
import { describe, expect, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { L402, L402Buyer, L402Middleware, LndRest, LndSimulator, WalletExecutor } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { serve } from "./support.js"

type Answer = "pending" | "unreachable" | "failed" | "paid"

/** A paywalled resource on a simulated gateway node, and a buyer whose payer answers as scripted. */
const world = (options: { readonly invoiceExpirySeconds?: number; readonly policy?: L402Buyer.BuyerPolicy } = {}) =>
  Effect.gen(function*() {
    const network = yield* LndSimulator.makeNetwork()
    const gateway = network.addNode({ alias: "gateway", balanceMsat: 0n })
    const lnd = LndRest.layer({ baseUrl: yield* serve(LndSimulator.router(gateway)), macaroon: Redacted.make(gateway.macaroons.invoice) }).pipe(
      Layer.provide(NodeHttpClient.layer)
    )
    // Built once: the root keys minted for a challenge must be there to verify the paid request.
    const context = yield* Layer.build(Layer.merge(lnd, L402.memorySecrets))
    const paywall = L402Middleware.paywall({ service: "s", priceMsats: 10_000n, invoiceExpirySeconds: options.invoiceExpirySeconds })
    const url = yield* serve(paywall(Effect.succeed(HttpServerResponse.text("ok"))).pipe(Effect.provide(context)))
    const script: Array<Answer> = []
    const requests: Array<L402Buyer.PayInvoiceRequest> = []
    const payer = Layer.succeed(L402Buyer.InvoicePayer, {
      payInvoice: (r) =>
        Effect.suspend(() => {
          requests.push(r)
          switch (script.shift() ?? "paid") {
            case "pending":
              return Effect.fail(new WalletExecutor.WalletError({ code: "payment_pending", message: "the payment has not completed" }))
            case "unreachable": // e.g. a proxy's non-JSON 504 in front of the executor
              return Effect.fail(new WalletExecutor.WalletError({ code: "connect_failed", message: "wallet executor unreachable" }))
            case "failed":
              return Effect.fail(new WalletExecutor.WalletError({ code: "payment_failed", message: "FAILURE_REASON_NO_ROUTE" }))
            case "paid": {
              const hash = r.requestId.replace(/^l402:/, "")
              const invoice = gateway.invoice(hash)!
              return Effect.succeed({ preimageHex: invoice.preimage, amountMsats: invoice.valueMsat, paymentId: hash })
            }
          }
        })
    })
    // Resolves `localhost.` (fully qualified) to 127.0.0.1, as a resolver would.
    const resolving = Layer.effect(
      HttpClient.HttpClient,
      Effect.map(HttpClient.HttpClient, (client) => HttpClient.mapRequest(client, (r) => HttpClientRequest.setUrl(r, r.url.replace("//localhost.:", "//127.0.0.1:"))))
    ).pipe(Layer.provide(NodeHttpClient.layer))
    const buyer = yield* L402Buyer.make(options.policy).pipe(Effect.provide(Layer.mergeAll(payer, L402Buyer.memoryCache, resolving)))
    const port = new URL(url).port
    return { gateway, url, port, script, requests, buyer }
  })

const codeOf = <A>(effect: Effect.Effect<A, unknown>) => Effect.map(Effect.flip(effect), (e) => (e as L402Buyer.BuyerError).code)

describe("L402 buyer", () => {
  it.scopedLive("a fetch retried after payment_pending resumes that payment (same invoice, same request id) instead of paying a second invoice", () =>
    Effect.gen(function*() {
      const { buyer, gateway, requests, script, url } = yield* world()
      script.push("pending", "pending")
      expect(yield* codeOf(buyer.fetch(HttpClientRequest.get(`${url}/r`)))).toBe("payment_pending")
      expect(yield* codeOf(buyer.fetch(HttpClientRequest.get(`${url}/r`)))).toBe("payment_pending")
      const { response, result } = yield* buyer.fetch(HttpClientRequest.get(`${url}/r`))
      expect([response.status, yield* response.text]).toEqual([200, "ok"])
      expect(result).toMatchObject({ paid: true, amountMsats: 10_000n })
      expect(new Set(requests.map((r) => r.requestId)).size).toBe(1)
      expect(new Set(requests.map((r) => JSON.stringify({ ...r, maxAmountMsats: String(r.maxAmountMsats) }))).size).toBe(1)
      expect(gateway.invoices()).toHaveLength(1) // one 402 taken: the resumes sent no unpaid request
    }))

  it.scopedLive("an ambiguous payer failure (executor unreachable) is resumed too; a definitive failure drops the challenge and the next fetch pays a fresh one", () =>
    Effect.gen(function*() {
      const { buyer, gateway, requests, script, url } = yield* world()
      script.push("unreachable")
      expect(yield* codeOf(buyer.fetch(HttpClientRequest.get(`${url}/r`)))).toBe("payment_pending")
      expect((yield* buyer.fetch(HttpClientRequest.get(`${url}/r`))).result.paid).toBe(true)
      expect(new Set(requests.map((r) => r.requestId)).size).toBe(1)

      // Another scope: a definitive failure is final for its invoice; the next fetch takes a new 402.
      script.push("failed")
      expect(yield* codeOf(buyer.fetch(HttpClientRequest.get(`${url}/r`), { scope: "other" }))).toBe("payment_failed")
      expect((yield* buyer.fetch(HttpClientRequest.get(`${url}/r`), { scope: "other" })).result.paid).toBe(true)
      expect(new Set(requests.map((r) => r.requestId)).size).toBe(3)
      expect(gateway.invoices()).toHaveLength(3)
    }))

  it.scopedLive("a pending challenge whose invoice expired is dropped: the next fetch takes a fresh one", () =>
    Effect.gen(function*() {
      const { buyer, requests, script, url } = yield* world({ invoiceExpirySeconds: 1 })
      script.push("pending", "pending")
      expect(yield* codeOf(buyer.fetch(HttpClientRequest.get(`${url}/r`)))).toBe("payment_pending")
      yield* Effect.sleep("1100 millis")
      // One last look at the old payment (still pending), then a new challenge, paid.
      expect((yield* buyer.fetch(HttpClientRequest.get(`${url}/r`))).result.paid).toBe(true)
      expect(requests.map((r) => r.requestId)).toEqual([requests[0]!.requestId, requests[0]!.requestId, expect.not.stringMatching(requests[0]!.requestId)])
    }))

  it.scopedLive("blocked hosts match without case or a trailing dot, and their subdomains: localhost. is localhost", () =>
    Effect.gen(function*() {
      const blocked = yield* world({ policy: { blockedHosts: ["LOCALHOST"] } })
      expect(yield* codeOf(blocked.buyer.fetch(HttpClientRequest.get(`http://localhost.:${blocked.port}/r`)))).toBe("host_blocked")
      const dotted = yield* world({ policy: { blockedHosts: ["127.0.0.1."] } })
      expect(yield* codeOf(dotted.buyer.fetch(HttpClientRequest.get(`${dotted.url}/r`)))).toBe("host_blocked")
      expect([...blocked.requests, ...dotted.requests]).toEqual([])
      // The allow-list compares the same way (exact names only).
      const allowed = yield* world({ policy: { allowedHosts: ["localhost"] } })
      expect((yield* allowed.buyer.fetch(HttpClientRequest.get(`http://localhost.:${allowed.port}/r`))).result.paid).toBe(true)
    }))

  it("host policy: lower-case, one trailing dot ignored, subdomains of a blocked entry blocked, ports only when named", () => {
    expect(L402Buyer.hostBlocked(["example.com"], "API.Example.com.:8443")).toBe(true)
    expect(L402Buyer.hostBlocked(["*.example.com"], "a.b.example.com")).toBe(true)
    expect(L402Buyer.hostBlocked(["example.com"], "notexample.com")).toBe(false)
    expect(L402Buyer.hostBlocked(["example.com:8443"], "example.com:443")).toBe(false)
    expect(L402Buyer.hostBlocked(["example.com:8443"], "example.com.:8443")).toBe(true)
    expect(L402Buyer.hostBlocked(["[::1]"], "[::1]:8080")).toBe(true)
    expect(L402Buyer.hostBlocked([], "example.com")).toBe(false)
    expect(L402Buyer.parseHost("Example.COM.:80")).toEqual({ name: "example.com", port: "80" })
  })
})
