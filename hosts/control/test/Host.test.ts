// The control host as a process (src/main.ts under tsx), on embedded PGlite and, when
// TEST_DATABASE_URL is set, on a fresh Postgres database: validated configuration, /healthz,
// /metrics, OpenAPI, a sign-in whose code the host prints, a sync token, the lightning-ops route,
// and state that survives a restart.
import * as SqlTesting from "@openagents/sql-pglite/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { exportJWK, generateKeyPair, jwtVerify } from "jose"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const hostDir = new URL("..", import.meta.url).pathname
const OPS_SECRET = "ops-secret-of-the-control-host-test-0123"
const SYNC_KEY = "sync-signing-key-of-the-control-host-test"

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })

interface Host {
  readonly url: string
  readonly logs: () => string
  readonly stop: () => Promise<void>
}

/** Start the host; resolves when it listens, rejects with its output when it exits first. */
const start = (env: Record<string, string>): Promise<Host> =>
  new Promise((resolve, reject) => {
    let output = ""
    const child: ChildProcess = spawn(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", "src/main.ts"], {
      cwd: hostDir,
      env: { PATH: process.env["PATH"] ?? "", NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = output.match(/Listening on (http:\/\/[^\s]+)/)
      if (match) {
        child.stdout!.off("data", onData)
        child.stdout!.on("data", (c: Buffer) => (output += c.toString()))
        resolve({
          url: match[1]!,
          logs: () => output,
          stop: () => new Promise<void>((done) => {
            child.once("exit", () => done())
            child.kill("SIGTERM")
          })
        })
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", (c: Buffer) => (output += c.toString()))
    child.once("exit", (code) => reject(new Error(`host exited with ${code}:\n${output}`)))
  })

/** Run the host expecting it to refuse its configuration. */
const refuses = (env: Record<string, string>) =>
  start(env).then(
    async (host) => {
      await host.stop()
      throw new Error("the host started")
    },
    (error: Error) => error.message
  )

const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() as any, headers: response.headers }
}

const signIn = async (host: Host, email: string) => {
  const sent = await post(`${host.url}/api/auth/email`, { email })
  expect(sent.status).toBe(200)
  let code: string | undefined
  for (let i = 0; i < 50 && code === undefined; i++) {
    code = host.logs().match(new RegExp(`local sign-in code for ${email.replace(/[.]/g, "\\.")}: (\\d{6}) \\(challenge ${sent.body.challengeId}\\)`))?.[1]
    if (code === undefined) await new Promise((r) => setTimeout(r, 50))
  }
  expect(code).toMatch(/^\d{6}$/)
  const verified = await post(`${host.url}/api/auth/verify`, { code, challenge_id: sent.body.challengeId }, { "x-client": "autopilot-ios" })
  expect(verified.status).toBe(200)
  return verified.body
}

interface Engine {
  readonly name: string
  readonly env: () => Record<string, string>
  readonly setup: () => Promise<void>
  readonly teardown: () => Promise<void>
}

const pglite = (): Engine => {
  let dir = ""
  return {
    name: "pglite",
    env: () => ({ DATA_DIR: dir }),
    setup: async () => void (dir = mkdtempSync(join(tmpdir(), "control-host-"))),
    teardown: async () => rmSync(dir, { recursive: true, force: true })
  }
}

const postgres = (adminUrl: string): Engine => {
  const fresh = SqlTesting.freshPostgres(adminUrl)
  let scope: Scope.CloseableScope | undefined
  return {
    name: "postgres",
    env: () => ({ DATABASE_URL: fresh.url }),
    setup: async () => {
      scope = await Effect.runPromise(Scope.make())
      await Effect.runPromise(Layer.buildWithScope(fresh.layer, scope))
    },
    teardown: async () => {
      if (scope) await Effect.runPromise(Scope.close(scope, Effect.void as never))
    }
  }
}

const engines: Array<Engine> = [pglite()]
const adminUrl = SqlTesting.postgresUrl()
if (adminUrl !== undefined) engines.push(postgres(adminUrl))

for (const engine of engines) {
  describe(`control host on ${engine.name}`, () => {
    let host: Host
    let baseEnv: Record<string, string>
    let signingKeys: string

    beforeAll(async () => {
      await engine.setup()
      const { privateKey } = await generateKeyPair("ES256", { extractable: true })
      signingKeys = JSON.stringify([{ ...(await exportJWK(privateKey)), kid: "control-host-test-1" }])
      baseEnv = {
        OA_CONTROL_MODE: "development",
        // Stable across restarts: it is the issuer of every token.
        OA_CONTROL_PUBLIC_URL: "http://control.test",
        OA_AUTH_SIGNING_KEYS: signingKeys,
        OA_LIGHTNING_OPS_SECRET: OPS_SECRET,
        OA_SYNC_TOKEN_SIGNING_KEY: SYNC_KEY,
        OA_SYNC_TOKEN_KEY_ID: "sync-host-v1",
        ...engine.env()
      }
      host = await start({ ...baseEnv, PORT: String(await freePort()) })
    }, 120_000)

    afterAll(async () => {
      await host?.stop()
      await engine.teardown()
    }, 60_000)

    it("answers /healthz with the database check, /openapi.json, /docs and /metrics", async () => {
      const health = await fetch(`${host.url}/healthz`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ status: "ok", service: "control", version: "0.0.0", checks: { database: { ok: true } } })
      const openapi = await (await fetch(`${host.url}/openapi.json`)).json() as { openapi: string; paths: Record<string, unknown> }
      expect(openapi.openapi).toMatch(/^3\./)
      expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/api/auth/email", "/api/auth/verify", "/api/sync/token", "/api/l402/paywalls", "/.well-known/jwks.json"]))
      expect((await fetch(`${host.url}/docs`)).headers.get("content-type")).toContain("text/html")
      const metrics = await fetch(`${host.url}/metrics`)
      expect(metrics.headers.get("content-type")).toContain("text/plain")
    })

    it("signs in with the code the host prints, mints a verifiable sync token, and counts it in /metrics", async () => {
      const session = await signIn(host, "ada@example.com")
      expect(session.tokenName).toBe("mobile:autopilot-ios")
      const minted = await post(`${host.url}/api/sync/token`, { scopes: ["runtime.run_summaries"] }, { authorization: `Bearer ${session.token}` })
      expect(minted.status).toBe(200)
      const { payload, protectedHeader } = await jwtVerify(minted.body.data.token, new TextEncoder().encode(SYNC_KEY), { audience: "openagents-sync" })
      expect(protectedHeader.kid).toBe("sync-host-v1")
      expect(payload["oa_sync_topics"]).toEqual([`runtime.run_summaries:user:${session.userId}`])
      expect(await (await fetch(`${host.url}/metrics`)).text()).toMatch(/control_sync_tokens_minted_total \d+/)
    })

    it("serves the lightning-ops JSON route with the configured secret, and refuses others", async () => {
      const ok = await post(`${host.url}/api/internal/lightning-ops/control-plane/query`, { functionName: "lightning/security:getControlPlaneSecurityState", args: { secret: OPS_SECRET } })
      expect(ok.status).toBe(200)
      expect(ok.body.global.stateId).toBe("global")
      const refused = await post(`${host.url}/api/internal/lightning-ops/control-plane/query`, { functionName: "lightning/security:getControlPlaneSecurityState", args: { secret: "nope" } })
      expect(refused.status).toBe(401)
    })

    it("keeps users, sessions and signing keys across a restart", async () => {
      const session = await signIn(host, "grace@example.com")
      await host.stop()
      host = await start({ ...baseEnv, PORT: String(await freePort()) })
      const me = await fetch(`${host.url}/api/auth/me`, { headers: { authorization: `Bearer ${session.token}` } })
      expect(me.status).toBe(200)
      const refreshed = await post(`${host.url}/api/auth/refresh`, { refresh_token: session.refreshToken })
      expect(refreshed.status).toBe(200)
      expect(refreshed.body.sessionId).toBe(session.sessionId)
    }, 60_000)
  })
}

describe("control host configuration", () => {
  it("refuses to start in production without WorkOS, naming the variable", async () => {
    const message = await refuses({ PORT: String(await freePort()), DATA_DIR: join(tmpdir(), "control-host-never") })
    expect(message).toMatch(/WORKOS_API_KEY/)
  }, 60_000)

  it("refuses the local provider and generated keys in production", async () => {
    const message = await refuses({ PORT: String(await freePort()), OA_IDENTITY_PROVIDER: "local" })
    expect(message).toMatch(/OA_IDENTITY_PROVIDER.*development only/)
  }, 60_000)

  it("refuses a weak sync signing key and an out-of-bounds TTL", async () => {
    const dev = { OA_CONTROL_MODE: "development", PORT: String(await freePort()) }
    expect(await refuses({ ...dev, OA_SYNC_TOKEN_SIGNING_KEY: "short" })).toMatch(/OA_SYNC_TOKEN_SIGNING_KEY must be at least 32 characters/)
    expect(await refuses({ ...dev, OA_SYNC_TOKEN_TTL_SECONDS: "1200" })).toMatch(/OA_SYNC_TOKEN_TTL_SECONDS must be an integer between 60 and 900/)
    expect(await refuses({ ...dev, OA_AUTH_SIGNING_KEYS: "[{\"kty\":\"oct\"}]" })).toMatch(/OA_AUTH_SIGNING_KEYS/)
  }, 60_000)
})
