// openagents.lightning.v1: the L402 paywall control plane (paywalls, compile diagnostics,
// deployment intents, gateway events, invoices, settlements, security controls), the wallet
// executor (pay-bolt11, status, errors) and the L402 buyer's fetch result. Generated code lives
// in ../gen; this module is its public surface, with the rules of the contract (contract.ts).
export * from "../gen/openagents/lightning/v1/control_plane_pb.js"
export * from "../gen/openagents/lightning/v1/l402_pb.js"
export * from "../gen/openagents/lightning/v1/security_pb.js"
export * from "../gen/openagents/lightning/v1/settlements_pb.js"
export * from "../gen/openagents/lightning/v1/wallet_executor_pb.js"
export * from "./contract.js"
