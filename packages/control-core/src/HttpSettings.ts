// How the control HTTP server treats its network position: whether to trust X-Forwarded-For
// (only behind a proxy you run), cookie flags, and where the web goes after sign-in. A
// Context.Reference, so the defaults apply unless a host provides its own.
import * as Context from "effect/Context"

export interface HttpSettingsService {
  /** Take the client IP from the first X-Forwarded-For entry (only behind a trusted proxy). */
  readonly trustProxy: boolean
  /** Mark cookies Secure (default true; false for plain-http development). */
  readonly secureCookies: boolean
  readonly sameSite: "lax" | "strict"
  /** Where the web goes after sign-in. */
  readonly redirect: string
}

export class HttpSettings extends Context.Reference<HttpSettings>()("@openagents/control-core/HttpSettings", {
  defaultValue: (): HttpSettingsService => ({ trustProxy: false, secureCookies: true, sameSite: "lax", redirect: "/" })
}) {}
