// Runtime ingest → projected → received: authority events posted to the runtime's HTTP API
// (`POST /internal/v1/codex/workers/:id/events`, bearer access token), written with their Khala
// projection in one transaction, and received by a `@openagents/khala-client` subscribed to the
// workers' event topics. The runtime host runs as its own process (`hosts/runtime`, uWS), on
// Postgres and on embedded PGlite; the load generator and the client share this process.
//
// Two phases per engine:
// - saturated: 8 writers post back to back for DURATION_MS; events/s, and ingest→received
//   latency under that load;
// - paced: 100 events/s for PACED_MS; ingest→received latency p50/p99.
// Baselines from the same run: `pgbench -N -c 8` on the same Postgres (the physical write
// reference, as in the journal suite) and the host's own `GET /internal/v1/health` round trip at
// the same concurrency (the floor of one HTTP request through this host).
//
//   node --conditions=@openagents/source --import tsx bench/src/runtime-ingest.ts
//   BENCH_QUICK=1 …   (short phases, no numbers worth keeping)
//   BENCH_HOST_PROF=/tmp/prof …   (the host writes V8 CPU profiles there; read them with bench/src/fanout/profile.mjs)
import { createClient, type SyncStore } from "@openagents/khala-client"
import { SyncToken } from "@openagents/khala-core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { exportJWK, generateKeyPair, SignJWT } from "jose"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import WebSocket from "ws"

const QUICK = process.env["BENCH_QUICK"] === "1"
const DURATION_MS = QUICK ? 1_500 : 8_000
const PACED_MS = QUICK ? 1_500 : 8_000
const WARMUP_MS = QUICK ? 300 : 1_500
const WRITERS = 8
const ROOT = fileURLToPath(new URL("../..", import.meta.url))
const MAIN = join(ROOT, "hosts/runtime/src/main.ts")
const ADMIN_URL = process.env["BENCH_DATABASE_URL"] ?? process.env["TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const ISSUER = "https://control.bench"
const SYNC_KEY: SyncToken.HmacKey = { kid: "bench-sync", secret: Redacted.make("b".repeat(40)) }
const USER = "bench-user"

const port = async (): Promise<number> => {
  for (;;) {
    const p = 20_000 + Math.floor(Math.random() * 12_000)
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer()
      s.once("error", () => resolve(false))
      s.listen(p, "127.0.0.1", () => s.close(() => resolve(true)))
    })
    if (free) return p
  }
}

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
const round = (n: number, digits = 1) => Number(n.toFixed(digits))

interface Host {
  readonly child: ChildProcess
  readonly http: string
  readonly khala: string
  readonly stop: () => Promise<void>
}

const startHost = async (database: Record<string, string>, jwks: unknown): Promise<Host> => {
  const [http, khala] = [await port(), await port()]
  const child = spawn(process.execPath, [...(process.env["BENCH_HOST_PROF"] ? ["--cpu-prof", `--cpu-prof-dir=${process.env["BENCH_HOST_PROF"]}`] : []), "--conditions=@openagents/source", "--import", "tsx", MAIN], {
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: process.env["HOME"] ?? "",
      PORT: String(http),
      OA_KHALA_PORT: String(khala),
      OA_CONTROL_PUBLIC_URL: ISSUER,
      OA_CONTROL_JWKS: JSON.stringify(jwks),
      OA_SYNC_TOKEN_KEY_ID: SYNC_KEY.kid,
      OA_SYNC_TOKEN_SIGNING_KEY: Redacted.value(SYNC_KEY.secret),
      ...database
    },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (d) => (stderr += d))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const deadline = Date.now() + 120_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`runtime host exited: ${stderr}`)
    if (Date.now() > deadline) throw new Error(`runtime host not ready: ${stderr}`)
    try {
      if ((await fetch(`http://127.0.0.1:${http}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) break
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  return {
    child,
    http: `http://127.0.0.1:${http}`,
    khala: `ws://127.0.0.1:${khala}/sync/v1/ws`,
    stop: async () => {
      child.kill("SIGTERM")
      await exited
    }
  }
}

/** Writers posting back to back for `ms`; returns completed requests. */
const closedLoop = async (ms: number, request: (writer: number) => Promise<void>) => {
  let done = 0
  const until = performance.now() + ms
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    while (performance.now() < until) {
      await request(w)
      done++
    }
  }))
  return done
}

const pgbench = (url: string) => {
  try {
    execFileSync("pgbench", ["-i", "-s", "10", "-q", url], { stdio: "ignore" })
    const out = execFileSync("pgbench", ["-N", "-c", String(WRITERS), "-j", "2", "-T", QUICK ? "2" : "5", url], { encoding: "utf8" })
    return Number(/tps = ([\d.]+)/.exec(out)?.[1])
  } catch {
    return undefined
  }
}

const run = async (engine: "postgres" | "pglite") => {
  const { privateKey, publicKey } = await generateKeyPair("ES256")
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench-k1", alg: "ES256", use: "sig" }
  const now = Math.floor(Date.now() / 1000)
  const access = await new SignJWT({ iss: ISSUER, aud: "openagents-api", sub: `user:${USER}`, oa_user_id: USER, sid: "bench-session", iat: now, nbf: now, exp: now + 3600 })
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: "bench-k1" })
    .sign(privateKey)
  const auth = { authorization: `Bearer ${access}`, "content-type": "application/json" }

  let database: Record<string, string>
  let cleanup: () => void
  let pgbenchTps: number | undefined
  if (engine === "postgres") {
    const name = `oa_bench_rt_${process.pid}_${Date.now().toString(36)}`
    execFileSync("psql", [ADMIN_URL, "-qc", `CREATE DATABASE ${name}`])
    const url = new URL(ADMIN_URL)
    url.pathname = `/${name}`
    database = { DATABASE_URL: url.toString(), DATABASE_MAX_CONNECTIONS: "16" }
    cleanup = () => execFileSync("psql", [ADMIN_URL, "-qc", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`])
    // pgbench in its own database on the same server.
    const pgName = `${name}_pgbench`
    execFileSync("psql", [ADMIN_URL, "-qc", `CREATE DATABASE ${pgName}`])
    const pgUrl = new URL(ADMIN_URL)
    pgUrl.pathname = `/${pgName}`
    pgbenchTps = pgbench(pgUrl.toString())
    execFileSync("psql", [ADMIN_URL, "-qc", `DROP DATABASE IF EXISTS ${pgName} WITH (FORCE)`])
  } else {
    const dir = mkdtempSync(join(tmpdir(), "oa-bench-rt-"))
    database = { DATA_DIR: join(dir, "runtime") }
    cleanup = () => rmSync(dir, { recursive: true, force: true })
  }

  const host = await startHost(database, { keys: [jwk] })
  try {
    const workers = Array.from({ length: WRITERS }, (_, i) => `bench-w-${i}`)
    for (const w of workers) {
      const r = await fetch(`${host.http}/internal/v1/codex/workers`, { method: "POST", headers: auth, body: JSON.stringify({ worker_id: w }) })
      if (r.status !== 202 && r.status !== 200) throw new Error(`create worker: ${r.status} ${await r.text()}`)
    }

    // The subscriber: the real client; its store timestamps every applied event.
    let latencies: Array<number> = []
    let received = 0
    const store: SyncStore = {
      load: async () => undefined,
      apply: async (_topic, change) => {
        const at = performance.timeOrigin + performance.now()
        for (const doc of change.upserts) {
          const t = doc.payload === null ? undefined : (JSON.parse(doc.payload) as { payload?: { t?: number } }).payload?.t
          if (t !== undefined) latencies.push(at - t)
          received++
        }
      },
      clear: async () => {}
    }
    const client = createClient({
      url: host.khala,
      WebSocket: WebSocket as never,
      store,
      tokenProvider: () => {
        const iat = Math.floor(Date.now() / 1000)
        return Effect.runPromise(SyncToken.signHmac({
          iss: ISSUER,
          aud: "openagents-sync",
          sub: `user:${USER}`,
          iat,
          exp: iat + 600,
          jti: `jti_${Math.random().toString(16).slice(2)}`,
          oa_user_id: USER,
          oa_org_id: `user:${USER}`,
          oa_sync_scopes: ["runtime.codex_worker_events"],
          oa_claims_version: "oa_sync_claims_v1",
          oa_session_id: "bench-session",
          oa_device_id: "bench-device"
        } as never, SYNC_KEY))
      }
    })
    for (const w of workers) client.subscribe(`runtime.codex_worker_events:worker:${w}`)
    client.connect()
    await Promise.all(workers.map((w) => client.live(`runtime.codex_worker_events:worker:${w}`)))

    const post = (w: number) =>
      fetch(`${host.http}/internal/v1/codex/workers/${workers[w]}/events`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ event: { event_type: "worker.output", payload: { t: performance.timeOrigin + performance.now(), line: "x".repeat(64) } } })
      }).then(async (r) => {
        if (r.status !== 202) throw new Error(`append: ${r.status} ${await r.text()}`)
        await r.arrayBuffer()
      })
    const health = () => fetch(`${host.http}/internal/v1/health`).then((r) => r.arrayBuffer()).then(() => undefined)

    // Baseline: the host's cheapest request at the same concurrency.
    await closedLoop(WARMUP_MS, health)
    const healthCount = await closedLoop(DURATION_MS, health)
    const healthPerSecond = healthCount / (DURATION_MS / 1000)

    // Saturated ingest.
    await closedLoop(WARMUP_MS, post)
    await new Promise((r) => setTimeout(r, 500))
    latencies = []
    const receivedBefore = received
    const started = performance.now()
    const posted = await closedLoop(DURATION_MS, post)
    const elapsed = (performance.now() - started) / 1000
    const drainDeadline = Date.now() + 30_000
    while (received - receivedBefore < posted && Date.now() < drainDeadline) await new Promise((r) => setTimeout(r, 20))
    const saturated = [...latencies].sort((a, b) => a - b)
    const deliveredAll = received - receivedBefore >= posted

    // Paced: 100 events/s spread over the workers.
    latencies = []
    const pacedStart = performance.now()
    let sent = 0
    const pending: Array<Promise<void>> = []
    while (performance.now() - pacedStart < PACED_MS) {
      const due = Math.floor((performance.now() - pacedStart) / 10)
      while (sent < due) pending.push(post(sent++ % WRITERS))
      await new Promise((r) => setTimeout(r, 2))
    }
    await Promise.all(pending)
    await new Promise((r) => setTimeout(r, 500))
    const paced = [...latencies].sort((a, b) => a - b)

    client.close()
    return {
      engine,
      writers: WRITERS,
      eventsPerSecond: round(posted / elapsed, 0),
      deliveredAll,
      saturatedLatencyMs: { p50: round(quantile(saturated, 0.5)), p99: round(quantile(saturated, 0.99)) },
      pacedRate: round(sent / (PACED_MS / 1000), 0),
      pacedLatencyMs: { p50: round(quantile(paced, 0.5)), p99: round(quantile(paced, 0.99)), samples: paced.length },
      baselines: {
        healthRequestsPerSecond: round(healthPerSecond, 0),
        pgbenchTps: pgbenchTps === undefined ? null : round(pgbenchTps, 0)
      },
      ratios: {
        vsHealthRoundTrip: round(posted / elapsed / healthPerSecond, 3),
        vsPgbench: pgbenchTps === undefined ? null : round(posted / elapsed / pgbenchTps, 3)
      }
    }
  } finally {
    await host.stop()
    cleanup()
  }
}

const results = []
for (const engine of ["postgres", "pglite"] as const) {
  try {
    results.push(await run(engine))
  } catch (error) {
    console.error(`${engine}: ${error instanceof Error ? error.message : String(error)}`)
  }
}
const machine = { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadavgAtEnd: loadavg().map((n) => round(n, 2)), quick: QUICK }
console.log("| engine | events/s | ÷ health round trip | ÷ pgbench -N tps | saturated p50 / p99 ms | paced (ev/s) p50 / p99 ms |")
console.log("|---|---|---|---|---|---|")
for (const r of results) {
  console.log(`| ${r.engine} | ${r.eventsPerSecond} | ${r.ratios.vsHealthRoundTrip} (${r.baselines.healthRequestsPerSecond}/s) | ${r.ratios.vsPgbench ?? "–"} (${r.baselines.pgbenchTps ?? "–"}) | ${r.saturatedLatencyMs.p50} / ${r.saturatedLatencyMs.p99} | (${r.pacedRate}) ${r.pacedLatencyMs.p50} / ${r.pacedLatencyMs.p99} |`)
}
console.log(JSON.stringify(machine))
if (!QUICK) {
  mkdirSync(join(ROOT, "bench/results"), { recursive: true })
  writeFileSync(join(ROOT, "bench/results/runtime-ingest.json"), `${JSON.stringify({ machine, results }, null, 2)}\n`)
}
