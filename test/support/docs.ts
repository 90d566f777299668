// Test support for the docs' code blocks (test/DocsCodeBlocks.test.ts checks that every block is
// accounted for): the fenced blocks of every tracked Markdown file with the HTML-comment marker
// above each, the commands of a shell block, running them for real, and comparing a documented
// response shape with a real response.
//
// Markers (an HTML comment on the line above the fence):
//   <!-- run: <harness> -->                the docs test runs the block (test/docs/harnesses.ts)
//   <!-- snippet: <path>#<region> -->      the block is the `// #region <region>` of <path>
//   <!-- excerpt: <path> -->               the block appears in <path> (`…` elides)
//   <!-- tested-by: <test file>#<id> -->   <test file> runs the block through `shellBlock("<id>")`
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"

export const root = new URL("../..", import.meta.url).pathname

export interface Marker {
  readonly kind: "run" | "snippet" | "excerpt" | "tested-by"
  readonly arg: string
}

export interface Block {
  readonly file: string
  /** 1-based line of the opening fence. */
  readonly line: number
  readonly lang: string
  readonly text: string
  readonly marker: Marker | undefined
  /** A marker-looking comment above the fence that does not parse (reported by the docs test). */
  readonly badMarker: string | undefined
}

export const where = (b: Block) => `${b.file}:${b.line}`

/** Every tracked Markdown file but changelogs and changesets. */
export const markdownFiles = (): Array<string> =>
  execFileSync("git", ["ls-files", "-z", "--", "*.md"], { cwd: root, encoding: "utf8" })
    .split("\0")
    .filter((f) => f !== "" && !f.startsWith(".changeset/") && !/(^|\/)CHANGELOG\.md$/.test(f))

const MARKER = /^<!--\s*(run|snippet|excerpt|tested-by):\s*(\S+)\s*-->$/

/** The fenced code blocks of a Markdown text (``` or ~~~ fences, indented ones in lists too). */
export const parseBlocks = (file: string, source: string): Array<Block> => {
  const lines = source.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^( *)(`{3,}|~{3,})\s*([^`\s]*)(.*)$/.exec(lines[i]!)
    if (open === null) continue
    const [, indent, fence, lang] = open
    const body: Array<string> = []
    let j = i + 1
    const close = new RegExp(`^ *${fence![0] === "`" ? "`" : "~"}{${fence!.length},}\\s*$`)
    for (; j < lines.length && !close.test(lines[j]!); j++) body.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!.trimStart())
    if (j === lines.length) throw new Error(`${file}:${i + 1}: unclosed code fence`)
    let above = i - 1
    while (above >= 0 && lines[above]!.trim() === "") above--
    const comment = above >= 0 ? lines[above]!.trim() : ""
    const m = MARKER.exec(comment)
    blocks.push({
      file,
      line: i + 1,
      lang: lang!,
      text: body.join("\n"),
      marker: m === null ? undefined : { kind: m[1] as Marker["kind"], arg: m[2]! },
      badMarker: m === null && /^<!--\s*(run|snippet|excerpt|tested-by)\b/.test(comment) ? comment : undefined
    })
    i = j
  }
  return blocks
}

export const read = (path: string) => readFileSync(join(root, path), "utf8")

export const allBlocks = (): Array<Block> => markdownFiles().flatMap((f) => parseBlocks(f, read(f)))

// ---------------------------------------------------------------------------------------------
// Shell blocks

export interface Command {
  /** 1-based line in the Markdown file. */
  readonly line: number
  /** The command, continuation lines joined, without its trailing comment. */
  readonly text: string
  /** The comment lines after it (`# …`), without the `# ` — documented output, mostly. */
  readonly output: ReadonlyArray<string>
  /** Runs in the background (`… &`). */
  readonly background: boolean
}

/** Strip a trailing ` # comment` that is outside quotes. */
const stripComment = (line: string) => {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
    } else if (c === "'" || c === "\"") quote = c
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i).trimEnd()
  }
  return line.trimEnd()
}

export const commandsOf = (block: Block): Array<Command> => {
  const commands: Array<{ line: number; text: string; output: Array<string>; background: boolean }> = []
  const lines = block.text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim()
    if (raw === "") continue
    if (raw.startsWith("#")) {
      commands.at(-1)?.output.push(raw.replace(/^#\s?/, ""))
      continue
    }
    const line = block.line + 1 + i
    let text = stripComment(raw)
    while (text.endsWith("\\") && i + 1 < lines.length) text = `${text.slice(0, -1).trimEnd()} ${stripComment(lines[++i]!.trim())}`
    const background = /\s&$/.test(text)
    commands.push({ line, text: background ? text.replace(/\s*&$/, "") : text, output: [], background })
  }
  return commands
}

/** The `NAME=value` assignments in front of a command (and of each part of `a && b`). */
export const envNames = (command: string): Array<string> =>
  command.split(/&&|\|\|?|;/).flatMap((part) => {
    const names: Array<string> = []
    const re = /^\s*([A-Z_][A-Z0-9_]*)=("[^"]*"|'[^']*'|\$\([^)]*\)|\S*)/
    let rest = part
    for (let m = re.exec(rest); m !== null; m = re.exec(rest)) {
      names.push(m[1]!)
      rest = rest.slice(m[0].length)
    }
    return names
  })

/** Replace documented defaults with the test's values: `<placeholder>`s, and `host:port`s. */
export const fill = (text: string, values: Record<string, string> = {}, ports: Record<number, number> = {}) => {
  let out = text
  for (const [from, to] of Object.entries(ports)) out = out.replace(new RegExp(`(127\\.0\\.0\\.1|localhost):${from}\\b`, "g"), `$1:${to}`)
  for (const [name, value] of Object.entries(values)) out = out.split(name).join(value)
  const left = /<[a-zA-Z][a-zA-Z ]*>/.exec(out)
  if (left !== null) throw new Error(`no value for ${left[0]} in: ${text}`)
  return out
}

export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** The environment a documented command runs in: the test's PATH and HOME, nothing else. */
export const baseEnv = (): Record<string, string> => ({ PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", NO_COLOR: "1" })

/** Run a command line with bash, to completion. */
export const sh = (command: string, options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}) =>
  new Promise<Ran>((resolve, reject) => {
    const child = spawn("bash", ["-c", command], { cwd: options.cwd ?? root, env: { ...baseEnv(), ...options.env }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += String(d)))
    child.stderr.on("data", (d) => (stderr += String(d)))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`timed out after ${options.timeoutMs} ms: ${command}\n${stdout}\n${stderr}`))
    }, options.timeoutMs ?? 120_000)
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

export interface Background {
  readonly child: ChildProcess
  /** stdout and stderr, interleaved as they came. */
  readonly output: () => string
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<number | null>
  /**
   * Send `signal` to the program the command line runs (the first `node` process under bash and
   * npm: npm does not wait for its script after a signal, so the program's own exit code is only
   * seen this way), then SIGKILL the whole process group after `graceMs`. Resolves with the exit
   * code of the command line.
   */
  readonly stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<number | null>
}

const children = (pid: number): Array<{ pid: number; comm: string }> => {
  try {
    return execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(pid)], { encoding: "utf8" })
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter((p) => p[0] !== undefined && p[0] !== "")
      .map(([p, comm]) => ({ pid: Number(p), comm: comm ?? "" }))
  } catch {
    return []
  }
}

/** The first `node` process at or under `pid` (breadth first): the program a command line runs. */
const program = (pid: number): number | undefined => {
  try {
    if (execFileSync("ps", ["-o", "comm=", "-p", String(pid)], { encoding: "utf8" }).trim() === "node") return pid
  } catch {
    return undefined
  }
  const queue = [pid]
  while (queue.length > 0) {
    const next = queue.shift()!
    for (const c of children(next)) {
      if (c.comm === "node") return c.pid
      queue.push(c.pid)
    }
  }
  return undefined
}

/** Start a command line with bash in its own process group, for commands that keep running. */
export const shBackground = (command: string, options: { cwd?: string; env?: Record<string, string> } = {}): Background => {
  const child = spawn("bash", ["-c", command], {
    cwd: options.cwd ?? root,
    env: { ...baseEnv(), ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true
  })
  let out = ""
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d) => {
    out += String(d)
    stdout += String(d)
  })
  child.stderr!.on("data", (d) => {
    out += String(d)
    stderr += String(d)
  })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const group = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s)
    } catch {
      // already gone
    }
  }
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return exited
    const target = program(child.pid!)
    if (target === undefined) group(signal)
    else process.kill(target, signal)
    const timer = setTimeout(() => group("SIGKILL"), graceMs)
    const code = await exited
    clearTimeout(timer)
    // Anything the program left behind (it should leave nothing).
    group("SIGKILL")
    return code
  }
  return { child, output: () => out, stdout: () => stdout, stderr: () => stderr, exited, stop }
}

/** Run a documented command (after `fill`) that answers JSON, as curl -s does; fails on a non-zero exit. */
export const shJson = async (command: string, options: { env?: Record<string, string> } = {}) => {
  const ran = await sh(command, { ...options, timeoutMs: 60_000 })
  if (ran.code !== 0) throw new Error(`exit ${ran.code}: ${command}\n${ran.stderr}`)
  try {
    return JSON.parse(ran.stdout) as any
  } catch {
    throw new Error(`not JSON: ${ran.stdout}\n(${command})`)
  }
}

/** What a command run through `npm start`/`npm run` printed, without npm's `> package script` banner. */
export const withoutNpmBanner = (stdout: string) => stdout.replace(/^\n?> [^\n]*\n> [^\n]*\n\n/, "")

/** A documented output line without a trailing note: `{"ok":true}   (answers once …)` → `{"ok":true}`. */
export const documented = (line: string) => line.replace(/\s{2,}\([^)]*\)$/, "").trim()

/**
 * A shell block a test runs command by command (`<!-- tested-by: <this test file>#<id> -->` above
 * it). `ran()` at the end fails unless every command was run.
 */
export interface ShellBlock {
  readonly block: Block
  readonly commands: ReadonlyArray<Command>
  /** Take command `index` (marks it as run); the caller runs it. */
  readonly take: (index: number) => Command
  readonly ran: () => void
}

export const shellBlock = (id: string): ShellBlock => {
  const matches = allBlocks().filter((b) => b.marker?.kind === "tested-by" && b.marker.arg.endsWith(`#${id}`))
  if (matches.length !== 1) throw new Error(`expected one block marked tested-by …#${id}, found ${matches.length}`)
  const block = matches[0]!
  const commands = commandsOf(block)
  const taken = new Set<number>()
  return {
    block,
    commands,
    take: (index) => {
      const command = commands[index]
      if (command === undefined) throw new Error(`${where(block)} has no command ${index}`)
      taken.add(index)
      return command
    },
    ran: () => {
      const missed = commands.filter((_, i) => !taken.has(i)).map((c) => `${block.file}:${c.line}: ${c.text}`)
      if (missed.length > 0) throw new Error(`commands of ${where(block)} not run:\n${missed.join("\n")}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Documented shapes: JSON as the docs write it, with elisions. `…`/`...` as a value is anything,
// as an array element or object member "and more"; `"key"?:` is optional; a bare `"key"` must be
// present with any value; a string containing `…` is a pattern, and `"<…>"` any string.

export type Shape =
  | { readonly _tag: "any" }
  | { readonly _tag: "string"; readonly pattern: RegExp; readonly text: string }
  | { readonly _tag: "literal"; readonly value: number | boolean | null }
  | { readonly _tag: "array"; readonly items: ReadonlyArray<Shape>; readonly more: boolean }
  | { readonly _tag: "object"; readonly members: ReadonlyArray<{ key: string; optional: boolean; value: Shape }>; readonly more: boolean }

export const parseShape = (source: string): { status: number | undefined; shape: Shape } => {
  let s = source.trim()
  let status: number | undefined
  const st = /^(\d{3})\s+/.exec(s)
  if (st !== null) {
    status = Number(st[1])
    s = s.slice(st[0].length)
  }
  let i = 0
  const ws = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++
  }
  const fail = (what: string): never => {
    throw new Error(`documented shape: ${what} at ${i}: ${s.slice(Math.max(0, i - 20), i)}⟨here⟩${s.slice(i, i + 20)}`)
  }
  const ellipsis = () => {
    if (s.startsWith("…", i)) return (i += 1), true
    if (s.startsWith("...", i)) return (i += 3), true
    return false
  }
  const string = (): string => {
    if (s[i] !== "\"") fail("expected a string")
    let out = ""
    for (i++; s[i] !== "\""; i++) {
      if (i >= s.length) fail("unterminated string")
      if (s[i] === "\\") out += JSON.parse(`"${s[i]}${s[++i]}"`)
      else out += s[i]
    }
    i++
    return out
  }
  const value = (): Shape => {
    ws()
    if (ellipsis()) return { _tag: "any" }
    const c = s[i]
    if (c === "{") {
      i++
      const members: Array<{ key: string; optional: boolean; value: Shape }> = []
      let more = false
      for (;;) {
        ws()
        if (s[i] === "}") break
        if (ellipsis()) more = true
        else {
          const key = string()
          ws()
          const optional = s[i] === "?"
          if (optional) i++
          ws()
          if (s[i] === ":") {
            i++
            members.push({ key, optional, value: value() })
          } else members.push({ key, optional, value: { _tag: "any" } })
        }
        ws()
        if (s[i] === ",") i++
        else if (s[i] !== "}") fail("expected , or }")
      }
      i++
      return { _tag: "object", members, more }
    }
    if (c === "[") {
      i++
      const items: Array<Shape> = []
      let more = false
      for (;;) {
        ws()
        if (s[i] === "]") break
        const start = i
        if (ellipsis() && /[\s,\]]/.test(s[i] ?? "]")) more = true
        else {
          i = start
          items.push(value())
        }
        ws()
        if (s[i] === ",") i++
        else if (s[i] !== "]") fail("expected , or ]")
      }
      i++
      return { _tag: "array", items, more }
    }
    if (c === "\"") {
      const text = string()
      // `…` (or `...`) and `<placeholder>`s stand for any text.
      const pattern = new RegExp(`^${text.split(/…|\.\.\.|<[^<>]*>/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[^]*")}$`)
      return { _tag: "string", pattern, text }
    }
    const lit = /^(-?\d+(\.\d+)?|true|false|null)/.exec(s.slice(i))
    if (lit === null) return fail("expected a value")
    i += lit[0].length
    return { _tag: "literal", value: JSON.parse(lit[0]) }
  }
  const shape = value()
  ws()
  if (i !== s.length) fail("trailing text")
  return { status, shape }
}

/** Where `actual` differs from the documented shape (empty: it matches). */
export const mismatches = (shape: Shape, actual: unknown, path = "$"): Array<string> => {
  switch (shape._tag) {
    case "any":
      return []
    case "string":
      return typeof actual === "string" && shape.pattern.test(actual) ? [] : [`${path}: documented "${shape.text}", got ${JSON.stringify(actual)}`]
    case "literal":
      return actual === shape.value ? [] : [`${path}: documented ${JSON.stringify(shape.value)}, got ${JSON.stringify(actual)}`]
    case "array": {
      if (!Array.isArray(actual)) return [`${path}: documented an array, got ${JSON.stringify(actual)}`]
      if (!shape.more && actual.length !== shape.items.length) return [`${path}: documented ${shape.items.length} items, got ${actual.length}: ${JSON.stringify(actual)}`]
      return shape.items.flatMap((item, k) => (actual.some((a) => mismatches(item, a).length === 0) ? [] : mismatches(item, actual[k], `${path}[${k}]`).concat(actual[k] === undefined ? [`${path}: no item like ${k}`] : [])))
    }
    case "object": {
      if (typeof actual !== "object" || actual === null || Array.isArray(actual)) return [`${path}: documented an object, got ${JSON.stringify(actual)}`]
      const record = actual as Record<string, unknown>
      const out: Array<string> = []
      for (const m of shape.members) {
        if (!(m.key in record) || record[m.key] === undefined) {
          if (!m.optional) out.push(`${path}.${m.key}: documented, missing`)
        } else out.push(...mismatches(m.value, record[m.key], `${path}.${m.key}`))
      }
      if (!shape.more) {
        const documented = new Set(shape.members.map((m) => m.key))
        for (const key of Object.keys(record)) if (!documented.has(key)) out.push(`${path}.${key}: not documented`)
      }
      return out
    }
  }
}

/** Check a response against a documented shape (`200 {…}` or just `{…}`); throws listing every difference. */
export const expectShape = (documented: string, actual: unknown, status?: number) => {
  const { status: expected, shape } = parseShape(documented)
  const problems = mismatches(shape, actual)
  if (expected !== undefined && status !== undefined && expected !== status) problems.unshift(`status: documented ${expected}, got ${status}`)
  if (problems.length > 0) throw new Error(`does not match the documented shape ${documented}\n  ${problems.join("\n  ")}\nactual: ${JSON.stringify(actual)}`)
}

// ---------------------------------------------------------------------------------------------
// Excerpts and snippets

/**
 * A file's text. Only files of the working tree: a check that needed git history would fail in a
 * shallow clone (quote old code as a `text` block instead).
 */
export const source = (ref: string) => read(ref)

const GAP = "\u0000gap"
/** How many source tokens one `…` of an excerpt may stand for. */
const MAX_GAP = 40
const INTERP = "\u0000interp"
/** What an interpolation may stand for in an excerpt: a value — `$name` parameters, numbers, arithmetic. */
const VALUE = /^(\$[A-Za-z0-9_]+|\d+(\.\d+)?|[-+*/])$/

/**
 * SQL-ish tokens: words, numbers, `$name` parameters, one-line '…' and "…" literals (a `//` or
 * `/*` inside one is not a comment), single punctuation;
 * `-- comments`, `// comments`, block comments and `::type` casts dropped (a comment's apostrophe
 * is not a quote); in a source file each `${…}` is one interpolation token; in an excerpt `…` is a
 * gap.
 */
export const tokens = (text: string, side: "excerpt" | "source"): Array<string> => {
  const out: Array<string> = []
  let i = 0
  while (i < text.length) {
    const rest = text.slice(i)
    let m: RegExpExecArray | null
    if ((m = /^"(?:[^"\\\n]|\\.)*"/.exec(rest))) {
      out.push(m[0])
      i += m[0].length
    } else if (
      (m = /^\s+/.exec(rest)) || (m = /^(--|\/\/)[^\n]*/.exec(rest)) || (m = /^\/\*[^]*?\*\//.exec(rest)) ||
      (m = /^::\s*[A-Za-z_][A-Za-z0-9_]*(\[\])?/.exec(rest))
    ) i += m[0].length
    else if (side === "source" && rest.startsWith("${")) {
      let depth = 0
      let j = i
      for (; j < text.length; j++) {
        if (text[j] === "{") depth++
        else if (text[j] === "}" && --depth === 0) break
      }
      out.push(INTERP)
      i = j + 1
    } else if (side === "excerpt" && (rest.startsWith("…") || rest.startsWith("..."))) {
      out.push(GAP)
      i += rest.startsWith("…") ? 1 : 3
    } else if ((m = /^\$[A-Za-z0-9_]+|^[A-Za-z_][A-Za-z0-9_]*|^\d+(\.\d+)?|^'[^'\n]*'/.exec(rest))) {
      out.push(m[0])
      i += m[0].length
    } else {
      out.push(text[i]!)
      i++
    }
  }
  return out
}

/**
 * Does `excerpt` appear in `text`? Token by token, anywhere in the file: `…` in the excerpt skips
 * a short stretch of the source (a column list), a `${…}` in the source stands for a value in the
 * excerpt (`$after + $maxRows`, `32`), and `${sql.literal(NAME)}` for the file's constant NAME.
 */
export const appearsIn = (excerpt: string, text: string): boolean => {
  const doc = [GAP, ...tokens(excerpt, "excerpt")]
  // `${sql.literal(NAME)}` of a constant of the same file is that constant's text.
  const constants = new Map([...text.matchAll(/^const ([A-Z_]+) = (?:"([^"]*)"|`([^`]*)`)$/gm)].map((m) => [m[1]!, m[2] ?? m[3]!]))
  const src = tokens(text.replace(/\$\{sql\.literal\(([A-Z_]+)\)\}/g, (all, name: string) => constants.get(name) ?? all), "source")
  const m = src.length
  // a[j]: doc[i..] matches from src[j]; b[j]: the same while inside the interpolation src[j],
  // which already stands for at least one token. Computed for i from the end, j from the end.
  let a1 = new Array<boolean>(m + 1).fill(true)
  let b1 = new Array<boolean>(m + 1).fill(true)
  for (let i = doc.length - 1; i >= 0; i--) {
    const t = doc[i]!
    const a = new Array<boolean>(m + 1).fill(false)
    const b = new Array<boolean>(m + 1).fill(false)
    const absorbable = VALUE.test(t)
    const trues = new Array<number>(m + 2).fill(0)
    for (let j = m; j >= 0; j--) trues[j] = trues[j + 1]! + (a1[j] ? 1 : 0)
    for (let j = m; j >= 0; j--) {
      const s = src[j]
      if (t === GAP) {
        // The leading gap finds the excerpt anywhere; the excerpt's own gaps skip at most MAX_GAP
        // tokens, so its pieces come from one place (trues[j]: how many of a1[j..] are true).
        a[j] = i === 0 ? a1[j]! || (j < m && a[j + 1]!) : trues[j]! - trues[Math.min(m + 1, j + MAX_GAP + 1)]! > 0
        b[j] = j < m && a[j + 1]!
        continue
      }
      a[j] = s !== undefined && (
        (s === t && a1[j + 1]!) ||
        (s === INTERP && t.startsWith("$") && a1[j + 1]!) ||
        (s === INTERP && absorbable && b1[j]!)
      )
      b[j] = (j < m && a[j + 1]!) || (absorbable && b1[j]!)
    }
    a1 = a
    b1 = b
  }
  return a1[0]!
}

/** The lines between `// #region <name>` and `// #endregion` in a file, without their common indentation. */
export const region = (text: string, name: string): string => {
  const lines = text.split("\n")
  const start = lines.findIndex((l) => l.trim() === `// #region ${name}`)
  if (start < 0) throw new Error(`no "// #region ${name}"`)
  const end = lines.findIndex((l, k) => k > start && l.trim() === "// #endregion")
  if (end < 0) throw new Error(`"// #region ${name}" is not closed`)
  return dedent(lines.slice(start + 1, end).join("\n"))
}

export const dedent = (text: string) => {
  const lines = text.split("\n")
  const indent = Math.min(...lines.filter((l) => l.trim() !== "").map((l) => /^ */.exec(l)![0].length))
  return lines.map((l) => l.slice(indent)).join("\n").trim()
}
