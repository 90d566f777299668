// How the control HTTP server treats its network position: whether to trust X-Forwarded-For
// (only behind a proxy you run), cookie flags, and where the web goes after sign-in. A
// Context.Reference, so the defaults apply unless a host provides its own.
import * as Context from "effect/Context"

export interface HttpSettingsService {
  /**
   * Whether to take the client IP from X-Forwarded-For (only behind proxies you run), and through
   * how many: a number N is the count of trusted proxy hops (the client IP is the N-th entry from
   * the right); true is one hop; false (or 0) reads the socket address only.
   */
  readonly trustProxy: boolean | number
  /** Mark cookies Secure (default true; false for plain-http development). */
  readonly secureCookies: boolean
  readonly sameSite: "lax" | "strict"
  /** Where the web goes after sign-in. */
  readonly redirect: string
}

export class HttpSettings extends Context.Reference<HttpSettings>()("@openagents/control-core/HttpSettings", {
  defaultValue: (): HttpSettingsService => ({ trustProxy: false, secureCookies: true, sameSite: "lax", redirect: "/" })
}) {}

/** The number of trusted proxy hops a trustProxy setting stands for. */
export const trustedHops = (trustProxy: boolean | number): number =>
  trustProxy === true ? 1 : trustProxy === false ? 0 : Number.isSafeInteger(trustProxy) && trustProxy > 0 ? trustProxy : 0
