// @openagents/khala-client/testing: the store conformance suite (needs vitest).
export * as StoreSuite from "./StoreSuite.js"
