// Entry point of `@openagents/control-core/lightning-ops-rpc`: the lightning-ops contract alone
// (schemas, errors, the RpcGroup and client helpers), without control's storage or server code.
export * from "./LightningOpsRpc.js"
