// Every fenced code block of the docs is exercised or checked (docs/**/*.md, the READMEs, bench/,
// examples/, hosts/, packages/, proto/ — every tracked Markdown file but changelogs):
// - `<!-- run: <harness> -->`: run here (test/docs/harnesses.ts). TypeScript blocks are written
//   verbatim to test/docs/.generated/ between their harness's prelude and epilogue, typechecked,
//   imported (run) against real parts — a Khala test server, a control server, a page origin —
//   and checked; JSON blocks are compared with the real answer; shell blocks are run.
// - `<!-- tested-by: <test file>#<id> -->`: a shell block that test runs, command by command
//   (`shellBlock("<id>")` from test/support/docs.ts fails the test unless every command ran).
// - `<!-- snippet: <path>#<region> -->`: the block is the `// #region` of a file tests run.
// - `<!-- excerpt: <path>[@commit] -->`: the block appears in that file (`…` elides).
// - `text`, `mermaid` and `http` blocks are not code; an untagged fence fails.
// Every environment variable set in a shell block must be in docs/OPERATIONS.md.
import { TopicAuthorizer } from "@openagents/khala-core"
import { TestServer } from "@openagents/khala-core/testing"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { ControlHost, ControlServer, MemoryStorage, SyncTokens } from "@openagents/control-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { join } from "node:path"
import { IDBFactory } from "fake-indexeddb"
import ts from "typescript"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import {
  allBlocks,
  appearsIn,
  type Block,
  commandsOf,
  dedent,
  envNames,
  expectShape,
  read,
  region,
  root,
  source,
  where
} from "./support/docs.js"
import { freePort } from "./support/supervisor.js"
import { type Context, harnesses, type TsHarness } from "./docs/harnesses.js"
import * as docs from "./docs/runtime.js"

const NOT_CODE = new Set(["text", "mermaid", "http"])
const MERMAID = /^(flowchart|graph|sequenceDiagram|stateDiagram(-v2)?|classDiagram|erDiagram)\b/
const GENERATED = join(root, "test/docs/.generated")

const blocks = allBlocks()
const operations = read("docs/OPERATIONS.md")
/** The root vitest configuration's `include` globs, as regular expressions. */
const vitestInclude = [...read("vitest.config.ts").matchAll(/"([^"]+\.test\.ts)"/g)].map((m) =>
  new RegExp(`^${m[1]!.replace(/\./g, "\\.").replace(/\*\*\//g, "§").replace(/\*/g, "[^/]+").replace(/§/g, "(.+/)?")}$`)
)

/** What is wrong with a block's accounting (empty: it is exercised or checked). */
const problems = (b: Block): Array<string> => {
  const at = where(b)
  if (b.badMarker !== undefined) return [`${at}: unreadable marker ${b.badMarker}`]
  if (b.lang === "") return [`${at}: untagged fence — say what it is (ts, sh, json, sql, …; text or mermaid when it is not code)`]
  const out: Array<string> = []
  if (b.lang === "sh") {
    for (const c of commandsOf(b)) {
      for (const name of envNames(c.text)) if (!operations.includes(`\`${name}\``)) out.push(`${b.file}:${c.line}: ${name} is not in docs/OPERATIONS.md`)
    }
  }
  if (b.lang === "mermaid" && !MERMAID.test(b.text.trim())) out.push(`${at}: not a mermaid diagram`)
  const marker = b.marker
  if (marker === undefined) {
    if (!NOT_CODE.has(b.lang)) out.push(`${at}: nothing runs or checks this ${b.lang} block — mark it (run:, tested-by:, snippet:, excerpt:), or tag it text if it is not code`)
    return out
  }
  switch (marker.kind) {
    case "run": {
      const h = harnesses[marker.arg]
      if (h === undefined) out.push(`${at}: no harness "${marker.arg}" in test/docs/harnesses.ts`)
      else if (!h.langs.includes(b.lang)) out.push(`${at}: harness "${marker.arg}" takes ${h.langs.join("/")}, not ${b.lang}`)
      break
    }
    case "tested-by": {
      const [file, id] = marker.arg.split("#")
      if (id === undefined || !existsSync(join(root, file!))) out.push(`${at}: tested-by ${marker.arg}: no such test file`)
      else if (!vitestInclude.some((re) => re.test(file!))) out.push(`${at}: ${file} is not run by npm test`)
      else if (!read(file!).includes(`shellBlock("${id}")`)) out.push(`${at}: ${file} does not run shellBlock("${id}")`)
      else if (b.lang !== "sh") out.push(`${at}: tested-by is for shell blocks`)
      break
    }
    case "snippet": {
      const [file, name] = marker.arg.split("#")
      try {
        if (dedent(b.text) !== region(read(file!), name!)) out.push(`${at}: differs from ${marker.arg}`)
      } catch (e) {
        out.push(`${at}: ${marker.arg}: ${(e as Error).message}`)
      }
      break
    }
    case "excerpt": {
      try {
        if (!appearsIn(b.text, source(marker.arg))) out.push(`${at}: does not appear in ${marker.arg}`)
      } catch (e) {
        out.push(`${at}: ${marker.arg}: ${(e as Error).message}`)
      }
      break
    }
  }
  return out
}

const runBlocks = blocks.filter((b) => b.marker?.kind === "run" && harnesses[b.marker.arg] !== undefined)
const tsBlocks = runBlocks.filter((b) => harnesses[b.marker!.arg]!.ts !== undefined)
const slug = (b: Block) => `${b.file.replace(/\.md$/, "").replace(/[^A-Za-z0-9]+/g, "_")}_${b.line}`

describe("docs code blocks", () => {
  it("every fenced block is run, tested, a checked snippet or excerpt, or tagged as not code", () => {
    expect(blocks.length).toBeGreaterThan(50)
    expect(["test/start.test.ts", "hosts/runtime/test/Host.test.ts", "packages/khala-core/test/a/b.test.ts"].map((f) => vitestInclude.some((re) => re.test(f)))).toEqual([true, true, true])
    expect(vitestInclude.some((re) => re.test("test/docs/harnesses.ts"))).toBe(false)
    expect(blocks.flatMap(problems)).toEqual([])
    const used = new Set(runBlocks.map((b) => b.marker!.arg))
    expect(Object.keys(harnesses).filter((h) => !used.has(h)), "harnesses no block uses").toEqual([])
  })

  describe("run", () => {
    let ctx: Context
    const cleanup: Array<() => Promise<unknown> | unknown> = []
    const generated = new Map<Block, { file: string; firstLine: number; text: string }>()
    const savedWebSocket = (globalThis as { WebSocket?: unknown }).WebSocket
    const savedEnv = { ...process.env }

    beforeAll(async () => {
      // A browser's globals for the browser blocks (Node 20 has neither).
      ;(globalThis as { indexedDB?: unknown }).indexedDB = new IDBFactory()
      ;(globalThis as { WebSocket?: unknown }).WebSocket = WebSocket

      const khala = await TestServer.start({
        authorizer: TopicAuthorizer.layerWithOwners((_partition, id) => Effect.succeed(id === "w_123" ? docs.USER : undefined))
      })
      cleanup.push(() => khala.dispose())

      // The page the browser blocks run in: its origin answers POST /api/sync/token as control would.
      const page: Server = createServer(async (req, res) => {
        if (req.method === "POST" && req.url === "/api/sync/token") {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: { token: await docs.token() } }))
        } else res.writeHead(404).end()
      })
      await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve))
      cleanup.push(() => new Promise((resolve) => page.close(resolve)))

      // Control, in memory, as the docs' examples configure it.
      const opsSecret = "the-lightning-ops-secret-of-the-docs-test"
      const config = ControlHost.developmentConfig({
        opsSecret: Redacted.make(opsSecret),
        sync: SyncTokens.defaultSettings("https://control.example", { alg: "HS256", kid: "sync-auth-v1", secret: Redacted.make("a-sync-signing-key-of-the-docs-test-0123") })
      })
      const services = ControlHost.services(config, MemoryStorage.layer)
      const control = ManagedRuntime.make(
        ControlServer.layer({ disableLogger: true }).pipe(
          Layer.provideMerge(services),
          Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
        )
      )
      cleanup.push(() => control.dispose())
      const address = (await control.runPromise(Effect.map(HttpServer.HttpServer, (s) => s.address))) as { port: number }

      const parts: docs.Parts = {
        khala,
        origin: `http://127.0.0.1:${(page.address() as { port: number }).port}`,
        control: `http://127.0.0.1:${address.port}`
      }
      docs.setParts(parts)
      ctx = { parts, control: control as any, opsSecret, port: freePort }

      // Write every TypeScript block to its module.
      rmSync(GENERATED, { recursive: true, force: true })
      mkdirSync(GENERATED, { recursive: true })
      for (const b of tsBlocks) {
        const h = harnesses[b.marker!.arg]!.ts!
        let text = b.text
        for (const [from, to] of Object.entries((await h.substitute?.(ctx)) ?? {})) {
          if (!text.includes(from)) throw new Error(`${where(b)}: harness ${b.marker!.arg} substitutes ${from}, which is not in the block`)
          text = text.split(from).join(to)
        }
        const head = [
          `// Generated by test/DocsCodeBlocks.test.ts from ${where(b)}, with harness ${b.marker!.arg}: the block is between BEGIN and END.`,
          ...(b.lang === "tsx" ? ["/** @jsxRuntime automatic @jsxImportSource react */"] : []),
          "import * as __docs from \"../runtime.js\"",
          ...(h.prelude ?? "").trimEnd().split("\n").filter((l) => l !== ""),
          `// BEGIN ${where(b)}`
        ]
        const file = join(GENERATED, `${slug(b)}.${b.lang === "tsx" ? "tsx" : "ts"}`)
        writeFileSync(file, `${[...head, text, "// END", h.epilogue ?? "", ""].join("\n")}`)
        generated.set(b, { file, firstLine: head.length + 1, text })
      }
    }, 60_000)

    afterAll(async () => {
      for (const f of cleanup.reverse()) await f()
      docs.setParts(undefined)
      ;(globalThis as { WebSocket?: unknown }).WebSocket = savedWebSocket
      delete (globalThis as { indexedDB?: unknown }).indexedDB
      for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key]
    })

    it("TypeScript blocks typecheck (strict, as the packages are)", () => {
      expect(tsBlocks.length).toBeGreaterThan(10)
      const config = ts.parseJsonConfigFileContent(ts.readConfigFile(join(root, "tsconfig.base.json"), ts.sys.readFile).config, ts.sys, root)
      const files = [...generated.values()].map((g) => g.file)
      // Examples may leave a name unused; everything else is as strict as the packages.
      const program = ts.createProgram(files, { ...config.options, noUnusedLocals: false, noUnusedParameters: false, jsx: ts.JsxEmit.ReactJSX, noEmit: true })
      const errors = [...generated].flatMap(([b, g]) => {
        const sf = program.getSourceFile(g.file)!
        return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map((d) => {
          const line = sf.getLineAndCharacterOfPosition(d.start ?? 0).line + 1
          const at = line >= g.firstLine && line < g.firstLine + b.text.split("\n").length ? `${b.file}:${b.line + 1 + line - g.firstLine}` : `${g.file.slice(root.length)}:${line} (harness ${b.marker!.arg})`
          return `${at}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
        })
      })
      expect(errors).toEqual([])
    }, 60_000)

    it.each(runBlocks.map((b) => [where(b), b] as const))("%s", async (_, b) => {
      const h = harnesses[b.marker!.arg]!
      if (h.ts !== undefined) {
        const g = generated.get(b)!
        h.ts.before?.(ctx)
        const module = await import(/* @vite-ignore */ g.file)
        await (h.ts as TsHarness).check(module, ctx, b, g.text)
      } else await h.check!(b, ctx)
    }, 60_000)
  })
})

describe("the docs test's own matchers", () => {
  it("documented shapes: elisions, optional and bare keys, patterns; undocumented and missing fields fail", () => {
    const documented = `200 {"ok": true, "id": "ch_…", "token": "<jwt>", "user": {"name"}, "tags": ["a", …], "gone"?: 1}`
    expectShape(documented, { ok: true, id: "ch_1", token: "x", user: { name: null }, tags: ["b", "a"] }, 200)
    expect(() => expectShape(documented, { ok: true, id: "ch_1", token: "x", user: { name: 1 }, tags: ["a"], extra: 1 })).toThrow(/\$\.extra: not documented/)
    expect(() => expectShape(documented, { ok: true, id: "x_1", token: "x", user: {}, tags: ["a"] })).toThrow(/\$\.id: documented "ch_…"[^]*\$\.user\.name: documented, missing/)
    expect(() => expectShape(documented, { ok: true, id: "ch_1", token: "x", user: { name: 1 }, tags: ["a"] }, 201)).toThrow(/status: documented 200, got 201/)
  })

  it("excerpts: `…` skips, interpolations stand for values, casts and comments do not count; anything else must be there", () => {
    const file = "sql`SELECT a, b::int8 AS b FROM t WHERE x = ${x} AND y <= ${bound(x, n)}::bigint ORDER BY a LIMIT ${n}`"
    expect(appearsIn("SELECT a, … FROM t WHERE x = $1 AND y <= $x + $n -- bounded\nORDER BY a LIMIT $n", file)).toBe(true)
    expect(appearsIn("SELECT a, b AS b FROM t", file)).toBe(true)
    expect(appearsIn("SELECT a FROM t", file)).toBe(false)
    expect(appearsIn("WHERE x = $1 ORDER BY a", file)).toBe(false)
    // An interpolation does not swallow a statement's structure.
    expect(appearsIn("y <= 1 ORDER BY a LIMIT 2 UNION SELECT 1", file)).toBe(false)
    // A comment's apostrophe is not a quote: it does not hide the code after it.
    const commented = "// the client's cursor\nconst q = sql`SELECT 'a' FROM t WHERE k = ${k}`\n/* the server's */ sql`SELECT 'b''s' FROM u`"
    expect(appearsIn("SELECT 'a' FROM t WHERE k = $1", commented)).toBe(true)
    expect(appearsIn("SELECT 'b''s' FROM u", commented)).toBe(true)
    expect(appearsIn("SELECT 'b' FROM t", commented)).toBe(false)
    // Nor is a `//` or `/*` inside a string.
    const strings = `fetch("http://x/a", { method: "GET" }); glob("packages/*/src"); run(1) /* done */`
    expect(appearsIn(`fetch("http://x/a", { method: "GET" })`, strings)).toBe(true)
    expect(appearsIn(`fetch("http://x/a", { method: "DELETE" })`, strings)).toBe(false)
    expect(appearsIn(`glob("packages/*/src"); run(1)`, strings)).toBe(true)
    expect(appearsIn(`glob("packages/*/src"); run(2)`, strings)).toBe(false)
  })

  it("snippets compare regions modulo indentation", () => {
    expect(region("x\n  // #region r\n    a()\n      b()\n  // #endregion\n", "r")).toBe("a()\n  b()")
    expect(() => region("// #region r\n", "r")).toThrow(/not closed/)
  })
})
