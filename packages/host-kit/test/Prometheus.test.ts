import { Prometheus } from "@openagents/host-kit"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import { describe, expect, it } from "vitest"

describe("Prometheus exposition", () => {
  it("renders counters, gauges, labelled series, histograms and frequencies", async () => {
    const requests = Metric.counter("test_requests_total", { description: "requests\nserved" })
    const open = Metric.gauge("test.open-connections")
    const latency = Metric.histogram("test_latency_ms", MetricBoundaries.fromIterable([1, 10, 100]))
    const codes = Metric.frequency("test_auth_failures")
    await Effect.runPromise(
      Effect.gen(function*() {
        yield* Metric.increment(requests)
        yield* Metric.increment(Metric.tagged(requests, "route", "/x\"y"))
        yield* Metric.set(open, 3)
        for (const v of [0.5, 5, 50, 500]) yield* Metric.update(latency, v)
        yield* Metric.update(codes, "token_expired")
        yield* Metric.update(codes, "token_expired")
        yield* Metric.update(codes, "unknown_kid")
      })
    )
    const text = Prometheus.render()
    expect(text).toContain("# HELP test_requests_total requests\\nserved\n# TYPE test_requests_total counter\n")
    expect(text).toContain("test_requests_total 1\n")
    expect(text).toContain(`test_requests_total{route="/x\\"y"} 1\n`)
    expect(text).toContain("# TYPE test_open_connections gauge\ntest_open_connections 3\n")
    expect(text).toContain(`test_latency_ms_bucket{le="1"} 1\n`)
    expect(text).toContain(`test_latency_ms_bucket{le="10"} 2\n`)
    expect(text).toContain(`test_latency_ms_bucket{le="100"} 3\n`)
    expect(text).toContain(`test_latency_ms_bucket{le="+Inf"} 4\n`)
    expect(text).toContain("test_latency_ms_sum 555.5\ntest_latency_ms_count 4\n")
    expect(text).toContain(`test_auth_failures{key="token_expired"} 2\n`)
    expect(text).toContain(`test_auth_failures{key="unknown_kid"} 1\n`)
    // One TYPE line per family, families sorted.
    expect(text.match(/# TYPE test_requests_total /g)?.length).toBe(1)
  })
})
