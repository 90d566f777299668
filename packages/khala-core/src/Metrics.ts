// The Khala server's metrics (Effect Metric; exported in Prometheus text by host-kit).
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

export const connections = Metric.gauge("khala_connections", { description: "Open Khala WebSocket connections" })
export const subscriptions = Metric.gauge("khala_subscriptions", { description: "Active topic subscriptions" })
export const replayBatches = Metric.counter("khala_replay_batches_total", { description: "Update batches sent by replay (catch-up)" })
export const replayEvents = Metric.counter("khala_replay_events_total", { description: "Events sent by replay (catch-up)" })
export const replayLag = Metric.histogram(
  "khala_replay_lag_events",
  MetricBoundaries.fromIterable([0, 1, 10, 100, 1000, 10_000, 100_000]),
  "Events behind the head when a subscription starts"
)
export const fanoutBatches = Metric.counter("khala_fanout_batches_total", { description: "Live batches read once and published per topic" })
export const fanoutReadSeconds = Metric.counter("khala_fanout_read_seconds_total", {
  description: "Time the fanout hub spent reading woken topics from the journal (wall time, storage round trips included)"
})
export const fanoutPublishSeconds = Metric.counter("khala_fanout_publish_seconds_total", {
  description: "Time the fanout hub spent encoding and handing live batches to the transport: event-loop time, one synchronous step per pass"
})
export const fanoutLatency = Metric.histogram(
  "khala_fanout_latency_ms",
  MetricBoundaries.fromIterable([1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000]),
  "From journal commit to live publish, in milliseconds: one observation per published batch, of its oldest event"
)
export const slowConsumerDemotions = Metric.counter("khala_slow_consumer_demotions_total", { description: "Subscribers demoted from live push to paced replay" })
export const slowConsumerDisconnects = Metric.counter("khala_slow_consumer_disconnects_total", { description: "Connections closed as slow consumers" })
export const authFailures = Metric.frequency("khala_auth_failures_total", { description: "Refused sync tokens by reason" })
export const badFrames = Metric.frequency("khala_bad_frames_total", { description: "Refused inbound frames by reason" })
export const staleCursors = Metric.counter("khala_stale_cursors_total", { description: "Subscriptions refused with stale_cursor" })
export const closes = Metric.frequency("khala_closes_total", { description: "Connections closed by the server, by close code" })
export const retentionPruneFailures = Metric.counter("khala_retention_prune_failures_total", {
  description: "Topics whose retention prune failed (the run went on with the other topics; the next run retries them)"
})
