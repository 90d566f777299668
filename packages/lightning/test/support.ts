// Test support: real HTTP(S) servers on 127.0.0.1 ephemeral ports, and a Node HttpClient.
import type * as HttpServerError from "@effect/platform/HttpServerError"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { createServer } from "node:http"
import { createServer as createHttpsServer } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"


/** Serve `app` on 127.0.0.1:<ephemeral> for the scope; returns the base URL. */
export const serve = (app: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, any>, tls?: { cert: string; key: string }) =>
  Effect.gen(function*() {
    const server = yield* NodeHttpServer.make(
      () => (tls === undefined ? createServer() : createHttpsServer({ cert: tls.cert, key: tls.key })) as ReturnType<typeof createServer>,
      { port: 0, host: "127.0.0.1" }
    )
    yield* server.serve(app as Effect.Effect<HttpServerResponse.HttpServerResponse, HttpServerError.HttpServerError, HttpServerRequest.HttpServerRequest>)
    const address = server.address
    if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    return `${tls === undefined ? "http" : "https"}://127.0.0.1:${address.port}`
  })

export const httpClient = NodeHttpClient.layer

/** A self-signed certificate for 127.0.0.1 made with the openssl CLI, or undefined without one. */
export const selfSignedCert = (): { cert: string; key: string } | undefined => {
  try {
    const dir = mkdtempSync(join(tmpdir(), "lndsim-tls-"))
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=lndsim", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout", join(dir, "tls.key"), "-out", join(dir, "tls.cert")
    ], { stdio: "ignore" })
    return { cert: readFileSync(join(dir, "tls.cert"), "utf8"), key: readFileSync(join(dir, "tls.key"), "utf8") }
  } catch {
    return undefined
  }
}

