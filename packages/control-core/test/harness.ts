// Test harness: the control server on a real HTTP server (127.0.0.1, random port) over a given
// storage, with the local identity provider (codes read from its outbox), fresh ES256 keys and
// a recording runtime client.
import type * as Cookies from "@effect/platform/Cookies"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { NodeHttpServer } from "@effect/platform-node"
import {
  AccessTokens,
  Auth,
  ControlPlane,
  ControlServer,
  HttpSettings,
  type IdentityProvider,
  LightningOps,
  LocalIdentity,
  MemoryRuntime,
  Revocations,
  type RuntimeClient,
  type Storage,
  SyncTokens
} from "@openagents/control-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"

export const signingKeys = Layer.unwrapEffect(
  Effect.map(AccessTokens.generateSigningKey("control-test-1"), (key) => AccessTokens.layer({ issuer: "http://control.test", keys: [key] }))
)

export const OPS_SECRET = Redacted.make("ops-secret-for-tests-0123456789abcdef")

export const SYNC_KEY = { kid: "sync-auth-v2", secret: Redacted.make("s".repeat(32) + "-current-sync-key") }
export const SYNC_ISSUER = "http://control.test"

export const syncSettings = (over: Partial<SyncTokens.SyncTokenSettings> = {}): SyncTokens.SyncTokenSettings => ({
  ...SyncTokens.defaultSettings(SYNC_ISSUER, { alg: "HS256", ...SYNC_KEY }),
  ...over
})

export const localIdentity = LocalIdentity.layer().pipe(Layer.provideMerge(LocalIdentity.layerOutbox))

export interface ServerOptions<I> {
  readonly settings?: Partial<Auth.AuthSettings>
  readonly identity?: Layer.Layer<IdentityProvider.IdentityProvider | I, unknown>
  readonly sync?: SyncTokens.SyncTokenSettings
  /** The lightning-ops secret; default OPS_SECRET. */
  readonly opsSecret?: Redacted.Redacted<string> | undefined
  /** The runtime client; default the in-memory recorder (MemoryRuntime). */
  readonly runtime?: Layer.Layer<RuntimeClient.RuntimeClient, unknown>
  /** HttpSettings.trustProxy; default true (tests send their client IP in X-Forwarded-For). */
  readonly trustProxy?: boolean | number
}

export const services = <I = LocalIdentity.LocalOutbox>(
  storage: Layer.Layer<Storage.AuthStorage | Storage.L402Storage, unknown>,
  options: ServerOptions<I> = {}
) =>
  Auth.layer({ ...Auth.defaultSettings, ...options.settings }).pipe(
    Layer.provideMerge(SyncTokens.layer(options.sync ?? syncSettings())),
    Layer.provideMerge(ControlPlane.layer),
    Layer.provideMerge(LightningOps.layerSecret("opsSecret" in options ? options.opsSecret : OPS_SECRET)),
    Layer.provideMerge(Revocations.layer({ interval: "100 millis", backoffMs: () => 50 })),
    Layer.provideMerge((options.identity ?? localIdentity) as Layer.Layer<IdentityProvider.IdentityProvider | I, unknown>),
    Layer.provideMerge(signingKeys),
    Layer.provideMerge((options.runtime ?? MemoryRuntime.layer) as typeof MemoryRuntime.layer),
    Layer.provideMerge(storage),
    Layer.provideMerge(Layer.succeed(HttpSettings.HttpSettings, { trustProxy: options.trustProxy ?? true, secureCookies: false, sameSite: "lax", redirect: "/" }))
  )

export const controlServer = <I = LocalIdentity.LocalOutbox>(
  storage: Layer.Layer<Storage.AuthStorage | Storage.L402Storage, unknown>,
  options: ServerOptions<I> = {}
) => {
  const deps = services(storage, options)
  return ControlServer.layer({ disableLogger: true }).pipe(Layer.provide(deps), Layer.provideMerge(deps), Layer.provideMerge(NodeHttpServer.layerTest))
}

/** A random client IP, so tests do not share the per-IP rate limits. */
export const freshIp = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}`
export const freshEmail = () => `user_${randomBytes(6).toString("hex")}@example.com`

export interface Call {
  readonly status: number
  readonly body: any
  readonly headers: Readonly<Record<string, string>>
  /** The Set-Cookie lines, parsed. */
  readonly setCookies: ReadonlyArray<Cookies.Cookie>
}

const read = (response: HttpClientResponse.HttpClientResponse) =>
  Effect.map(Effect.orElseSucceed(response.text, () => ""), (text): Call => {
    let body: unknown = text
    try {
      body = text === "" ? undefined : JSON.parse(text)
    } catch {
      // not JSON
    }
    return { status: response.status, body, headers: response.headers, setCookies: Object.values(response.cookies.cookies) }
  })

/** A request to the test server (relative URL), with JSON body (or `rawJson`, sent as is as application/json) and headers. */
export const call = (
  method: "GET" | "POST" | "PATCH" | "DELETE",
  url: string,
  options: { readonly body?: unknown; readonly rawJson?: string; readonly headers?: Record<string, string> } = {}
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(url).pipe(HttpClientRequest.setHeaders(options.headers ?? {}))
    if (options.body !== undefined) request = HttpClientRequest.bodyUnsafeJson(request, options.body)
    if (options.rawJson !== undefined) request = HttpClientRequest.bodyText(request, options.rawJson, "application/json")
    return yield* Effect.scoped(Effect.flatMap(client.execute(request), read))
  })

/** The Set-Cookie for `name` ("" value when it is being cleared). */
export const cookie = (c: Call, name: string) => c.setCookies.find((s) => s.name === name)

/** Ask for a code and read it from the local outbox. */
export const requestCode = (email: string, ip: string) =>
  Effect.gen(function*() {
    const sent = yield* call("POST", "/api/auth/email", { body: { email }, headers: { "x-forwarded-for": ip } })
    if (sent.status !== 200) return yield* Effect.dieMessage(`email step answered ${sent.status}: ${JSON.stringify(sent.body)}`)
    const outbox = yield* LocalIdentity.LocalOutbox
    const message = yield* outbox.latest(email)
    return { challengeId: sent.body.challengeId as string, code: message!.code, sent }
  })

/** A full native sign-in: the verify answer. */
export const signInNative = (client: string, email = freshEmail(), extra: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const ip = freshIp()
    const { challengeId, code } = yield* requestCode(email, ip)
    const verified = yield* call("POST", "/api/auth/verify", {
      body: { code, challenge_id: challengeId },
      headers: { "x-forwarded-for": ip, "x-client": client, ...extra }
    })
    if (verified.status !== 200) return yield* Effect.dieMessage(`verify answered ${verified.status}: ${JSON.stringify(verified.body)}`)
    return verified
  })

/** The test server's base URL (for clients that need an absolute URL, like the RPC client). */
export const serverUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address
  return address._tag === "TcpAddress" ? `http://127.0.0.1:${address.port}` : ""
})

/** A valid paywall body for POST /api/l402/paywalls. */
export const paywallBody = (over: Record<string, unknown> = {}) => ({
  name: "premium signal",
  hostRegexp: "l402.example.com",
  pathRegexp: "/ep212/premium-signal",
  priceMsats: 70_000,
  upstream: "https://upstream.example.com/signal",
  metadata: { timeoutMs: 5000, priority: 3, allowedHosts: ["l402.example.com"] },
  ...over
})
