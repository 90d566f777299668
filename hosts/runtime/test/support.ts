// The runtime host as a child process (the same `src/main.ts` `npm start` runs), and signed
// internal calls to it, for tests that kill, restart and stop the process.
import { InternalSignature } from "@openagents/host-kit"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"

export const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url))
export const INTERNAL_KEY: InternalSignature.Key = { kid: "runtime-internal-v1", secret: Redacted.make("r".repeat(40)) }
/** The sync-token key and issuer of khala-core's TestServer, so its `token()` works against this host. */
export const SYNC_KEY_ID = "test-k1"
export const SYNC_KEY = "s".repeat(40)
export const SYNC_ISSUER = "https://control.test"

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/**
 * A free port below Linux's ephemeral range (32768+). A port from the ephemeral range can be
 * taken by an outgoing connection before the child binds it — including the readiness probe's
 * own connection, which then connects to itself (TCP simultaneous open) and hangs.
 */
export const freePort = async (): Promise<number> => {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (await canListen(port)) return port
  }
}

export interface HostProcess {
  readonly child: ChildProcess
  readonly baseUrl: string
  readonly khalaUrl: string
  readonly output: () => string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export const env = (ports: { http: number; khala: number }, database: { dataDir: string } | { url: string }, extra: Record<string, string> = {}) => ({
  PATH: process.env["PATH"] ?? "",
  HOME: process.env["HOME"] ?? "",
  PORT: String(ports.http),
  OA_KHALA_PORT: String(ports.khala),
  OA_KHALA_TRANSPORT: "ws",
  OA_RUNTIME_SIGNING_KEY_ID: INTERNAL_KEY.kid,
  OA_RUNTIME_SIGNING_KEY: Redacted.value(INTERNAL_KEY.secret),
  OA_SYNC_TOKEN_KEY_ID: SYNC_KEY_ID,
  OA_SYNC_TOKEN_SIGNING_KEY: SYNC_KEY,
  OA_SYNC_TOKEN_ISSUER: SYNC_ISSUER,
  ...("dataDir" in database ? { DATA_DIR: database.dataDir } : { DATABASE_URL: database.url }),
  ...extra
})

/** Start the host and wait until /healthz answers (or the process exits). */
export const startProcess = async (environment: Record<string, string>, timeoutMs = 90_000): Promise<HostProcess> => {
  const child = spawn(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", MAIN], { env: environment, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout!.on("data", (d) => (output += d))
  child.stderr!.on("data", (d) => (output += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })))
  let gone = false
  void exited.then(() => (gone = true))
  const baseUrl = `http://127.0.0.1:${environment["PORT"]}`
  const deadline = Date.now() + timeoutMs
  while (true) {
    if (gone) throw new Error(`runtime host exited during start:\n${output}`)
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`runtime host did not become healthy:\n${output}`)
    }
    try {
      const response = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) })
      if (response.ok) break
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  return { child, baseUrl, khalaUrl: `ws://127.0.0.1:${environment["OA_KHALA_PORT"]}/sync/v1/ws`, output: () => output, exited }
}

/** A signed internal call for `userId`. */
export const signedFetch = async (baseUrl: string, method: string, path: string, userId: string | undefined, body?: unknown) => {
  const text = body === undefined ? undefined : JSON.stringify(body)
  const runId = /^\/internal\/v1\/runs\/([^/]+)\//.exec(path)?.[1]
  const headers = await Effect.runPromise(
    InternalSignature.sign(INTERNAL_KEY, { method, path, body: text ?? "", ...(userId !== undefined ? { userId } : {}), ...(runId !== undefined ? { runId } : {}) })
  )
  return fetch(`${baseUrl}${path}`, { method, headers: { ...headers, ...(text !== undefined ? { "content-type": "application/json" } : {}) }, ...(text !== undefined ? { body: text } : {}) })
}
