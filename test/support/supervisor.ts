// Test support: run `npm start` (scripts/start.mjs) as a child process on free 127.0.0.1 ports
// and a given data directory, wait for it, and sign in through control's email-code flow with the
// code from the dev outbox.
import { type ChildProcess, spawn } from "node:child_process"
import { createHmac } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expect } from "vitest"

export const root = new URL("../..", import.meta.url).pathname

/**
 * A free port below Linux's ephemeral range (32768+): the supervisor releases its port check
 * before the hosts bind, and a port from the ephemeral range could meanwhile become the local
 * port of some outgoing connection on a busy machine.
 */
export const freePort = async (): Promise<number> => {
  for (;;) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000)
    if (await portIsFree(candidate)) return candidate
  }
}

const portNames = [
  "OA_START_CONTROL_PORT",
  "OA_START_RUNTIME_PORT",
  "OA_START_KHALA_PORT",
  "OA_START_LND_WALLET_PORT",
  "OA_START_LND_GATEWAY_PORT",
  "OA_START_GATEWAY_PORT",
  "OA_START_WALLET_EXECUTOR_PORT",
  "OA_START_LIGHTNING_OPS_PORT",
  "OA_START_DASHBOARD_PORT"
] as const
export type Ports = Record<(typeof portNames)[number], number>

export const freePorts = async (): Promise<Ports> => {
  const ports: Partial<Ports> = {}
  const seen = new Set<number>()
  for (const name of portNames) {
    let p = await freePort()
    while (seen.has(p)) p = await freePort()
    seen.add(p)
    ports[name] = p
  }
  return ports as Ports
}

export interface Supervisor {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

export const start = (ports: Ports, dataDir: string, extra: Record<string, string> = {}): Supervisor => {
  const child = spawn(process.execPath, ["scripts/start.mjs"], {
    cwd: root,
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: process.env["HOME"] ?? "/tmp",
      OA_START_DATA_DIR: dataDir,
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
      ...extra
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout!.on("data", (d) => (out += String(d)))
  child.stderr!.on("data", (d) => (out += String(d)))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, output: () => out, exited }
}

export interface System {
  readonly sup: Supervisor
  readonly ports: Ports
  readonly dataDir: string
  /** `http://127.0.0.1:<port>` of a service. */
  readonly url: (port: keyof Ports) => string
  /** The docs' default ports (4200, 4100, …) → this system's, for `fill` from test/support/docs.ts. */
  readonly documentedPorts: Record<number, number>
  /** Ctrl-C, wait for the exit, remove the data directory (for afterAll; safe to call twice). */
  readonly stop: () => Promise<void>
}

/** The defaults of scripts/start.mjs, as the docs show them. */
const DEFAULT_PORTS: Record<keyof Ports, number> = {
  OA_START_CONTROL_PORT: 4200,
  OA_START_RUNTIME_PORT: 4100,
  OA_START_KHALA_PORT: 4101,
  OA_START_LND_WALLET_PORT: 8080,
  OA_START_LND_GATEWAY_PORT: 8082,
  OA_START_GATEWAY_PORT: 8081,
  OA_START_WALLET_EXECUTOR_PORT: 8788,
  OA_START_LIGHTNING_OPS_PORT: 8790,
  OA_START_DASHBOARD_PORT: 4300
}

/** `npm start` on free ports and a fresh data directory, once it is up. */
export const startSystem = async (name: string, extra: Record<string, string> = {}): Promise<System> => {
  const ports = await freePorts()
  const dataDir = mkdtempSync(join(tmpdir(), `oa-${name}-`))
  const sup = start(ports, dataDir, extra)
  const stop = async () => {
    if (sup.child.exitCode === null && sup.child.signalCode === null) {
      sup.child.kill("SIGINT")
      await sup.exited
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    await up(sup)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    sup,
    ports,
    dataDir,
    url: (port) => `http://127.0.0.1:${ports[port]}`,
    documentedPorts: Object.fromEntries(Object.entries(DEFAULT_PORTS).map(([name, port]) => [port, ports[name as keyof Ports]])),
    stop
  }
}

export const until = async <A>(what: string, sup: Supervisor, f: () => A | undefined, timeoutMs = 150_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const a = f()
    if (a !== undefined) return a
    if (sup.child.exitCode !== null) throw new Error(`npm start exited (${sup.child.exitCode}) while waiting for ${what}:\n${sup.output()}`)
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${sup.output()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export const up = (sup: Supervisor) => until("the system", sup, () => (sup.output().includes("The system is up.") ? true : undefined))

export const post = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() as any }
}

/** The code the local provider sent for a challenge, from the dev outbox file (and the terminal). */
export const signInCode = async (sup: Supervisor, dataDir: string, email: string, challengeId: string) => {
  const code = await until("the sign-in code", sup, () => {
    const outbox = join(dataDir, "dev-outbox.log")
    if (!existsSync(outbox)) return undefined
    return readFileSync(outbox, "utf8").match(new RegExp(`to=${email.replace(/[.]/g, "\\.")}  code=(\\d{6})  challenge=${challengeId}`))?.[1]
  }, 10_000)
  // It is also announced in the terminal (the supervisor's stdout can trail the outbox file).
  await until("the sign-in code in the terminal", sup, () => (sup.output().includes(`sign-in code for ${email}: ${code}`) ? true : undefined), 10_000)
  return code
}

/** The email-code flow of the local provider, with the code read from the dev outbox file. */
export const signIn = async (sup: Supervisor, control: string, dataDir: string, email: string) => {
  const sent = await post(`${control}/api/auth/email`, { email })
  expect(sent.status).toBe(200)
  const challengeId: string = sent.body.challengeId
  const code = await signInCode(sup, dataDir, email, challengeId)
  const verified = await post(`${control}/api/auth/verify`, { code, challenge_id: challengeId }, { "x-client": "autopilot-ios" })
  expect(verified.status).toBe(200)
  return verified.body as { userId: string; token: string }
}

export const hs256Valid = (jwt: string, secret: string) => {
  const [header, payload, signature] = jwt.split(".")
  return createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url") === signature
}

export const portIsFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

