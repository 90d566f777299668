// A runtime host in the test process: RuntimeHost.layer on a real HTTP server and a real Khala
// WebSocket server (ephemeral ports on 127.0.0.1) over one SQL engine, with a generated ES256 key
// standing in for control's access-token key (its public half is the host's static JWKS) and
// real signed internal headers.
import { NodeHttpServer } from "@effect/platform-node"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { InternalSignature } from "@openagents/host-kit"
import { Server } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import { SqlNotify } from "@openagents/sql-pglite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose"
import { createServer } from "node:http"
import * as RuntimeHost from "../src/RuntimeHost.js"

export const CONTROL_URL = "https://control.test"
export const INTERNAL_KEY: InternalSignature.Key = { kid: "runtime-internal-test", secret: Redacted.make("i".repeat(40)) }

export interface Host {
  readonly baseUrl: string
  readonly khalaUrl: string
  readonly runtime: ManagedRuntime.ManagedRuntime<any, unknown>
  readonly run: <A>(effect: Effect.Effect<A, unknown, any>) => Promise<A>
  /** A control-style access token for `userId`. */
  readonly accessToken: (userId: string, options?: AccessTokenOptions) => Promise<string>
  /** fetch with the signed internal header for `userId` (undefined: no user, a service call). */
  readonly internal: (method: string, path: string, userId: string | undefined, body?: unknown, headers?: Record<string, string>) => Promise<Response>
  /** fetch with a bearer token. */
  readonly bearer: (method: string, path: string, token: string, body?: unknown, headers?: Record<string, string>) => Promise<Response>
  readonly dispose: () => Promise<void>
}

export interface AccessTokenOptions {
  readonly sid?: string
  readonly did?: string
  readonly ttlSeconds?: number
  readonly claims?: Record<string, unknown>
  readonly header?: Record<string, unknown>
  readonly key?: CryptoKey
}

const signingKey = (async () => {
  const pair = await generateKeyPair("ES256", { extractable: true })
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: "control-test-k1", alg: "ES256", use: "sig" }
  return { privateKey: pair.privateKey, jwk }
})()

export const otherKey = (async () => (await generateKeyPair("ES256")).privateKey)()

export const startHost = async (sql: Layer.Layer<SqlClient.SqlClient, SqlError>, overrides: Partial<RuntimeHost.RuntimeHostConfig> = {}): Promise<Host> => {
  const key = await signingKey
  const config: RuntimeHost.RuntimeHostConfig = {
    host: "127.0.0.1",
    port: 0,
    khala: { host: "127.0.0.1", port: 0, transport: "ws" },
    controlUrl: CONTROL_URL,
    controlJwks: { keys: [key.jwk] },
    internalKeys: [INTERNAL_KEY],
    sync: TestServer.VERIFIER,
    retentionIntervalMs: 60_000,
    ...overrides
  }
  const layer = RuntimeHost.layer(config, { disableHttpLogger: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
    Layer.provideMerge(SqlNotify.layer),
    Layer.provideMerge(sql)
  )
  const runtime = ManagedRuntime.make(layer as Layer.Layer<any, unknown>)
  const run = <A>(effect: Effect.Effect<A, unknown, any>) => runtime.runPromise(effect) as Promise<A>
  const address = await run(Effect.map(HttpServer.HttpServer, (s) => s.address)) as { port: number }
  const khala = await run(Server.KhalaServerTag) as Server.KhalaServer
  const baseUrl = `http://127.0.0.1:${address.port}`

  const send = (method: string, path: string, headers: Record<string, string>, body: string | undefined) =>
    fetch(`${baseUrl}${path}`, { method, headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers }, ...(body !== undefined ? { body } : {}) })

  return {
    baseUrl,
    khalaUrl: `ws://127.0.0.1:${khala.port}/sync/v1/ws`,
    runtime,
    run,
    accessToken: async (userId, options = {}) => {
      const now = Math.floor(Date.now() / 1000)
      return new SignJWT({
        iss: CONTROL_URL,
        aud: "openagents-api",
        sub: `user:${userId}`,
        iat: now,
        nbf: now,
        exp: now + (options.ttlSeconds ?? 300),
        jti: `jti_${Math.random().toString(16).slice(2)}`,
        oa_user_id: userId,
        sid: options.sid ?? `sess_${userId}`,
        did: options.did ?? `device_${userId}`,
        client_id: "test",
        token_name: "test",
        ...options.claims
      })
        .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: key.jwk.kid!, ...options.header })
        .sign(options.key ?? key.privateKey)
    },
    internal: async (method, path, userId, body, headers = {}) => {
      const text = body === undefined ? undefined : JSON.stringify(body)
      const url = new URL(path, baseUrl)
      const runId = /^\/internal\/v1\/runs\/([^/]+)\//.exec(url.pathname)?.[1]
      const signed = await Effect.runPromise(
        InternalSignature.sign(INTERNAL_KEY, {
          method,
          path: url.pathname,
          body: text ?? "",
          ...(userId !== undefined ? { userId } : {}),
          ...(runId !== undefined ? { runId: decodeURIComponent(runId) } : {}),
          ...(url.searchParams.get("thread_id") !== null ? { threadId: url.searchParams.get("thread_id")! } : {})
        })
      )
      return send(method, path, { ...signed, ...headers }, text)
    },
    bearer: (method, path, token, body, headers = {}) =>
      send(method, path, { authorization: `Bearer ${token}`, ...headers }, body === undefined ? undefined : JSON.stringify(body)),
    dispose: () => runtime.dispose()
  }
}

/** Read a server-sent event stream until `stop` says so (or it ends); returns the parsed events. */
export interface SseEvent {
  readonly id: string | undefined
  readonly event: string | undefined
  readonly data: string
}

export const readSse = async (response: Response, stop: (events: ReadonlyArray<SseEvent>) => boolean, timeoutMs = 10_000) => {
  const events: Array<SseEvent> = []
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  const deadline = Date.now() + timeoutMs
  let ended = false
  try {
    while (!stop(events)) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new Error(`SSE: timed out with ${events.length} events: ${JSON.stringify(events.slice(-3))}`)
      const chunk = await Promise.race([reader.read(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`SSE: timed out with ${events.length} events`)), remaining))])
      if (chunk.done) {
        ended = true
        break
      }
      buffer += decoder.decode(chunk.value, { stream: true })
      let index: number
      while ((index = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, index)
        buffer = buffer.slice(index + 2)
        if (block.startsWith(":")) continue
        let id: string | undefined
        let event: string | undefined
        const data: Array<string> = []
        for (const line of block.split("\n")) {
          if (line.startsWith("id: ")) id = line.slice(4)
          else if (line.startsWith("event: ")) event = line.slice(7)
          else if (line.startsWith("data: ")) data.push(line.slice(6))
        }
        events.push({ id, event, data: data.join("\n") })
      }
    }
  } finally {
    if (!ended) await reader.cancel().catch(() => undefined)
  }
  return { events, ended }
}
