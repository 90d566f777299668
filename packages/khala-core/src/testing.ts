// @openagents/khala-core/testing: the storage conformance suite and a protocol-level test client,
// for this package's tests and for anyone writing an adapter (needs vitest, @effect/vitest and
// fast-check for the suite; `ws` for the client).
export * as JournalSuite from "./JournalSuite.js"
export { TestClient } from "./TestClient.js"
