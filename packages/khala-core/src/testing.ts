// @openagents/khala-core/testing: the storage conformance suite, for this package's adapters and
// for anyone writing their own (needs vitest, @effect/vitest and fast-check).
export * as JournalSuite from "./JournalSuite.js"
