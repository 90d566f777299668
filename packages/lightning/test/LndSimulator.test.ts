// The LND simulator over real HTTP(S) on 127.0.0.1, driven through the LndRest client: real
// invoices and preimages, macaroon permissions, one payment per hash, tracking, and every
// scripted outcome (fail, hold, drop mid-stream, reject).
import { describe, expect, it } from "@effect/vitest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Bolt11, type Lnd, LndRest, LndSimulator, Macaroon } from "@openagents/lightning"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { selfSignedCert, serve } from "./support.js"

const sha256hex = (hex: string) => createHash("sha256").update(Buffer.from(hex, "hex")).digest("hex")
const b64ToHex = (b64: string) => Buffer.from(b64, "base64").toString("hex")

const setup = Effect.gen(function*() {
  const network = yield* LndSimulator.makeNetwork()
  const alice = network.addNode({ alias: "alice", balanceMsat: 1_000_000n })
  const bob = network.addNode({ alias: "bob", balanceMsat: 0n })
  const aliceUrl = yield* serve(LndSimulator.router(alice))
  const bobUrl = yield* serve(LndSimulator.router(bob))
  const client = (baseUrl: string, macaroon: string) => LndRest.make({ baseUrl, macaroon: Redacted.make(macaroon) })
  return {
    network,
    alice,
    bob,
    aliceUrl,
    bobUrl,
    aliceLnd: yield* client(aliceUrl, alice.macaroons.admin),
    bobInvoices: yield* client(bobUrl, bob.macaroons.invoice),
    client
  }
})

const collect = <A, E>(stream: Stream.Stream<A, E>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)
const send = (lnd: Lnd.LndService, paymentRequest: string, extra: Partial<Lnd.SendPaymentRequest> = {}) =>
  collect(lnd.sendPayment({ payment_request: paymentRequest, fee_limit_msat: "10000", timeout_seconds: 30, ...extra }))

describe("LND simulator", () => {
  it.scopedLive("answers getinfo with the node's identity and network", () =>
    Effect.gen(function*() {
      const { alice, aliceLnd } = yield* setup
      const info = yield* aliceLnd.getInfo
      expect(info.identity_pubkey).toBe(alice.pubkey)
      expect(info.chains).toEqual([{ chain: "bitcoin", network: "regtest" }])
      expect((yield* aliceLnd.channelBalance).local_balance.msat).toBe("1000000")
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("checks the Grpc-Metadata-macaroon header: missing, forged, and lacking permission", () =>
    Effect.gen(function*() {
      const { alice, aliceUrl, bob, client } = yield* setup
      const none = yield* client(aliceUrl, "")
      expect((yield* Effect.flip(none.getInfo)).code).toBe("lnd_unauthorized")
      // bob's admin macaroon is signed with bob's root key: alice refuses it.
      const foreign = yield* client(aliceUrl, bob.macaroons.admin)
      expect((yield* Effect.flip(foreign.getInfo)).message).toMatch(/signature mismatch/)
      // An attenuated macaroon whose signature was recomputed without the root key.
      const parsed = Either.getOrThrow(Macaroon.fromHexString(alice.macaroons.admin))
      const forged = Macaroon.toHexString({ ...parsed, signature: new Uint8Array(32) })
      expect((yield* Effect.flip((yield* client(aliceUrl, forged)).getInfo)).code).toBe("lnd_unauthorized")
      // The invoice macaroon may create invoices but not pay.
      const invoiceOnly = yield* client(aliceUrl, alice.macaroons.invoice)
      const error = yield* Effect.flip(collect(invoiceOnly.sendPayment({ payment_request: "lnbcrt1", fee_limit_msat: "0", timeout_seconds: 1 })))
      expect(error.code).toBe("lnd_unauthorized")
      expect(error.message).toMatch(/offchain:write/)
      expect(alice.sendAttempts).toBe(0)
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("issues real BOLT11 invoices signed by the node key, backed by real preimages", () =>
    Effect.gen(function*() {
      const { bob, bobInvoices } = yield* setup
      const added = yield* bobInvoices.addInvoice({ memo: "L402", value_msat: "21000", expiry: "600" })
      const invoice = Either.getOrThrow(Bolt11.decode(added.payment_request))
      expect(invoice.payee).toBe(bob.pubkey)
      expect(invoice.network).toBe("regtest")
      expect(invoice.amountMsats).toBe(21000n)
      expect(invoice.expirySeconds).toBe(600)
      expect(invoice.paymentHash).toBe(b64ToHex(added.r_hash))
      const looked = yield* bobInvoices.lookupInvoice(invoice.paymentHash)
      expect(looked.state).toBe("OPEN")
      expect(sha256hex(b64ToHex(looked.r_preimage))).toBe(invoice.paymentHash)
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("settles a payment between simulated nodes: preimage back to the payer, invoice settled, balances moved", () =>
    Effect.gen(function*() {
      const { alice, aliceLnd, bob, bobInvoices } = yield* setup
      const added = yield* bobInvoices.addInvoice({ memo: "coffee", value_msat: "21000" })
      const updates = yield* send(aliceLnd, added.payment_request)
      expect(updates.map((u) => u.status)).toEqual(["IN_FLIGHT", "SUCCEEDED"])
      const paid = updates.at(-1)!
      expect(sha256hex(paid.payment_preimage)).toBe(paid.payment_hash)
      expect(paid.value_msat).toBe("21000")
      expect((yield* bobInvoices.lookupInvoice(paid.payment_hash)).state).toBe("SETTLED")
      expect(alice.balanceMsat).toBe(1_000_000n - 21_000n)
      expect(bob.balanceMsat).toBe(21_000n)
      // Only the terminal update with no_inflight_updates.
      const other = yield* bobInvoices.addInvoice({ value_msat: "1000" })
      expect((yield* send(aliceLnd, other.payment_request, { no_inflight_updates: true })).map((u) => u.status)).toEqual(["SUCCEEDED"])
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("pays a hash once: a second send is 409, tracking replays the outcome, an unknown hash is 404", () =>
    Effect.gen(function*() {
      const { alice, aliceLnd, bobInvoices } = yield* setup
      const added = yield* bobInvoices.addInvoice({ value_msat: "5000" })
      yield* send(aliceLnd, added.payment_request)
      const again = yield* Effect.flip(send(aliceLnd, added.payment_request))
      expect(again.code).toBe("payment_already_exists")
      expect(again.message).toBe("invoice is already paid")
      expect(again.httpStatus).toBe(409)
      const hash = b64ToHex(added.r_hash)
      const tracked = yield* collect(aliceLnd.trackPayment(hash, { noInflightUpdates: true }))
      expect(tracked.map((u) => u.status)).toEqual(["SUCCEEDED"])
      const unknown = yield* Effect.flip(collect(aliceLnd.trackPayment("ab".repeat(32))))
      expect([unknown.code, unknown.message, unknown.httpStatus]).toEqual(["not_found", "payment isn't initiated", 404])
      expect(alice.sendAttempts).toBe(1)
      expect((yield* aliceLnd.listPayments()).map((p) => p.status)).toEqual(["SUCCEEDED"])
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("scripted failure: FAILED with lnd's reason, and the hash may then be retried", () =>
    Effect.gen(function*() {
      const { alice, aliceLnd, bobInvoices } = yield* setup
      const added = yield* bobInvoices.addInvoice({ value_msat: "5000" })
      alice.scriptNext(LndSimulator.Outcome.fail("FAILURE_REASON_TIMEOUT", { delayMs: 20 }))
      const failed = (yield* send(aliceLnd, added.payment_request)).at(-1)!
      expect([failed.status, failed.failure_reason]).toEqual(["FAILED", "FAILURE_REASON_TIMEOUT"])
      expect(failed.payment_preimage).toBe("00".repeat(32))
      const retried = (yield* send(aliceLnd, added.payment_request)).at(-1)!
      expect(retried.status).toBe("SUCCEEDED")
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("held payment stays IN_FLIGHT (409 in transition) until released; trackers see the outcome", () =>
    Effect.gen(function*() {
      const { alice, aliceLnd, bobInvoices } = yield* setup
      const added = yield* bobInvoices.addInvoice({ value_msat: "5000" })
      const hash = b64ToHex(added.r_hash)
      alice.script(hash, LndSimulator.Outcome.hold())
      const first = yield* Effect.fork(send(aliceLnd, added.payment_request))
      yield* Effect.sleep("100 millis")
      expect(alice.payment(hash)?.status).toBe("IN_FLIGHT")
      const busy = yield* Effect.flip(send(aliceLnd, added.payment_request))
      expect(busy.message).toBe("payment is in transition")
      const tracker = yield* Effect.fork(collect(aliceLnd.trackPayment(hash)))
      yield* Effect.sleep("50 millis")
      yield* alice.resolve(hash, LndSimulator.Outcome.settle())
      expect((yield* tracker).map((u) => u.status)).toEqual(["IN_FLIGHT", "SUCCEEDED"])
      expect((yield* first).at(-1)?.status).toBe("SUCCEEDED")
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("drop mid-stream: the client's stream breaks (outcome unknown) while the payment completes", () =>
    Effect.gen(function*() {
      const { alice, aliceLnd, bobInvoices } = yield* setup
      const added = yield* bobInvoices.addInvoice({ value_msat: "5000" })
      alice.scriptNext(LndSimulator.Outcome.drop(LndSimulator.Outcome.settle({ delayMs: 100 })))
      const broken = yield* Effect.flip(send(aliceLnd, added.payment_request))
      expect(["stream_interrupted", "lnd_unreachable"]).toContain(broken.code)
      const outcome = yield* collect(aliceLnd.trackPayment(b64ToHex(added.r_hash), { noInflightUpdates: true }))
      expect(outcome.map((u) => u.status)).toEqual(["SUCCEEDED"])
      expect(alice.sendAttempts).toBe(1)
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  it.scopedLive("refuses what lnd refuses: wrong network, expired, garbage, scripted rejection; routes fail with lnd's reasons", () =>
    Effect.gen(function*() {
      const { alice, aliceLnd, bobInvoices } = yield* setup
      const key = Bolt11.randomPrivateKey()
      const { paymentHash } = LndSimulator.newPreimage()
      const base = { amountMsats: 1000n, paymentHash, paymentSecret: "11".repeat(32), description: "x", privateKey: key }
      const mainnet = yield* Effect.flip(send(aliceLnd, Bolt11.encode({ ...base, network: "mainnet" })))
      expect([mainnet.code, mainnet.message]).toEqual(["invalid_argument", "invoice not for current active network 'regtest'"])
      const expired = yield* Effect.flip(send(aliceLnd, Bolt11.encode({ ...base, network: "regtest", timestamp: 1_600_000_000 })))
      expect(expired.message).toBe("invoice expired")
      expect((yield* Effect.flip(send(aliceLnd, "lnbcrt1garbage"))).code).toBe("invalid_argument")
      // An invoice from a node outside the network: no route.
      const stranger = (yield* send(aliceLnd, Bolt11.encode({ ...base, network: "regtest" }))).at(-1)!
      expect([stranger.status, stranger.failure_reason]).toEqual(["FAILED", "FAILURE_REASON_NO_ROUTE"])
      // More than the balance.
      const big = yield* bobInvoices.addInvoice({ value_msat: "2000000" })
      expect((yield* send(aliceLnd, big.payment_request)).at(-1)?.failure_reason).toBe("FAILURE_REASON_INSUFFICIENT_BALANCE")
      const fine = yield* bobInvoices.addInvoice({ value_msat: "2000" })
      alice.scriptNext(LndSimulator.Outcome.reject(14, "lnd is starting"))
      const rejected = yield* Effect.flip(send(aliceLnd, fine.payment_request))
      expect([rejected.code, rejected.httpStatus]).toEqual(["lnd_unreachable", 503])
      expect(alice.payment(b64ToHex(fine.r_hash))).toBeUndefined()
      // The node's own decode.
      const decoded = yield* aliceLnd.decodePayReq(fine.payment_request)
      expect(decoded.num_msat).toBe("2000")
    }).pipe(Effect.provide(NodeHttpClient.layer)))

  const tls = selfSignedCert()
  it.scopedLive.skipIf(tls === undefined)("serves over TLS; a client trusting the node's tls.cert connects, one that does not is refused", () =>
    Effect.gen(function*() {
      const network = yield* LndSimulator.makeNetwork()
      const node = network.addNode({ alias: "tls" })
      const url = yield* serve(LndSimulator.router(node), tls!)
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
      const trusting = NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer({ ca: tls!.cert })))
      const info = yield* Effect.flatMap(LndRest.make({ baseUrl: url, macaroon: Redacted.make(node.macaroons.readonly) }), (l) => l.getInfo).pipe(
        Effect.provide(trusting)
      )
      expect(info.identity_pubkey).toBe(node.pubkey)
      const untrusting = yield* Effect.flatMap(LndRest.make({ baseUrl: url, macaroon: Redacted.make(node.macaroons.readonly) }), (l) => Effect.flip(l.getInfo)).pipe(
        Effect.provide(NodeHttpClient.layer)
      )
      expect(untrusting.code).toBe("lnd_unreachable")
    }))
})
