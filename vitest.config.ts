import { defineConfig } from "vitest/config"

// Tests run against TypeScript sources: the "@openagents/source" export condition points every
// workspace package at its src/ (vitest's node environment only honours ssr.resolve.conditions,
// and custom conditions replace vite's defaults, so the defaults are repeated).
export default defineConfig({
  ssr: { resolve: { conditions: ["@openagents/source", "module", "node", "development|production"] } },
  resolve: { conditions: ["@openagents/source", "module", "browser", "development|production"] },
  test: {
    include: [
      "test/**/*.test.ts",
      "proto/test/**/*.test.ts",
      "packages/*/test/**/*.test.ts",
      "hosts/*/test/**/*.test.ts",
      "examples/*/test/**/*.test.ts"
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default"]
  }
})
