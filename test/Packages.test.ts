// The published shape of every @openagents package: each export has a source entry (tests and
// typecheck use it) and ESM, CJS and .d.ts targets (users get those), tsup builds exactly the
// exported entries, and the manifest carries what npm and bundlers need.
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const root = new URL("..", import.meta.url).pathname
const dirs = ["proto", ...readdirSync(join(root, "packages")).map((d) => `packages/${d}`)]

interface Manifest {
  name: string
  type?: string
  private?: boolean
  sideEffects?: boolean
  files?: Array<string>
  engines?: { node?: string }
  exports: Record<string, any>
  publishConfig?: { access?: string }
  dependencies?: Record<string, string>
}

describe.each(dirs)("%s", (dir) => {
  const manifest = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8")) as Manifest
  const subpaths = Object.entries(manifest.exports).filter(([key]) => key !== "./package.json")

  it("is a public, side-effect-free ESM package for Node >= 20", () => {
    expect(manifest.name).toMatch(/^@openagents\/[a-z0-9-]+$/)
    expect(manifest.private).toBeUndefined()
    expect(manifest.type).toBe("module")
    expect(manifest.sideEffects).toBe(false)
    expect(manifest.engines?.node).toBe(">=20")
    expect(manifest.publishConfig?.access).toBe("public")
    expect(manifest.files).toContain("dist")
    expect(existsSync(join(root, dir, "README.md"))).toBe(true)
  })

  it("maps every export to an existing source and to ESM, CJS and type targets, types first", () => {
    expect(subpaths.length).toBeGreaterThan(0)
    for (const [subpath, target] of subpaths) {
      expect(Object.keys(target), subpath).toEqual(["@openagents/source", "import", "require"])
      expect(existsSync(join(root, dir, target["@openagents/source"])), `${subpath} source`).toBe(true)
      const stem = subpath === "." ? "index" : subpath.slice(2)
      expect(target.import).toEqual({ types: `./dist/${stem}.d.ts`, default: `./dist/${stem}.js` })
      expect(target.require).toEqual({ types: `./dist/${stem}.d.cts`, default: `./dist/${stem}.cjs` })
    }
  })

  it("builds with tsup exactly the exported entries", () => {
    const config = readFileSync(join(root, dir, "tsup.config.ts"), "utf8")
    const entries = JSON.parse(config.match(/packageConfig\((\[.*\])\)/)![1]!) as Array<string>
    expect(entries.sort()).toEqual(subpaths.map(([, t]) => (t["@openagents/source"] as string).slice(2)).sort())
  })

  it("pins Effect to the 3 line and protobuf to 2.13 (DESIGN.md §7)", () => {
    const deps = manifest.dependencies ?? {}
    if (deps["effect"]) expect(deps["effect"]).toMatch(/^\^3\./)
    if (deps["@bufbuild/protobuf"]) expect(deps["@bufbuild/protobuf"]).toBe("2.13.0")
  })
})

// Test servers and clients are for benchmarks and tools too, so their entries must load without
// vitest (importing vitest outside its runner throws). Run in a plain Node child, from source.
describe("test-support entries outside vitest", () => {
  it("@openagents/khala-core/testing loads in plain Node", () => {
    const script = `const m = await import("@openagents/khala-core/testing"); if (typeof m.TestServer.start !== "function" || typeof m.TestClient !== "function") throw new Error("missing exports")`
    const result = spawnSync(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", "--input-type=module", "-e", script], { cwd: root, encoding: "utf8" })
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
  })
})
