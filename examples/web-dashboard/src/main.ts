// The web dashboard: sign in with an email code (control's web flow: the session is an HttpOnly
// cookie this page never sees), get a sync token, and show the user's Codex workers and each
// worker's live event stream over Khala with @openagents/khala-client, persisted in IndexedDB.
//
// Everything is same-origin: `npm start`'s dashboard server proxies /api/* to control, the
// snapshot endpoint to the runtime and /sync/v1/ws to Khala (scripts/start-dashboard.mjs). The
// runtime is reached through control's proxy (/api/runtime/codex/workers), which binds the
// signed-in user — the browser holds no runtime credential.
//
// Reload: the client loads each topic's documents and watermark from IndexedDB and resumes from
// that watermark (the page shows the restored watermark). Runtime restart: the client reconnects
// by itself with backoff and resumes; nothing here handles it specially.
//
// Bounds: a worker's event topic gains a document per event for as long as the worker runs. The
// page renders the newest SHOWN_EVENTS of each worker; the client keeps between KEPT_EVENTS and
// twice that many, in memory and in IndexedDB (its `keepNewest` option, retention.ts), and a
// reload starts from the trimmed store.
import { type ClientEvent, createClient, type Document, indexedDbStore, type KhalaClient, type SyncStore } from "@openagents/khala-client"
import { EVENTS_CLASS, keepNewest } from "./retention.js"

interface User {
  readonly id: string
  readonly email?: string
  readonly name?: string
}

/** The worker summary document (runtime-core Projection.workerSummary). */
interface WorkerSummary {
  readonly worker_id: string
  readonly status: string
  readonly adapter: string
  readonly latest_seq: number
  readonly latest_event_type: string | null
  readonly last_heartbeat_at: string | null
  readonly started_at: string | null
}

/** One document of a worker's event topic. */
interface WorkerEvent {
  readonly seq: number
  readonly eventType: string
  readonly payload: unknown
  readonly occurredAt: string
}

const SCOPES = ["runtime.codex_worker_summaries", "runtime.codex_worker_events"]
const SHOWN_EVENTS = 30
const summariesTopic = (userId: string) => `runtime.codex_worker_summaries:user:${userId}`
const eventsTopic = (workerId: string) => `${EVENTS_CLASS}:worker:${workerId}`
const storeName = (userId: string) => `khala-dashboard:${userId}`

const app = document.getElementById("app")!
const statusBadge = document.getElementById("status")!
const userLabel = document.getElementById("user")!
const signOutButton = document.getElementById("sign-out") as HTMLButtonElement

const api = async (path: string, body?: unknown): Promise<{ status: number; body: any }> => {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json().catch(() => ({})) }
}

const errorText = (answer: { status: number; body: any }) =>
  answer.body?.error?.message ?? answer.body?.message ?? answer.body?.errors?.code ?? `HTTP ${answer.status}`

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>) => {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  node.append(...children)
  return node
}

// ---------------------------------------------------------------------------------------------
// Sign-in

const signInForm = () => {
  const email = el("input", { type: "email", name: "email", placeholder: "you@example.com", required: "" })
  const error = el("p", { class: "error" })
  const form = el("form", { id: "email-form" }, el("p", {}, "Sign in with an email code."), email, " ", el("button", { type: "submit" }, "Send code"), error)
  form.addEventListener("submit", async (e) => {
    e.preventDefault()
    const sent = await api("/api/auth/email", { email: email.value })
    if (sent.status !== 200) return void (error.textContent = errorText(sent))
    codeForm(sent.body.email, sent.body.challengeId)
  })
  app.replaceChildren(form)
}

const codeForm = (email: string, challengeId: string) => {
  const code = el("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", placeholder: "6-digit code", required: "" })
  const error = el("p", { class: "error" })
  const form = el(
    "form",
    { id: "code-form" },
    el("p", {}, `A code was sent to ${email}. Locally it is printed in the npm start terminal and on the `, el("a", { href: "/dev/outbox", target: "_blank" }, "dev outbox page"), "."),
    code,
    " ",
    el("button", { type: "submit" }, "Sign in"),
    error
  )
  form.addEventListener("submit", async (e) => {
    e.preventDefault()
    const verified = await api("/api/auth/verify", { code: code.value.trim(), challenge_id: challengeId })
    if (verified.status !== 200) return void (error.textContent = errorText(verified))
    void signedIn(verified.body.user as User)
  })
  app.replaceChildren(form)
  code.focus()
}

// ---------------------------------------------------------------------------------------------
// Signed in: the workers and their events

const signedIn = async (user: User) => {
  userLabel.textContent = user.email ?? user.id
  signOutButton.hidden = false
  const store = indexedDbStore({ name: storeName(user.id) })
  const client = createClient({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/sync/v1/ws`,
    tokenProvider: async () => {
      const minted = await api("/api/sync/token", { scopes: SCOPES })
      if (minted.status !== 200) throw new Error(`sync token: ${errorText(minted)}`)
      return minted.body.data.token as string
    },
    store,
    keepNewest
  })
  const view = new Dashboard(client, store, user)
  signOutButton.onclick = async () => {
    await api("/api/auth/logout", {})
    await client.close()
    indexedDB.deleteDatabase(storeName(user.id))
    location.reload()
  }
  await view.start()
}

class Dashboard {
  private readonly restored = new Map<string, string>()
  private readonly problems: Array<string> = []
  private renderTimer: ReturnType<typeof setTimeout> | undefined
  private ended: string | undefined
  private readonly summaries: string

  constructor(private readonly client: KhalaClient, private readonly store: SyncStore, user: User) {
    this.summaries = summariesTopic(user.id)
  }

  async start() {
    this.client.on((e) => this.onEvent(e))
    await this.follow(this.summaries)
    this.render()
    try {
      await this.client.live(this.summaries)
    } catch {
      return // refused, signed out or stopped: onEvent shows why
    }
    // A first visit: give the user a worker that does something.
    if (this.workers().length === 0) await this.createDemoWorker()
  }

  /** Subscribe to a topic, remembering the watermark it was restored from (IndexedDB). */
  private async follow(topic: string) {
    if (this.restored.has(topic)) return
    this.restored.set(topic, "")
    const state = await this.store.load(topic)
    this.restored.set(topic, String(state?.watermark ?? 0n))
    this.client.subscribe(topic)
  }

  private onEvent(e: ClientEvent) {
    switch (e.type) {
      case "status":
        statusBadge.textContent = e.status
        statusBadge.dataset["status"] = e.status
        break
      case "reauth_required":
        this.ended = "Your session ended (signed out elsewhere or revoked). Sign in again."
        break
      case "unauthorized":
      case "upgrade_required":
        this.ended = `The sync connection stopped (${e.type}). Reload the page.`
        break
      case "error":
        this.problems.unshift(`${e.error.code}: ${e.error.message}`)
        this.problems.length = Math.min(this.problems.length, 5)
        break
      default:
        break
    }
    this.scheduleRender()
  }

  private workers(): Array<WorkerSummary> {
    return [...this.client.documents<WorkerSummary>(this.summaries).values()]
      .flatMap((d) => (d.value === undefined ? [] : [d.value]))
      .sort((a, b) => (b.started_at ?? "").localeCompare(a.started_at ?? "") || a.worker_id.localeCompare(b.worker_id))
  }

  private async createDemoWorker() {
    const created = await api("/api/runtime/codex/workers", { adapter: "demo", metadata: { source: "web-dashboard" } })
    if (created.status !== 202 && created.status !== 200) this.problems.unshift(`creating a worker: ${errorText(created)}`)
    this.scheduleRender()
  }

  private async stopWorker(id: string) {
    const stopped = await api(`/api/runtime/codex/workers/${encodeURIComponent(id)}/stop`, { reason: "stopped from the dashboard" })
    if (stopped.status !== 202 && stopped.status !== 200) this.problems.unshift(`stopping ${id}: ${errorText(stopped)}`)
    this.scheduleRender()
  }

  private scheduleRender() {
    if (this.renderTimer !== undefined) return
    this.renderTimer = setTimeout(() => {
      this.renderTimer = undefined
      this.render()
    }, 50)
  }

  private render() {
    const workers = this.workers()
    for (const w of workers) void this.follow(eventsTopic(w.worker_id))
    const create = el("button", { id: "create-worker" }, "Start a demo worker")
    create.onclick = () => void this.createDemoWorker()
    const header = el(
      "div",
      { class: "card", id: "summary", "data-watermark": String(this.client.watermark(this.summaries)), "data-restored-watermark": this.restored.get(this.summaries) ?? "" },
      el("p", {}, `${workers.length} worker(s) · summaries topic at watermark ${this.client.watermark(this.summaries)} (restored from IndexedDB at ${this.restored.get(this.summaries) || "0"})`),
      create,
      ...(this.ended !== undefined ? [el("p", { class: "error", id: "ended" }, this.ended)] : []),
      ...this.problems.map((p) => el("p", { class: "error" }, p))
    )
    app.replaceChildren(header, el("div", { class: "workers" }, ...workers.map((w) => this.workerCard(w))))
  }

  private workerCard(w: WorkerSummary) {
    const topic = eventsTopic(w.worker_id)
    const events = [...this.client.documents<WorkerEvent>(topic).values()]
      .flatMap((d: Document<WorkerEvent>) => (d.value === undefined ? [] : [d.value]))
      .sort((a, b) => b.seq - a.seq)
      .slice(0, SHOWN_EVENTS)
    const stop = el("button", { class: "stop" }, "Stop")
    stop.onclick = () => void this.stopWorker(w.worker_id)
    const watermark = String(this.client.watermark(topic))
    return el(
      "div",
      { class: "card worker", "data-worker": w.worker_id, "data-status": w.status, "data-latest-seq": String(w.latest_seq), "data-events-watermark": watermark, "data-restored-watermark": this.restored.get(topic) ?? "" },
      el("h2", {}, w.worker_id),
      el(
        "div",
        { class: "meta" },
        `${w.status} · adapter ${w.adapter} · latest seq ${w.latest_seq} (${w.latest_event_type ?? "—"}) · heartbeat ${w.last_heartbeat_at ?? "never"} · events topic at ${watermark} (restored at ${this.restored.get(topic) || "0"})`
      ),
      ...(w.status === "running" ? [stop] : []),
      el("ol", { class: "events" }, ...events.map((e) => el("li", { "data-seq": String(e.seq) }, `#${e.seq} `, el("span", { class: "type" }, e.eventType), ` ${describe(e.payload)}`)))
    )
  }
}

const describe = (payload: unknown) => {
  if (typeof payload === "object" && payload !== null && typeof (payload as { text?: unknown }).text === "string") return (payload as { text: string }).text
  return JSON.stringify(payload)
}

// ---------------------------------------------------------------------------------------------

const main = async () => {
  const me = await api("/api/auth/me")
  if (me.status === 200) await signedIn(me.body.user as User)
  else signInForm()
}

main().catch((error) => app.replaceChildren(el("p", { class: "error" }, `The dashboard failed: ${error?.message ?? error}`)))
