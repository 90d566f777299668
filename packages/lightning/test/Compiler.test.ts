// The compiler against golden files (Aperture YAML, route table, diagnostics), plus determinism,
// each diagnostic code, first-match order and the config hash. Regenerate the golden files with
// UPDATE_GOLDEN=1 after an intended change, and review the diff.
import { Compiler, ControlPlane } from "@openagents/lightning"
import * as Schema from "effect/Schema"
import fc from "fast-check"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const dir = fileURLToPath(new URL("./golden", import.meta.url))
const load = (name: string) =>
  Schema.decodeUnknownSync(Schema.Struct({ paywalls: Schema.Array(ControlPlane.Paywall) }))(JSON.parse(readFileSync(join(dir, `${name}.input.json`), "utf8"))).paywalls

const golden = (file: string, actual: string) => {
  const path = join(dir, file)
  if (process.env["UPDATE_GOLDEN"] === "1" || !existsSync(path)) writeFileSync(path, actual)
  expect(actual).toBe(readFileSync(path, "utf8"))
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

describe("compiler golden files", () => {
  it("basic: active paywalls → Aperture services in first-match order, route table, config hash", () => {
    const result = Compiler.compile(load("basic"))
    expect(result.excluded).toEqual([])
    golden("basic.aperture.yaml", result.apertureYaml)
    golden("basic.routes.json", json({ configHash: result.configHash, routes: result.routes }))
    expect(result.routes.map((r) => r.id)).toEqual([
      "pw_weather:route_today", // priority 0
      "pw_signal:route_items", // priority 5, literal host
      "pw_signal:route_premium", // priority 5, wildcard host
      "pw_weather:route_all" // priority 10
    ])
    expect(result.apertureYaml).not.toMatch(/pw_paused|pw_killed/)
    expect(result.apertureYaml).toContain("price: 70\n")
  })

  it("diagnostics: every code, with paywall and route ids; each paywall with one is left out, and the compile still succeeds", () => {
    const input = load("diagnostics")
    const result = Compiler.compile(input)
    golden("diagnostics.json", json(result))
    const codes = new Set(result.diagnostics.map((d) => d.code))
    for (const code of [
      "invalid_pricing_mode", "missing_pricing", "price_not_whole_sats", "invalid_route_pattern", "invalid_upstream_url",
      "missing_route_protocol", "duplicate_route", "ambiguous_route", "first_match_shadowed"
    ] as const) expect(codes, code).toContain(code)
    // Every paywall of this input has a problem of its own: all left out, the empty table compiles.
    expect(result.excluded).toEqual(input.map((p) => p.paywallId).sort())
    expect(result.routes).toEqual([])
    expect(result.configHash).toBe(Compiler.compile([]).configHash)
  })

  it("conflicts between paywalls: the paywall that gives way is left out (deployed first, then earlier-created, then paywall id), the others compile", () => {
    const input = load("conflicts")
    const live = input.find((p) => p.paywallId === "pw_live")!
    const deployed = Compiler.compile([live]).routes
    const result = Compiler.compile(input, Compiler.defaultSettings, { deployed })
    golden("conflicts.json", json(result))
    expect(result.routes.map((r) => r.paywallId).sort()).toEqual(["pw_cart", "pw_items", "pw_live", "pw_weather", "pw_zeta"])
    expect(result.excluded).toEqual(["pw_half", "pw_items_a", "pw_live_taker", "pw_shop_all", "pw_weather_again", "pw_weather_copy"])
    const of = (paywallId: string) => result.diagnostics.filter((d) => d.paywallId === paywallId).map((d) => [d.code, d.relatedPaywallId])
    expect(of("pw_weather_copy")).toEqual([["duplicate_route", "pw_weather"]]) // another owner, created later
    expect(of("pw_weather_again")).toEqual([["duplicate_route", "pw_weather"]]) // the same owner, created later
    expect(of("pw_items_a")).toEqual([["ambiguous_route", "pw_items"]])
    expect(of("pw_shop_all")).toEqual([["first_match_shadowed", "pw_cart"]]) // it would shadow an older route
    expect(of("pw_live_taker")).toEqual([["duplicate_route", "pw_live"]]) // older, but pw_live is deployed
    expect(of("pw_half")).toEqual([["duplicate_route", "pw_weather"]]) // one conflicting route leaves the whole paywall out
    // Another owner's paywall is not named in what the owner reads; the structured fields name it.
    const taker = result.diagnostics.find((d) => d.paywallId === "pw_live_taker")!
    expect(taker.message).not.toContain("pw_live:")
    expect(taker.message).toMatch(/it is deployed/)
    expect(result.diagnostics.find((d) => d.paywallId === "pw_weather_again")!.message).toContain("pw_weather:route_pw_weather")
    // What is served is exactly the kept paywalls' own table.
    const kept = input.filter((p) => !result.excluded.includes(p.paywallId))
    expect(result.configHash).toBe(Compiler.compile(kept).configHash)
    // Without the deployed table, creation order decides: the older paywall takes the route.
    const cold = Compiler.compile(input)
    expect(cold.excluded).toContain("pw_live")
    expect(cold.excluded).not.toContain("pw_live_taker")
  })

  it("conflict resolution does not depend on input order (any permutation: byte-identical output)", () => {
    const input = load("conflicts")
    const deployed = Compiler.compile([input.find((p) => p.paywallId === "pw_live")!]).routes
    const reference = Compiler.compile(input, Compiler.defaultSettings, { deployed })
    fc.assert(fc.property(fc.shuffledSubarray([...input], { minLength: input.length }), (shuffled) => {
      const result = Compiler.compile(shuffled, Compiler.defaultSettings, { deployed: [...deployed].reverse() })
      expect(result.configHash).toBe(reference.configHash)
      expect(result.apertureYaml).toBe(reference.apertureYaml)
      expect(result.excluded).toEqual(reference.excluded)
      expect(result.diagnostics).toEqual(reference.diagnostics)
    }))
  })

  it("an owner cannot take over a deployed route by editing an older paywall onto it; a route whose pattern changed is not deployed", () => {
    const input = load("conflicts")
    const live = input.find((p) => p.paywallId === "pw_live")!
    const older = input.find((p) => p.paywallId === "pw_live_taker")!
    const before = Compiler.compile([live, { ...older, routes: older.routes.map((r) => ({ ...r, pathPattern: "/elsewhere" })) }])
    expect(before.excluded).toEqual([])
    const edited = Compiler.compile([live, older], Compiler.defaultSettings, { deployed: before.routes })
    expect(edited.excluded).toEqual(["pw_live_taker"])
    // pw_live moves its route onto pw_live_taker's deployed one: now pw_live is the newcomer.
    const swapped = Compiler.compile([{ ...live, routes: live.routes.map((r) => ({ ...r, pathPattern: "/elsewhere" })) }, { ...older, routes: older.routes.map((r) => ({ ...r, pathPattern: "/elsewhere" })) }], Compiler.defaultSettings, { deployed: before.routes })
    expect(swapped.excluded).toEqual(["pw_live"])
  })

  it("no_compilable_routes (a warning) when nothing is active: the empty table still compiles, so the gateway can be emptied", () => {
    const result = Compiler.compile(load("empty"))
    golden("empty.diagnostics.json", json(result))
    expect(result.diagnostics.map((d) => [d.code, d.severity])).toEqual([["no_compilable_routes", "warn"]])
    expect(result.routes).toEqual([])
    expect(result.apertureYaml).toContain("services: []\n")
  })
})

describe("compiler", () => {
  const base = load("basic")

  it("isolates a bad paywall: a regex host (control's old API example) is a diagnostic for that paywall, the others still compile", () => {
    const good = base.find((p) => p.paywallId === "pw_weather")!
    const regexHost: ControlPlane.Paywall = {
      ...good,
      paywallId: "pw_regex",
      ownerId: "owner_other",
      policy: { ...good.policy, paywallId: "pw_regex", ownerId: "owner_other" },
      routes: [{ ...good.routes[0]!, routeId: "route_pw_regex", hostPattern: "^l402\\.example\\.com$", pathPattern: "^/premium$" }]
    }
    const alone = Compiler.compile([good])
    const result = Compiler.compile([regexHost, good])
    expect(result.excluded).toEqual(["pw_regex"])
    expect(result.diagnostics).toEqual([expect.objectContaining({ code: "invalid_route_pattern", severity: "error", paywallId: "pw_regex", routeId: "route_pw_regex" })])
    // What is served is exactly the good paywall's table.
    expect(result.configHash).toBe(alone.configHash)
    expect(result.routes.map((r) => r.paywallId)).toEqual(good.routes.map(() => "pw_weather"))
    // One bad route leaves its whole paywall out (never half a paywall).
    const halfBad = { ...good, routes: [...good.routes, { ...good.routes[0]!, routeId: "route_bad", hostPattern: "bad host!" }] }
    const partial = Compiler.compile([halfBad])
    expect(partial.routes).toEqual([])
    expect(partial.excluded).toEqual(["pw_weather"])
  })

  it("is deterministic: any order of paywalls and routes gives byte-identical output", () => {
    const reference = Compiler.compile(base)
    fc.assert(fc.property(fc.shuffledSubarray([...base], { minLength: base.length }), fc.integer(), (shuffled, seed) => {
      const withShuffledRoutes = shuffled.map((p) => ({ ...p, routes: seed % 2 === 0 ? [...p.routes].reverse() : p.routes }))
      const result = Compiler.compile(withShuffledRoutes)
      expect(result.configHash).toBe(reference.configHash)
      expect(result.apertureYaml).toBe(reference.apertureYaml)
    }))
  })

  it("changes the config hash when anything served changes (price, upstream timeout)", () => {
    const reference = Compiler.compile(base).configHash
    const repriced = base.map((p) => p.paywallId === "pw_weather" ? { ...p, policy: { ...p.policy, fixedAmountMsats: 22_000 } } : p)
    expect(Compiler.compile(repriced).configHash).not.toBe(reference)
    const retimed = base.map((p) => p.paywallId === "pw_weather" ? { ...p, routes: p.routes.map((r) => ({ ...r, timeoutMs: 1 })) } : p)
    expect(Compiler.compile(retimed).configHash).not.toBe(reference)
  })

  it("matches requests as Aperture would: first matching service in order, host with or without port", () => {
    const result = Compiler.compile(base)
    expect(Compiler.match(result.routes, "api.example.com", "/weather/today")?.id).toBe("pw_weather:route_today")
    expect(Compiler.match(result.routes, "API.example.com:8081", "/weather/tomorrow")?.id).toBe("pw_weather:route_all")
    expect(Compiler.match(result.routes, "l402.openagents.com", "/items/42")?.id).toBe("pw_signal:route_items")
    expect(Compiler.match(result.routes, "l402.openagents.com", "/items/x")).toBeUndefined()
    expect(Compiler.match(result.routes, "x.openagents.com", "/ep212/premium-signal")?.id).toBe("pw_signal:route_premium")
    expect(Compiler.match(result.routes, "openagents.com", "/ep212/premium-signal")).toBeUndefined()
    expect(Compiler.match(result.routes, "api.example.com", "/other")).toBeUndefined()
  })

  it("classifies and normalises patterns", () => {
    expect(["/", "/*", "/a/*", "/a/[0-9]+", "/a/*/b", "/a/b"].map(Compiler.pathKindOf)).toEqual(["catchall", "catchall", "prefix", "regex", "regex", "exact"])
    expect(["*", "*.a.com", "a.com"].map(Compiler.hostKindOf)).toEqual(["any", "wildcard", "literal"])
    expect(Compiler.normalisePath("  ")).toBe("/")
    expect(Compiler.normalisePath("x/y")).toBe("/x/y")
    expect(Compiler.normaliseHost(" A.COM ")).toBe("a.com")
  })
})
