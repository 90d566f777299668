// The dashboard server of `npm start` (development only): serves examples/web-dashboard, bundled
// with esbuild at start, and puts control, the runtime's snapshot endpoint and Khala behind one
// origin, so the browser needs no CORS and control's web session cookie (HttpOnly, set on this
// origin) authenticates every call. Also two development pages: the dev outbox (the local
// identity provider's sign-in codes) and the restart of one supervised service.
//
//   /api/*, /.well-known/*      -> control (sign-in, sync tokens, the runtime proxy)
//   /sync/v1/snapshot/*         -> the runtime (Khala snapshots, for stale-cursor recovery)
//   /sync/v1/ws (upgrade)       -> Khala's WebSocket port
//   GET  /dev/outbox            -> the sign-in codes of .data/dev-outbox.log, newest first
//   POST /dev/restart/<service> -> restart one supervised service (needs `x-oa-dev: restart`)
//   /, /app.js                  -> the dashboard
//
// The server binds 127.0.0.1 only. The restart route wants a custom header, which a cross-origin
// page cannot send without a CORS preflight this server never grants.
/* global Buffer */
import { existsSync, readFileSync } from "node:fs"
import { createServer, request as httpRequest } from "node:http"
import { connect } from "node:net"
import { join } from "node:path"

/** Bundle the dashboard for browsers from its TypeScript sources (and the workspace packages' sources). */
export const buildDashboard = async (root) => {
  const { build } = await import("esbuild")
  const dir = join(root, "examples/web-dashboard")
  const result = await build({
    entryPoints: [join(dir, "src/main.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    conditions: ["@openagents/source"],
    sourcemap: "inline",
    write: false,
    logLevel: "silent"
  })
  return { html: readFileSync(join(dir, "src/index.html")), js: Buffer.from(result.outputFiles[0].contents) }
}

const escape = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c])

const outboxPage = (file) => {
  const lines = existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").filter(Boolean).reverse() : []
  const rows = lines.map((line) => {
    const m = /^(\S+)\s+to=(\S+)\s+code=(\d+)\s+challenge=(\S+)$/.exec(line)
    return m === null
      ? `<tr><td colspan="4">${escape(line)}</td></tr>`
      : `<tr><td>${escape(m[1])}</td><td class="to">${escape(m[2])}</td><td class="code">${escape(m[3])}</td><td class="challenge">${escape(m[4])}</td></tr>`
  })
  return `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>dev outbox</title>
<style>body{font:14px system-ui;margin:2rem}td,th{padding:.2rem .8rem;text-align:left}.code{font:bold 16px monospace}</style>
<h1>Dev outbox</h1><p>Sign-in codes of the local identity provider (development only), newest first. This page refreshes itself.</p>
<table><thead><tr><th>sent</th><th>to</th><th>code</th><th>challenge</th></tr></thead><tbody>${rows.join("")}</tbody></table>
<p><a href="/">back to the dashboard</a></p>`
}

/** Forward one HTTP request to 127.0.0.1:<port>, streaming both bodies (SSE passes as it arrives). */
const forward = (port, req, res) => {
  const upstream = httpRequest({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${port}` } }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers)
    answer.pipe(res)
  })
  upstream.on("error", (error) => {
    if (res.headersSent) return void res.destroy()
    res.writeHead(502, { "content-type": "application/json" })
    res.end(JSON.stringify({ error: { code: "bad_gateway", message: `upstream 127.0.0.1:${port} unreachable (${error.code ?? error.message})` } }))
  })
  req.pipe(upstream)
}

/** Tunnel a WebSocket upgrade to 127.0.0.1:<port> byte for byte (Khala speaks to the browser directly). */
const tunnel = (port, req, socket, head) => {
  const upstream = connect(port, "127.0.0.1", () => {
    const headers = []
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]
      headers.push(`${name}: ${name.toLowerCase() === "host" ? `127.0.0.1:${port}` : req.rawHeaders[i + 1]}`)
    }
    upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`)
    if (head.length > 0) upstream.write(head)
    socket.pipe(upstream).pipe(socket)
  })
  const close = () => {
    socket.destroy()
    upstream.destroy()
  }
  upstream.on("error", close)
  socket.on("error", close)
  upstream.on("close", close)
  socket.on("close", close)
}

/**
 * Start the dashboard server. `assets` resolves to the bundle; `restart(name)` restarts one
 * supervised service and resolves once it is ready again (rejects with a message otherwise).
 */
export const startDashboard = ({ port, controlPort, runtimePort, khalaPort, outboxFile, assets, restart }) =>
  new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0]
      if (path.startsWith("/api/") || path.startsWith("/.well-known/")) return forward(controlPort, req, res)
      if (path.startsWith("/sync/v1/snapshot/")) return forward(runtimePort, req, res)
      if (path === "/dev/outbox" && req.method === "GET") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" })
        return res.end(outboxPage(outboxFile))
      }
      const restartMatch = /^\/dev\/restart\/([a-z0-9-]+)$/.exec(path)
      if (restartMatch !== null && req.method === "POST") {
        if (req.headers["x-oa-dev"] !== "restart") {
          res.writeHead(403, { "content-type": "application/json" })
          return res.end(JSON.stringify({ error: { code: "forbidden", message: "send the header x-oa-dev: restart" } }))
        }
        return void restart(restartMatch[1]).then(
          () => {
            res.writeHead(200, { "content-type": "application/json" })
            res.end(JSON.stringify({ ok: true, restarted: restartMatch[1] }))
          },
          (error) => {
            res.writeHead(409, { "content-type": "application/json" })
            res.end(JSON.stringify({ error: { code: "conflict", message: String(error?.message ?? error) } }))
          }
        )
      }
      if (req.method === "GET" && (path === "/" || path === "/index.html" || path === "/app.js")) {
        return void assets.then(
          ({ html, js }) => {
            const script = path === "/app.js"
            res.writeHead(200, { "content-type": script ? "text/javascript; charset=utf-8" : "text/html; charset=utf-8", "cache-control": "no-store" })
            res.end(script ? js : html)
          },
          (error) => {
            res.writeHead(500, { "content-type": "text/plain; charset=utf-8" })
            res.end(`the dashboard could not be built:\n${error?.message ?? error}`)
          }
        )
      }
      res.writeHead(404, { "content-type": "application/json" })
      res.end(JSON.stringify({ error: { code: "not_found", message: `no route ${req.method} ${path}` } }))
    })
    server.on("upgrade", (req, socket, head) => {
      if ((req.url ?? "").split("?")[0] === "/sync/v1/ws") return tunnel(khalaPort, req, socket, head)
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n")
    })
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => resolve(server))
  })
