// An application that embeds the OpenAgents runtime: one Effect HTTP server serving the app's
// own routes next to the runtime API (runtime-core RuntimeServer.routes), Khala (khala-core) on
// a WebSocket port, and the runtime's services (RuntimeHost.services) used in-process by the
// app's handlers — all on an in-memory PGlite database.
//
// Why PGlite and not khala-core's MemoryStorage: the runtime projects every worker event into
// Khala in the same SQL transaction as the write itself (runtime-core Workers), so the journal
// must live in the same SQL database; in-memory PGlite is the in-memory adapter for both. Nothing
// survives the process, which is the point of the example.
//
// The app plays the identity provider control plays in the full system: it signs access tokens
// (ES256; the runtime verifies them against the app's public key, given as a static JWKS) and
// sync tokens (HS256, the key shared with the Khala verifier). Its sign-in accepts anyone — an
// example, not a pattern.
//
//   POST /app/sign-in {"user"}       -> {"userId", "accessToken", "syncToken"}
//   POST /app/tasks {"title"}        -> a worker created for the task by the app, in process (Bearer)
//   /internal/v1/..., /sync/v1/snapshot/:topic, /openapi.json  -> the runtime API
//   ws://<host>:<khala port>/sync/v1/ws                         -> Khala
//
// PORT (default 4400) and KHALA_PORT (default 4401); 0 picks free ports. It prints
// `embedded runtime on http://... (Khala ws://...)` once both listen.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Server, SyncToken, WsTransport } from "@openagents/khala-core"
import { Auth, RuntimeHost, RuntimeServer, Workers } from "@openagents/runtime-core"
import { PgliteClient, SqlNotify } from "@openagents/sql-pglite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { exportJWK, generateKeyPair, SignJWT } from "jose"
import { randomBytes, randomUUID } from "node:crypto"
import { createServer } from "node:http"

const ISSUER = "https://tasks.example"
const ACCESS_KEY_ID = "tasks-app-k1"
const SYNC_KEY: SyncToken.HmacKey = { kid: "tasks-sync-k1", secret: Redacted.make(randomBytes(32).toString("hex")) }
const SCOPES = ["runtime.codex_worker_summaries", "runtime.codex_worker_events", "runtime.run_summaries"]

/** The app's access-token key pair, made at start (a real app would load it). */
const accessKey = Effect.promise(async () => {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true })
  return { privateKey, jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: ACCESS_KEY_ID, alg: "ES256", use: "sig" }] } }
})

const signIn = (privateKey: CryptoKey) =>
  HttpLayerRouter.add(
    "POST",
    "/app/sign-in",
    Effect.gen(function*() {
      const { user } = yield* HttpServerRequest.schemaBodyJson(Schema.Struct({ user: Schema.String.pipe(Schema.pattern(/^[a-z0-9-]{1,40}$/)) }))
      const now = Math.floor(Date.now() / 1000)
      const session = `sess_${randomUUID()}`
      const accessToken = yield* Effect.promise(() =>
        new SignJWT({ oa_user_id: user, sid: session, did: "embedded-example", client_id: "tasks-app" })
          .setProtectedHeader({ alg: "ES256", typ: Auth.ACCESS_TOKEN_TYPE, kid: ACCESS_KEY_ID })
          .setIssuer(ISSUER)
          .setAudience(Auth.ACCESS_TOKEN_AUDIENCE)
          .setSubject(`user:${user}`)
          .setIssuedAt(now)
          .setExpirationTime(now + 3600)
          .setJti(randomUUID())
          .sign(privateKey)
      )
      const syncToken = yield* SyncToken.signHmac({
        iss: ISSUER,
        aud: SyncToken.DEFAULT_AUDIENCE,
        sub: `user:${user}`,
        iat: now,
        exp: now + 300,
        jti: randomUUID(),
        oa_user_id: user,
        oa_org_id: `user:${user}`,
        oa_sync_scopes: SCOPES,
        oa_claims_version: SyncToken.DEFAULT_CLAIMS_VERSION,
        oa_session_id: session,
        oa_device_id: "embedded-example"
      }, SYNC_KEY)
      return yield* HttpServerResponse.json({ userId: user, accessToken, syncToken })
    }).pipe(Effect.catchTag("ParseError", (e) => HttpServerResponse.json({ error: e.message }, { status: 400 })))
  )

/** The app's own use of the runtime: a task is a worker, created and written to in process. */
const tasks = HttpLayerRouter.add(
  "POST",
  "/app/tasks",
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const bearer = (request.headers["authorization"] ?? "").replace(/^Bearer\s+/i, "")
    // The same verification as the runtime API's (signature, issuer, audience, revocation).
    const caller = yield* Effect.flatMap(Auth.Authenticator, (auth) => auth.user(request, bearer))
    const { title } = yield* HttpServerRequest.schemaBodyJson(Schema.Struct({ title: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)) }))
    const workers = yield* Workers.Workers
    const { worker } = yield* workers.create(caller, { adapter: "tasks", metadata: { title } })
    const event = yield* workers.appendEvent(caller, worker.workerId, { eventType: "worker.output", payload: { text: `task created: ${title}` } })
    return yield* HttpServerResponse.json({ workerId: worker.workerId, seq: Number(event.seq) }, { status: 201 })
  }).pipe(
    Effect.catchTag("RuntimeError", (e) => HttpServerResponse.json({ error: { code: e.code, message: e.message } }, { status: e.code === "unauthorized" ? 401 : 400 })),
    Effect.catchTag("ParseError", (e) => HttpServerResponse.json({ error: e.message }, { status: 400 }))
  )
)

const home = HttpLayerRouter.add("GET", "/", HttpServerResponse.json({ app: "tasks", embeds: ["runtime-core", "khala-core"] }))

/** The whole application over an SqlClient + SqlNotify and an HttpServer. */
export const app = (options: { readonly khalaPort: number }) =>
  Layer.unwrapEffect(Effect.map(accessKey, ({ privateKey, jwks }) => {
    const config: RuntimeHost.RuntimeHostConfig = {
      host: "127.0.0.1",
      port: 0, // unused: the HTTP server is the app's, provided below
      khala: { host: "127.0.0.1", port: options.khalaPort, transport: "ws" },
      controlUrl: ISSUER,
      controlJwks: jwks,
      internalKeys: [],
      sync: { hmacKeys: [SYNC_KEY], issuer: ISSUER, audience: SyncToken.DEFAULT_AUDIENCE, claimsVersion: SyncToken.DEFAULT_CLAIMS_VERSION },
      retentionIntervalMs: 60_000
    }
    const http = HttpLayerRouter.serve(Layer.mergeAll(RuntimeServer.routes(), signIn(privateKey), tasks, home), { disableLogger: true })
    const khala = Server.layer({ transport: WsTransport.transport, host: config.khala.host, port: config.khala.port })
    return Layer.mergeAll(http, khala).pipe(Layer.provideMerge(RuntimeHost.services(config)))
  }))

const announce = Layer.effectDiscard(
  Effect.gen(function*() {
    const address = (yield* HttpServer.HttpServer).address as { port: number }
    const khala = yield* Server.KhalaServerTag
    yield* Effect.sync(() => console.log(`embedded runtime on http://127.0.0.1:${address.port} (Khala ws://127.0.0.1:${khala.port}/sync/v1/ws)`))
  })
)

const port = Number(process.env["PORT"] ?? 4400)
const khalaPort = Number(process.env["KHALA_PORT"] ?? 4401)

const Main = announce.pipe(
  Layer.provideMerge(app({ khalaPort })),
  Layer.provide(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port })),
  Layer.provide(SqlNotify.layer),
  Layer.provideMerge(PgliteClient.layer({})) // in memory: no dataDir
)

Layer.launch(Main).pipe(NodeRuntime.runMain)
