// BOLT #11: the 25 vectors of the spec, re-encoding byte for byte with the spec's key, the payer
// checks (network, expiry, amount), tampering, and an encode/decode round trip property.
import { bech32 } from "@scure/base"
import { Bolt11 } from "@openagents/lightning"
import * as Either from "effect/Either"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import vectors from "./fixtures/bolt11-vectors.json" with { type: "json" }

const SPEC_KEY = "e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734"
const SPEC_NODE = "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad"
const SPEC_HASH = "0001020304050607080900010203040506070809000102030405060708090102"
const SPEC_SECRET = "11".repeat(32)

const vector = (n: number) => vectors.vectors.find((v) => v.n === n)!

/** What a spec-invalid vector must be refused with. */
const expectedCodes: Record<number, Bolt11.InvoiceErrorCode> = {
  16: "invoice_unknown_required_feature",
  17: "invoice_malformed", // checksum
  18: "invoice_malformed", // no separator
  19: "invoice_malformed", // mixed case
  20: "invoice_signature_invalid", // not recoverable
  21: "invoice_malformed", // too short
  22: "invoice_malformed", // bad multiplier
  23: "invoice_malformed", // sub-millisatoshi
  24: "invoice_missing_payment_secret",
  25: "invoice_signature_invalid" // high-S with n
}

const decodeOk = (pr: string) => {
  const r = Bolt11.decode(pr)
  if (Either.isLeft(r)) throw new Error(`expected ${pr} to decode: ${r.left.message}`)
  return r.right
}

describe("BOLT #11 spec vectors", () => {
  it("holds all 25 vectors (15 valid, 10 invalid)", () => {
    expect(vectors.vectors).toHaveLength(25)
    expect(vectors.vectors.filter((v) => v.spec_valid)).toHaveLength(15)
  })

  for (const v of vectors.vectors.filter((v) => v.spec_valid)) {
    it(`#${v.n} decodes: ${v.title.slice(0, 70)}`, () => {
      const invoice = decodeOk(v.invoice)
      // #13 is #12 plus fields that must be ignored (bolt11@1.4.1 wrongly refuses it).
      const expected = v.n === 13 ? vector(11).bolt11_pkg : v.bolt11_pkg
      expect(invoice.payee).toBe(expected.payee)
      expect(invoice.paymentHash).toBe(expected.payment_hash)
      expect(invoice.paymentSecret).toBe(expected.payment_secret)
      expect(invoice.timestamp).toBe(expected.timestamp)
      expect(invoice.amountMsats?.toString() ?? null).toBe(expected.millisatoshis)
      expect(invoice.description ?? null).toBe(expected.description)
      expect(invoice.descriptionHash ?? null).toBe(expected.description_hash)
      expect(invoice.network).toBe(v.invoice.toLowerCase().startsWith("lntb") ? "testnet" : "mainnet")
    })
  }

  for (const v of vectors.vectors.filter((v) => !v.spec_valid)) {
    it(`#${v.n} is refused with ${expectedCodes[v.n]}: ${v.title}`, () => {
      const r = Bolt11.decode(v.invoice)
      expect(Either.isLeft(r) && r.left.code).toBe(expectedCodes[v.n])
    })
  }

  it("reads the fields the vectors describe: expiry, cltv, fallback, route hints, features, metadata", () => {
    expect(decodeOk(vector(2).invoice).expirySeconds).toBe(60)
    expect(decodeOk(vector(1).invoice).expirySeconds).toBe(Bolt11.DEFAULT_EXPIRY_SECONDS)
    const withHints = decodeOk(vector(6).invoice)
    expect(withHints.fallbackAddresses).toEqual([{ version: 17, program: "04b61f7dc1ea0dc99424464cc4064dc564d91e89" }])
    expect(withHints.routeHints).toEqual([[
      { pubkey: "029e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255", shortChannelId: "0102030405060708", feeBaseMsat: 1, feeProportionalMillionths: 20, cltvExpiryDelta: 3 },
      { pubkey: "039e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255", shortChannelId: "030405060708090a", feeBaseMsat: 2, feeProportionalMillionths: 30, cltvExpiryDelta: 4 }
    ]])
    expect(decodeOk(vector(9).invoice).fallbackAddresses[0]).toMatchObject({ version: 0 })
    expect(decodeOk(vector(10).invoice).expirySeconds).toBe(604800)
    expect(decodeOk(vector(11).invoice).features).toEqual([8, 14, 99])
    expect(decodeOk(vector(12).invoice).paymentRequest).toBe(vector(11).invoice)
    expect(decodeOk(vector(13).invoice).fallbackAddresses).toEqual([]) // version 19: ignored
    expect(decodeOk(vector(14).invoice).metadata).toBe("01fafaf0")
    expect(decodeOk(vector(15).invoice).payeeFromField).toBe(false)
  })

  it("re-encodes the spec's invoices byte for byte with the spec key (deterministic low-S signatures)", () => {
    const coffee = Bolt11.encodeFields({
      network: "mainnet",
      amountMsats: 250_000_000n,
      timestamp: 1496314658,
      privateKey: SPEC_KEY,
      fields: [
        { tag: "s", hex: SPEC_SECRET },
        { tag: "p", hex: SPEC_HASH },
        { tag: "d", text: "1 cup coffee" },
        { tag: "x", value: 60 },
        { tag: "9", bits: [8, 14] }
      ]
    })
    expect(coffee).toBe(vector(2).invoice)
    const beans = Bolt11.encodeFields({
      network: "mainnet",
      amountMsats: 2_500_000_000n,
      timestamp: 1496314658,
      privateKey: SPEC_KEY,
      fields: [
        { tag: "p", hex: SPEC_HASH },
        { tag: "d", text: "coffee beans" },
        { tag: "s", hex: SPEC_SECRET },
        { tag: "9", bits: [8, 14, 99] }
      ]
    })
    expect(beans).toBe(vector(11).invoice)
    expect(Bolt11.publicKeyOf(SPEC_KEY)).toBe(SPEC_NODE)
  })

  it("formats amounts with the shortest multiplier", () => {
    expect(Bolt11.formatAmount(250_000_000n)).toBe("2500u")
    expect(Bolt11.formatAmount(2_000_000_000n)).toBe("20m")
    expect(Bolt11.formatAmount(967_878_534n)).toBe("9678785340p")
    expect(Bolt11.formatAmount(100_000_000_000n)).toBe("1")
    expect(Bolt11.formatAmount(21_000n)).toBe("210n")
  })
})

describe("payer checks", () => {
  const key = Bolt11.randomPrivateKey()
  const preimage = "ab".repeat(32)
  const base = {
    network: "regtest" as const,
    amountMsats: 21_000n,
    timestamp: 1_700_000_000,
    paymentHash: Bolt11.paymentHashOf(preimage),
    paymentSecret: "cd".repeat(32),
    description: "L402",
    expirySeconds: 600,
    privateKey: key
  }
  const now = (seconds: number) => seconds * 1000

  it("accepts a fresh invoice for the node's network", () => {
    const r = Bolt11.decodePayable(Bolt11.encode(base), { network: "regtest", nowMs: now(1_700_000_100) })
    expect(Either.isRight(r) && r.right.payee).toBe(Bolt11.publicKeyOf(key))
  })

  it("refuses an invoice for another network with invoice_network_mismatch", () => {
    const r = Bolt11.decodePayable(Bolt11.encode({ ...base, network: "mainnet" }), { network: "regtest", nowMs: now(1_700_000_100) })
    expect(Either.isLeft(r) && r.left.code).toBe("invoice_network_mismatch")
  })

  it("refuses an expired invoice, and one expiring within the margin, with invoice_expired", () => {
    const pr = Bolt11.encode(base)
    for (const t of [1_700_000_600, 1_700_001_000, 1_700_000_590]) {
      const r = Bolt11.decodePayable(pr, { network: "regtest", nowMs: now(t), minRemainingSeconds: 30 })
      expect(Either.isLeft(r) && r.left.code).toBe("invoice_expired")
    }
  })

  it("refuses an amountless invoice with invoice_amount_missing", () => {
    const r = Bolt11.decodePayable(Bolt11.encode({ ...base, amountMsats: undefined }), { network: "regtest", nowMs: now(1_700_000_100) })
    expect(Either.isLeft(r) && r.left.code).toBe("invoice_amount_missing")
  })

  it("refuses a tampered invoice that names its payee with invoice_signature_invalid", () => {
    const pr = Bolt11.encode({ ...base, includePayee: true })
    const { prefix, words } = bech32.decode(pr as `${string}1${string}`, false)
    // Flip one bit of the amount-bearing data (inside the description), keep a valid checksum.
    const tampered = [...words]
    tampered[20] = tampered[20]! ^ 1
    const forged = bech32.encode(prefix, tampered, false)
    const r = Bolt11.decode(forged)
    expect(Either.isLeft(r) && r.left.code).toBe("invoice_signature_invalid")
  })

  it("recovers a different payee from a tampered invoice without n (so payers must pin the payee)", () => {
    const pr = Bolt11.encode(base)
    const { prefix, words } = bech32.decode(pr as `${string}1${string}`, false)
    const tampered = [...words]
    tampered[20] = tampered[20]! ^ 1
    const r = Bolt11.decode(bech32.encode(prefix, tampered, false))
    if (Either.isRight(r)) expect(r.right.payee).not.toBe(Bolt11.publicKeyOf(key))
    else expect(r.left.code).toBe("invoice_signature_invalid")
  })
})

describe("round trip", () => {
  const hex32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex"))
  const hop = fc.record({
    pubkey: fc.constantFrom(SPEC_NODE, "029e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255"),
    shortChannelId: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString("hex")),
    feeBaseMsat: fc.nat({ max: 0xffffffff }),
    feeProportionalMillionths: fc.nat({ max: 0xffffffff }),
    cltvExpiryDelta: fc.nat({ max: 0xffff })
  })

  it("encode then decode returns every field written, under the signer's key", () => {
    fc.assert(
      fc.property(
        fc.record({
          network: fc.constantFrom<Bolt11.Network>("mainnet", "testnet", "signet", "regtest", "simnet"),
          amountMsats: fc.option(fc.bigInt({ min: 1n, max: 2_100_000_000_000_000_000n }), { nil: undefined }),
          timestamp: fc.integer({ min: 0, max: 2 ** 35 - 1 }),
          paymentHash: hex32,
          paymentSecret: hex32,
          description: fc.string({ maxLength: 200 }),
          expirySeconds: fc.option(fc.integer({ min: 1, max: 2 ** 31 - 1 }), { nil: undefined }),
          minFinalCltvExpiry: fc.integer({ min: 1, max: 5000 }),
          routeHints: fc.array(fc.array(hop, { minLength: 1, maxLength: 3 }), { maxLength: 2 }),
          includePayee: fc.boolean(),
          privateKey: fc.constantFrom(SPEC_KEY, "0101010101010101010101010101010101010101010101010101010101010101")
        }),
        (input) => {
          const invoice = decodeOk(Bolt11.encode(input))
          expect(invoice).toMatchObject({
            network: input.network,
            amountMsats: input.amountMsats,
            timestamp: input.timestamp,
            paymentHash: input.paymentHash,
            paymentSecret: input.paymentSecret,
            description: input.description,
            expirySeconds: input.expirySeconds ?? 3600,
            minFinalCltvExpiry: input.minFinalCltvExpiry,
            routeHints: input.routeHints,
            payee: Bolt11.publicKeyOf(input.privateKey),
            payeeFromField: input.includePayee,
            features: [8, 14, 17]
          })
        }
      ),
      { numRuns: 150 }
    )
  })
})
