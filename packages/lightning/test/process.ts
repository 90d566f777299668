// Test support for hosts: run a host's main.ts as a real child process (as `npm start` does),
// on free 127.0.0.1 ports, and wait for it to answer.
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../..", import.meta.url))

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export interface HostProcess {
  readonly child: ChildProcess
  readonly output: () => string
  /** SIGKILL: no finalizer runs (a crash). */
  readonly kill: () => Promise<void>
  /** SIGTERM: graceful shutdown. */
  readonly stop: () => Promise<void>
}

/** Start `hosts/<name>/src/main.ts` with `env` (added to a minimal environment) and `args`. */
export const startHost = (name: string, env: Record<string, string>, args: ReadonlyArray<string> = []): HostProcess => {
  const child = spawn(process.execPath, ["--conditions=@openagents/source", "--import", "tsx", `hosts/${name}/src/main.ts`, ...args], {
    cwd: root,
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout!.on("data", (d) => (out += String(d)))
  child.stderr!.on("data", (d) => (out += String(d)))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const signal = (s: NodeJS.Signals) => async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(s)
    await exited
  }
  return { child, output: () => out, kill: signal("SIGKILL"), stop: signal("SIGTERM") }
}

/** Poll `url` until it answers `ok(status)`, or fail with the host's output. */
export const waitFor = async (url: string, host: HostProcess, init?: RequestInit, timeoutMs = 30_000): Promise<Response> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (host.child.exitCode !== null) throw new Error(`host exited (${host.child.exitCode}):\n${host.output()}`)
    try {
      // A host listens before its app is attached (layers build in order), so a probe can hang:
      // bound each one.
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2_000) })
      if (res.status < 500) return res
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${url}:\n${host.output()}`)
    await new Promise((r) => setTimeout(r, 150))
  }
}
