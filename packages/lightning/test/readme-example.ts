import { Bolt11, L402, LndSimulator, Macaroon } from "@openagents/lightning"
import { Effect, Either } from "effect"

export const program = Effect.gen(function*() {
  const network = yield* LndSimulator.makeNetwork() // simulated lnd nodes, real BOLT11 + preimages
  const shop = network.addNode({ alias: "shop" })
  const invoice = shop.addInvoice({ valueMsat: 21_000n, memo: "L402" })
  const decoded = yield* Bolt11.decodePayable(invoice.paymentRequest, { network: "regtest", nowMs: Date.now() })
  const token = yield* L402.mint({ service: "weather", paymentHash: decoded.paymentHash, timeoutSeconds: 3600 })
  const authorization = L402.authorizationHeader(Macaroon.toBase64String(token), invoice.preimage) // the buyer, once paid
  const credential = yield* L402.parseAuthorization(authorization)
  const verified = yield* L402.verify(credential, { service: "weather" })
  return [decoded.amountMsats, decoded.payee === shop.pubkey, verified.caveats[0], Either.isRight(Bolt11.decode("lnbc1bogus"))]
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(L402.memorySecrets))).then(console.log)
// [ 21000n, true, 'services=weather:0', false ]
