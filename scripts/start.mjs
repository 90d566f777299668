#!/usr/bin/env node
// `npm start` will run the whole system on embedded PGlite (control, runtime + Khala,
// lightning-ops, wallet executor, L402 gateway, LND simulator and a web dashboard). Until those
// hosts exist it says so and fails, rather than pretending to start something.
console.error(
  "npm start: not yet implemented.\n" +
    "The hosts (runtime + Khala, control, Lightning) and the dev supervisor land in later milestones;\n" +
    "see README.md for what exists today. `npm test` runs the test suites."
)
process.exit(1)
