// The reference gateway's sales journal under pressure: unauthenticated requests (each one makes
// an invoice entry) never push an unacknowledged settlement out; when settlements alone fill the
// journal, new challenges are refused with 503 and no invoice is made, while paid credentials
// still pass.
import { describe, expect, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Compiler, Gateway, L402, LndRest, LndSimulator } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { serve } from "./support.js"

const OPS = "ops-token-0123456789abcdef"

/** A gateway with a small journal, serving one paid route at 127.0.0.1/x. */
const world = (ledgerCapacity: number) =>
  Effect.gen(function*() {
    const network = yield* LndSimulator.makeNetwork()
    const node = network.addNode({ alias: "gateway", balanceMsat: 0n })
    const lndUrl = yield* serve(LndSimulator.router(node))
    const upstreamUrl = yield* serve(HttpRouter.empty.pipe(HttpRouter.all("*", Effect.succeed(HttpServerResponse.text("ok")))))
    const context = yield* Layer.build(Layer.mergeAll(
      LndRest.layer({ baseUrl: lndUrl, macaroon: Redacted.make(node.macaroons.invoice) }).pipe(Layer.provide(NodeHttpClient.layer)),
      L402.derivedSecrets(Redacted.make(new TextEncoder().encode("root secret 0123456789abcdef0123456789"))),
      NodeHttpClient.layer
    ))
    const gateway = yield* Gateway.make({ opsToken: Redacted.make(OPS), ledgerCapacity }).pipe(Effect.provide(context))
    const url = yield* serve(gateway.router.pipe(Effect.provide(context)))
    const compiled = Compiler.compile([{
      paywallId: "pw_a", ownerId: "o1", name: "a", status: "active", createdAtMs: 1, updatedAtMs: 1,
      policy: { paywallId: "pw_a", ownerId: "o1", pricingMode: "fixed", fixedAmountMsats: 5_000, killSwitch: false },
      routes: [{ routeId: "r1", hostPattern: "127.0.0.1", pathPattern: "/x", upstreamUrl, protocol: "http" }]
    }])
    const http = yield* HttpClient.HttpClient
    const deployed = yield* http.execute(HttpClientRequest.post(`${url}/ops/deploy`).pipe(
      HttpClientRequest.bearerToken(OPS),
      HttpClientRequest.bodyUnsafeJson({ requestId: "q", deploymentId: "d1", configHash: compiled.configHash, apertureYaml: compiled.apertureYaml, routes: compiled.routes })
    ))
    expect(deployed.status).toBe(200)
    const get = (authorization?: string) =>
      http.execute(HttpClientRequest.get(`${url}/x`).pipe(
        HttpClientRequest.setHeader("host", "127.0.0.1"),
        authorization === undefined ? (r) => r : HttpClientRequest.setHeader("authorization", authorization)
      ))
    /** An unauthenticated request (402, a new invoice), then the same request paid (200). */
    const buy = Effect.gen(function*() {
      const challenged = yield* get()
      expect(challenged.status).toBe(402)
      const challenge = Either.getOrThrow(L402.parseChallenge(challenged.headers["www-authenticate"]!))
      const hash = Either.getOrThrow(L402.inspect(challenge.macaroon)).paymentHash
      const authorization = L402.authorizationHeader(challenge.macaroon, node.invoice(hash)!.preimage)
      expect((yield* get(authorization)).status).toBe(200)
      return authorization
    })
    const kinds = Effect.map(gateway.ledger, (entries) => entries.map((e) => ("settlement" in e ? "settlement" : "invoice")))
    return { node, gateway, get, buy, kinds, url, http }
  }).pipe(Effect.provide(NodeHttpClient.layer))

describe("gateway sales journal", () => {
  it.scopedLive("unauthenticated requests past the capacity drop old invoice entries, never an unacknowledged settlement", () =>
    Effect.gen(function*() {
      const { buy, get, kinds } = yield* world(5)
      yield* buy
      expect(yield* kinds).toEqual(["invoice", "settlement"])
      for (let i = 0; i < 8; i++) expect((yield* get()).status).toBe(402) // anyone can do this
      const left = yield* kinds
      expect(left).toHaveLength(5)
      expect(left.filter((k) => k === "settlement")).toHaveLength(1)
    }))

  it.scopedLive("settlements filling the journal refuse new challenges with 503 (no invoice made) until lightning-ops acknowledges them; paid credentials still pass", () =>
    Effect.gen(function*() {
      const { buy, gateway, get, http, kinds, node, url } = yield* world(3)
      const credentials = [yield* buy, yield* buy, yield* buy]
      expect(yield* kinds).toEqual(["settlement", "settlement", "settlement"])
      const invoicesBefore = node.invoices().length
      const refused = yield* get()
      expect([refused.status, refused.headers["retry-after"]]).toEqual([503, "30"])
      expect(node.invoices()).toHaveLength(invoicesBefore)
      expect((yield* get(credentials[0])).status).toBe(200)
      // lightning-ops ingests and acknowledges: selling resumes.
      const last = (yield* gateway.ledger).at(-1)!.seq
      const ack = yield* http.execute(HttpClientRequest.post(`${url}/ops/ledger/ack`).pipe(HttpClientRequest.bearerToken(OPS), HttpClientRequest.bodyUnsafeJson({ through: last })))
      expect(ack.status).toBe(200)
      expect((yield* get()).status).toBe(402)
      expect(yield* kinds).toEqual(["invoice"])
    }).pipe(Effect.provide(NodeHttpClient.layer)))
})
