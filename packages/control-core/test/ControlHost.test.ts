// The control host's configuration from an environment: how OA_TRUST_PROXY is read (a boolean or
// the number of trusted proxy hops), and that a bad value stops the host naming the variable.
import { describe, expect, it } from "@effect/vitest"
import { ControlHost } from "@openagents/control-core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"

const load = (env: Record<string, string>) =>
  ControlHost.loadConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ OA_CONTROL_MODE: "development", ...env })))))

describe("ControlHost.loadConfig", () => {
  it.effect("OA_TRUST_PROXY is true, false or a number of trusted proxy hops", () =>
    Effect.gen(function*() {
      expect((yield* load({})).http.trustProxy).toBe(false)
      for (const [raw, expected] of [["true", true], ["false", false], ["1", 1], ["2", 2], ["0", false], [" 3 ", 3]] as const) {
        expect([raw, (yield* load({ OA_TRUST_PROXY: raw })).http.trustProxy]).toEqual([raw, expected])
      }
    }))

  it.effect("refuses any other OA_TRUST_PROXY value with an error naming it", () =>
    Effect.gen(function*() {
      for (const raw of ["-1", "1.5", "maybe", "2 hops", "1e3"]) {
        const error = yield* Effect.flip(load({ OA_TRUST_PROXY: raw }))
        expect(String(error)).toContain("OA_TRUST_PROXY must be true, false, or the number of trusted proxy hops")
      }
    }))
})
