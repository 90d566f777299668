// @openagents/sql-pglite: an @effect/sql SqlClient over embedded PGlite, and LISTEN/NOTIFY that
// works the same on PGlite and on @effect/sql-pg.
export * as PgliteClient from "./PgliteClient.js"
export * as SqlNotify from "./SqlNotify.js"
