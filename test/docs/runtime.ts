// What the docs' TypeScript blocks find around them when test/DocsCodeBlocks.test.ts runs them:
// each block is written to test/docs/.generated/ between a prelude and an epilogue, and both
// reach the test's running parts (a Khala test server, a control server, a page origin) through
// this module. A block's free names — `url`, `tokenProvider`, `render` — are declared by its
// prelude from what is here.
import type { SyncStore } from "@openagents/khala-client"
import { memoryStore } from "@openagents/khala-client"
import { TestServer } from "@openagents/khala-core/testing"
import * as Effect from "effect/Effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Parts {
  /** The Khala test server (user "42" owns worker "w_123"). */
  readonly khala: TestServer.TestServer
  /** A page origin (what a browser page's relative URLs resolve against): `POST /api/sync/token` mints for user "42". */
  readonly origin: string
  /** A control server in the process (development configuration, in memory). */
  readonly control: string
}

let parts: Parts | undefined
export const setParts = (p: Parts | undefined) => void (parts = p)
export const get = (): Parts => {
  if (parts === undefined) throw new Error("the docs test has not started its parts")
  return parts
}

export const USER = "42"
export const token = (userId = USER) => TestServer.token(userId)

/** `fetch` as a page on the test origin sees it: relative URLs resolve against the origin. */
export const pageFetch = (input: string | URL | Request, init?: RequestInit) =>
  fetch(typeof input === "string" && input.startsWith("/") ? new URL(input, get().origin) : input, init)

/** Stands in for `console` in a block: records what it prints. */
export const recorder = () => {
  const lines: Array<ReadonlyArray<unknown>> = []
  const log = (...args: ReadonlyArray<unknown>) => void lines.push(args)
  return { log, info: log, warn: log, error: log, lines }
}

/** A `render` for a Stream of documents (`Stream.runForEach(render)`), recording what it gets. */
export const effectRecorder = () => {
  const rendered: Array<ReadonlyMap<string, unknown>> = []
  return { rendered, render: (docs: ReadonlyMap<string, unknown>) => Effect.sync(() => void rendered.push(docs)) }
}

/** A store that counts its applies (a stand-in for an app's own SQLite or MMKV store). */
export const countingStore = (): SyncStore & { applies: number } => {
  const inner = memoryStore()
  const store = {
    applies: 0,
    load: inner.load,
    clear: inner.clear,
    apply: async (...args: Parameters<SyncStore["apply"]>) => {
      await inner.apply(...args)
      store.applies++
    }
  }
  return store
}

export const tmp = (name: string) => mkdtempSync(join(tmpdir(), `oa-docs-${name}-`))

export const until = async (what: string, check: () => boolean, ms = 10_000) => {
  for (const deadline = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
}
