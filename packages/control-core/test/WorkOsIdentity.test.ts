// The WorkOS adapter against a fake WorkOS on 127.0.0.1 that implements the documented
// magic-auth shapes (POST /user_management/magic_auth, POST /user_management/authenticate), and a
// full sign-in through the control server with it.
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it, layer } from "@effect/vitest"
import { IdentityProvider, MemoryStorage, WorkOsIdentity } from "@openagents/control-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { call, controlServer, freshEmail, freshIp } from "./harness.js"

const API_KEY = "sk_test_fake_workos_key"
const CLIENT_ID = "client_01FAKE"

interface FakeWorkOs {
  readonly url: string
  readonly requests: Array<{ path: string; authorization: string | undefined; body: any }>
  /** The last code issued per email. */
  readonly codes: Map<string, string>
  mode: "ok" | "down"
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let data = ""
    req.on("data", (chunk) => (data += chunk))
    req.on("end", () => resolve(data))
  })

const startFake = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ fake: FakeWorkOs; server: Server }>((resolve) => {
      const users = new Map<string, string>()
      const issued = new Map<string, { code: string; used: boolean; expiresAt: number }>()
      const fake: FakeWorkOs = { url: "", requests: [], codes: new Map(), mode: "ok" }
      let n = 0
      const server = createServer(async (req, res) => {
        const raw = await readBody(req)
        const body = raw === "" ? undefined : JSON.parse(raw)
        fake.requests.push({ path: req.url!, authorization: req.headers.authorization, body })
        const json = (status: number, value: unknown) => {
          res.writeHead(status, { "content-type": "application/json" })
          res.end(JSON.stringify(value))
        }
        if (fake.mode === "down") return json(500, { message: "internal error" })
        if (req.method === "POST" && req.url === "/user_management/magic_auth") {
          if (req.headers.authorization !== `Bearer ${API_KEY}`) return json(401, { message: "Unauthorized" })
          const email = String(body?.email ?? "").toLowerCase()
          if (!users.has(email)) users.set(email, `user_01FAKE${++n}`)
          const code = String(100000 + Math.floor(Math.random() * 900000))
          const id = `magic_auth_01FAKE${++n}`
          issued.set(email, { code, used: false, expiresAt: Date.now() + 600_000 })
          fake.codes.set(email, code)
          const now = new Date().toISOString()
          return json(201, {
            object: "magic_auth", id, user_id: users.get(email), email, code,
            expires_at: new Date(Date.now() + 600_000).toISOString(), created_at: now, updated_at: now
          })
        }
        if (req.method === "POST" && req.url === "/user_management/authenticate") {
          if (body?.client_id !== CLIENT_ID || body?.client_secret !== API_KEY) {
            return json(401, { error: "invalid_client", error_description: "Invalid client secret." })
          }
          if (body?.grant_type !== "urn:workos:oauth:grant-type:magic-auth:code") return json(400, { error: "unsupported_grant_type" })
          const email = String(body?.email ?? "").toLowerCase()
          const entry = issued.get(email)
          if (entry === undefined || entry.used || entry.code !== body?.code || entry.expiresAt < Date.now()) {
            return json(400, { error: "invalid_grant", error_description: "The code is invalid or expired." })
          }
          entry.used = true
          const now = new Date().toISOString()
          return json(200, {
            user: {
              object: "user", id: users.get(email), email, email_verified: true, first_name: "Ada", last_name: "Lovelace",
              profile_picture_url: null, created_at: now, updated_at: now
            },
            organization_id: null,
            access_token: "eyJhbGciOiJSUzI1NiJ9.workos.session",
            refresh_token: "workos_refresh_token",
            authentication_method: "MagicAuth"
          })
        }
        json(404, { message: "Not Found" })
      })
      server.listen(0, "127.0.0.1", () => {
        ;(fake as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
        resolve({ fake, server })
      })
    })
  ),
  ({ server }) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
)

const adapter = (url: string) =>
  WorkOsIdentity.make({ apiKey: Redacted.make(API_KEY), clientId: CLIENT_ID, baseUrl: url, timeout: "2 seconds" }).pipe(Effect.provide(FetchHttpClient.layer))

describe("WorkOS identity provider", () => {
  it.scoped("sends a code with the API key and checks it with the magic-auth grant", () =>
    Effect.gen(function*() {
      const { fake } = yield* startFake
      const provider = yield* adapter(fake.url)
      const sent = yield* provider.sendCode({ email: "ada@example.com", challengeId: "ch_1" })
      expect(sent).toEqual({ providerRef: expect.stringMatching(/^magic_auth_/), providerUserId: expect.stringMatching(/^user_01FAKE/) })
      expect(fake.requests[0]).toEqual({ path: "/user_management/magic_auth", authorization: `Bearer ${API_KEY}`, body: { email: "ada@example.com" } })

      const wrong = yield* Effect.flip(provider.verifyCode({ ...sent, email: "ada@example.com", code: "000000", challengeId: "ch_1" }))
      expect(wrong._tag).toBe("InvalidCode")
      const identity = yield* provider.verifyCode({
        ...sent, email: "ada@example.com", code: fake.codes.get("ada@example.com")!, challengeId: "ch_1", ipAddress: "203.0.113.9", userAgent: "test"
      })
      expect(identity).toEqual({ email: "ada@example.com", providerUserId: sent.providerUserId, name: "Ada Lovelace" })
      expect(fake.requests.at(-1)!.body).toEqual({
        client_id: CLIENT_ID, client_secret: API_KEY, grant_type: "urn:workos:oauth:grant-type:magic-auth:code",
        code: fake.codes.get("ada@example.com"), email: "ada@example.com", ip_address: "203.0.113.9", user_agent: "test"
      })
      const reused = yield* Effect.flip(provider.verifyCode({ ...sent, email: "ada@example.com", code: fake.codes.get("ada@example.com")!, challengeId: "ch_1" }))
      expect(reused._tag).toBe("InvalidCode")
    }))

  it.scoped("reports an outage or an unreachable WorkOS as ProviderUnavailable, never as a wrong code", () =>
    Effect.gen(function*() {
      const { fake } = yield* startFake
      const provider = yield* adapter(fake.url)
      fake.mode = "down"
      expect((yield* Effect.flip(provider.sendCode({ email: "ada@example.com", challengeId: "ch_1" })))._tag).toBe("ProviderUnavailable")
      expect((yield* Effect.flip(provider.verifyCode({ email: "ada@example.com", code: "123456", challengeId: "ch_1" })))._tag).toBe("ProviderUnavailable")
      const nowhere = yield* adapter("http://127.0.0.1:1")
      const error = yield* Effect.flip(nowhere.sendCode({ email: "ada@example.com", challengeId: "ch_1" }))
      expect(error).toBeInstanceOf(IdentityProvider.ProviderUnavailable)
    }))
})

// The whole sign-in through control with WorkOS as the provider.
class Fake extends Effect.Tag("test/FakeWorkOs")<Fake, FakeWorkOs>() {}
const FakeLive = Layer.scoped(Fake, Effect.map(startFake, ({ fake }) => fake))
const WorkOsLive = Layer.unwrapEffect(
  Effect.map(Fake, (fake) => WorkOsIdentity.layer({ apiKey: Redacted.make(API_KEY), clientId: CLIENT_ID, baseUrl: fake.url }))
).pipe(Layer.provide(FetchHttpClient.layer))
const identity = WorkOsLive.pipe(Layer.provideMerge(FakeLive))

describe("sign-in with WorkOS", () => {
  layer(controlServer(MemoryStorage.layer, { identity }), { excludeTestServices: true })((it) => {
    it.effect("a native client signs in with the code WorkOS sent; the user carries its WorkOS id and name", () =>
      Effect.gen(function*() {
        const fake = yield* Fake
        const email = freshEmail()
        const ip = freshIp()
        const sent = yield* call("POST", "/api/auth/email", { body: { email }, headers: { "x-forwarded-for": ip } })
        expect(sent.status).toBe(200)
        const verified = yield* call("POST", "/api/auth/verify", {
          body: { code: fake.codes.get(email), challengeId: sent.body.challengeId },
          headers: { "x-forwarded-for": ip, "x-client": "openagents-expo" }
        })
        expect(verified.status).toBe(200)
        expect(verified.body.user).toEqual({ id: verified.body.userId, name: "Ada Lovelace", email, workosId: expect.stringMatching(/^user_01FAKE/) })
        expect(verified.body.tokenName).toBe("mobile:openagents-expo")
      }))

    it.effect("a WorkOS outage is 503 service_unavailable, the same for every email", () =>
      Effect.gen(function*() {
        const fake = yield* Fake
        fake.mode = "down"
        const down = yield* call("POST", "/api/auth/email", { body: { email: freshEmail() }, headers: { "x-forwarded-for": freshIp() } })
        fake.mode = "ok"
        expect(down.status).toBe(503)
        expect(down.body.error.code).toBe("service_unavailable")
      }))
  })
})
