// The storage conformance suite on every adapter: memory, PGlite, and Postgres when
// TEST_DATABASE_URL is set (where the concurrency tests also run).
import { MemoryStorage, SqlStorage } from "@openagents/control-core"
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Layer from "effect/Layer"
import { storageSuite } from "./StorageSuite.js"

storageSuite("memory", MemoryStorage.layer, { concurrent: true })
for (const engine of SqlTesting.engines()) {
  storageSuite(engine.name, SqlStorage.layer.pipe(Layer.provide(engine.layer)), { concurrent: engine.concurrent })
}
