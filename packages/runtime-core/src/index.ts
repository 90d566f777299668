// @openagents/runtime-core: the runtime authority — runs, Codex workers and their events,
// projected into Khala in the same transaction.
export * as Api from "./Api.js"
export * as Auth from "./Auth.js"
export * as Errors from "./Errors.js"
export * as HashChain from "./HashChain.js"
export * as Migrations from "./migrations.js"
export * as Owners from "./Owners.js"
export * as Projection from "./Projection.js"
export * as Runs from "./Runs.js"
export * as RuntimeHost from "./RuntimeHost.js"
export * as RuntimeServer from "./RuntimeServer.js"
export * as Streams from "./Streams.js"
export * as Workers from "./Workers.js"
