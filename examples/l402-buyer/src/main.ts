// An L402 buyer: GET a paid URL twice through @openagents/lightning's buyer fetch. The first
// request meets a 402 challenge, pays its invoice through the wallet executor (which applies its
// spend policy and pays from its Lightning node) and retries with the credential; the second
// reuses the cached credential without paying again. Prints one JSON line per request.
//
//   npm start --workspace examples/l402-buyer -- <paid URL>
//
// Settings: WALLET_EXECUTOR_URL (default http://127.0.0.1:8788, where `npm start` runs it),
// WALLET_EXECUTOR_TOKEN (default: `walletExecutorToken` from the dev secrets `npm start` wrote,
// <OA_START_DATA_DIR or .data>/dev-secrets.json), MAX_SPEND_MSATS (default 100000).
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { L402Buyer } from "@openagents/lightning"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

/** The executor's token from the environment, else from the dev secrets of `npm start`. */
const executorToken = Effect.gen(function*() {
  const fromEnv = yield* Config.option(Config.redacted("WALLET_EXECUTOR_TOKEN"))
  if (Option.isSome(fromEnv)) return fromEnv.value
  const dataDir = yield* Config.string("OA_START_DATA_DIR").pipe(Config.withDefault(join(repoRoot, ".data")))
  const file = join(dataDir, "dev-secrets.json")
  return yield* Effect.try({
    try: () => Redacted.make(String(JSON.parse(readFileSync(file, "utf8")).walletExecutorToken)),
    catch: () => new Error(`set WALLET_EXECUTOR_TOKEN, or run \`npm start\` first (no ${file})`)
  })
})

const program = Effect.gen(function*() {
  const url = process.argv[2] ?? (yield* Config.string("L402_URL").pipe(Config.withDefault("")))
  if (url === "") return yield* Effect.fail(new Error("usage: npm start --workspace examples/l402-buyer -- <paid URL>"))
  const executorUrl = yield* Config.string("WALLET_EXECUTOR_URL").pipe(Config.withDefault("http://127.0.0.1:8788"))
  const maxSpendMsats = BigInt(yield* Config.integer("MAX_SPEND_MSATS").pipe(Config.withDefault(100_000)))
  const token = yield* executorToken

  const buyer = yield* L402Buyer.make({ defaultMaxSpendMsats: maxSpendMsats }).pipe(
    Effect.provide(
      Layer.mergeAll(L402Buyer.walletExecutorPayer({ baseUrl: executorUrl, token }), L402Buyer.memoryCache).pipe(
        Layer.provideMerge(NodeHttpClient.layer)
      )
    )
  )
  for (const attempt of [1, 2]) {
    const { response, result } = yield* buyer.fetch(HttpClientRequest.get(url))
    const body = yield* response.text
    console.log(JSON.stringify({
      attempt,
      status: response.status,
      paid: result.paid,
      fromCache: result.fromCache,
      amountMsats: result.amountMsats?.toString() ?? null,
      paymentId: result.paymentId ?? null,
      proof: result.proofReference,
      contentType: response.headers["content-type"] ?? null,
      bodyBytes: body.length
    }))
    if (response.status < 200 || response.status >= 300) return yield* Effect.fail(new Error(`${url} answered ${response.status}: ${body.slice(0, 200)}`))
  }
}).pipe(Effect.scoped)

NodeRuntime.runMain(program)
