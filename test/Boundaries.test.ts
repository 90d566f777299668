// The dependency boundaries are enforced by ESLint (eslint.config.js). These tests lint sample
// imports as if they were files of each package, so a rule that stops firing fails here.
import { ESLint } from "eslint"
import { describe, expect, it } from "vitest"

const eslint = new ESLint({ cwd: new URL("..", import.meta.url).pathname })

const violations = async (filePath: string, code: string) => {
  const [result] = await eslint.lintText(`${code}\nexport {}\n`, { filePath })
  return (result?.messages ?? []).filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message)
}

const refused = [
  ["packages/khala-client/src/Client.ts", `import "@openagents/khala-core"`, "server packages"],
  ["packages/khala-client/src/Client.ts", `import "@openagents/runtime-core"`, "server packages"],
  ["packages/khala-client/src/Client.ts", `import "@effect/sql/SqlClient"`, "database"],
  ["packages/khala-client/src/Client.ts", `import "node:fs"`, "Node-only"],
  ["packages/khala-client/src/Client.ts", `import "ws"`, "Node-only"],
  ["packages/khala-client/src/Client.ts", `import "stream"`, "Node-only"],
  ["packages/khala-client/src/Client.ts", `import "@openagents/host-kit"`, "server packages"],
  ["packages/host-kit/src/Database.ts", `import "@openagents/runtime-core"`, "below the planes"],
  ["packages/runtime-core/src/Runs.ts", `import "@openagents/khala-core/src/Journal.js"`, "src/ internals"],
  ["packages/runtime-core/src/Runs.ts", `import "../../khala-core/src/Journal.js"`, "src/ internals"],
  ["packages/runtime-core/test/Runs.test.ts", `import "@openagents/proto/src/gen/openagents/sync/v1/sync_pb.js"`, "src/ internals"],
  ["packages/runtime-core/src/Runs.ts", `import "@openagents/control-core"`, "control plane"],
  ["packages/control-core/src/Tokens.ts", `import "@openagents/runtime-core"`, "runtime"],
  ["packages/lightning/src/Reconciler.ts", `import "@openagents/control-core/sql"`, "share SQL"],
  ["packages/runtime-core/src/Runs.ts", `import "@openagents/lightning/migrations"`, "share SQL"],
  ["packages/khala-core/src/Journal.ts", `import "@openagents/runtime-core"`, "below the planes"],
  ["proto/src/index.ts", `import "@openagents/khala-core"`, "bottom layer"]
] as const

const allowed = [
  ["packages/khala-client/src/Client.ts", `import "@openagents/proto/sync/v1"`],
  ["packages/khala-client/src/node/FileStore.ts", `import "node:fs/promises"`],
  ["packages/khala-client/test/Client.test.ts", `import "@openagents/khala-core/testing"`],
  ["packages/khala-client/src/effect.ts", `import "effect/Stream"`],
  ["packages/runtime-core/src/Runs.ts", `import "@openagents/khala-core"`],
  ["packages/runtime-core/src/Runs.ts", `import "@effect/sql/SqlClient"`],
  ["packages/khala-core/test/Journal.test.ts", `import "../src/internal/codec.js"`],
  ["packages/lightning/src/Reconciler.ts", `import "@openagents/control-core"`]
] as const

describe("dependency boundaries", () => {
  for (const [file, code, reason] of refused) {
    it(`refuses \`${code}\` in ${file}`, async () => {
      const messages = await violations(file, code)
      expect(messages.length).toBe(1)
      expect(messages[0]).toContain(reason)
    })
  }
  for (const [file, code] of allowed) {
    it(`allows \`${code}\` in ${file}`, async () => {
      expect(await violations(file, code)).toEqual([])
    })
  }
})
