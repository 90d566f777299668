// @openagents/lightning — public surface. Modules are re-exported here as namespaces as they land.
export {}
