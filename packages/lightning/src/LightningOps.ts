// lightning-ops as a service: the reconciler on an interval (or once), its configuration from the
// environment (the upstream variable names, UPSTREAM_SPEC §4.1), metrics, and the last outcome
// for health checks; after each reconcile, the gateway's ledger (invoices, settlements) is
// ingested into control (ingestLedger). Hosts wire the ports (ControlPlane, GatewayOps) and an HttpClient.
import type * as HttpClient from "@effect/platform/HttpClient"
import { MIN_OPS_SECRET_LENGTH } from "@openagents/proto/lightning/v1"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { ControlPlane, type ControlPlaneError, type CredentialRole } from "./ControlPlane.js"
import { GatewayOps } from "./GatewayOps.js"
import * as L402Buyer from "./L402Buyer.js"
import * as Reconciler from "./Reconciler.js"

export interface OpsConfig {
  readonly controlPlane:
    | { readonly mode: "api"; readonly baseUrl: string; readonly secret: Redacted.Redacted<string> }
    | { readonly mode: "mock"; readonly paywallsPath: Option.Option<string> }
  readonly gateway: { readonly baseUrl: string; readonly opsToken: Redacted.Redacted<string>; readonly healthPath: string }
  readonly challengeUrl: Option.Option<string>
  readonly proxyUrl: Option.Option<string>
  readonly proxyAuthorization: Option.Option<Redacted.Redacted<string>>
  /** Pay the smoke challenge through this wallet executor when no proxy Authorization is set. */
  readonly smokePayer: Option.Option<{ readonly baseUrl: string; readonly token: Redacted.Redacted<string> }>
  readonly intervalMs: number
  readonly executionPath: string
  /** The role credentials (OA_LIGHTNING_OPS_CRED_*), checked against control's credential roles. */
  readonly credentials: Readonly<Record<CredentialRole, Redacted.Redacted<string>>>
}

const url = (name: string) =>
  Config.string(name).pipe(Config.validate({ message: `${name} must be an http(s) URL`, validation: (u) => /^https?:\/\/[^/]+/.test(u) }))

const token = (name: string, min = 16, why = "") =>
  Config.redacted(name).pipe(
    Config.validate({
      message: `${name} must be at least ${min} characters without whitespace${why}`,
      validation: (t) => Redacted.value(t).length >= min && !/\s/.test(Redacted.value(t))
    })
  )

const controlPlaneConfig = Effect.gen(function*() {
  const mode = yield* Config.literal("api", "mock")("OA_LIGHTNING_OPS_CONTROL_PLANE_MODE").pipe(Config.withDefault("api" as const))
  return mode === "api"
    ? { mode, baseUrl: yield* url("OA_LIGHTNING_OPS_API_BASE_URL"), secret: yield* token("OA_LIGHTNING_OPS_SECRET", MIN_OPS_SECRET_LENGTH, " (control refuses every call with a shorter secret)") } as const
    : { mode, paywallsPath: yield* Config.option(Config.string("OA_LIGHTNING_OPS_MOCK_PAYWALLS_PATH")) } as const
})

/** The settings from the environment (fails with a ConfigError naming the variable). */
export const config = Effect.gen(function*() {
  const controlPlane = yield* controlPlaneConfig
  const rest = yield* Config.all({
    gateway: Config.all({
      baseUrl: url("OA_LIGHTNING_OPS_GATEWAY_BASE_URL"),
      opsToken: token("OA_LIGHTNING_OPS_GATEWAY_OPS_TOKEN"),
      healthPath: Config.string("OA_LIGHTNING_OPS_GATEWAY_HEALTH_PATH").pipe(
        Config.withDefault("/healthz"),
        Config.validate({ message: "OA_LIGHTNING_OPS_GATEWAY_HEALTH_PATH must start with /", validation: (p) => p.startsWith("/") })
      )
    }),
    challengeUrl: Config.option(url("OA_LIGHTNING_OPS_CHALLENGE_URL")),
    proxyUrl: Config.option(url("OA_LIGHTNING_OPS_PROXY_URL")),
    proxyAuthorization: Config.option(Config.redacted("OA_LIGHTNING_OPS_PROXY_AUTHORIZATION_HEADER")),
    smokePayer: Config.option(Config.all({ baseUrl: url("OA_LIGHTNING_OPS_WALLET_EXECUTOR_URL"), token: token("OA_LIGHTNING_OPS_WALLET_EXECUTOR_TOKEN") })),
    intervalMs: Config.integer("OA_LIGHTNING_OPS_RECONCILE_INTERVAL_MS").pipe(
      Config.withDefault(60_000),
      Config.validate({ message: "OA_LIGHTNING_OPS_RECONCILE_INTERVAL_MS must be between 1000 and 86400000", validation: (n) => n >= 1_000 && n <= 86_400_000 })
    ),
    executionPath: Config.string("OA_LIGHTNING_OPS_EXECUTION_PATH").pipe(Config.withDefault("hosted-node")),
    // Required: lightning-ops does not start without its role credentials (fail closed).
    credentials: Config.all({
      gateway_invoice: token("OA_LIGHTNING_OPS_CRED_GATEWAY_INVOICE"),
      settlement_read: token("OA_LIGHTNING_OPS_CRED_SETTLEMENT_READ"),
      operator_admin: token("OA_LIGHTNING_OPS_CRED_OPERATOR_ADMIN")
    })
  })
  return { controlPlane, ...rest } satisfies OpsConfig
})

const runs = Metric.counter("lightning_ops_reconcile_total", { description: "Reconcile runs by outcome" })
const lastApplied = Metric.gauge("lightning_ops_last_applied_timestamp_ms", { description: "When the last reconcile applied" })

const ingestedTotal = Metric.counter("lightning_ops_ledger_ingested_total", { description: "Gateway ledger entries (invoices, settlements) recorded in control, by kind and result" })

export interface IngestOutcome {
  /** Entries control accepted (a replay it already had counts: it answered without an error). */
  readonly ingested: number
  /** Entries control refused for good (409 conflict, 422 invalid_arguments): logged, acknowledged, skipped. */
  readonly rejected: number
  /** Why the ingest stopped early (control unavailable): the rest stays in the gateway's ledger. */
  readonly stopped?: string
}

/**
 * Ingest the gateway's ledger into control (UPSTREAM_SPEC §4.1 settlement ingest): invoices
 * issued and settlements, in the gateway's order (an invoice before its settlement), then
 * acknowledged. Control is idempotent (invoice status is monotonic; settlements by id), so an
 * entry written but not acknowledged is simply written again next time. A permanent refusal
 * (conflict: the same id with other content) is logged and skipped rather than retried forever;
 * anything else stops the ingest until the next run.
 */
export const ingestLedger = (options: { readonly pageSize?: number; readonly maxPages?: number } = {}) =>
  Effect.gen(function*() {
    const cp = yield* ControlPlane
    const gateway = yield* GatewayOps
    let ingested = 0
    let rejected = 0
    let after = 0
    for (let page = 0; page < (options.maxPages ?? 50); page++) {
      const { entries } = yield* gateway.readLedger(after, options.pageSize ?? 100)
      if (entries.length === 0) break
      let through = after
      let stopped: string | undefined
      for (const entry of entries) {
        const kind = "invoice" in entry ? "invoice" : "settlement"
        const written = yield* Effect.either<unknown, ControlPlaneError, never>("invoice" in entry ? cp.ingestInvoiceLifecycle(entry.invoice) : cp.ingestSettlement(entry.settlement))
        if (Either.isLeft(written) && written.left.code !== "conflict" && written.left.code !== "invalid_arguments") {
          stopped = `${written.left.code}: ${written.left.message}`
          break
        }
        if (Either.isLeft(written)) {
          rejected++
          yield* Effect.logError(`control refused ${kind} ledger entry ${entry.seq} (${written.left.code}: ${written.left.message}); skipped`)
        } else {
          ingested++
        }
        yield* Metric.increment(Metric.tagged(Metric.tagged(ingestedTotal, "kind", kind), "result", Either.isLeft(written) ? "rejected" : "ok"))
        through = entry.seq
      }
      if (through > after) yield* gateway.ackLedger(through)
      if (stopped !== undefined) return { ingested, rejected, stopped } satisfies IngestOutcome
      after = through
    }
    return { ingested, rejected } satisfies IngestOutcome
  })

export interface OpsStatus {
  readonly last: Option.Option<Reconciler.ReconcileOutcome>
  readonly lastError: Option.Option<string>
  /**
   * The table whose paid proxy probe passed in this process: an unchanged deployment of it is not
   * paid for again on every interval (a new process, or any other outcome, probes it once more).
   */
  readonly verifiedConfigHash?: string | undefined
}

export class OpsState extends Context.Tag("@openagents/lightning/OpsState")<OpsState, Ref.Ref<OpsStatus>>() {}

/** One reconcile, counted and remembered. */
export const runOnce = (cfg: OpsConfig) =>
  Effect.gen(function*() {
    const state = yield* OpsState
    const verified = (yield* Ref.get(state)).verifiedConfigHash
    const payer = Option.isSome(cfg.smokePayer)
      ? Option.some(yield* Effect.map(Layer.build(L402Buyer.walletExecutorPayer(cfg.smokePayer.value)), (c) => Context.get(c, L402Buyer.InvoicePayer)).pipe(Effect.scoped))
      : Option.none()
    const outcome = yield* Reconciler.reconcile({
      executionPath: cfg.executionPath,
      healthPath: cfg.gateway.healthPath,
      credentials: cfg.credentials,
      ...Option.match(cfg.challengeUrl, { onNone: () => ({}), onSome: (challengeUrl) => ({ challengeUrl }) }),
      ...Option.match(cfg.proxyUrl, { onNone: () => ({}), onSome: (proxyUrl) => ({ proxyUrl }) }),
      ...Option.match(cfg.proxyAuthorization, { onNone: () => ({}), onSome: (proxyAuthorization) => ({ proxyAuthorization }) }),
      ...Option.match(payer, { onNone: () => ({}), onSome: (proxyPayer) => ({ proxyPayer }) }),
      paidProbePassed: (configHash) => configHash === verified
    }).pipe(
      Effect.tapError((e) => Ref.update(state, (s) => ({ ...s, lastError: Option.some(e.message) }))),
      Effect.tapError(() => Metric.increment(Metric.tagged(runs, "status", "error")))
    )
    yield* Metric.increment(Metric.tagged(runs, "status", outcome.status))
    if (outcome.status === "applied") yield* Metric.set(lastApplied, Date.now())
    const verifiedConfigHash = outcome.status !== "applied" ? undefined : outcome.proxyProbe === "passed" ? outcome.configHash : verified
    yield* Ref.set(state, { last: Option.some(outcome), lastError: Option.none(), verifiedConfigHash })
    yield* Effect.logInfo(`reconcile ${outcome.requestId}: ${outcome.status}${outcome.failureCode ? ` (${outcome.failureCode})` : ""}${outcome.denyReason ? ` (${outcome.denyReason})` : ""}`)
    // Sales are recorded whatever the reconcile decided (a pause stops selling, not bookkeeping),
    // unless control could not be read or refused our credentials.
    if (outcome.denyReason === undefined || outcome.denyReason === "global_pause_active") {
      const ingest = yield* Effect.either(ingestLedger())
      if (Either.isLeft(ingest)) yield* Effect.logWarning(`ledger ingest failed: ${ingest.left.message}`)
      else if (ingest.right.stopped !== undefined) yield* Effect.logWarning(`ledger ingest stopped after ${ingest.right.ingested}: ${ingest.right.stopped}`)
    }
    return outcome
  })

/**
 * The health checks of lightning-ops, from its last run: `reconciler` fails when the last run
 * errored; `controlPlane` fails when the last run could not read control — with
 * control_unauthorized when control refused the operations secret (a wrong or missing
 * OA_LIGHTNING_OPS_SECRET: nothing reconciles until an operator fixes it); `credentials` fails
 * when control revoked one of our role credentials or records another one for the role.
 */
export const healthChecks = (status: OpsStatus): Record<"reconciler" | "controlPlane" | "credentials", Effect.Effect<void, Error>> => {
  const last = Option.getOrUndefined(status.last)
  const denied = (...reasons: ReadonlyArray<Reconciler.DenyReason>) =>
    last?.status === "denied" && last.denyReason !== undefined && reasons.includes(last.denyReason)
      ? Effect.fail(new Error(`${last.denyReason}: ${last.message ?? ""}`))
      : Effect.void
  return {
    reconciler: Option.isSome(status.lastError) ? Effect.fail(new Error(status.lastError.value)) : Effect.void,
    controlPlane: denied("control_unauthorized", "security_state_unavailable"),
    credentials: denied("credential_role_revoked", "credential_role_mismatch")
  }
}

export const stateLayer = Layer.effect(OpsState, Ref.make<OpsStatus>({ last: Option.none(), lastError: Option.none() }))

/** Reconcile now, then every intervalMs, for the life of the layer (errors are logged, not fatal). */
export const loop = (cfg: OpsConfig): Layer.Layer<never, never, ControlPlane | GatewayOps | HttpClient.HttpClient | OpsState> =>
  Layer.scopedDiscard(
    runOnce(cfg).pipe(
      Effect.catchAll((e) => Effect.logError(`reconcile failed: ${e.message}`)),
      Effect.repeat(Schedule.spaced(Duration.millis(cfg.intervalMs))),
      Effect.forkScoped
    )
  )
