// @openagents/khala-core/testing: the storage and transport conformance suites, a test server
// and a protocol-level test client — for this package's tests and for anyone writing an adapter
// or testing an app against Khala (the suites need vitest, @effect/vitest and fast-check; the
// server needs @effect/platform-node; the client needs `ws`).
export * as JournalSuite from "./JournalSuite.js"
export { TestClient } from "./TestClient.js"
export * as TestServer from "./TestServer.js"
export * as TransportSuite from "./TransportSuite.js"
