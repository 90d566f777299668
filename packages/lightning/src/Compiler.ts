// The paywall policy compiler: control-plane paywalls → Aperture's own configuration (one
// `services:` entry per route, with an explicit non-zero price) as deterministic YAML, plus the
// route table the reference gateway serves from, plus diagnostics (UPSTREAM_SPEC §4.1).
//
// Determinism: the same paywalls (in any order) give byte-identical output — routes are sorted
// (= first-match order: priority asc, host specificity desc, path specificity desc, host, path,
// paywallId, routeId), keys are written in a fixed order and every scalar is quoted (YAML 1.1
// would read `on`/`off` as booleans). `configHash = "cfg_" + sha256(yaml ‖ canonical route table)`.
// Isolation: a diagnostic that names one paywall (pricing, route pattern, upstream, protocol)
// leaves that whole paywall out (`excluded`) and the others compile — one owner's bad paywall
// never stops everyone's. A conflict between routes (duplicate, ambiguous, shadowed) fails the
// compile; a failed compile still has a `configHash`: the snapshot hash of its input, so the
// failed intent names what was compiled. No route at all is a warning, not a failure: the empty
// table is deployed, so paused, killed and invalid paywalls stop being sold.
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

export type CompileResult =
  | {
    readonly ok: true
    readonly configHash: string
    readonly apertureYaml: string
    readonly routes: ReadonlyArray<CompiledRoute>
    /** The paywalls left out (their diagnostics name them); the others compiled. */
    readonly excluded: ReadonlyArray<string>
    readonly diagnostics: ReadonlyArray<Diagnostic>
  }
  | {
    readonly ok: false
    readonly configHash: string
    readonly diagnostics: ReadonlyArray<Diagnostic>
  }

export const DEFAULT_TIMEOUT_MS = 15_000
export const DEFAULT_PRIORITY = 0

const hash = (text: string) => `cfg_${toHex(sha256(utf8(text)))}`

/** The hash of the compiler's input (the configHash of a failed compile). */
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

/** Compile the active, not kill-switched paywalls into Aperture configuration and a route table. */
export const compile = (paywalls: ReadonlyArray<Paywall>, settings: ApertureSettings = defaultSettings): CompileResult => {
  const diagnostics: Array<Diagnostic> = []
  const routes: Array<CompiledRoute> = []
  const ordered = [...paywalls].sort((a, b) => compare(a.paywallId, b.paywallId))
  const excluded: Array<string> = []
  for (const paywall of ordered) {
    if (paywall.status !== "active" || paywall.policy.killSwitch) continue
    // A paywall compiles whole or not at all; its problems never stop the other paywalls.
    const before = diagnostics.length
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
    if (diagnostics.length > before) excluded.push(paywall.paywallId)
    else routes.push(...accepted)
  }
  routes.sort(compareRoutes)
  const conflictsFrom = diagnostics.length

  // Conflicts, in first-match order.
  for (let j = 0; j < routes.length; j++) {
    const b = routes[j]!
    for (let i = 0; i < j; i++) {
      const a = routes[i]!
      const related = { paywallId: b.paywallId, routeId: b.routeId, relatedRouteId: a.routeId }
      if (a.host === b.host && a.path === b.path) {
        diagnostics.push({ code: "duplicate_route", severity: "error", message: `${b.id} repeats ${a.id} (${b.host}${b.path})`, ...related })
      } else if (
        a.host === b.host && a.priority === b.priority && PATH_SPECIFICITY[a.pathKind] === PATH_SPECIFICITY[b.pathKind] && pathsOverlap(shape(a), shape(b))
      ) {
        diagnostics.push({ code: "ambiguous_route", severity: "error", message: `${b.id} and ${a.id} overlap with the same priority and specificity`, ...related })
      } else if (a.priority <= b.priority && hostCovers(a.host, b.host) && pathCovers(shape(a), shape(b))) {
        diagnostics.push({ code: "first_match_shadowed", severity: "error", message: `${b.id} is unreachable: ${a.id} matches first`, ...related })
      }
    }
  }
  // Which of two conflicting routes an owner meant is not the compiler's to decide: a conflict
  // fails the compile (the gateway keeps its deployment).
  if (diagnostics.length > conflictsFrom) return { ok: false, configHash: snapshotHash(paywalls), diagnostics }
  if (routes.length === 0) {
    // Still a deployment: an empty table is how paused, killed and invalid paywalls stop selling.
    diagnostics.push({ code: "no_compilable_routes", severity: "warn", message: "no active paywall has a compilable route: the gateway sells nothing" })
  }
  const apertureYaml = renderYaml(routes, settings)
  return { ok: true, configHash: hash(`${apertureYaml}\n${canonicalJson(routes)}`), apertureYaml, routes, excluded, diagnostics }
}

/** The first route (in order) matching a request, as Aperture would pick its service. */
export const match = (routes: ReadonlyArray<CompiledRoute>, host: string, path: string): CompiledRoute | undefined =>
  routes.find((r) => new RegExp(r.hostRegexp).test(host.toLowerCase()) && new RegExp(r.pathRegexp).test(path))
