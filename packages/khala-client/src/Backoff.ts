// Reconnect policy, pure: exponential backoff with full jitter (AWS "full jitter": a uniformly
// random delay in [0, min(cap, base·2^attempt)]), with the server's retry_after_ms as a floor,
// and the split of WebSocket close codes into "reconnect" and "stop" (the app must act).
export interface BackoffOptions {
  /** First ceiling, in ms (default 1000). */
  readonly initialDelayMs: number
  /** Largest ceiling, in ms (default 30000). */
  readonly maxDelayMs: number
}

export const defaultBackoff: BackoffOptions = { initialDelayMs: 1000, maxDelayMs: 30_000 }

export const delay = (attempt: number, random: number, floorMs: number, options: BackoffOptions = defaultBackoff): number => {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.min(Math.max(attempt, 0), 30))
  // A broken random source (NaN, out of range) must not turn into an immediate reconnect loop.
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 1
  return Math.max(Number.isFinite(floorMs) ? floorMs : 0, Math.floor(r * ceiling))
}

export type CloseVerdict =
  | { readonly action: "reconnect" }
  | { readonly action: "stop"; readonly reason: "reauth_required" | "upgrade_required" | "unauthorized" | "bad_frame" }

/** 4000–4499 and the standard codes: reconnect. 4500–4999: stop until the app acts. */
export const classifyClose = (code: number): CloseVerdict => {
  switch (code) {
    case 4500:
      return { action: "stop", reason: "unauthorized" }
    case 4501:
      return { action: "stop", reason: "reauth_required" }
    case 4502:
      return { action: "stop", reason: "upgrade_required" }
    case 4503:
      return { action: "stop", reason: "bad_frame" }
    default:
      return code >= 4500 && code <= 4999 ? { action: "stop", reason: "unauthorized" } : { action: "reconnect" }
  }
}
