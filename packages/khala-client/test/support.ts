import type { SyncStore, TopicChange, WebSocketConstructor } from "@openagents/khala-client"
import { createClient } from "@openagents/khala-client"
import { Journal, ReadModels } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import * as Effect from "effect/Effect"
import WebSocket from "ws"

export const WS = WebSocket as unknown as WebSocketConstructor
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export const until = async (check: () => boolean, ms = 10_000, what = "condition") => {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`${what} not met within ${ms} ms`)
    await sleep(5)
  }
}

/** A store that records every apply (to check nothing is applied twice) around another store. */
export const recording = (inner: SyncStore) => {
  const applies: Array<{ topic: string; change: TopicChange }> = []
  const store: SyncStore = {
    load: inner.load,
    clear: inner.clear,
    apply: async (topic, change) => {
      await inner.apply(topic, change)
      applies.push({ topic, change })
    }
  }
  return { store, applies }
}

/** The server's read model of a topic, as docKey → JSON text. */
export const readModel = async (server: TestServer.TestServer, topic: string) =>
  new Map(
    (await server.run(Effect.flatMap(ReadModels.ReadModels, (r) => r.list(topic)).pipe(Effect.provide(ReadModels.layer)))).map((d: any) => [d.docKey, d.payload])
  )

export const head = (server: TestServer.TestServer, topic: string) => server.run(Effect.flatMap(Journal.Journal, (j) => j.position(topic))).then((p: any) => p.head as bigint)

export const clientFor = (server: TestServer.TestServer, userId: string, extra: Partial<Parameters<typeof createClient>[0]> = {}) =>
  createClient({ url: server.url, snapshotBaseUrl: server.httpUrl, tokenProvider: () => TestServer.token(userId), WebSocket: WS, backoff: { initialDelayMs: 20, maxDelayMs: 200 }, ...extra })

export const docsOf = (client: ReturnType<typeof createClient>, topic: string) => new Map([...client.documents(topic)].map(([k, d]) => [k, d.json]))
