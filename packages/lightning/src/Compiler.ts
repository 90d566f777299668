// The paywall policy compiler: control-plane paywalls → Aperture's own configuration (one
// `services:` entry per route, with an explicit non-zero price) as deterministic YAML, plus the
// route table the reference gateway serves from, plus diagnostics (UPSTREAM_SPEC §4.1).
//
// Determinism: the same paywalls (in any order) and the same deployed table give byte-identical
// output — routes are sorted (= first-match order: priority asc, host specificity desc, path
// specificity desc, host, path, paywallId, routeId), keys are written in a fixed order and every
// scalar is quoted (YAML 1.1 would read `on`/`off` as booleans).
// `configHash = "cfg_" + sha256(yaml ‖ canonical route table)`.
//
// Isolation: a compile never fails as a whole. Every error diagnostic names one paywall and
// leaves that whole paywall out (`excluded`); the others compile — one owner's paywall never
// stops everyone's. That holds for a paywall's own problems (pricing, route pattern, upstream,
// protocol, its own routes conflicting) and for a conflict between paywalls (duplicate,
// ambiguous, shadowed), where one of them gives way, by a rule that does not depend on input
// order (`precedence`): a paywall whose routes the gateway serves unchanged (`deployed`) keeps
// them, so no one takes over a live route by editing their own paywall; otherwise the
// earlier-created paywall keeps it, then the smaller paywallId. No route at all is a warning,
// not a failure: the empty table is deployed, so paused, killed and invalid paywalls stop being
// sold.
//
// Route patterns follow the grammar of the shared contract (@openagents/proto/lightning/v1,
// contract.ts), which control also validates when a paywall is written.
//
// Aperture matches services in list order, host regexp against Host (with the port when the
// client sent one), path regexp against the URL path; so the order above is Aperture's order too.
import { sha256 } from "@noble/hashes/sha2"
import { canonicalJson } from "@openagents/proto/canonical-json"
import {
  type HostKind,
  hostKindOf,
  hostPatternProblem,
  hostRegexpOf,
  normaliseHostPattern,
  normalisePathPattern,
  pathKindOf,
  pathPatternProblem,
  pathRegexpOf,
  type PathKind
} from "@openagents/proto/lightning/v1"
import type { Paywall } from "./ControlPlane.js"
import { toHex, utf8 } from "./internal/bytes.js"

export type DiagnosticCode =
  | "invalid_pricing_mode"
  | "missing_pricing"
  | "price_not_whole_sats"
  | "invalid_route_pattern"
  | "invalid_upstream_url"
  | "missing_route_protocol"
  | "duplicate_route"
  | "ambiguous_route"
  | "first_match_shadowed"
  | "no_compilable_routes"

export interface Diagnostic {
  readonly code: DiagnosticCode
  /** "error": what it names is not compiled; "warn": informational (no_compilable_routes). */
  readonly severity: "error" | "warn"
  readonly message: string
  readonly paywallId?: string
  readonly routeId?: string
  readonly relatedRouteId?: string
  /** The paywall of relatedRouteId (in a conflict between paywalls: the one that keeps the route). */
  readonly relatedPaywallId?: string
}

export type { HostKind, PathKind }

export interface CompiledRoute {
  /** `<paywallId>:<routeId>` */
  readonly id: string
  /** The Aperture service name (also the L402 `services` caveat). */
  readonly service: string
  readonly paywallId: string
  readonly ownerId: string
  readonly routeId: string
  readonly host: string
  readonly hostKind: HostKind
  readonly hostRegexp: string
  readonly path: string
  readonly pathKind: PathKind
  readonly pathRegexp: string
  readonly upstream: { readonly url: string; readonly protocol: "http" | "https"; readonly timeoutMs: number }
  readonly priceMsats: number
  readonly priority: number
}

export interface ApertureSettings {
  readonly listenAddr: string
  readonly insecure: boolean
  readonly debugLevel: string
  readonly network: string
  readonly lndHost: string
  readonly tlsPath: string
  /** Directory holding invoice.macaroon. */
  readonly macDir: string
  readonly dbBackend: "sqlite" | "postgres"
  readonly sqliteDbFile: string
  /** Token validity per service (`timeout`, → `<service>_valid_until`); 0 omits it. */
  readonly tokenValiditySeconds: number
  /** Paths never reserved by routes (Aperture's admin UI/API when enabled). */
  readonly reservedPathPrefixes: ReadonlyArray<string>
}

export const defaultSettings: ApertureSettings = {
  listenAddr: "0.0.0.0:8081",
  insecure: true,
  debugLevel: "info",
  network: "regtest",
  lndHost: "127.0.0.1:10009",
  tlsPath: "/var/lib/lnd/tls.cert",
  macDir: "/var/lib/lnd/data/chain/bitcoin/regtest",
  dbBackend: "sqlite",
  sqliteDbFile: "/var/lib/aperture/aperture.db",
  tokenValiditySeconds: 86_400,
  reservedPathPrefixes: ["/api/admin/", "/api/proxy/", "/_next/", "/ops/"]
}

export interface CompileResult {
  readonly configHash: string
  readonly apertureYaml: string
  /** In first-match order. */
  readonly routes: ReadonlyArray<CompiledRoute>
  /** The paywalls left out, by paywallId (their error diagnostics name them); the others compiled. */
  readonly excluded: ReadonlyArray<string>
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

export interface CompileOptions {
  /**
   * The route table the gateway serves now (its active deployment). In a route conflict between
   * paywalls, a paywall whose routes are all served unchanged (same id, host, path and priority)
   * keeps them and the other gives way. Without it, creation order decides.
   */
  readonly deployed?: ReadonlyArray<CompiledRoute> | undefined
}

export const DEFAULT_TIMEOUT_MS = 15_000
export const DEFAULT_PRIORITY = 0

const hash = (text: string) => `cfg_${toHex(sha256(utf8(text)))}`

/** The configHash of a rendered table: what the gateway checks a deploy against. */
export const configHashOf = (apertureYaml: string, routes: ReadonlyArray<CompiledRoute>): string => hash(`${apertureYaml}\n${canonicalJson(routes)}`)

/** The hash of the compiler's input (the configHash of the failed intent of a paywall left out). */
export const snapshotHash = (paywalls: ReadonlyArray<Paywall>): string =>
  hash(canonicalJson([...paywalls].sort((a, b) => (a.paywallId < b.paywallId ? -1 : a.paywallId > b.paywallId ? 1 : 0)).map((p) => ({
    paywallId: p.paywallId,
    ownerId: p.ownerId,
    status: p.status,
    policy: p.policy,
    routes: p.routes
  }))))

// --- normalisation and classification: the route-pattern grammar of the shared contract -------

export const normaliseHost = normaliseHostPattern
export const normalisePath = normalisePathPattern
export { hostKindOf, hostRegexpOf, pathKindOf, pathRegexpOf }

const HOST_SPECIFICITY: Record<HostKind, number> = { literal: 2, wildcard: 1, any: 0 }
const PATH_SPECIFICITY: Record<PathKind, number> = { exact: 3, prefix: 2, regex: 1, catchall: 0 }

/** Does host pattern `a` match every host `b` matches? */
const hostCovers = (a: string, b: string) =>
  a === "*" || a === b || (a.startsWith("*.") && !b.startsWith("*") && b.endsWith(a.slice(1)))

const prefixBase = (path: string) => path.slice(0, -1) // "/a/*" → "/a/"

/** Does path pattern `a` match every path `b` matches? (conservative for regexes) */
const pathCovers = (a: { path: string; kind: PathKind }, b: { path: string; kind: PathKind }) => {
  if (a.kind === "catchall") return true
  if (a.kind === "prefix") return (b.kind === "exact" || b.kind === "prefix") && b.path.startsWith(prefixBase(a.path))
  if (a.kind === "exact") return b.kind === "exact" && a.path === b.path
  if (b.kind === "exact") return new RegExp(pathRegexpOf(a.path, a.kind)).test(b.path)
  return a.path === b.path
}

const pathsOverlap = (a: { path: string; kind: PathKind }, b: { path: string; kind: PathKind }) => {
  if (pathCovers(a, b) || pathCovers(b, a)) return true
  const regexVsPrefix = (r: { path: string; kind: PathKind }, p: { path: string; kind: PathKind }) =>
    r.kind === "regex" && p.kind === "prefix" && new RegExp(pathRegexpOf(r.path, r.kind)).test(`${prefixBase(p.path)}x`)
  return regexVsPrefix(a, b) || regexVsPrefix(b, a)
}

const shape = (r: CompiledRoute) => ({ path: r.path, kind: r.pathKind })

const serviceNameOf = (paywallId: string, routeId: string) => `${paywallId}-${routeId}`.replace(/[^A-Za-z0-9_.-]/g, "_")

const compare = (a: string | number, b: string | number) => (a < b ? -1 : a > b ? 1 : 0)

/** First-match order. */
export const compareRoutes = (a: CompiledRoute, b: CompiledRoute) =>
  compare(a.priority, b.priority) ||
  compare(HOST_SPECIFICITY[b.hostKind], HOST_SPECIFICITY[a.hostKind]) ||
  compare(PATH_SPECIFICITY[b.pathKind], PATH_SPECIFICITY[a.pathKind]) ||
  compare(a.host, b.host) ||
  compare(a.path, b.path) ||
  compare(a.paywallId, b.paywallId) ||
  compare(a.routeId, b.routeId)

// --- YAML ---------------------------------------------------------------------------------------

const dq = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")}"`
const sq = (s: string) => `'${s.replace(/'/g, "''")}'`

const addressOf = (url: URL) => {
  const port = url.port !== "" ? url.port : url.protocol === "https:" ? "443" : "80"
  return `${url.hostname}:${port}`
}

export const renderYaml = (routes: ReadonlyArray<CompiledRoute>, settings: ApertureSettings): string => {
  const lines = [
    "# Generated by @openagents/lightning Compiler. Do not edit: recompile from the control plane.",
    `listenaddr: ${dq(settings.listenAddr)}`,
    `insecure: ${settings.insecure ? "true" : "false"}`,
    `debuglevel: ${dq(settings.debugLevel)}`,
    `dbbackend: ${dq(settings.dbBackend)}`
  ]
  if (settings.dbBackend === "sqlite") lines.push("sqlite:", `  dbfile: ${dq(settings.sqliteDbFile)}`)
  lines.push(
    "authenticator:",
    `  network: ${dq(settings.network)}`,
    `  lndhost: ${dq(settings.lndHost)}`,
    `  tlspath: ${dq(settings.tlsPath)}`,
    `  macdir: ${dq(settings.macDir)}`,
    routes.length === 0 ? "services: []" : "services:"
  )
  for (const r of routes) {
    const url = new URL(r.upstream.url)
    lines.push(
      `  - name: ${dq(r.service)}`,
      `    hostregexp: ${sq(r.hostRegexp)}`,
      `    pathregexp: ${sq(r.pathRegexp)}`,
      `    address: ${dq(addressOf(url))}`,
      `    protocol: ${dq(r.upstream.protocol)}`,
      `    auth: "on"`,
      `    price: ${r.priceMsats / 1000}`
    )
    if (settings.tokenValiditySeconds > 0) lines.push(`    timeout: ${settings.tokenValiditySeconds}`)
    lines.push("    headers:", `      "X-OA-Paywall-Id": ${dq(r.paywallId)}`, `      "X-OA-Route-Id": ${dq(r.routeId)}`)
    if (url.pathname !== "/" && url.pathname !== "") lines.push("    rewrite:", `      prefix: ${dq(url.pathname.replace(/\/+$/, ""))}`)
  }
  return `${lines.join("\n")}\n`
}

// --- compile ------------------------------------------------------------------------------------

/** A table of compiled routes, ready to deploy: in first-match order, rendered, hashed. */
export const routeTable = (routes: ReadonlyArray<CompiledRoute>, settings: ApertureSettings = defaultSettings) => {
  const sorted = [...routes].sort(compareRoutes)
  const apertureYaml = renderYaml(sorted, settings)
  return { configHash: configHashOf(apertureYaml, sorted), apertureYaml, routes: sorted }
}

export type ConflictCode = "duplicate_route" | "ambiguous_route" | "first_match_shadowed"

/** The conflict between two routes, if any, with the one that matches `first` (first-match order). */
export const conflictBetween = (x: CompiledRoute, y: CompiledRoute): { readonly code: ConflictCode; readonly first: CompiledRoute; readonly second: CompiledRoute } | undefined => {
  const [a, b] = compareRoutes(x, y) <= 0 ? [x, y] : [y, x]
  if (a.host === b.host && a.path === b.path) return { code: "duplicate_route", first: a, second: b }
  if (a.host === b.host && a.priority === b.priority && PATH_SPECIFICITY[a.pathKind] === PATH_SPECIFICITY[b.pathKind] && pathsOverlap(shape(a), shape(b))) {
    return { code: "ambiguous_route", first: a, second: b }
  }
  if (a.priority <= b.priority && hostCovers(a.host, b.host) && pathCovers(shape(a), shape(b))) return { code: "first_match_shadowed", first: a, second: b }
  return undefined
}

/** One paywall's routes, or why it does not compile. */
const compilePaywall = (paywall: Paywall, settings: ApertureSettings): { readonly routes: Array<CompiledRoute>; readonly diagnostics: Array<Diagnostic> } => {
  const diagnostics: Array<Diagnostic> = []
  const accepted: Array<CompiledRoute> = []
  const at = { paywallId: paywall.paywallId }
  const price = paywall.policy.fixedAmountMsats
  let priced = true
  if (paywall.policy.pricingMode !== "fixed") {
    diagnostics.push({ code: "invalid_pricing_mode", severity: "error", message: `pricing mode ${paywall.policy.pricingMode} is not compilable (only fixed)`, ...at })
    priced = false
  } else if (!Number.isSafeInteger(price) || price <= 0) {
    diagnostics.push({ code: "missing_pricing", severity: "error", message: "fixedAmountMsats must be a positive integer", ...at })
    priced = false
  } else if (price % 1000 !== 0) {
    // Aperture prices in whole satoshis; rounding would charge a different price than the policy.
    diagnostics.push({ code: "price_not_whole_sats", severity: "error", message: `${price} msat is not a whole number of satoshis`, ...at })
    priced = false
  }
  for (const route of [...paywall.routes].sort((a, b) => compare(a.routeId, b.routeId))) {
    const where = { ...at, routeId: route.routeId }
    const host = normaliseHost(route.hostPattern)
    const path = normalisePath(route.pathPattern)
    const pathKind = pathKindOf(path)
    let valid = priced
    const hostProblem = hostPatternProblem(route.hostPattern)
    if (hostProblem !== undefined) {
      diagnostics.push({ code: "invalid_route_pattern", severity: "error", message: `host pattern "${route.hostPattern}" ${hostProblem}`, ...where })
      valid = false
    }
    const pathProblem = pathPatternProblem(route.pathPattern)
    if (pathProblem !== undefined) {
      diagnostics.push({ code: "invalid_route_pattern", severity: "error", message: `path pattern "${route.pathPattern}": ${pathProblem}`, ...where })
      valid = false
    } else if (settings.reservedPathPrefixes.some((reserved) => path.startsWith(reserved))) {
      diagnostics.push({ code: "invalid_route_pattern", severity: "error", message: `path pattern "${path}" is under a reserved prefix`, ...where })
      valid = false
    }
    const protocol = route.protocol?.trim().toLowerCase()
    if (protocol === undefined || protocol === "") {
      diagnostics.push({ code: "missing_route_protocol", severity: "error", message: "the route has no protocol", ...where })
      valid = false
    } else {
      let url: URL | undefined
      try {
        url = new URL(route.upstreamUrl)
      } catch {
        url = undefined
      }
      if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
        diagnostics.push({ code: "invalid_upstream_url", severity: "error", message: `upstream URL "${route.upstreamUrl}" is not an http(s) URL`, ...where })
        valid = false
      } else if (url.protocol !== `${protocol}:`) {
        diagnostics.push({ code: "invalid_upstream_url", severity: "error", message: `upstream scheme ${url.protocol.slice(0, -1)} differs from the route protocol ${protocol}`, ...where })
        valid = false
      }
    }
    if (!valid) continue
    accepted.push({
      id: `${paywall.paywallId}:${route.routeId}`,
      service: serviceNameOf(paywall.paywallId, route.routeId),
      paywallId: paywall.paywallId,
      ownerId: paywall.ownerId,
      routeId: route.routeId,
      host,
      hostKind: hostKindOf(host),
      hostRegexp: hostRegexpOf(host),
      path,
      pathKind,
      pathRegexp: pathRegexpOf(path, pathKind),
      upstream: { url: route.upstreamUrl, protocol: protocol as "http" | "https", timeoutMs: route.timeoutMs ?? DEFAULT_TIMEOUT_MS },
      priceMsats: price,
      priority: route.priority ?? DEFAULT_PRIORITY
    })
  }
  if (diagnostics.length > 0) return { routes: [], diagnostics }
  // Its own routes must not conflict: which one the owner meant is not the compiler's to decide.
  accepted.sort(compareRoutes)
  for (let j = 0; j < accepted.length; j++) {
    for (let i = 0; i < j; i++) {
      const conflict = conflictBetween(accepted[i]!, accepted[j]!)
      if (conflict === undefined) continue
      const { first: a, second: b } = conflict
      const related = { paywallId: b.paywallId, routeId: b.routeId, relatedRouteId: a.routeId, relatedPaywallId: a.paywallId }
      const message = conflict.code === "duplicate_route"
        ? `${b.id} repeats ${a.id} (${b.host}${b.path})`
        : conflict.code === "ambiguous_route"
        ? `${b.id} and ${a.id} overlap with the same priority and specificity`
        : `${b.id} is unreachable: ${a.id} matches first`
      diagnostics.push({ code: conflict.code, severity: "error", message, ...related })
    }
  }
  return diagnostics.length > 0 ? { routes: [], diagnostics } : { routes: accepted, diagnostics }
}

const routeKey = (r: CompiledRoute) => `${r.id}\u0000${r.host}\u0000${r.path}\u0000${r.priority}`

/**
 * Compile the active, not kill-switched paywalls into Aperture configuration and a route table.
 * Never fails as a whole: what does not compile is left out, with diagnostics naming it.
 */
export const compile = (paywalls: ReadonlyArray<Paywall>, settings: ApertureSettings = defaultSettings, options: CompileOptions = {}): CompileResult => {
  const diagnostics: Array<Diagnostic> = []
  const excluded: Array<string> = []
  const candidates: Array<{ readonly paywall: Paywall; readonly routes: ReadonlyArray<CompiledRoute> }> = []
  for (const paywall of [...paywalls].sort((a, b) => compare(a.paywallId, b.paywallId))) {
    if (paywall.status !== "active" || paywall.policy.killSwitch) continue
    const own = compilePaywall(paywall, settings)
    if (own.diagnostics.length > 0) {
      diagnostics.push(...own.diagnostics)
      excluded.push(paywall.paywallId)
    } else if (own.routes.length > 0) {
      candidates.push({ paywall, routes: own.routes })
    }
  }

  // Conflicts between paywalls: in precedence order, a paywall is kept when none of its routes
  // conflicts with a route already kept; otherwise it gives way whole.
  const deployed = new Set((options.deployed ?? []).map(routeKey))
  const isDeployed = (routes: ReadonlyArray<CompiledRoute>) => routes.every((r) => deployed.has(routeKey(r)))
  const ranked = candidates
    .map((c) => ({ ...c, deployed: isDeployed(c.routes) }))
    .sort((a, b) => compare(a.deployed ? 0 : 1, b.deployed ? 0 : 1) || compare(a.paywall.createdAtMs, b.paywall.createdAtMs) || compare(a.paywall.paywallId, b.paywall.paywallId))
  const kept: Array<CompiledRoute> = []
  const keptBy = new Map<string, (typeof ranked)[number]>()
  for (const candidate of ranked) {
    const conflicts: Array<Diagnostic> = []
    for (const route of candidate.routes) {
      for (const other of kept) {
        const conflict = conflictBetween(route, other)
        if (conflict === undefined) continue
        const holder = keptBy.get(other.paywallId)!
        const sameOwner = holder.paywall.ownerId === candidate.paywall.ownerId
        // Another owner's paywall is not named in the message (owners see messages); the
        // structured fields name it for operators.
        const that = sameOwner ? other.id : "a route of another owner's paywall"
        const why = holder.deployed && !candidate.deployed
          ? "it is deployed"
          : holder.paywall.createdAtMs < candidate.paywall.createdAtMs
          ? "it was created first"
          : "it has the smaller paywall id"
        const what = conflict.code === "duplicate_route"
          ? `${route.id} repeats ${that} (${route.host}${route.path})`
          : conflict.code === "ambiguous_route"
          ? `${route.id} and ${that} overlap with the same priority and specificity`
          : conflict.second === route
          ? `${route.id} is unreachable: ${that} matches first`
          : `${route.id} would make ${that} unreachable (it matches first)`
        conflicts.push({
          code: conflict.code,
          severity: "error",
          message: `${what}; that route is kept (${why}), so this paywall is left out`,
          paywallId: route.paywallId,
          routeId: route.routeId,
          relatedRouteId: other.routeId,
          relatedPaywallId: other.paywallId
        })
      }
    }
    if (conflicts.length > 0) {
      diagnostics.push(...conflicts)
      excluded.push(candidate.paywall.paywallId)
    } else {
      kept.push(...candidate.routes)
      kept.sort(compareRoutes)
      keptBy.set(candidate.paywall.paywallId, candidate)
    }
  }

  if (kept.length === 0) {
    // Still a deployment: an empty table is how paused, killed and invalid paywalls stop selling.
    diagnostics.push({ code: "no_compilable_routes", severity: "warn", message: "no active paywall has a compilable route: the gateway sells nothing" })
  }
  const table = routeTable(kept, settings)
  return { ...table, excluded: excluded.sort(compare), diagnostics }
}

/** The first route (in order) matching a request, as Aperture would pick its service. */
export const match = (routes: ReadonlyArray<CompiledRoute>, host: string, path: string): CompiledRoute | undefined =>
  routes.find((r) => new RegExp(r.hostRegexp).test(host.toLowerCase()) && new RegExp(r.pathRegexp).test(path))
