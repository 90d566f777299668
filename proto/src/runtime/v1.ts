// openagents.runtime.v1: runs, run events (hash-chained), Codex workers and worker events,
// summary documents, projection envelopes and replay receipts, and the runtime HTTP bodies and
// error envelope. Generated code lives in ../gen; this module is its public surface.
export * from "../gen/openagents/runtime/v1/codex_worker_events_pb.js"
export * from "../gen/openagents/runtime/v1/codex_workers_pb.js"
export * from "../gen/openagents/runtime/v1/errors_pb.js"
export * from "../gen/openagents/runtime/v1/projection_pb.js"
export * from "../gen/openagents/runtime/v1/run_events_pb.js"
export * from "../gen/openagents/runtime/v1/runs_pb.js"
export * from "../gen/openagents/runtime/v1/summaries_pb.js"
