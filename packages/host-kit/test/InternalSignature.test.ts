import { HttpClient, HttpClientRequest, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it, layer } from "@effect/vitest"
import { InternalSignature } from "@openagents/host-kit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"

const current: InternalSignature.Key = { kid: "runtime-v2", secret: Redacted.make("c".repeat(40)) }
const previous: InternalSignature.Key = { kid: "runtime-v1", secret: Redacted.make("p".repeat(40)) }
const stranger: InternalSignature.Key = { kid: "runtime-v2", secret: Redacted.make("s".repeat(40)) }

const body = JSON.stringify({ session_ids: ["sess_1"], device_ids: [], reason: "user_requested" })
const path = "/internal/v1/sync/sessions/revoke"

const signed = (key = current, options: Partial<InternalSignature.SignOptions> = {}) =>
  InternalSignature.sign(key, { method: "POST", path, body, ...options })

const request = (headers: Record<string, string>, overrides: Partial<InternalSignature.IncomingRequest> = {}): InternalSignature.IncomingRequest => ({
  method: "POST",
  url: path,
  headers,
  body,
  ...overrides
})

const reason = (verifier: InternalSignature.Verifier, incoming: InternalSignature.IncomingRequest) =>
  Effect.map(Effect.flip(verifier.verify(incoming)), (e) => ({ reason: e.reason, status: e.status, code: e.code }))

describe("InternalSignature", () => {
  it.effect("a signed request verifies once, and its second use is token_replayed", () =>
    Effect.gen(function*() {
      const verifier = InternalSignature.makeVerifier({ keys: [current] })
      const headers = yield* signed()
      expect(headers[InternalSignature.SIGNATURE_HEADER]).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
      const claims = yield* verifier.verify(request(headers))
      expect(claims).toMatchObject({ method: "POST", path, exp: claims.iat + 60 })
      expect(yield* reason(verifier, request(headers))).toEqual({ reason: "token_replayed", status: 401, code: "unauthorized" })
    }))

  it.effect("accepts the previous key during rotation and refuses unknown keys and foreign secrets", () =>
    Effect.gen(function*() {
      const verifier = InternalSignature.makeVerifier({ keys: [current, previous] })
      yield* verifier.verify(request(yield* signed(previous)))
      expect((yield* reason(verifier, request(yield* signed({ kid: "other", secret: current.secret })))).reason).toBe("unknown_key")
      expect((yield* reason(verifier, request(yield* signed(stranger)))).reason).toBe("invalid_signature")
      expect((yield* reason(verifier, request({}))).reason).toBe("missing_signature")
      expect((yield* reason(verifier, request({ [InternalSignature.SIGNATURE_HEADER]: "v2.abc.def" }))).reason).toBe("invalid_signature_format")
    }))

  it.effect("refuses a tampered payload, body, method or path", () =>
    Effect.gen(function*() {
      const verifier = InternalSignature.makeVerifier({ keys: [current] })
      const headers = yield* signed()
      const [v, payload, sig] = headers[InternalSignature.SIGNATURE_HEADER]!.split(".")
      const claims = JSON.parse(Buffer.from(payload!, "base64url").toString())
      const forged = Buffer.from(JSON.stringify({ ...claims, user_id: "someone-else" })).toString("base64url")
      expect((yield* reason(verifier, request({ ...headers, [InternalSignature.SIGNATURE_HEADER]: `${v}.${forged}.${sig}` }))).reason).toBe("invalid_signature")
      expect((yield* reason(verifier, request(headers, { body: body.replace("sess_1", "sess_2") }))).reason).toBe("body_mismatch")
      expect((yield* reason(verifier, request(headers, { method: "DELETE" }))).reason).toBe("request_mismatch")
      expect((yield* reason(verifier, request(headers, { url: "/internal/v1/runs/r1/cancel" }))).reason).toBe("request_mismatch")
      // None of the refusals burned the nonce.
      yield* verifier.verify(request(headers))
    }))

  it.effect("checks bindings both ways: signed user_id must match the header, and an unsigned header is refused", () =>
    Effect.gen(function*() {
      const verifier = InternalSignature.makeVerifier({ keys: [current] })
      const withUser = yield* signed(current, { userId: "usr_1", threadId: "t1" })
      expect(withUser[InternalSignature.USER_ID_HEADER]).toBe("usr_1")
      const url = `${path}?thread_id=t1`
      expect(yield* reason(verifier, request({ ...withUser, [InternalSignature.USER_ID_HEADER]: "usr_2" }, { url }))).toEqual({ reason: "binding_mismatch", status: 403, code: "forbidden" })
      expect((yield* reason(verifier, request(withUser, { url: `${path}?thread_id=t2` }))).reason).toBe("binding_mismatch")
      expect((yield* reason(verifier, request(withUser, { url, runId: "run_1" }))).reason).toBe("binding_mismatch")
      const plain = yield* signed()
      expect((yield* reason(verifier, request({ ...plain, [InternalSignature.USER_ID_HEADER]: "usr_1" }))).reason).toBe("binding_mismatch")
      expect((yield* verifier.verify(request(withUser, { url }))).user_id).toBe("usr_1")
    }))

  it.effect("refuses expired signatures and signatures from the future, with the configured skew", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1000 seconds")
      const verifier = InternalSignature.makeVerifier({ keys: [current], skewSeconds: 5 })
      const headers = yield* signed()
      yield* TestClock.adjust("64 seconds")
      yield* verifier.verify(request(headers))
      const late = yield* signed()
      yield* TestClock.adjust("66 seconds")
      expect((yield* reason(verifier, request(late))).reason).toBe("signature_expired")
      const now = Date.parse("2030-01-01T00:00:00Z")
      yield* TestClock.setTime(now + 10_000)
      const early = yield* signed()
      yield* TestClock.setTime(now)
      expect((yield* reason(verifier, request(early))).reason).toBe("signature_not_yet_valid")
    }))

  it("refuses weak secrets on both sides", () => {
    expect(() => InternalSignature.makeVerifier({ keys: [{ kid: "k", secret: Redacted.make("short") }] })).toThrow(/at least 32/)
    expect(() => InternalSignature.makeVerifier({ keys: [] })).toThrow()
    expect(() => Effect.runSync(InternalSignature.sign({ kid: "k", secret: Redacted.make("short") }, { method: "GET", path: "/" }))).toThrow(/at least 32/)
  })
})

// Over a real HTTP server: a route verifies with verifyServerRequest and still reads the body.
const verifier = InternalSignature.makeVerifier({ keys: [current] })
const App = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/internal/v1/sync/sessions/revoke",
    Effect.gen(function*() {
      const req = yield* HttpServerRequest.HttpServerRequest
      const result = yield* Effect.either(verifier.verifyServerRequest(req))
      if (result._tag === "Left") return yield* HttpServerResponse.json(result.left.envelope, { status: result.left.status })
      return yield* HttpServerResponse.json({ claims: result.right, body: yield* req.json })
    })
  )
)
const ServerLive = HttpServer.serve(App).pipe(Layer.provideMerge(NodeHttpServer.layerTest))

layer(ServerLive, { excludeTestServices: true })("InternalSignature over HTTP", (it) => {
  it.effect("signRequest produces a request the server verifies, and a replay is refused with the error envelope", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const req = yield* HttpClientRequest.post(path).pipe(
        HttpClientRequest.setBody(InternalSignature.jsonBody({ session_ids: ["sess_1"] })),
        InternalSignature.signRequest(current, { userId: "usr_1" })
      )
      const ok = yield* client.execute(req)
      expect(ok.status).toBe(200)
      expect(yield* ok.json).toMatchObject({ claims: { user_id: "usr_1", path }, body: { session_ids: ["sess_1"] } })
      const again = yield* client.execute(req)
      expect(again.status).toBe(401)
      expect(yield* again.json).toMatchObject({ error: { code: "unauthorized", details: { reason: "token_replayed" } } })
    }))
})
