// openagents.sync.v1: the Khala wire (envelope, connection and subscription frames, errors,
// snapshots). Generated code lives in ../gen; this module is its public surface.
export * from "../gen/openagents/sync/v1/envelope_pb.js"
export * from "../gen/openagents/sync/v1/errors_pb.js"
export * from "../gen/openagents/sync/v1/snapshot_pb.js"
export * from "../gen/openagents/sync/v1/sync_pb.js"
