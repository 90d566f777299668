// End to end over real HTTP on 127.0.0.1: a buyer requests a paid route → 402 from an L402
// paywall (invoice from the gateway's simulated node, token minted for its hash) → the wallet
// executor (its own HTTP API, SQL ledger on PGlite) pays through the simulated network →
// preimage → the paywall verifies the credential → the upstream answers 200.
import { describe, expect, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { L402, L402Buyer, L402Middleware, LndRest, LndSimulator, MemoryLedger, WalletExecutor, WalletExecutorHttp } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { serve } from "./support.js"

const TOKEN = "e2e-token-0123456789abcdef"

const world = Effect.gen(function*() {
  const network = yield* LndSimulator.makeNetwork()
  const walletNode = network.addNode({ alias: "wallet", balanceMsat: 5_000_000n })
  const gatewayNode = network.addNode({ alias: "gateway", balanceMsat: 0n })
  const lndOf = (url: string, macaroon: string) =>
    LndRest.layer({ baseUrl: url, macaroon: Redacted.make(macaroon) }).pipe(Layer.provide(NodeHttpClient.layer))
  const walletLnd = lndOf(yield* serve(LndSimulator.router(walletNode)), walletNode.macaroons.admin)
  // The gateway holds only an invoice macaroon: it can bill, never pay.
  const gatewayLnd = lndOf(yield* serve(LndSimulator.router(gatewayNode)), gatewayNode.macaroons.invoice)

  const upstream = HttpRouter.empty.pipe(
    HttpRouter.get("/weather/today", Effect.map(L402Middleware.L402Token, (t) => HttpServerResponse.unsafeJson({ forecast: "sunny", tokenId: t.identifier.tokenId }))),
    HttpRouter.get("/weather/premium", Effect.succeed(HttpServerResponse.unsafeJson({ forecast: "detailed" })))
  )
  const cheap = L402Middleware.paywall({ service: "weather", priceMsats: 21_000n, timeoutSeconds: 3600 })(upstream)
  // Built once: the root keys minted for a challenge must be there to verify the paid request.
  const gatewayContext = yield* Layer.build(Layer.merge(gatewayLnd, L402.memorySecrets))
  const gatewayApp = cheap.pipe(Effect.provide(gatewayContext))
  const gatewayUrl = yield* serve(gatewayApp)

  const executor = yield* Layer.build(
    WalletExecutor.layer({ ...WalletExecutor.defaults, allowedHosts: ["127.0.0.1"], requestCapMsats: 100_000n, windowCapMsats: 1_000_000n, reconcileIntervalMs: 3_600_000 }).pipe(
      Layer.provide(Layer.merge(walletLnd, MemoryLedger.layer))
    )
  )
  const executorUrl = yield* serve(WalletExecutorHttp.router(Redacted.make(TOKEN)).pipe(Effect.provide(executor)))
  const buyer = (policy: L402Buyer.BuyerPolicy = {}) =>
    L402Buyer.make(policy).pipe(
      Effect.provide(Layer.mergeAll(
        L402Buyer.walletExecutorPayer({ baseUrl: executorUrl, token: Redacted.make(TOKEN) }),
        L402Buyer.memoryCache
      ).pipe(Layer.provideMerge(NodeHttpClient.layer)))
    )
  return { walletNode, gatewayNode, gatewayUrl, buyer }
})

describe("L402 end to end", () => {
  it.scopedLive("buyer → 402 → executor pays through the simulator → preimage → paywall verifies → upstream 200; then a cache hit", () =>
    Effect.gen(function*() {
      const { buyer, gatewayNode, gatewayUrl, walletNode } = yield* world
      const b = yield* buyer()
      const { response, result } = yield* b.fetch(HttpClientRequest.get(`${gatewayUrl}/weather/today`))
      expect(response.status).toBe(200)
      expect(((yield* response.json) as any).forecast).toBe("sunny")
      expect(result).toMatchObject({ statusCode: 200, paid: true, cacheStatus: "miss", fromCache: false, amountMsats: 21_000n })
      expect(result.proofReference).toMatch(/^preimage:[0-9a-f]{16}$/)
      expect(walletNode.sendAttempts).toBe(1)
      expect(gatewayNode.invoices().filter((i) => i.state === "SETTLED")).toHaveLength(1)

      const again = yield* b.fetch(HttpClientRequest.get(`${gatewayUrl}/weather/today`))
      expect(again.result).toMatchObject({ statusCode: 200, paid: false, cacheStatus: "hit", fromCache: true })
      expect(walletNode.sendAttempts).toBe(1)
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("the paywall answers a fresh 402 (never the resource) to missing, forged and unpaid credentials", () =>
    Effect.gen(function*() {
      const { gatewayUrl } = yield* world
      const http = yield* HttpClient.HttpClient
      const first = yield* http.execute(HttpClientRequest.get(`${gatewayUrl}/weather/today`))
      expect(first.status).toBe(402)
      expect(first.headers["cache-control"]).toBe("no-store")
      const challenge = L402.parseChallenge(first.headers["www-authenticate"]!)
      expect(challenge._tag).toBe("Right")
      if (challenge._tag !== "Right") return
      expect(first.headers["www-authenticate"]!.startsWith("LSAT ")).toBe(true)
      // Unpaid: a made-up preimage.
      const unpaid = yield* http.execute(HttpClientRequest.get(`${gatewayUrl}/weather/today`).pipe(
        HttpClientRequest.setHeader("authorization", L402.authorizationHeader(challenge.right.macaroon, "00".repeat(32)))
      ))
      expect(unpaid.status).toBe(402)
      const garbage = yield* http.execute(HttpClientRequest.get(`${gatewayUrl}/weather/today`).pipe(HttpClientRequest.setHeader("authorization", "L402 nope:nope")))
      expect(garbage.status).toBe(402)
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("the buyer refuses over-cap prices, blocked and non-allow-listed hosts without paying", () =>
    Effect.gen(function*() {
      const { buyer, gatewayUrl, walletNode } = yield* world
      const url = `${gatewayUrl}/weather/today`
      const codeOf = (policy: L402Buyer.BuyerPolicy, options?: L402Buyer.FetchOptions) =>
        Effect.flatMap(buyer(policy), (b) => Effect.map(Effect.flip(b.fetch(HttpClientRequest.get(url), options)), (e) => (e as L402Buyer.BuyerError).code))
      expect(yield* codeOf({}, { maxSpendMsats: 20_999n })).toBe("amount_over_cap")
      expect(yield* codeOf({ defaultMaxSpendMsats: 1_000n })).toBe("amount_over_cap")
      expect(yield* codeOf({ blockedHosts: ["127.0.0.1"] })).toBe("host_blocked")
      expect(yield* codeOf({ allowedHosts: ["l402.openagents.com"] })).toBe("host_not_allowlisted")
      expect(walletNode.sendAttempts).toBe(0)
    }))
})
