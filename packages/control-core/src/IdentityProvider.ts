// The identity provider port: who proves that a person controls an email address. Control asks
// it to send a one-time code (`sendCode`) and later to check the code the person typed
// (`verifyCode`). Adapters: the WorkOS User Management magic-auth API (identity/workos.ts) and a
// local provider for development whose codes go to an outbox (identity/local.ts).
//
// Control keeps the sign-in state around the provider (the challenge, its expiry, the attempt
// budget, rate limits, single use), so every adapter gets the same protections; a provider only
// answers "this code is right for this email" or not. It must never reveal whether the email
// already has an account: sendCode behaves the same for every well-formed address.
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"

export interface SendCodeInput {
  readonly email: string
  readonly challengeId: string
  readonly ipAddress?: string | undefined
  readonly userAgent?: string | undefined
}

/** What the provider wants kept with the challenge until the code is checked. */
export interface SentCode {
  /** The provider's handle on the code (WorkOS: the magic auth id). */
  readonly providerRef?: string | undefined
  readonly providerUserId?: string | undefined
  /** A keyed hash of the code, for providers that let control check it (never the code). */
  readonly verifier?: string | undefined
}

export interface VerifyCodeInput extends SentCode {
  readonly email: string
  readonly code: string
  readonly challengeId: string
  readonly ipAddress?: string | undefined
  readonly userAgent?: string | undefined
}

export interface VerifiedIdentity {
  readonly email: string
  readonly providerUserId?: string | undefined
  readonly name?: string | undefined
}

/** The code is wrong, expired at the provider, or already used. */
export class InvalidCode extends Data.TaggedError("InvalidCode")<{ readonly detail: string }> {}

/** The provider could not be reached or answered with a server error. */
export class ProviderUnavailable extends Data.TaggedError("ProviderUnavailable")<{ readonly detail: string; readonly cause?: unknown }> {}

export interface IdentityProviderService {
  /** A short name stored with each challenge ("local", "workos"). */
  readonly name: string
  readonly sendCode: (input: SendCodeInput) => Effect.Effect<SentCode, ProviderUnavailable>
  readonly verifyCode: (input: VerifyCodeInput) => Effect.Effect<VerifiedIdentity, InvalidCode | ProviderUnavailable>
}

export class IdentityProvider extends Context.Tag("@openagents/control-core/IdentityProvider")<IdentityProvider, IdentityProviderService>() {}
