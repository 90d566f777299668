// A worker's event topic grows by one document per event, for as long as the worker runs (the
// demo worker: one a second). The page shows the newest few; the client's `keepNewest` option
// bounds the rest: once an event topic holds more than twice KEPT_EVENTS documents, the client
// keeps the newest KEPT_EVENTS (by doc_version, the event's seq), in memory and in IndexedDB
// (through the store's atomic `replace`, with the same watermark, so nothing dropped is fetched
// again). Summaries are read models, one document per worker: never trimmed.

/** Events kept per worker: between this and twice this, in memory and in IndexedDB. */
export const KEPT_EVENTS = 100
export const EVENTS_CLASS = "runtime.codex_worker_events"

/** The client's `keepNewest` option for the dashboard. */
export const keepNewest = (topic: string): number | undefined => (topic.startsWith(`${EVENTS_CLASS}:`) ? KEPT_EVENTS : undefined)
