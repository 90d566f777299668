// @openagents/khala-core/testing: the storage and transport conformance suites and a
// protocol-level test client, for this package's tests and for anyone writing an adapter (the
// suites need vitest, @effect/vitest and fast-check; the client needs `ws`).
export * as JournalSuite from "./JournalSuite.js"
export { TestClient } from "./TestClient.js"
export * as TransportSuite from "./TransportSuite.js"
