// A fake runtime on 127.0.0.1 that checks the signed internal header the way the runtime will
// (host-kit InternalSignature verifier), records what it received, and serves the worker routes
// the proxy forwards (including an SSE stream).
import { InternalSignature } from "@openagents/host-kit"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"

export const RUNTIME_KEY: InternalSignature.Key = { kid: "runtime-internal-v1", secret: Redacted.make("r".repeat(40)) }

export interface Received {
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string | undefined>
  readonly body: string
  readonly claims: InternalSignature.Claims
}

export interface FakeRuntime {
  readonly url: string
  readonly received: Array<Received>
  /** Signature refusals, by reason. */
  readonly refused: Array<string>
  mode: "ok" | "down"
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let data = ""
    req.on("data", (chunk) => (data += chunk))
    req.on("end", () => resolve(data))
  })

export const startFakeRuntime = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ fake: FakeRuntime; close: () => Promise<void> }>((resolve) => {
      const verifier = InternalSignature.makeVerifier({ keys: [RUNTIME_KEY] })
      const fake: FakeRuntime = { url: "", received: [], refused: [], mode: "ok" }
      const server = createServer(async (req, res) => {
        const body = await readBody(req)
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : v]))
        const json = (status: number, value: unknown) => {
          res.writeHead(status, { "content-type": "application/json", "x-request-id": headers["x-request-id"] ?? "none" })
          res.end(JSON.stringify(value))
        }
        if (fake.mode === "down") return json(503, { error: { code: "internal_error", message: "down" } })
        const verified = await Effect.runPromise(Effect.either(verifier.verify({ method: req.method!, url: req.url!, headers, body })))
        if (verified._tag === "Left") {
          fake.refused.push(verified.left.reason)
          return json(verified.left.status, verified.left.envelope)
        }
        fake.received.push({ method: req.method!, url: req.url!, headers, body, claims: verified.right })
        const path = new URL(req.url!, "http://x").pathname
        if (req.method === "POST" && path === "/internal/v1/sync/sessions/revoke") return json(200, { ok: true })
        if (req.method === "GET" && path === "/internal/v1/codex/workers") {
          return json(200, { data: [{ worker_id: "w_1", status: "running", owner: headers["x-oa-user-id"] }] })
        }
        if (req.method === "GET" && /^\/internal\/v1\/codex\/workers\/[^/]+\/stream$/.test(path)) {
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
          let seq = Number(headers["last-event-id"] ?? "0")
          const tick = () => {
            seq++
            res.write(`id: ${seq}\nevent: codex.worker.event\ndata: ${JSON.stringify({ seq })}\n\n`)
            if (seq % 3 === 0) res.end()
            else setTimeout(tick, 20)
          }
          return tick()
        }
        if (req.method === "POST" && /^\/internal\/v1\/codex\/workers\/[^/]+\/requests$/.test(path)) return json(202, { data: { echoed: JSON.parse(body) } })
        json(404, { error: { code: "not_found", message: "no route" } })
      })
      server.listen(0, "127.0.0.1", () => {
        ;(fake as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
        resolve({ fake, close: () => new Promise<void>((done) => server.close(() => done())) })
      })
    })
  ),
  ({ close }) => Effect.promise(close)
)
