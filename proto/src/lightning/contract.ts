// The parts of the control ↔ lightning-ops contract that are rules rather than messages, written
// once so both planes apply the same ones (control at write time, the compiler at compile time):
//
// - MIN_OPS_SECRET_LENGTH: control refuses every call when its OA_LIGHTNING_OPS_SECRET is
//   shorter; lightning-ops refuses to start with a shorter one (it could never authenticate).
// - Route patterns: what ControlPlanePaywallRoute.host_pattern / path_pattern (control's
//   `hostRegexp` / `pathRegexp`) may hold. They are NOT free regular expressions:
//
//     host  a host name (`l402.example.com`, `127.0.0.1`), `*.suffix` (one label), or `*`; an
//           optional `:port`; compared case-insensitively. A regex such as `^l402\.example\.com$`
//           is refused: it would defeat the compiler's specificity order and conflict checks.
//     path  `/` or `/*` (everything), `/a/b/*` (prefix), `/a/b` (exact), or an RE2 regular
//           expression (anything with a regex metacharacter or `*`), implicitly anchored
//           (`^(?:…)$`, an explicit leading `^` / trailing `$` is dropped); no lookaround, no
//           backreferences (Aperture is Go: RE2). A leading `/` is added when missing; a regex
//           must start with `/` after its optional `^`.
//
// The functions answer the problem (a human-readable reason) or undefined when the pattern is
// valid.

/** Control refuses every lightning-ops call when its secret is shorter than this. */
export const MIN_OPS_SECRET_LENGTH = 32

export const ROUTE_PATTERN_MAX_LENGTH = 255

export type HostKind = "literal" | "wildcard" | "any"
export type PathKind = "exact" | "prefix" | "regex" | "catchall"

export const normaliseHostPattern = (host: string): string => host.trim().toLowerCase()

/** Trimmed, with a leading "/" added (an explicit regex anchor "^" is kept: "^/a$" is "/a" as a regex). */
export const normalisePathPattern = (path: string): string => {
  const p = path.trim()
  if (p === "") return "/"
  return p.startsWith("/") || p.startsWith("^") ? p : `/${p}`
}

const REGEX_META = /[\\^$.|?+()[\]{}]/

export const pathKindOf = (path: string): PathKind => {
  if (path === "/" || path === "/*") return "catchall"
  if (path.endsWith("/*") && !REGEX_META.test(path.slice(0, -2)) && !path.slice(0, -2).includes("*")) return "prefix"
  if (REGEX_META.test(path) || path.includes("*")) return "regex"
  return "exact"
}

export const hostKindOf = (host: string): HostKind => (host === "*" ? "any" : host.includes("*") ? "wildcard" : "literal")

const HOST_PATTERN = /^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:\d{1,5})?$/

const escapeRegex = (text: string) => text.replace(/[\\^$.|?*+()[\]{}]/g, "\\$&")

/** The anchored regular expression a path pattern of `kind` stands for. */
export const pathRegexpOf = (path: string, kind: PathKind): string => {
  switch (kind) {
    case "catchall":
      return "^/.*$"
    case "prefix":
      return `^${escapeRegex(path.slice(0, -1))}.*$`
    case "exact":
      return `^${escapeRegex(path)}$`
    case "regex":
      return `^(?:${path.replace(/^\^/, "").replace(/\$$/, "")})$`
  }
}

/** The anchored regular expression a (normalised, valid) host pattern stands for. */
export const hostRegexpOf = (host: string): string => {
  if (host === "*") return "^.*$"
  const port = /:\d+$/.test(host)
  const body = host.startsWith("*.") ? `[^.]+\\.${escapeRegex(host.slice(2))}` : escapeRegex(host)
  return port ? `^${body}$` : `^${body}(:[0-9]+)?$`
}

/** RE2 (Go) accepts neither lookaround nor backreferences; JS must compile it too. */
const re2Problem = (pattern: string): string | undefined => {
  if (/\(\?<?[=!]/.test(pattern)) return "lookaround is not supported by RE2"
  if (/\\[1-9]/.test(pattern) || /\\k</.test(pattern)) return "backreferences are not supported by RE2"
  try {
    new RegExp(pattern)
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
  return undefined
}

/** Why `host` is not a valid host pattern, or undefined. */
export const hostPatternProblem = (host: string): string | undefined => {
  if (host.length === 0 || host.length > ROUTE_PATTERN_MAX_LENGTH) return `must be 1..${ROUTE_PATTERN_MAX_LENGTH} characters`
  return HOST_PATTERN.test(normaliseHostPattern(host)) ? undefined : "must be a host name, *.suffix or * (with an optional :port), not a regular expression"
}

/** Why `path` is not a valid path pattern, or undefined. */
export const pathPatternProblem = (path: string): string | undefined => {
  if (path.length === 0 || path.length > ROUTE_PATTERN_MAX_LENGTH) return `must be 1..${ROUTE_PATTERN_MAX_LENGTH} characters`
  const p = normalisePathPattern(path)
  if (!p.replace(/^\^/, "").startsWith("/")) return "must start with / (after an optional ^)"
  const kind = pathKindOf(p)
  if (kind === "regex") return re2Problem(pathRegexpOf(p, kind))
  return /\s/.test(p) ? "whitespace in path" : undefined
}
