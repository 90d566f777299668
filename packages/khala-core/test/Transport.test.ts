import { UwsTransport, WsTransport } from "@openagents/khala-core"
import { TransportSuite } from "@openagents/khala-core/testing/vitest"
import { expect, it } from "vitest"

TransportSuite.run(UwsTransport.transport)
TransportSuite.run(WsTransport.transport)

it("loads a native uWebSockets.js binary on this Node", () => {
  const loaded = UwsTransport.load()
  expect(loaded.native).toBe(true)
})
