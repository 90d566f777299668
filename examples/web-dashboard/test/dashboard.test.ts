// The web dashboard in a real browser (Chromium through playwright-core) against `npm start` on
// free ports and a temporary data directory: email-code sign-in with the code read from the dev
// outbox page, a demo worker created on first visit whose events arrive live, a reload that
// restores from IndexedDB and resumes, a runtime restart (the supervisor's restart route) the page
// rides through, and convergence: after the worker is stopped, the page shows exactly the
// runtime's state.
//
// Chromium: CHROMIUM_PATH, or Debian's /usr/bin/chromium. .ci/run installs it and sets
// CHROMIUM_PATH, which makes a missing browser a failure; elsewhere the test is skipped, saying why.
import { accessSync, constants } from "node:fs"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, describe, expect, it } from "vitest"
import { startSystem, type System, until } from "../../../test/support/supervisor.js"

const chromiumPath = process.env["CHROMIUM_PATH"] || "/usr/bin/chromium"
const required = process.env["CHROMIUM_PATH"] !== undefined && process.env["CHROMIUM_PATH"] !== ""
const executable = (path: string) => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}
const haveChromium = executable(chromiumPath)

const card = (page: Page) => page.locator("[data-worker]").first()
const attr = async (page: Page, selector: string, name: string) => Number(await page.locator(selector).first().getAttribute(name))

if (!haveChromium && !required) {
  const why = `skipped: no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM_PATH; .ci/run installs it)`
  // Also on stderr: the default reporter shows a skipped test's count, not its name.
  console.warn(`examples/web-dashboard browser test ${why}`)
  describe("examples/web-dashboard in Chromium", () => {
    it.skip(why, () => {})
  })
} else {
  describe("examples/web-dashboard in Chromium", () => {
    let system: System | undefined
    let browser: Browser | undefined

    afterAll(async () => {
      await browser?.close()
      await system?.stop()
    })

    it("signs in, shows live worker events, survives a reload and a runtime restart, and converges", async () => {
      expect(haveChromium, `CHROMIUM_PATH=${chromiumPath} is not an executable`).toBe(true)
      system = await startSystem("dashboard")
      const sup = system.sup
      const base = system.url("OA_START_DASHBOARD_PORT")
      expect(sup.output()).toContain(`Dashboard: ${base}/`)

      // --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
      browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] })
      const context = await browser.newContext()
      const page = await context.newPage()
      const statuses: Array<string> = []
      await page.exposeFunction("recordStatus", (s: string) => void statuses.push(s))
      await page.addInitScript(() => {
        // Every value the status badge takes, in order (it changes faster than a poll could see).
        addEventListener("DOMContentLoaded", () => {
          const badge = document.getElementById("status")!
          new MutationObserver(() => (globalThis as any).recordStatus(badge.dataset["status"])).observe(badge, { attributes: true })
        })
      })

      // Sign in: the code comes from the dev outbox page.
      await page.goto(base)
      await page.fill("#email-form input[name=email]", "grace@example.com")
      await page.click("#email-form button[type=submit]")
      await page.waitForSelector("#code-form")
      const outbox = await context.newPage()
      await outbox.goto(`${base}/dev/outbox`)
      const code = await outbox.locator("tr", { hasText: "grace@example.com" }).first().locator("td.code").textContent()
      expect(code).toMatch(/^\d{6}$/)
      await outbox.close()
      await page.fill("#code-form input[name=code]", code!)
      await page.click("#code-form button[type=submit]")

      // The first visit creates a demo worker; its events arrive live (the seq keeps moving).
      await page.waitForSelector("[data-worker][data-status=running] ol.events li", { timeout: 30_000 })
      const workerId = (await card(page).getAttribute("data-worker"))!
      const first = await attr(page, "[data-worker]", "data-latest-seq")
      await page.waitForFunction((seen) => Number(document.querySelector("[data-worker]")!.getAttribute("data-latest-seq")) >= seen + 3, first, { timeout: 20_000 })
      expect(await page.locator("ol.events li", { hasText: "worker.output" }).count()).toBeGreaterThan(0)
      expect(statuses).toContain("connected")

      // Reload: the topics are restored from IndexedDB (non-zero restored watermarks) and resumed.
      const beforeReload = await attr(page, "[data-worker]", "data-events-watermark")
      await page.reload()
      await page.waitForSelector(`[data-worker="${workerId}"]`)
      expect(await attr(page, "#summary", "data-restored-watermark")).toBeGreaterThan(0)
      await page.waitForFunction(() => Number(document.querySelector("[data-worker]")?.getAttribute("data-restored-watermark")) > 0)
      expect(await attr(page, "[data-worker]", "data-restored-watermark")).toBeGreaterThanOrEqual(beforeReload)
      const afterReload = await attr(page, "[data-worker]", "data-events-watermark")
      await page.waitForFunction((seen) => Number(document.querySelector("[data-worker]")!.getAttribute("data-events-watermark")) > seen, afterReload, { timeout: 20_000 })
      // The reload made no new worker: the same one, still running.
      expect(await page.locator("[data-worker]").count()).toBe(1)

      // Restart the runtime through the supervisor: refused without the development header, then done.
      const refused = await fetch(`${base}/dev/restart/runtime`, { method: "POST" })
      expect(refused.status).toBe(403)
      statuses.length = 0
      const beforeRestart = await attr(page, "[data-worker]", "data-events-watermark")
      const restarted = await fetch(`${base}/dev/restart/runtime`, { method: "POST", headers: { "x-oa-dev": "restart" } })
      expect([restarted.status, await restarted.json()]).toEqual([200, { ok: true, restarted: "runtime" }])
      await until("the restart announcement", sup, () => (sup.output().includes("runtime is ready again") ? true : undefined), 5_000)
      // The page lost the connection, got it back, and the stream moves on past where it was.
      await page.waitForFunction((seen) => Number(document.querySelector("[data-worker]")!.getAttribute("data-events-watermark")) > seen + 2, beforeRestart, {
        timeout: 60_000
      })
      expect(statuses.some((s) => s === "reconnecting" || s === "connecting")).toBe(true)
      expect(statuses.at(-1)).toBe("connected")
      expect(sup.child.exitCode).toBeNull()

      // Converge: stop the worker; the page ends up showing exactly the runtime's state.
      await card(page).locator("button.stop").click()
      await page.waitForSelector(`[data-worker="${workerId}"][data-status=stopped]`, { timeout: 20_000 })
      const runtime = await page.evaluate(async () => (await (await fetch("/api/runtime/codex/workers")).json()).data)
      const truth = runtime.find((w: { worker_id: string }) => w.worker_id === workerId)
      expect(truth.status).toBe("stopped")
      await page.waitForFunction(
        (seq) => {
          const c = document.querySelector("[data-worker]")!
          return Number(c.getAttribute("data-latest-seq")) === seq && Number(c.getAttribute("data-events-watermark")) === seq
        },
        truth.latest_seq,
        { timeout: 20_000 }
      )
      expect(await page.locator("ol.events li").first().getAttribute("data-seq")).toBe(String(truth.latest_seq))

      await browser.close()
      browser = undefined
      sup.child.kill("SIGINT")
      expect(await sup.exited).toBe(0)
    }, 300_000)
  })
}
