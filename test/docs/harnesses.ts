// How test/DocsCodeBlocks.test.ts runs each block marked `<!-- run: <name> -->`. A TypeScript
// block is written verbatim (after `substitute`: the docs' hosts and ports become the test's)
// between its harness's prelude, which declares the names the block takes as given, and its
// epilogue, which exports what `check` looks at; the file is typechecked, imported (so run), and
// checked. Other blocks (JSON shapes, shell commands) are checked by `check` alone.
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { createClient, indexedDbStore, type KhalaClient, memoryStore } from "@openagents/khala-client"
import { fileStore } from "@openagents/khala-client/node"
import { ControlHost, LocalIdentity } from "@openagents/control-core"
import { SyncToken } from "@openagents/khala-core"
import { TestClient } from "@openagents/khala-core/testing"
import { FrameKind } from "@openagents/proto/sync/v1"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { existsSync } from "node:fs"
import { createServer } from "node:http"
import { join } from "node:path"
import { createElement, type FunctionComponent } from "react"
import TestRenderer, { act } from "react-test-renderer"
import { expect } from "vitest"
import { type Block, commandsOf, expectShape, fill, read, root, sh, shBackground, where } from "../support/docs.js"
import * as docs from "./runtime.js"

/** What the harnesses share, started once by the docs test. */
export interface Context {
  readonly parts: docs.Parts
  /** The in-process control server's services (its outbox, for sign-in codes). */
  readonly control: ManagedRuntime.ManagedRuntime<LocalIdentity.LocalOutbox, unknown>
  readonly opsSecret: string
  readonly port: () => Promise<number>
}

export interface TsHarness {
  readonly prelude?: string
  readonly epilogue?: string
  /** Text replaced in the block before it is written (each must occur in it). */
  readonly substitute?: (ctx: Context) => Promise<Record<string, string>> | Record<string, string>
  /** Before the module is imported (environment variables the block reads). */
  readonly before?: (ctx: Context) => void
  /** `written`: the block as written to its module (after `substitute`). */
  readonly check: (module: Record<string, any>, ctx: Context, block: Block, written: string) => Promise<void>
}

export interface Harness {
  /** The languages of the blocks this harness takes. */
  readonly langs: ReadonlyArray<string>
  readonly ts?: TsHarness
  readonly check?: (block: Block, ctx: Context) => Promise<void>
}

// ---------------------------------------------------------------------------------------------
// Khala client blocks: a block builds a client; the check publishes on the test server and waits
// for the document to reach the client (and its store).

let version = 1
const publish = async (ctx: Context, topic: string, docKey: string) => {
  const docVersion = version++
  await ctx.parts.khala.publish(topic, [{ docKey, docVersion, payload: { docs: docKey } }])
  return docVersion
}
const USER_TOPIC = `runtime.run_summaries:user:${docs.USER}`

const receives = async (ctx: Context, client: KhalaClient, topic: string, docKey: string) => {
  client.subscribe(topic)
  await publish(ctx, topic, docKey)
  await docs.until(`${docKey} on ${topic}`, () => client.documents(topic).has(docKey))
}

const CLIENT = "const url = __docs.get().khala.url\nconst tokenProvider = () => __docs.token()\n"

const browser = (store: string): TsHarness => ({
  prelude: "const fetch = __docs.pageFetch\nconst renders: Array<ReadonlyMap<string, unknown>> = []\nconst render = (docs: ReadonlyMap<string, unknown>) => void renders.push(docs)\n",
  epilogue: "export { client, renders }",
  substitute: (ctx) => ({ "wss://runtime.example.com/sync/v1/ws": ctx.parts.khala.url }),
  check: async ({ client, renders }, ctx, block) => {
    const docKey = `docs:${block.file}:${block.line}`
    await receives(ctx, client, USER_TOPIC, docKey)
    if (block.text.includes("render(")) await docs.until("a render", () => renders.some((d: ReadonlyMap<string, unknown>) => d.has(docKey)))
    await client.close()
    // Persisted in IndexedDB: documents and watermark together.
    const stored = await (store === "" ? indexedDbStore() : indexedDbStore({ name: store })).load(USER_TOPIC)
    expect(stored?.documents.some((d) => d.docKey === docKey)).toBe(true)
    expect(stored!.watermark).toBe(client.watermark(USER_TOPIC))
  }
})

const printed = (block: Block) => {
  // The value a block's `console.log` prints, from its comment: `// <expression>` on the line after
  // the call, or at the end of the line.
  const lines = block.text.split("\n")
  const at = lines.findIndex((l) => l.includes("console.log"))
  const comment = (lines[at + 1]?.startsWith("//") ? lines[at + 1] : /\/\/ (.*)$/.exec(lines[at]!)?.[0])
  if (comment === undefined) throw new Error(`${where(block)}: no comment saying what it prints`)
  return new Function(`return (${comment.replace(/^\/\/\s*/, "")})`)() as unknown
}

const prints: TsHarness = {
  prelude: "const console = __docs.recorder()\n",
  epilogue: "export { console as printed }",
  check: async ({ printed: p }, _ctx, block) => {
    await docs.until("it prints", () => p.lines.length > 0, 30_000)
    expect(p.lines).toEqual([[printed(block)]])
  }
}

// ---------------------------------------------------------------------------------------------
// The in-process control server: sign in (code from the local outbox) and call it.

const api = async (ctx: Context, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(`${ctx.parts.control}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: (await response.json()) as any }
}

const code = (ctx: Context, email: string) =>
  ctx.control.runPromise(Effect.flatMap(LocalIdentity.LocalOutbox, (o) => o.latest(email))).then((m) => m!.code)

let session: Promise<{ status: number; body: any }> | undefined
const signIn = (ctx: Context) =>
  (session ??= (async () => {
    const sent = await api(ctx, "POST", "/api/auth/email", { email: "ada@example.com" })
    return api(ctx, "POST", "/api/auth/verify", { code: await code(ctx, "ada@example.com"), challenge_id: sent.body.challengeId }, { "x-client": "autopilot-ios" })
  })())

const shape = (request: (ctx: Context) => Promise<{ status: number; body: any }>): Harness => ({
  langs: ["json"],
  check: async (block, ctx) => {
    const { status, body } = await request(ctx)
    expectShape(block.text, body, status)
  }
})

// ---------------------------------------------------------------------------------------------
// Shell blocks the docs test runs itself.

/** Commands run elsewhere, each with what runs it and a check that it still does. */
const covered: ReadonlyArray<{ command: RegExp; by: string; check: (m: RegExpMatchArray) => void }> = [
  {
    command: /^npm install$/,
    by: ".ci/run installs with `npm ci` (the lockfile's install) before every other step",
    check: () => expect(read(".ci/run")).toMatch(/^npm ci\b/m)
  },
  {
    command: /^npm start$/,
    by: "test/start.test.ts runs scripts/start.mjs, the root package's start script, through test/support/supervisor.ts",
    check: () => {
      expect(JSON.parse(read("package.json")).scripts.start).toBe("node scripts/start.mjs")
      expect(read("test/support/supervisor.ts")).toContain("[\"scripts/start.mjs\"]")
      expect(read("test/start.test.ts")).toMatch(/sup = start\(ports, dataDir\)\n\s+await up\(sup\)/)
    }
  },
  {
    command: /^npm test$/,
    by: "this test runs in `npm test` (vitest run over the root configuration)",
    check: () => expect(JSON.parse(read("package.json")).scripts.test).toBe("vitest run")
  },
  {
    command: /^TEST_DATABASE_URL=(\S+) npm test$/,
    by: ".ci/run runs `npm test` with this TEST_DATABASE_URL",
    check: (m) => {
      expect(read(".ci/run")).toContain(`export TEST_DATABASE_URL="${m[1]}"`)
      expect(read(".ci/run")).toMatch(/^npm test\b/m)
    }
  }
]

/** A control host started by a documented command, on a free port and a temporary data directory. */
const startControl = async (command: string, ctx: Context) => {
  const port = await ctx.port()
  const host = shBackground(command, { env: { PORT: String(port), DATA_DIR: docs.tmp("control") } })
  for (const deadline = Date.now() + 60_000; !/Listening on http:/.test(host.output()); await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() > deadline || host.child.exitCode !== null) throw new Error(`${command}: not listening\n${host.output()}`)
  }
  return { host, port }
}

const healthy = (text: string) => expectShape(`{"status": "ok", "service": "control", "version": "0.0.0", "checks": {"database": {"ok": true}}}`, JSON.parse(text))

// ---------------------------------------------------------------------------------------------

export const harnesses: Record<string, Harness> = {
  // packages/khala-client/README.md: the quick start, as a page would run it.
  "khala-client/quick-start": { langs: ["ts"], ts: browser("") },
  "client-guide/browser": { langs: ["ts"], ts: browser("khala-sync") },
  // packages/khala-client/README.md: keepNewest bounds an event stream, in memory and in the store.
  "khala-client/keep-newest": {
    langs: ["ts"],
    ts: {
      prelude: CLIENT,
      epilogue: "export { client, store }",
      check: async ({ client, store }, ctx) => {
        const topic = "runtime.codex_worker_events:worker:w_123"
        client.subscribe(topic)
        let last = ""
        for (let i = 0; i < 250; i++) {
          last = `docs:keep-newest:${i}`
          await publish(ctx, topic, last)
        }
        await docs.until("the last event", () => client.documents(topic).has(last))
        expect(client.documents(topic).size).toBeLessThanOrEqual(200)
        expect(client.documents(topic).size).toBeGreaterThanOrEqual(100)
        expect((await store.load(topic)).documents.length).toBe(client.documents(topic).size)
        await client.close()
      }
    }
  },

  "client-guide/react-native": {
    langs: ["ts"],
    ts: {
      prelude: `${CLIENT.replace("tokenProvider", "getSyncToken")}const BUILD_ID = "20261124T000000Z"\nconst db = { name: "app.db" }\n` +
        "const stores: Array<ReturnType<typeof __docs.countingStore>> = []\n" +
        "const mySqliteStore = (_db: { name: string }) => { const s = __docs.countingStore(); stores.push(s); return s }\n",
      epilogue: "export { client, stores }",
      check: async ({ client, stores }, ctx) => {
        await receives(ctx, client, USER_TOPIC, "docs:react-native")
        expect(stores[0].applies).toBeGreaterThan(0)
        await client.close()
      }
    }
  },

  "client-guide/electron": {
    langs: ["ts"],
    ts: {
      prelude: `${CLIENT}const userData = __docs.tmp("electron")\nconst app = { getPath: (_name: "userData") => userData }\n`,
      epilogue: "export { client, userData }",
      check: async ({ client, userData }, ctx) => {
        await receives(ctx, client, USER_TOPIC, "docs:electron")
        await client.close()
        const stored = await fileStore({ directory: join(userData, "khala") }).load(USER_TOPIC)
        expect(stored?.documents.some((d) => d.docKey === "docs:electron")).toBe(true)
      }
    }
  },

  "client-guide/node": {
    langs: ["ts"],
    ts: {
      prelude: `${CLIENT}const console = __docs.recorder()\n`,
      epilogue: "export { client, console as printed }",
      substitute: () => ({ "\".khala\"": JSON.stringify(docs.tmp("node-client")) }),
      check: async ({ client, printed: p }, ctx) => {
        const topic = "runtime.codex_worker_events:worker:w_123"
        await publish(ctx, topic, "docs:node")
        await docs.until("a change printed", () => p.lines.length > 0)
        expect(p.lines[0]).toEqual([topic, 1n])
        await client.close()
      }
    }
  },

  "khala-client/react": {
    langs: ["tsx"],
    ts: {
      epilogue: "export { Runs }",
      check: async ({ Runs }, ctx) => {
        ;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true
        const client = createClient({ url: ctx.parts.khala.url, tokenProvider: () => docs.token(), store: memoryStore() })
        let renderer: TestRenderer.ReactTestRenderer | undefined
        await act(async () => {
          renderer = TestRenderer.create(createElement(Runs as FunctionComponent<{ client: KhalaClient }>, { client }))
        })
        await act(async () => {
          await ctx.parts.khala.publish(USER_TOPIC, [{ docKey: "docs:react", docVersion: version++, payload: { status: "running" } }])
          await docs.until("the run rendered", () => client.documents(USER_TOPIC).has("docs:react"))
        })
        const list = renderer!.root.findByType("ul")
        expect(list.props["data-status"]).toBe("connected")
        expect(list.findAllByType("li").map((li) => li.children.join(""))).toContain("running")
        await act(async () => renderer!.unmount())
        await client.close()
      }
    }
  },

  "khala-client/effect": {
    langs: ["ts"],
    ts: {
      prelude: `${CLIENT}const { render, rendered } = __docs.effectRecorder()\n`,
      epilogue: "export { fiber, rendered }",
      check: async ({ fiber, rendered }, ctx) => {
        await publish(ctx, USER_TOPIC, "docs:effect")
        await docs.until("documents streamed", () => rendered.some((d: ReadonlyMap<string, unknown>) => d.has("docs:effect")))
        await Effect.runPromise(Fiber.interrupt(fiber))
      }
    }
  },

  "khala-core/journal": { langs: ["ts"], ts: prints },
  "lightning/readme": { langs: ["ts"], ts: prints },
  "proto/readme": { langs: ["ts"], ts: prints },

  "khala-core/server": {
    langs: ["ts"],
    ts: {
      before: () => void (process.env["SYNC_KEY"] = "a-sync-key-of-the-docs-test-0123456789"),
      substitute: async (ctx) => ({ "4810": String(await ctx.port()) }),
      epilogue: "export { running }",
      check: async ({ running }, _ctx, _block, written) => {
        const port = /port: (\d+)/.exec(written)![1]
        const now = Math.floor(Date.now() / 1000)
        const token = await Effect.runPromise(SyncToken.signHmac({
          iss: "https://control.example", aud: "openagents-sync", sub: "user:42", iat: now, exp: now + 60, jti: "docs", oa_user_id: "42",
          oa_org_id: "user:42", oa_sync_scopes: ["runtime.run_summaries"], oa_claims_version: "oa_sync_claims_v1", oa_session_id: "s", oa_device_id: "d"
        }, { kid: "k1", secret: Redacted.make(process.env["SYNC_KEY"]!) }))
        let client: TestClient | undefined
        for (const deadline = Date.now() + 10_000; client === undefined; await new Promise((r) => setTimeout(r, 50))) {
          client = await TestClient.connect(`ws://127.0.0.1:${port}/sync/v1/ws`).catch((e) => {
            if (Date.now() > deadline) throw e
            return undefined
          })
        }
        await client.hello(token)
        expect((await client.subscribe([USER_TOPIC])).kind).toBe(FrameKind.SUBSCRIBED)
        await client.close()
        await Effect.runPromise(Fiber.interrupt(running))
      }
    }
  },

  "sql-pglite/readme": {
    langs: ["ts"],
    ts: {
      prelude: "const console = __docs.recorder()\n",
      epilogue: "export { console as printed }",
      substitute: () => ({ "\".data/notes\"": JSON.stringify(join(docs.tmp("pglite"), "notes")) }),
      check: async ({ printed: p }, _ctx, block) => {
        await docs.until("it prints", () => p.lines.length > 0, 30_000)
        // `return row!.id // "1": int8 comes back as a string`
        expect(p.lines).toEqual([[JSON.parse(/\/\/ ("\d+"):/.exec(block.text)![1]!)]])
      }
    }
  },

  "sql-pglite/testing": { langs: ["ts"], ts: { check: async () => {} } },

  "control-core/readme": {
    langs: ["ts"],
    ts: {
      epilogue: "export { tokenName, topics }",
      check: async ({ tokenName, topics }, _ctx, block) => {
        // tokenName: "mobile:autopilot-ios"; topics: ["runtime.run_summaries:user:usr_…"]
        const said = /\/\/ tokenName: (".*?"); topics: (\[.*\])/.exec(block.text)!
        expectShape(said[1]!, tokenName)
        expectShape(said[2]!, topics)
      }
    }
  },

  "host-kit/routes": {
    langs: ["ts"],
    ts: {
      epilogue: "export { Routes }",
      check: async ({ Routes }) => {
        const server = ManagedRuntime.make(
          HttpLayerRouter.serve(Routes as Layer.Layer<never>, { disableLogger: true }).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
        )
        try {
          const { port } = (await server.runPromise(Effect.map(HttpServer.HttpServer, (s) => s.address))) as { port: number }
          const health = await fetch(`http://127.0.0.1:${port}/healthz`)
          // docs/OPERATIONS.md: 200 {"status":"ok","service","version","checks"}
          expectShape(`{"status": "ok", "service": "runtime", "version": "0.0.0", "checks"}`, await health.json(), health.status)
          const metrics = await fetch(`http://127.0.0.1:${port}/metrics`)
          expect([metrics.status, metrics.headers.get("content-type")]).toEqual([200, "text/plain; version=0.0.4; charset=utf-8"])
        } finally {
          await server.dispose()
        }
      }
    }
  },

  "control/lightning-ops-rpc": {
    langs: ["ts"],
    ts: {
      before: (ctx) => void (process.env["OA_LIGHTNING_OPS_SECRET"] = ctx.opsSecret),
      substitute: (ctx) => ({ "http://127.0.0.1:4200": ctx.parts.control }),
      prelude: "const settlementId = \"set_docs_1\", paywallId = \"pw_docs\", ownerId = \"owner_docs\", invoiceId = \"inv_docs_1\", amountMsats = 2000\nconst preimageHex = \"ab\".repeat(32)\n",
      epilogue: "export { program }",
      check: async ({ program }) => {
        await Effect.runPromise(program)
        // Idempotent by settlement id: the same call again changes nothing and succeeds.
        await Effect.runPromise(program)
      }
    }
  },

  "control/internal-signature": {
    langs: ["ts"],
    ts: {
      before: () => {
        process.env["OA_RUNTIME_SIGNING_KEY"] = "the-current-internal-key-0123456789abcdef"
        process.env["OA_RUNTIME_PREVIOUS_SIGNING_KEY"] = "the-previous-internal-key-0123456789abcdef"
      },
      epilogue: "export { program }",
      check: async ({ program }) => {
        const claims = await Effect.runPromise(program)
        expect(claims).toMatchObject({ method: "POST", path: "/internal/v1/codex/workers", user_id: "usr_42" })
      }
    }
  },

  // docs/control/API.md: every documented answer against the control server's.
  "control-api/error": shape((ctx) => api(ctx, "POST", "/api/auth/email", {})),
  "control-api/email": shape((ctx) => api(ctx, "POST", "/api/auth/email", { email: "ada@example.com" })),
  "control-api/verify": shape(signIn),
  "control-api/refresh": shape(async (ctx) => api(ctx, "POST", "/api/auth/refresh", { refresh_token: (await signIn(ctx)).body.refreshToken })),
  "control-api/sync-token": shape(async (ctx) => api(ctx, "POST", "/api/sync/token", {}, { authorization: `Bearer ${(await signIn(ctx)).body.token}` })),
  "control-api/paywall": shape(async (ctx) => {
    const auth = { authorization: `Bearer ${(await signIn(ctx)).body.token}` }
    const created = await api(ctx, "POST", "/api/l402/paywalls", {
      name: "premium signal", hostRegexp: "l402.example.com", pathRegexp: "/premium", priceMsats: 70000, upstream: "https://upstream.example.com",
      metadata: { timeoutMs: 5000, priority: 3, allowedHosts: ["l402.example.com"] }
    }, auth)
    expect(created.status).toBe(201)
    const read = await api(ctx, "GET", `/api/l402/paywalls/${created.body.data.id}`, undefined, auth)
    return { status: read.status, body: read.body.data }
  }),

  // README.md, docs/GETTING_STARTED.md, examples/web-dashboard: commands other tests and CI run.
  "commands": {
    langs: ["sh"],
    check: async (block) => {
      for (const command of commandsOf(block)) {
        for (const part of command.text.split(/\s*&&\s*/)) {
          const entry = covered.map((c) => [c, c.command.exec(part)] as const).find(([, m]) => m !== null)
          expect(entry, `${block.file}:${command.line}: no test or CI step runs \`${part}\``).toBeDefined()
          entry![0].check(entry![1]!)
        }
      }
    }
  },

  // bench/: the commands resolve to suites that exist; the report is printed for real. The
  // measuring runs take minutes on a quiet machine and rewrite bench/results/, so they are not run
  // here (`npm run bench` is not part of CI); their entries are typechecked (bench/src is in
  // tsconfig.json) or syntax-checked.
  "bench": {
    langs: ["sh"],
    check: async (block) => {
      const manifest = JSON.parse(read("bench/package.json")) as { scripts: Record<string, string> }
      const runner = read("bench/src/run.mjs")
      const suites = [...runner.matchAll(/\{ name: "([a-z-]+)", file: "([^"]+)" \}/g)].map((m) => ({ name: m[1]!, file: m[2]! }))
      for (const command of commandsOf(block)) {
        const at = `${block.file}:${command.line}`
        const script = /^npm run (\S+) --workspace bench$/.exec(command.text)
        const entry = /^(?:BENCH_QUICK=1 )?node (?:--conditions=@openagents\/source --import tsx )?(bench\/src\/\S+)$/.exec(command.text)
        if (script !== null) {
          const run = /^node src\/run\.mjs(?: (\S+))?$/.exec(manifest.scripts[script[1]!] ?? "")
          expect(run, `${at}: bench has no script ${script[1]}`).not.toBeNull()
          const chosen = suites.filter((s) => run![1] === undefined || s.name.startsWith(run![1]))
          expect(chosen.length, at).toBeGreaterThan(0)
          for (const s of chosen) expect(existsSync(join(root, "bench/src", s.file)), `${at}: ${s.file}`).toBe(true)
        } else if (entry !== null && entry[1] === "bench/src/fanout/report.mjs") {
          const ran = await sh(command.text, { timeoutMs: 30_000 })
          expect([ran.code, ran.stderr]).toEqual([0, ""])
          expect(ran.stdout).toMatch(/^\|.*\|$/m)
        } else if (entry !== null) {
          expect(existsSync(join(root, entry[1]!)), at).toBe(true)
          if (entry[1]!.endsWith(".mjs")) expect((await sh(`node --check ${entry[1]}`)).code, at).toBe(0)
          else expect(JSON.parse(read("tsconfig.json")).include, `${at}: typechecked`).toContain("bench/src")
          if (command.text.startsWith("BENCH_QUICK=1")) expect(read(entry[1]!), at).toContain("process.env[\"BENCH_QUICK\"] === \"1\"")
        } else throw new Error(`${at}: not a benchmark command: ${command.text}`)
      }
    }
  },

  // docs/control/CONFIGURATION.md and hosts/control/README.md: start the host as written.
  "control-host": {
    langs: ["sh"],
    check: async (block, ctx) => {
      const [start, ...rest] = commandsOf(block)
      expect(start!.text).toMatch(/^OA_CONTROL_MODE=development .*npm start --workspace hosts\/control$/)
      const { host, port } = await startControl(start!.text, ctx)
      try {
        // Development mode: the local provider, whose codes go to the log ("# sign-in codes … are printed in the log").
        await docs.until("the development warnings", () => /identity: the LOCAL provider is in use; sign-in codes are printed to this log/.test(host.output()))
        if (block.text.includes("OA_SYNC_TOKEN_SIGNING_KEY")) {
          // CONFIGURATION.md's setup also turns on sync tokens and the lightning-ops API.
          // The warnings come in one go: the runtime's, then the lightning-ops and sync-token ones when unset.
          await docs.until("the runtime warning", () => /runtime: OA_RUNTIME_BASE_URL is unset/.test(host.output()))
          await new Promise((r) => setTimeout(r, 300))
          expect(host.output()).not.toMatch(/OA_SYNC_TOKEN_SIGNING_KEY is unset|OA_LIGHTNING_OPS_SECRET is unset/)
        }
        for (const command of rest) {
          const ran = await sh(fill(command.text, {}, { 4200: port }))
          expect(ran.code).toBe(0)
          healthy(ran.stdout)
        }
      } finally {
        expect(await host.stop()).toBe(0)
      }
    }
  },

  // docs/control/CONFIGURATION.md: the key it prints is a valid OA_AUTH_SIGNING_KEYS.
  "control-signing-key": {
    langs: ["sh"],
    check: async (block) => {
      const [command] = commandsOf(block)
      const ran = await sh(command!.text)
      expect([ran.code, ran.stderr]).toEqual([0, ""])
      const keys = JSON.parse(ran.stdout)
      expectShape(`[{"kty": "EC", "crv": "P-256", "x": "…", "y": "…", "d": "…", "kid": "control-…"}]`, keys)
      const config = await Effect.runPromise(ControlHost.loadConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
        ["OA_CONTROL_MODE", "development"],
        ["OA_AUTH_SIGNING_KEYS", ran.stdout.trim()]
      ])))))
      expect(config.signingKeys?.map((k) => k.kid)).toEqual([keys[0].kid])
    }
  }
}

