#!/usr/bin/env node
// `npm start`: the whole system on one machine, as supervised child processes — the LND
// simulator, control (development mode, local identity provider), the runtime + Khala (when
// hosts/runtime exists), the wallet executor, the reference L402 gateway and lightning-ops —
// each plane on its own embedded PGlite (or file) data directory under `.data/`, so state
// survives a restart. See docs/GETTING_STARTED.md and docs/OPERATIONS.md.
//
// Each host runs from its TypeScript sources exactly as its own `npm start` does
// (`node --conditions=@openagents/source --import tsx hosts/<name>/src/main.ts`): a fresh clone
// has no dist/ (building every package is a separate, slower step), and the tests run the same
// sources, so what `npm start` runs is what CI tested.
//
// Invariants:
// - Nothing starts until every port is known to be free: a port in use stops the supervisor with
//   a message naming the service, the port and the variable that moves it.
// - A service starts only once the services it calls answer their health check; a service that
//   does not become ready in time, or exits, stops everything with the tail of its log.
// - No automatic restarts: a child that dies after start-up is reported and the rest are shut down
//   (exit 1). A restart loop would hide the crash; the state is on disk, so running `npm start`
//   again resumes. A restart on request is supported: `POST /dev/restart/<service>` on the
//   dashboard server (header `x-oa-dev: restart`) stops that one child and starts it again.
// - The dashboard server (scripts/start-dashboard.mjs) serves examples/web-dashboard, the dev
//   outbox page and the restart route, and proxies control, the runtime and Khala on one origin.
// - Ctrl-C / SIGTERM: every child gets SIGTERM, then SIGKILL after the grace period; exit 0.
/* global fetch, AbortSignal */
import { spawn } from "node:child_process"
import { generateKeyPairSync, randomBytes } from "node:crypto"
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { join, resolve } from "node:path"
import { createInterface } from "node:readline"
import { clearTimeout, setTimeout } from "node:timers"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { buildDashboard, startDashboard } from "./start-dashboard.mjs"

const root = fileURLToPath(new URL("..", import.meta.url))
const env = process.env

// ---------------------------------------------------------------------------------------------
// Settings: ports and directories, each with a documented default and an OA_START_* override.

const fail = (message) => {
  console.error(`npm start: ${message}`)
  process.exit(1)
}

const integer = (name, fallback, min, max) => {
  const raw = env[name]
  if (raw === undefined || raw === "") return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) fail(`${name} must be an integer between ${min} and ${max} (got ${JSON.stringify(raw)})`)
  return n
}

const port = (name, fallback) => ({ name, port: integer(name, fallback, 1, 65535) })

const ports = {
  control: port("OA_START_CONTROL_PORT", 4200),
  runtime: port("OA_START_RUNTIME_PORT", 4100),
  khala: port("OA_START_KHALA_PORT", 4101),
  lndWallet: port("OA_START_LND_WALLET_PORT", 8080),
  lndGateway: port("OA_START_LND_GATEWAY_PORT", 8082),
  gateway: port("OA_START_GATEWAY_PORT", 8081),
  walletExecutor: port("OA_START_WALLET_EXECUTOR_PORT", 8788),
  lightningOps: port("OA_START_LIGHTNING_OPS_PORT", 8790),
  dashboard: port("OA_START_DASHBOARD_PORT", 4300)
}
const dataDir = resolve(env["OA_START_DATA_DIR"] || join(root, ".data"))
const readyTimeoutMs = integer("OA_START_READY_TIMEOUT_MS", 120_000, 1_000, 3_600_000)
const graceMs = integer("OA_START_STOP_GRACE_MS", 10_000, 100, 600_000)
const runtimeMain = join(root, "hosts/runtime/src/main.ts")
const withRuntime = existsSync(runtimeMain)

const local = (p) => `http://127.0.0.1:${p.port}`
const urls = {
  control: local(ports.control),
  runtime: local(ports.runtime),
  khala: `ws://127.0.0.1:${ports.khala.port}`,
  lndWallet: local(ports.lndWallet),
  lndGateway: local(ports.lndGateway),
  gateway: local(ports.gateway),
  walletExecutor: local(ports.walletExecutor),
  lightningOps: local(ports.lightningOps),
  dashboard: local(ports.dashboard)
}
const dirs = {
  control: join(dataDir, "control"),
  runtime: join(dataDir, "runtime"),
  walletExecutor: join(dataDir, "wallet-executor"),
  lndSim: join(dataDir, "lnd-sim")
}
const secretsFile = join(dataDir, "dev-secrets.json")
const outboxFile = join(dataDir, "dev-outbox.log")

// ---------------------------------------------------------------------------------------------
// Development secrets: generated once, kept in .data/dev-secrets.json (mode 0600, git-ignored),
// so tokens, sessions and L402 credentials stay valid across restarts. The LND macaroons are not
// here: lnd-sim derives them from root keys in its own data directory and writes them as lnd does.

const hex = (bytes) => randomBytes(bytes).toString("hex")

const secretMakers = {
  runtimeSigningKey: () => ({ kid: "runtime-internal-dev-v1", secret: hex(32) }),
  syncTokenKey: () => ({ kid: "sync-auth-dev-v1", secret: hex(32) }),
  controlAccessTokenKeys: () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
    return [{ ...privateKey.export({ format: "jwk" }), kid: `control-dev-${Date.now().toString(36)}`, alg: "ES256", use: "sig" }]
  },
  localIdentitySecret: () => hex(32),
  lightningOpsSecret: () => hex(32),
  gatewayOpsToken: () => hex(24),
  gatewayRootSecret: () => hex(32),
  walletExecutorToken: () => hex(24),
  lightningOpsCredentials: () => ({ gatewayInvoice: hex(24), settlementRead: hex(24), operatorAdmin: hex(24) })
}

const loadSecrets = () => {
  mkdirSync(dataDir, { recursive: true })
  let secrets = {}
  if (existsSync(secretsFile)) {
    try {
      secrets = JSON.parse(readFileSync(secretsFile, "utf8"))
    } catch (error) {
      fail(`${secretsFile} is not valid JSON (${error.message}); fix it or delete it to generate new development secrets`)
    }
    if ((statSync(secretsFile).mode & 0o077) !== 0) {
      chmodSync(secretsFile, 0o600)
      console.warn(`npm start: ${secretsFile} was readable by others; its mode is now 0600`)
    }
  }
  const missing = Object.keys(secretMakers).filter((k) => secrets[k] === undefined)
  for (const key of missing) secrets[key] = secretMakers[key]()
  if (missing.length > 0) writeFileSync(secretsFile, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 })
  return secrets
}

// ---------------------------------------------------------------------------------------------
// The services. Each gets the inherited environment minus the names several hosts read with
// different meanings (a DATABASE_URL or PORT meant for one host must not reach all of them), plus
// its own settings. Anything else set in the shell (e.g. OA_LIGHTNING_WALLET_REQUEST_CAP_MSATS)
// reaches the host that reads it.

const shared = ["PORT", "HOST", "DATA_DIR", "DATABASE_URL", "DATABASE_MAX_CONNECTIONS", "LND_REST_URL", "LND_MACAROON_HEX", "LND_MACAROON_PATH", "LND_TLS_CERT_PATH"]

// The sync-token keyring control signs with and the runtime verifies with (khala-core SyncToken.config).
const syncToken = (s) => ({
  OA_SYNC_TOKEN_KEY_ID: s.syncTokenKey.kid,
  OA_SYNC_TOKEN_SIGNING_KEY: s.syncTokenKey.secret,
  OA_SYNC_TOKEN_ISSUER: urls.control
})
// The internal signature key of control -> runtime calls (host-kit InternalSignature).
const runtimeKey = (s) => ({ OA_RUNTIME_SIGNING_KEY_ID: s.runtimeSigningKey.kid, OA_RUNTIME_SIGNING_KEY: s.runtimeSigningKey.secret })
const healthz = (base) => ({ url: `${base}/healthz`, ok: (status) => status === 200 })

/** In start order; `after` names the services that must be ready first, `env(secrets)` the host's settings. */
const services = [
  {
    name: "lnd-sim",
    ports: [ports.lndWallet, ports.lndGateway],
    after: [],
    env: () => ({ LND_SIM_NODES: `wallet:${ports.lndWallet.port},gateway:${ports.lndGateway.port}`, LND_SIM_DATA_DIR: dirs.lndSim }),
    ready: [healthz(urls.lndWallet), healthz(urls.lndGateway)]
  },
  {
    name: "control",
    ports: [ports.control],
    after: [],
    env: (s) => ({
      OA_CONTROL_MODE: "development",
      HOST: "127.0.0.1",
      PORT: String(ports.control.port),
      OA_CONTROL_PUBLIC_URL: urls.control,
      DATA_DIR: dirs.control,
      OA_IDENTITY_PROVIDER: "local",
      OA_LOCAL_IDENTITY_SECRET: s.localIdentitySecret,
      OA_AUTH_SIGNING_KEYS: JSON.stringify(s.controlAccessTokenKeys),
      OA_LIGHTNING_OPS_SECRET: s.lightningOpsSecret,
      ...syncToken(s),
      // Without the runtime, control queues session revocations and its runtime proxy answers 503.
      ...(withRuntime ? { OA_RUNTIME_BASE_URL: urls.runtime, ...runtimeKey(s) } : {})
    }),
    ready: [healthz(urls.control)]
  },
  {
    name: "runtime",
    main: runtimeMain,
    optional: true,
    ports: [ports.runtime, ports.khala],
    after: ["control"],
    env: (s) => ({
      PORT: String(ports.runtime.port),
      OA_KHALA_PORT: String(ports.khala.port),
      DATA_DIR: dirs.runtime,
      OA_CONTROL_PUBLIC_URL: urls.control,
      // Workers created with adapter "demo" (the dashboard's "start a demo worker") produce live
      // events, driven by the runtime itself (runtime-core DemoWorker).
      OA_RUNTIME_DEMO_WORKER: "true",
      ...runtimeKey(s),
      ...syncToken(s)
    }),
    ready: [healthz(urls.runtime)]
  },
  {
    name: "wallet-executor",
    ports: [ports.walletExecutor],
    after: ["lnd-sim"],
    env: (s) => ({
      OA_LIGHTNING_WALLET_EXECUTOR_HOST: "127.0.0.1",
      OA_LIGHTNING_WALLET_EXECUTOR_PORT: String(ports.walletExecutor.port),
      OA_LIGHTNING_WALLET_EXECUTOR_AUTH_TOKEN: s.walletExecutorToken,
      OA_LIGHTNING_WALLET_ALLOWED_HOSTS: env["OA_LIGHTNING_WALLET_ALLOWED_HOSTS"] || "127.0.0.1,localhost",
      LND_REST_URL: urls.lndWallet,
      LND_MACAROON_PATH: join(dirs.lndSim, "wallet", "admin.macaroon"),
      DATA_DIR: dirs.walletExecutor
    }),
    ready: [healthz(urls.walletExecutor)]
  },
  {
    name: "l402-gateway",
    ports: [ports.gateway],
    after: ["lnd-sim"],
    env: (s) => ({
      L402_GATEWAY_HOST: "127.0.0.1",
      L402_GATEWAY_PORT: String(ports.gateway.port),
      L402_GATEWAY_OPS_TOKEN: s.gatewayOpsToken,
      L402_GATEWAY_ROOT_SECRET: s.gatewayRootSecret,
      L402_GATEWAY_STATE_PATH: join(dataDir, "l402-gateway", "deployments.json"),
      L402_GATEWAY_LEDGER_PATH: join(dataDir, "l402-gateway", "ledger.jsonl"),
      LND_REST_URL: urls.lndGateway,
      LND_MACAROON_PATH: join(dirs.lndSim, "gateway", "invoice.macaroon")
    }),
    ready: [healthz(urls.gateway)]
  },
  {
    name: "lightning-ops",
    ports: [ports.lightningOps],
    after: ["control", "l402-gateway", "wallet-executor"],
    env: (s) => ({
      OA_LIGHTNING_OPS_HOST: "127.0.0.1",
      OA_LIGHTNING_OPS_PORT: String(ports.lightningOps.port),
      OA_LIGHTNING_OPS_CONTROL_PLANE_MODE: "api",
      OA_LIGHTNING_OPS_API_BASE_URL: urls.control,
      OA_LIGHTNING_OPS_SECRET: s.lightningOpsSecret,
      OA_LIGHTNING_OPS_GATEWAY_BASE_URL: urls.gateway,
      OA_LIGHTNING_OPS_GATEWAY_OPS_TOKEN: s.gatewayOpsToken,
      // The reconciler proves each deployment by paying its smoke challenge through the executor.
      OA_LIGHTNING_OPS_WALLET_EXECUTOR_URL: urls.walletExecutor,
      OA_LIGHTNING_OPS_WALLET_EXECUTOR_TOKEN: s.walletExecutorToken,
      OA_LIGHTNING_OPS_CRED_GATEWAY_INVOICE: s.lightningOpsCredentials.gatewayInvoice,
      OA_LIGHTNING_OPS_CRED_SETTLEMENT_READ: s.lightningOpsCredentials.settlementRead,
      OA_LIGHTNING_OPS_CRED_OPERATOR_ADMIN: s.lightningOpsCredentials.operatorAdmin
    }),
    // Up when it answers: /healthz is 503 while the reconciler has nothing to deploy (no paywall
    // yet), which is the normal state of a fresh system.
    ready: [{ url: `${urls.lightningOps}/healthz`, ok: (status) => status === 200 || status === 503 }]
  }
]

// ---------------------------------------------------------------------------------------------
// Output: every child line is prefixed with its service name; local sign-in codes also go to
// the dev outbox file.

const color = process.stdout.isTTY && !env["NO_COLOR"]
const paint = (code, text) => (color ? `\u001b[${code}m${text}\u001b[0m` : text)
const palette = [36, 35, 33, 32, 34, 31, 96]
const width = 16
const say = (text) => console.log(`${paint(1, "npm start".padEnd(width))}| ${text}`)
const SIGN_IN_CODE = /local sign-in code for (\S+): (\d{6}) \(challenge ([^)\s]+)\)/

const portFree = (p) =>
  new Promise((done) => {
    const server = createServer()
    server.once("error", (error) => done(error.code ?? String(error)))
    server.listen(p, "127.0.0.1", () => server.close(() => done(true)))
  })

const children = new Map()
let stopping = false
let dashboardServer

const launch = (service, index, secrets) => {
  const main = service.main ?? join(root, `hosts/${service.name}/src/main.ts`)
  const childEnv = { ...env }
  for (const name of shared) delete childEnv[name]
  Object.assign(childEnv, service.env(secrets), { NO_COLOR: "1" })
  const child = spawn(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", main], {
    cwd: root,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"]
  })
  // Spawning node itself failed (no exit event follows).
  child.once("error", (error) => void shutdown(1, `${service.name} could not be started: ${error.message}`))
  say(`starting ${service.name} (pid ${child.pid})`)
  const tail = []
  const label = paint(palette[index % palette.length], service.name.padEnd(width))
  const onLine = (line) => {
    tail.push(line)
    if (tail.length > 40) tail.shift()
    console.log(`${label}| ${line}`)
    const code = SIGN_IN_CODE.exec(line)
    if (code !== null) {
      appendFileSync(outboxFile, `${new Date().toISOString()}  to=${code[1]}  code=${code[2]}  challenge=${code[3]}\n`, { mode: 0o600 })
      say(paint(1, `sign-in code for ${code[1]}: ${code[2]}  (also in ${outboxFile})`))
    }
  }
  createInterface({ input: child.stdout }).on("line", onLine)
  createInterface({ input: child.stderr }).on("line", onLine)
  const exited = new Promise((done) => child.once("exit", (code, signal) => done({ code, signal })))
  const entry = { service, index, child, tail, exited, restarting: undefined }
  children.set(service.name, entry)
  exited.then(({ code, signal }) => {
    if (stopping || entry.restarting !== undefined) return
    shutdown(1, `${service.name} exited unexpectedly (${signal ?? `code ${code}`}); stopping the others.\n${tailOf(entry)}`)
  })
  return entry
}

const tailOf = (entry) => `--- last lines of ${entry.service.name} ---\n${entry.tail.slice(-20).join("\n")}`

/** Poll each readiness URL until it answers ok, the child exits, or the deadline passes. */
const waitReady = async (entry) => {
  const deadline = Date.now() + readyTimeoutMs
  for (const probe of entry.service.ready) {
    for (;;) {
      if (stopping) return
      if (entry.child.exitCode !== null || entry.child.signalCode !== null) return // the exit handler reports it
      try {
        // A host may accept connections before its app is attached: bound each probe.
        const response = await fetch(probe.url, { signal: AbortSignal.timeout(2_000) })
        await response.arrayBuffer()
        if (probe.ok(response.status)) break
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        return shutdown(1, `${entry.service.name} did not become ready within ${readyTimeoutMs / 1000} s (waiting for ${probe.url}; OA_START_READY_TIMEOUT_MS raises the limit).\n${tailOf(entry)}`)
      }
      await sleep(200)
    }
  }
}

/** Stop one child (SIGTERM, SIGKILL after the grace period) and wait for its exit. */
const stopChild = async (entry) => {
  const { child, exited } = entry
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill("SIGTERM")
  const timer = setTimeout(() => {
    say(`${entry.service.name} did not stop within ${graceMs / 1000} s: SIGKILL`)
    child.kill("SIGKILL")
  }, graceMs)
  await exited
  clearTimeout(timer)
}

/**
 * Restart one service on request (the dashboard server's POST /dev/restart/<service>): stop it,
 * start it again with the same settings, resolve once it is ready. Concurrent requests for the
 * same service share one restart. The services that call it see it go away and come back, as in
 * a deployment; a restarted child that then fails to start stops everything as at start-up.
 */
const restartService = (name, secrets) => {
  const entry = children.get(name)
  if (stopping) return Promise.reject(new Error("npm start is stopping"))
  if (entry === undefined) return Promise.reject(new Error(`no service named ${name} (services: ${[...children.keys()].join(", ")})`))
  if (entry.restarting !== undefined) return entry.restarting
  entry.restarting = (async () => {
    say(`restarting ${name} (requested)`)
    await stopChild(entry)
    if (stopping) throw new Error("npm start is stopping")
    const next = launch(entry.service, entry.index, secrets)
    await waitReady(next)
    if (stopping) throw new Error(`${name} did not come back`)
    say(paint(32, `${name} is ready again`))
  })()
  return entry.restarting
}

let shuttingDown
const shutdown = (exitCode, message) => {
  if (shuttingDown !== undefined) return shuttingDown
  stopping = true
  if (message !== undefined) console.error(`${paint(31, "npm start".padEnd(width))}| ${message}`)
  say(`stopping ${[...children.keys()].join(", ") || "nothing"} (SIGTERM, SIGKILL after ${graceMs / 1000} s)`)
  dashboardServer?.closeAllConnections?.()
  dashboardServer?.close()
  shuttingDown = Promise.all([...children.values()].map(stopChild)).then(() => {
    say(exitCode === 0 ? "stopped" : "stopped (after a failure)")
    process.exit(exitCode)
  })
  return shuttingDown
}

const summary = (list) => {
  const lines = [
    "",
    paint(1, "The system is up."),
    "",
    paint(1, `  Dashboard: ${urls.dashboard}/`) + `  (sign in there; sign-in codes also at ${urls.dashboard}/dev/outbox)`,
    "",
    ...list.map((s) => `  ${s.name.padEnd(16)} ${s.describe}`),
    "",
    `  restart one service: curl -X POST -H 'x-oa-dev: restart' ${urls.dashboard}/dev/restart/<service>`,
    `  state          ${dataDir} (one directory per plane; delete it to start from scratch)`,
    `  dev secrets    ${secretsFile}`,
    "",
    paint(1, "Sign in (local identity provider):"),
    `  curl -s -X POST ${urls.control}/api/auth/email -H 'content-type: application/json' -d '{"email":"you@example.com"}'`,
    `  The 6-digit code is printed here ("sign-in code for ...") and appended to the dev outbox:`,
    `    ${outboxFile}`,
    `  curl -s -X POST ${urls.control}/api/auth/verify -H 'content-type: application/json' -H 'x-client: autopilot-ios' \\`,
    `    -d '{"code":"<code>","challenge_id":"<challengeId>"}'        # -> {"token": ...}`,
    `  curl -s -X POST ${urls.control}/api/sync/token -H 'authorization: Bearer <token>' -H 'content-type: application/json' -d '{}'`,
    "",
    "Ctrl-C stops everything.",
    ""
  ]
  for (const line of lines) say(line)
}

const describe = {
  "lnd-sim": `${urls.lndWallet} (node "wallet"), ${urls.lndGateway} (node "gateway"); macaroons in ${dirs.lndSim}/<node>/`,
  "control": `${urls.control}  (API docs ${urls.control}/docs)`,
  "runtime": `${urls.runtime}  (Khala ${urls.khala})`,
  "wallet-executor": `${urls.walletExecutor}  (Bearer token: walletExecutorToken in dev-secrets.json)`,
  "l402-gateway": `${urls.gateway}  (paid routes appear once lightning-ops deploys a paywall)`,
  "lightning-ops": `${urls.lightningOps}/healthz`
}

const main = async () => {
  const isPlanned = (s) => !s.optional || existsSync(s.main)
  if (!withRuntime) {
    say(paint(33, `runtime: ${runtimeMain} does not exist yet, so the runtime + Khala are not started;`))
    say(paint(33, "         control runs without OA_RUNTIME_BASE_URL (revocations queue, its runtime proxy answers 503)."))
  }

  // Every port, before anything is written or started.
  const taken = []
  for (const s of [...services.filter(isPlanned), { name: "dashboard", ports: [ports.dashboard] }]) {
    for (const p of s.ports) {
      const free = await portFree(p.port)
      if (free !== true) taken.push(`  ${s.name}: 127.0.0.1:${p.port} is ${free === "EADDRINUSE" ? "already in use" : `unavailable (${free})`} — set ${p.name} to another port`)
    }
  }
  if (taken.length > 0) fail(`cannot start; ports unavailable:\n${taken.join("\n")}`)

  const secrets = loadSecrets()
  const planned = services.filter(isPlanned)
  // Bundled while the services start; a build error is reported and shown on the page.
  const assets = buildDashboard(root)
  assets.catch((error) => say(paint(31, `the dashboard could not be built: ${error?.message ?? error}`)))
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.on(sig, () => {
      if (shuttingDown !== undefined) {
        // A second Ctrl-C: do not wait for the grace period.
        for (const { child } of children.values()) child.kill("SIGKILL")
        return
      }
      say(`${sig}: shutting down`)
      void shutdown(0)
    })
  }

  // Start each service once the services it calls are ready; independent ones start together.
  const readyOf = new Map()
  const started = Date.now()
  const startOne = async (s, index) => {
    await Promise.all(s.after.filter((d) => readyOf.has(d)).map((d) => readyOf.get(d)))
    if (stopping) return
    const entry = launch(s, index, secrets)
    await waitReady(entry)
    if (!stopping) say(paint(32, `${s.name} is ready (${((Date.now() - started) / 1000).toFixed(1)} s)`))
  }
  planned.forEach((s, i) => readyOf.set(s.name, startOne(s, i)))
  await Promise.all(readyOf.values())
  if (stopping) return
  dashboardServer = await startDashboard({
    port: ports.dashboard.port,
    controlPort: ports.control.port,
    runtimePort: ports.runtime.port,
    khalaPort: ports.khala.port,
    outboxFile,
    assets,
    restart: (name) => restartService(name, secrets)
  })
  summary(planned.map((s) => ({ name: s.name, describe: describe[s.name] })))
}

main().catch((error) => shutdown(1, `supervisor failure: ${error?.stack ?? error}`))
