// @openagents/host-kit: shared by every OpenAgents host (runtime, control, Lightning).
export * as Database from "./Database.js"
export * as Health from "./Health.js"
export * as Prometheus from "./Prometheus.js"
export * as InternalSignature from "./InternalSignature.js"
