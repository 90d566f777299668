// The local identity provider, for development and tests: it makes a 6-digit code from the
// CSPRNG, delivers it to the LocalOutbox (tests read it there; the dev host prints it) and keeps
// only an HMAC of it, keyed by a per-provider secret and bound to the challenge id, so a leaked
// challenge row does not reveal or let anyone precompute the code. Checking compares in constant
// time.
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import { IdentityProvider, type IdentityProviderService, InvalidCode } from "../IdentityProvider.js"
import { hmacHex, randomDigits, safeEqual } from "../internal/crypto.js"

export interface OutboxMessage {
  readonly email: string
  readonly code: string
  readonly challengeId: string
  readonly sentAtMs: number
}

export interface LocalOutboxService {
  readonly deliver: (message: OutboxMessage) => Effect.Effect<void>
  /** Every message delivered so far, oldest first. */
  readonly messages: Effect.Effect<ReadonlyArray<OutboxMessage>>
  /** The newest message to an email. */
  readonly latest: (email: string) => Effect.Effect<OutboxMessage | undefined>
}

export class LocalOutbox extends Context.Tag("@openagents/control-core/LocalOutbox")<LocalOutbox, LocalOutboxService>() {}

/** An outbox kept in memory; `onDeliver` also sees each message (the dev host logs it). */
export const makeOutbox = (onDeliver?: (message: OutboxMessage) => Effect.Effect<void>): LocalOutboxService => {
  const messages: Array<OutboxMessage> = []
  return {
    deliver: (message) => Effect.zipRight(Effect.sync(() => void messages.push(message)), onDeliver ? onDeliver(message) : Effect.void),
    messages: Effect.sync(() => [...messages]),
    latest: (email) => Effect.sync(() => [...messages].reverse().find((m) => m.email === email.trim().toLowerCase()))
  }
}

export const layerOutbox: Layer.Layer<LocalOutbox> = Layer.sync(LocalOutbox, () => makeOutbox())

/** The dev host's outbox: each code is logged, so a developer can sign in from the terminal. */
export const layerLoggingOutbox: Layer.Layer<LocalOutbox> = Layer.sync(LocalOutbox, () =>
  makeOutbox((m) => Effect.logInfo(`local sign-in code for ${m.email}: ${m.code} (challenge ${m.challengeId})`)))

export const CODE_DIGITS = 6

export const make = (options: { readonly secret?: Redacted.Redacted<string> | undefined } = {}) =>
  Effect.gen(function*() {
    const outbox = yield* LocalOutbox
    const secret = options.secret !== undefined ? Redacted.value(options.secret) : randomBytes(32).toString("hex")
    const verifierOf = (challengeId: string, code: string) => hmacHex(secret, `${challengeId}:${code}`)
    const service: IdentityProviderService = {
      name: "local",
      sendCode: (input) =>
        Effect.gen(function*() {
          const code = randomDigits(CODE_DIGITS)
          yield* outbox.deliver({ email: input.email, code, challengeId: input.challengeId, sentAtMs: yield* Clock.currentTimeMillis })
          return { verifier: verifierOf(input.challengeId, code) }
        }),
      verifyCode: (input) =>
        input.verifier !== undefined && safeEqual(verifierOf(input.challengeId, input.code.trim()), input.verifier)
          ? Effect.succeed({ email: input.email })
          : Effect.fail(new InvalidCode({ detail: "the code does not match" }))
    }
    return service
  })

/** The local provider (needs a LocalOutbox). Without a secret, one is drawn per process. */
export const layer = (options: { readonly secret?: Redacted.Redacted<string> | undefined } = {}): Layer.Layer<IdentityProvider, never, LocalOutbox> =>
  Layer.effect(IdentityProvider, make(options))
