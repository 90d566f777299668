// @openagents/khala-core/testing: a test server and a protocol-level test client — for this
// package's tests, the client's, apps' tests, benchmarks and tools. Importable from plain Node
// (no test runner): the server needs @effect/platform-node, the client needs `ws`. The
// conformance suites, which need vitest, are in `@openagents/khala-core/testing/vitest`.
export { TestClient } from "./TestClient.js"
export * as TestServer from "./TestServer.js"
