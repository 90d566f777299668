// openagents.control.v1: email-code sign-in, token refresh and logout, sessions and their
// revocation, sync token requests, responses and JWT claims, and the control error envelope.
// Generated code lives in ../gen; this module is its public surface.
export * from "../gen/openagents/control/v1/auth_pb.js"
export * from "../gen/openagents/control/v1/errors_pb.js"
export * from "../gen/openagents/control/v1/sessions_pb.js"
export * from "../gen/openagents/control/v1/sync_token_pb.js"
