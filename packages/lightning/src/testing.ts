// @openagents/lightning/testing: conformance suites for this package's ports, for its own
// adapters and for anyone writing their own (needs vitest, @effect/vitest and fast-check).
export * as LedgerSuite from "./LedgerSuite.js"
