// L402 tokens (Aperture layout), verification and tampering, and the header grammar in every form.
import { describe, expect, it } from "@effect/vitest"
import { Bolt11, L402, LndSimulator, Macaroon } from "@openagents/lightning"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"

const { paymentHash, preimage } = LndSimulator.newPreimage()
const NOW = 1_700_000_000_000

const minted = (options: Partial<L402.MintOptions> = {}) =>
  L402.mint({ service: "weather", paymentHash, timeoutSeconds: 3600, capabilities: "read", constraints: { weather_daily_calls: "1000" }, nowMs: NOW, ...options })

const credential = (mac: Macaroon.Macaroon, pre = preimage): L402.Credential => ({ scheme: "L402", macaroons: [Macaroon.toBase64String(mac)], preimage: pre })

const codeOf = <R>(effect: Effect.Effect<unknown, L402.L402Error, R>) => Effect.map(Effect.flip(effect), (e) => e.code)

describe("L402 tokens", () => {
  it.effect("mint Aperture's layout: 66-byte identifier, location lsat, caveats in Aperture's order", () =>
    Effect.gen(function*() {
      const mac = yield* minted({ tokenId: "07".repeat(32) })
      expect(Macaroon.toBase64String(mac).startsWith("AgEEbHNhdAJC")).toBe(true)
      expect(Either.getOrThrow(L402.decodeIdentifier(mac.identifier))).toEqual({ version: 0, paymentHash, tokenId: "07".repeat(32) })
      expect(Macaroon.firstPartyCaveats(mac)).toEqual([
        "services=weather:0",
        "weather_capabilities=read",
        "weather_daily_calls=1000",
        `weather_valid_until=${NOW / 1000 + 3600}`
      ])
      const verified = yield* L402.verify(credential(mac), { service: "weather", nowMs: NOW + 1000 })
      expect(verified.identifier.paymentHash).toBe(paymentHash)
    }).pipe(Effect.provide(L402.memorySecrets)))

  it.effect("refuse tampering: caveat removed, caveat added, caveat changed, signature changed", () =>
    Effect.gen(function*() {
      const mac = yield* minted()
      const ok = (m: Macaroon.Macaroon) => codeOf(L402.verify(credential(m), { service: "weather", nowMs: NOW }))
      expect(yield* ok({ ...mac, caveats: mac.caveats.slice(0, 3) })).toBe("signature_invalid") // valid_until dropped
      expect(yield* ok({ ...mac, caveats: [...mac.caveats, { identifier: new TextEncoder().encode("services=other:0") }] })).toBe("signature_invalid")
      expect(yield* ok({ ...mac, caveats: [mac.caveats[0]!, mac.caveats[1]!, mac.caveats[2]!, { identifier: new TextEncoder().encode("weather_valid_until=9999999999") }] })).toBe("signature_invalid")
      const sig = Uint8Array.from(mac.signature)
      sig[0] = sig[0]! ^ 1
      expect(yield* ok({ ...mac, signature: sig })).toBe("signature_invalid")
      // Identifier swapped for another payment hash (and a matching preimage): the root key lookup fails.
      const other = LndSimulator.newPreimage()
      const swapped = { ...mac, identifier: L402.encodeIdentifier({ version: 0, paymentHash: other.paymentHash, tokenId: "00".repeat(32) }) }
      expect(yield* codeOf(L402.verify(credential(swapped, other.preimage), { service: "weather", nowMs: NOW }))).toBe("token_revoked")
    }).pipe(Effect.provide(L402.memorySecrets)))

  it.effect("refuse expired tokens, wrong preimages, other services, revoked tokens; honour attenuation by the holder", () =>
    Effect.gen(function*() {
      const mac = yield* minted()
      expect(yield* codeOf(L402.verify(credential(mac), { service: "weather", nowMs: NOW + 3_600_000 }))).toBe("token_expired")
      expect(yield* codeOf(L402.verify(credential(mac, "00".repeat(32)), { service: "weather", nowMs: NOW }))).toBe("preimage_mismatch")
      expect(yield* codeOf(L402.verify(credential(mac), { service: "stocks", nowMs: NOW }))).toBe("service_not_allowed")
      // The holder may attenuate (correctly chained) but never widen or extend.
      const narrowed = Macaroon.addFirstPartyCaveat(mac, "services=stocks:0")
      expect(yield* codeOf(L402.verify(credential(narrowed), { service: "stocks", nowMs: NOW }))).toBe("service_not_allowed")
      const extended = Macaroon.addFirstPartyCaveat(mac, `weather_valid_until=${NOW / 1000 + 99_999}`)
      expect(yield* codeOf(L402.verify(credential(extended), { service: "weather", nowMs: NOW }))).toBe("token_expired")
      const shortened = Macaroon.addFirstPartyCaveat(mac, `weather_valid_until=${NOW / 1000 + 10}`)
      expect(yield* codeOf(L402.verify(credential(shortened), { service: "weather", nowMs: NOW + 11_000 }))).toBe("token_expired")
      const secrets = yield* L402.L402Secrets
      yield* secrets.revoke(L402.secretKeyOf(mac.identifier))
      expect(yield* codeOf(L402.verify(credential(mac), { service: "weather", nowMs: NOW }))).toBe("token_revoked")
    }).pipe(Effect.provide(L402.memorySecrets)))

  it.effect("derived root keys: another gateway replica with the same secret verifies the token", () =>
    Effect.gen(function*() {
      const secret = Redacted.make(new TextEncoder().encode("a shared gateway secret, 32+ bytes long"))
      const mac = yield* minted().pipe(Effect.provide(L402.derivedSecrets(secret)))
      const verified = yield* L402.verify(credential(mac), { service: "weather", nowMs: NOW }).pipe(Effect.provide(L402.derivedSecrets(secret)))
      expect(verified.caveats).toContain("services=weather:0")
      const otherSecret = Redacted.make(new TextEncoder().encode("another secret"))
      expect(yield* codeOf(L402.verify(credential(mac), { service: "weather", nowMs: NOW }).pipe(Effect.provide(L402.derivedSecrets(otherSecret))))).toBe("signature_invalid")
    }))
})

describe("L402 headers", () => {
  const mac = "AgEEbHNhdAJCAAA+/w=="
  const invoice = "lnbcrt210n1pexample"

  it("challenge in both forms: Aperture's two values (LSAT first) and the spec's token= form", () => {
    const aperture = L402.challengeHeaders(mac, invoice)
    expect(aperture).toEqual([`LSAT macaroon="${mac}", invoice="${invoice}"`, `L402 macaroon="${mac}", invoice="${invoice}"`])
    expect(L402.challengeHeaders(mac, invoice, "spec")).toEqual([`L402 version="0", token="${mac}", invoice="${invoice}"`])
    for (const values of [aperture, aperture.join(", "), L402.challengeHeaders(mac, invoice, "spec"), [`Bearer realm="x", lsat macaroon=${mac}, invoice=${invoice}`]]) {
      const parsed = Either.getOrThrow(L402.parseChallenge(values))
      expect([parsed.macaroon, parsed.invoice]).toEqual([mac, invoice])
    }
    expect(Either.getOrThrow(L402.parseChallenge(aperture)).scheme).toBe("L402")
    expect(Either.getOrThrow(L402.parseChallenge(`L402 token="${mac}", invoice="${invoice}", amount_msats="21000"`)).amountMsats).toBe(21000n)
  })

  it("refuses malformed challenges", () => {
    for (const bad of [
      `L402 macaroon="${mac}"`,
      `L402 invoice="${invoice}"`,
      `L402 macaroon="${mac}", macaroon="${mac}", invoice="${invoice}"`,
      `L402 macaroon="", invoice="${invoice}"`,
      `L402 token="${mac}", macaroon="other", invoice="${invoice}"`,
      `L402 token="${mac}", invoice="${invoice}", amount_msats="1", amountmsats="2"`,
      `Bearer realm="x"`
    ]) {
      expect(Either.isLeft(L402.parseChallenge(bad)), bad).toBe(true)
    }
  })

  it("parses Authorization in both token formats, L402 and LSAT", () => {
    const pre = "AB".repeat(32)
    for (const header of [`L402 ${mac}:${pre}`, `LSAT ${mac}:${pre}`, `l402 macaroon="${mac}", preimage="${pre}"`, `L402 token="${mac}", preimage="${pre}"`]) {
      const c = Either.getOrThrow(L402.parseAuthorization(header))
      expect([c.macaroons, c.preimage]).toEqual([[mac], "ab".repeat(32)])
    }
    expect(Either.getOrThrow(L402.parseAuthorization(`L402 ${mac},${mac}:${pre}`)).macaroons).toHaveLength(2)
    expect(Either.isLeft(L402.parseAuthorization(undefined)) && Either.getLeft(L402.parseAuthorization(undefined)).pipe((o) => o._tag === "Some" && o.value.code)).toBe("credential_missing")
    for (const bad of [`Bearer x`, `L402 ${mac}:abc`, `L402 ${mac}`, `L402 macaroon="${mac}"`]) {
      expect(Either.isLeft(L402.parseAuthorization(bad)), bad).toBe(true)
    }
  })

  it("every Authorization the buyer writes parses back to the same credential", () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b).toString("base64")),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex")),
      fc.constantFrom<L402.AuthorizationStyle>("macaroon_preimage_colon", "macaroon_preimage_params"),
      (m, p, style) => {
        const c = Either.getOrThrow(L402.parseAuthorization(L402.authorizationHeader(m, p, style)))
        expect([c.macaroons, c.preimage]).toEqual([[m], p])
      }
    ))
  })

  it("a real token's payment hash is readable by the buyer (inspect)", () => {
    const { paymentHash: h } = LndSimulator.newPreimage()
    const mac = Macaroon.mint({ rootKey: new Uint8Array(32), identifier: L402.encodeIdentifier({ version: 0, paymentHash: h, tokenId: "01".repeat(32) }), location: "lsat" })
    expect(Either.getOrThrow(L402.inspect(Macaroon.toBase64String(mac))).paymentHash).toBe(h)
    expect(Bolt11.paymentHashOf(preimage)).toBe(paymentHash)
  })
})
