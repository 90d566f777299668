// The khala-core tests' server harness: TestServer from @openagents/khala-core/testing.
import type { Notifier, Server, Storage, Topic, TopicAuthorizer, Transport } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import type * as Clock from "effect/Clock"
import type * as Layer from "effect/Layer"

export const KEY = TestServer.KEY
export const VERIFIER = TestServer.VERIFIER
export const tokenFor = TestServer.token

export interface HarnessOptions {
  readonly transport: Transport.Transport
  readonly storage?: Layer.Layer<Storage.KhalaStorage, unknown> | undefined
  readonly notifier?: Layer.Layer<Notifier.Notifier, unknown>
  readonly server?: Server.ServerOptions
  readonly authorizer?: Layer.Layer<TopicAuthorizer.TopicAuthorizer>
  readonly classes?: ReadonlyArray<Topic.TopicClass>
  readonly clock?: Clock.Clock
}

export const start = (options: HarnessOptions) => TestServer.start(options)

export type Harness = TestServer.TestServer

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
