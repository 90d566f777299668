// @openagents/proto: the generated wire types of every plane, one namespace per package.
// Import a single plane through its subpath (`@openagents/proto/sync/v1`) to keep bundles small;
// this root entry is for tools that want all of them.
export * as controlV1 from "./control/v1.js"
export * as lightningV1 from "./lightning/v1.js"
export * as runtimeV1 from "./runtime/v1.js"
export * as syncV1 from "./sync/v1.js"
