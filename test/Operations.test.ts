// docs/OPERATIONS.md lists every environment variable the hosts read, and docs/GETTING_STARTED.md
// every setting of `npm start`: the names are collected from the configuration code itself (each
// quoted upper-case name in a config module), so a new variable without documentation fails here.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const root = new URL("..", import.meta.url).pathname
const read = (path: string) => readFileSync(join(root, path), "utf8")

// The modules that read host configuration (Config.* calls and the helpers around them).
const configModules = [
  "packages/control-core/src/ControlHost.ts",
  "packages/host-kit/src/Database.ts",
  "packages/khala-core/src/SyncToken.ts",
  "packages/lightning/src/LightningOps.ts",
  "packages/lightning/src/WalletExecutor.ts",
  "packages/lightning/src/lnd/rest.ts",
  "packages/lightning/src/lndsim/host.ts",
  "packages/runtime-core/src/RuntimeHost.ts",
  "hosts/control/src/main.ts",
  "hosts/l402-gateway/src/main.ts",
  "hosts/lightning-ops/src/main.ts",
  "hosts/lnd-sim/src/main.ts",
  "hosts/wallet-executor/src/main.ts",
  "hosts/runtime/src/main.ts"
]

const VARIABLE = /"((?:OA|LND|L402|WORKOS|DATABASE)_[A-Z0-9_]+|DATA_DIR|HOST|PORT)"/g
const namesIn = (text: string) => new Set([...text.matchAll(VARIABLE)].map((m) => m[1]!))

describe("operations docs", () => {
  it("OPERATIONS.md names every variable of every host's configuration", () => {
    const docs = read("docs/OPERATIONS.md")
    const names = new Set(configModules.flatMap((m) => [...namesIn(read(m))]))
    expect(names.size).toBeGreaterThan(60)
    const missing = [...names].filter((n) => !docs.includes(`\`${n}\``))
    expect(missing).toEqual([])
  })

  it("GETTING_STARTED.md and OPERATIONS.md name every setting of npm start", () => {
    const names = [...read("scripts/start.mjs").matchAll(/"(OA_START_[A-Z_]+)"/g)].map((m) => m[1]!)
    expect(names.length).toBeGreaterThanOrEqual(11)
    for (const doc of ["docs/GETTING_STARTED.md", "docs/OPERATIONS.md"]) {
      const text = read(doc)
      expect(names.filter((n) => !text.includes(`\`${n}\``)), doc).toEqual([])
    }
  })
})
