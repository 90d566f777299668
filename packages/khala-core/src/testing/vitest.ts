// @openagents/khala-core/testing/vitest: the storage and transport conformance suites, for this
// package's adapters and for anyone writing their own (needs vitest, @effect/vitest and
// fast-check; they register tests when called, so this entry only loads inside vitest).
export * as JournalSuite from "../JournalSuite.js"
export * as TransportSuite from "../TransportSuite.js"
