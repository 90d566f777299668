// The reconcile state machine of lightning-ops (UPSTREAM_SPEC §4.1), with security gates that
// fail closed:
//
//   gate ── security state unreadable ─────────────────────────────────────────────▶ denied
//     │     (control refused the secret: control_unauthorized; else security_state_unavailable)
//     │  a role credential revoked in control, or not the one control records ────────▶ denied
//     │  global pause: no paywall is read, the EMPTY table is deployed (dep_denied_<req>) → denied
//     │  owners with their kill switch on are left out of the compile (their routes stop selling)
//   look up the active deployment (its table: the incumbents of route conflicts, and what a
//     │  rollback goes back to); a failure is reported after the pending intent
//   compile: never fails as a whole; a paywall with its own diagnostics, or giving way in a route
//     │  conflict, is left out and the others compile (Compiler.ts)
//   per paywall left out: intent FAILED dep_paywall_<hash> with paywallId and failureCode
//     │  (security_denied | compile_validation_failed) and its diagnostics, so its owner sees why
//   intent PENDING dep_reconcile_<req> (paywallIds: every paywall the table serves)
//   active lookup failed ────────────────────────────▶ FAILED (active_lookup_failed)
//   deploy (skipped when the gateway already runs this configHash) ── error ─┐
//   probe health (2xx) ───────────── error ─┤   (an empty table stops here: nothing to sell)
//   probe challenge (402 + token + invoice at the route's price) ── error ─┤
//   probe proxy (2xx with a paid credential) ── error ─┤
//     │  (with a payer, the probe that pays runs when this run deployed a new table, or when
//     │   forced / not yet passed for this table; an unchanged table is not paid for again)
//     │                                        ▼
//   intent APPLIED                  deployed over a previous deployment, not paused, not empty?
//                                     no:  FAILED (<code>)
//                                     yes: re-read the security state ── unreadable / paused ─▶ FAILED (<code>)
//                                          no owner killed, or none of the previous table's
//                                          routes is a killed owner's: rollback ──▶ ROLLED_BACK
//                                          else: deploy the previous table WITHOUT the killed
//                                          owners' routes (dep_rollback_<req>, recompiled) ─▶ ROLLED_BACK
//                                          (the previous table unknown: FAILED, nothing goes back)
//                                          a rollback refused ─▶ FAILED (rollback_failed)
//
// Every intent of a deployment names all the paywalls it serves (`paywallIds`): control records
// its outcome as each one's reconcile status, so every owner sees it, not only the first.
// Each probe that passes records `gateway_reconcile_{health,challenge,proxy}_ok`; a failure
// records `gateway_reconcile_failed_<code>` or `gateway_reconcile_rolled_back`. Events carry the
// deployment id, config hash and execution path (the upstream dropped them: [gap]).
// `failurePlan` and `rollbackPlan` are the pure decisions at the bottom of the diagram.
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Bolt11 from "./Bolt11.js"
import type { CompiledRoute } from "./Compiler.js"
import * as Compiler from "./Compiler.js"
import { sha256 } from "@noble/hashes/sha2"
import type { CredentialRole, DeploymentIntent, EventLevel, Paywall, SecurityState } from "./ControlPlane.js"
import { ControlPlane, credentialFingerprint, isUnauthorized } from "./ControlPlane.js"
import { toHex, utf8 } from "./internal/bytes.js"
import type { Deployment, DeploymentWithTable } from "./Gateway.js"
import { GatewayOps } from "./GatewayOps.js"
import * as L402 from "./L402.js"
import type { InvoicePayerService } from "./L402Buyer.js"

export type FailureCode =
  | "compile_validation_failed"
  | "active_lookup_failed"
  | "deploy_apply_failed"
  | "health_check_failed"
  | "challenge_check_failed"
  | "proxy_check_failed"
  | "rollback_failed"

/** Why nothing of the policy was deployed: the global pause (the empty table was), or the security state could not be read (control refused our secret: control_unauthorized). */
export type DenyReason =
  | "global_pause_active"
  | "security_state_unavailable"
  | "control_unauthorized"
  /** Control revoked one of our role credentials, or records another credential for the role. */
  | "credential_role_revoked"
  | "credential_role_mismatch"

export interface ReconcileOptions {
  readonly requestId?: string
  readonly executionPath?: string
  readonly settings?: Compiler.ApertureSettings
  readonly healthPath?: string
  /** URL that must answer 402 (default: the first compiled route with a literal host and exact path). */
  readonly challengeUrl?: string
  /** URL that must answer 2xx with a paid credential (default: the challenge URL). */
  readonly proxyUrl?: string
  /** A ready credential for the proxy probe (`L402 <mac>:<preimage>`), e.g. a long-lived smoke token. */
  readonly proxyAuthorization?: Redacted.Redacted<string>
  /**
   * Otherwise: pay the challenge for the proxy probe with this payer (costs the route's price). It
   * pays only when this run deploys a new table: when the gateway already runs this configHash the
   * paid probe is skipped (it would pay the route price every interval and prove nothing new),
   * unless `forcePaidProbe` is set or `paidProbePassed` says this table's paid probe has not passed.
   */
  readonly proxyPayer?: InvoicePayerService
  /** Pay for the proxy probe even when the table is unchanged (an operator's rerun). */
  readonly forcePaidProbe?: boolean
  /**
   * Whether the paid proxy probe already passed for this configHash (lightning-ops remembers the
   * last table it verified). Default: a table the gateway already runs counts as verified.
   */
  readonly paidProbePassed?: (configHash: string) => boolean
  /**
   * lightning-ops' role credentials (OA_LIGHTNING_OPS_CRED_*). The gate denies when control has
   * revoked a role, or records a fingerprint (ControlPlane.credentialFingerprint) other than ours.
   */
  readonly credentials?: Readonly<Record<CredentialRole, Redacted.Redacted<string>>>
}

export interface ReconcileOutcome {
  readonly status: "applied" | "failed" | "rolled_back" | "denied"
  readonly requestId: string
  readonly deploymentId: string | undefined
  readonly configHash: string | undefined
  readonly failureCode?: FailureCode
  readonly denyReason?: DenyReason
  readonly diagnostics?: ReadonlyArray<Compiler.Diagnostic>
  readonly routes: number
  /** The gateway already ran this configHash: nothing was deployed. */
  readonly unchanged?: boolean
  /**
   * The proxy probe: `passed`, or `skipped` (unchanged table, already verified: nothing paid). Set
   * when the run got that far.
   */
  readonly proxyProbe?: "passed" | "skipped"
  /** For rolled_back: what the gateway serves now, and whose routes were withheld from it. */
  readonly rollback?: { readonly deploymentId: string; readonly configHash: string; readonly withheldOwnerIds: ReadonlyArray<string> }
  readonly message?: string
}

export class ReconcileError extends Data.TaggedError("ReconcileError")<{ readonly code: "control_plane_unavailable"; readonly message: string }> {}

/** What to do after a failure following the pending intent. */
export const failurePlan = (input: { readonly deployed: boolean; readonly previous: Deployment | null }): "rollback" | "fail" =>
  input.deployed && input.previous !== null ? "rollback" : "fail"

/**
 * How to roll back without serving what a security control withdrew (fail closed):
 * - "restore": the previous deployment as it was — no owner is killed, or none of its routes is
 *   a killed owner's or killed paywall's (the gateway refuses to restore any other deployment);
 * - "filtered": the previous table without those routes, as a new deployment;
 * - "withheld": nothing goes back — the pause is on, or an owner is killed and the previous
 *   table is not known (the gateway did not report it, or it does not match its configHash).
 */
export const rollbackPlan = (input: {
  readonly paused: boolean
  readonly killedOwners: ReadonlySet<string>
  readonly killedPaywalls: ReadonlySet<string>
  /** The previous deployment's routes, when known and verified. */
  readonly previousRoutes: ReadonlyArray<CompiledRoute> | undefined
}):
  | { readonly kind: "restore" }
  | { readonly kind: "filtered"; readonly routes: ReadonlyArray<CompiledRoute>; readonly withheldOwnerIds: ReadonlyArray<string>; readonly withheldRoutes: number }
  | { readonly kind: "withheld"; readonly reason: string } =>
{
  if (input.paused) return { kind: "withheld", reason: "the global pause is on" }
  if (input.killedOwners.size === 0 && input.killedPaywalls.size === 0) return { kind: "restore" }
  if (input.previousRoutes === undefined) return { kind: "withheld", reason: "an owner is killed and the previous table is not known" }
  const withheld = (r: CompiledRoute) => input.killedOwners.has(r.ownerId) || input.killedPaywalls.has(r.paywallId)
  const routes = input.previousRoutes.filter((r) => !withheld(r))
  if (routes.length === input.previousRoutes.length) return { kind: "restore" }
  const withheldOwnerIds = [...new Set(input.previousRoutes.filter(withheld).map((r) => r.ownerId))].sort()
  return { kind: "filtered", routes, withheldOwnerIds, withheldRoutes: input.previousRoutes.length - routes.length }
}

const sanitised = (requestId: string) => requestId.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 90)

/** `dep_reconcile_<request id, sanitised, at most 90 chars>`. */
export const deploymentIdOf = (requestId: string) => `dep_reconcile_${sanitised(requestId)}`

/** `dep_rollback_<request id, sanitised>`: a rollback deployed as a recompiled table. */
export const rollbackIdOf = (requestId: string) => `dep_rollback_${sanitised(requestId)}`

class StepFailed extends Data.TaggedError("StepFailed")<{ readonly code: FailureCode; readonly message: string }> {}

/** The probe URL and Host header for a route (literal host, exact path), relative to the gateway. */
export const probeTargetOf = (routes: ReadonlyArray<CompiledRoute>) => {
  const route = routes.find((r) => r.hostKind === "literal" && r.pathKind === "exact")
  return route === undefined ? undefined : { route, path: route.path, headers: { host: route.host } }
}

/** The table a deployment serves, if the gateway reported it and it is the one its configHash names. */
export const verifiedTable = (deployment: DeploymentWithTable | null): ReadonlyArray<CompiledRoute> | undefined =>
  deployment?.apertureYaml !== undefined && deployment.routes !== undefined &&
    Compiler.configHashOf(deployment.apertureYaml, deployment.routes) === deployment.configHash
    ? deployment.routes
    : undefined

const killedOwnersOf = (security: SecurityState) => new Set(security.ownerControls.filter((o) => o.killSwitch).map((o) => o.ownerId))

export const reconcile = (options: ReconcileOptions = {}) =>
  Effect.gen(function*() {
    const cp = yield* ControlPlane
    const gateway = yield* GatewayOps
    const requestId = options.requestId ?? `req_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`
    const executionPath = options.executionPath ?? "hosted-node"
    const now = Effect.map(Clock.currentTimeMillis, Number)
    // Read before control's state: control keeps, per paywall, the outcome of the reconcile that
    // started last, so this run's late report cannot replace a newer run's outcome.
    const reconcileStartedAtMs = yield* now
    const recordIntent = (intent: DeploymentIntent) =>
      cp.recordDeploymentIntent({ ...intent, requestId, reconcileStartedAtMs }).pipe(
        Effect.mapError((e) => new ReconcileError({ code: "control_plane_unavailable", message: `recording intent ${intent.deploymentId}: ${e.message}` }))
      )
    const event = (at: { paywallId: string; ownerId: string } | undefined, eventType: string, level: EventLevel, deploymentId: string | undefined, configHash: string | undefined, metadata: Record<string, unknown> = {}) =>
      at === undefined ? Effect.void : cp.recordGatewayEvent({ ...at, eventType, level, requestId, deploymentId, configHash, executionPath, metadata }).pipe(
        Effect.catchAll((e) => Effect.logWarning(`could not record gateway event ${eventType}: ${e.message}`)),
        Effect.asVoid
      )

    // Gate: fail closed. An unreadable security state deploys nothing (and leaves the gateway as
    // it is: nothing says to stop selling); control refusing our secret is its own reason.
    const security = yield* Effect.either(cp.getSecurityState)
    if (Either.isLeft(security)) {
      const denyReason: DenyReason = isUnauthorized(security.left) ? "control_unauthorized" : "security_state_unavailable"
      yield* Effect.logWarning(`reconcile ${requestId} denied: ${denyReason} (${security.left.code}: ${security.left.message})`)
      return { status: "denied", requestId, deploymentId: undefined, configHash: undefined, denyReason, routes: 0, message: security.left.message } satisfies ReconcileOutcome
    }
    // Our role credentials, as control sees them: a revoked or replaced credential stops us acting.
    const credentials = options.credentials
    if (credentials !== undefined) {
      for (const role of security.right.credentialRoles) {
        const mine = credentials[role.role]
        const denyReason: DenyReason | undefined = role.status === "revoked"
          ? "credential_role_revoked"
          : typeof role.fingerprint === "string" && role.fingerprint !== credentialFingerprint(Redacted.value(mine))
          ? "credential_role_mismatch"
          : undefined
        if (denyReason !== undefined) {
          yield* Effect.logWarning(`reconcile ${requestId} denied: ${denyReason} (${role.role})`)
          return { status: "denied", requestId, deploymentId: undefined, configHash: undefined, denyReason, routes: 0, message: `role ${role.role}` } satisfies ReconcileOutcome
        }
      }
    }
    // The global pause sells nothing: the paywalls are not read and the empty table is deployed.
    const paused = security.right.global.globalPause
    const killed = killedOwnersOf(security.right)

    const listed: ReadonlyArray<Paywall> = paused ? [] : yield* cp.listPaywallsForCompile(["active", "paused"]).pipe(
      Effect.mapError((e) => new ReconcileError({ code: "control_plane_unavailable", message: `listing paywalls: ${e.message}` }))
    )
    const isKilled = (p: Paywall) => killed.has(p.ownerId) || p.policy.killSwitch
    const paywalls: ReadonlyArray<Paywall> = listed.filter((p) => !isKilled(p))

    // The gateway's active deployment, before compiling: the routes it serves keep them in a
    // conflict (no one takes over a live route by editing their paywall), and it is what a
    // rollback goes back to. A failed lookup is the reconcile's failure after the pending intent.
    const active = yield* Effect.either(gateway.activeDeployment)
    const previous: DeploymentWithTable | null = Either.isRight(active) ? active.right : null
    const previousRoutes = verifiedTable(previous)
    if (previous?.routes !== undefined && previousRoutes === undefined) {
      yield* Effect.logWarning(`the gateway's table for ${previous.deploymentId} does not match its configHash ${previous.configHash}: not relied on`)
    }
    const compiled = Compiler.compile(paywalls, options.settings, { deployed: previousRoutes })

    // Each paywall left out gets its own failed intent, so control shows its owner why it is not
    // sold; the id is stable while the paywall and the reason are, so reruns update one record.
    const excluded = (paywall: Paywall, failureCode: "security_denied" | "compile_validation_failed", extra: Partial<DeploymentIntent>) => {
      const configHash = Compiler.snapshotHash([paywall])
      return recordIntent({
        deploymentId: `dep_paywall_${toHex(sha256(utf8(`${paywall.paywallId}\n${failureCode}\n${configHash}`))).slice(0, 24)}`,
        configHash,
        status: "failed",
        failureCode,
        paywallId: paywall.paywallId,
        ownerId: paywall.ownerId,
        ...extra
      })
    }
    for (const paywall of listed) {
      if (paywall.status === "active" && isKilled(paywall)) {
        yield* excluded(paywall, "security_denied", { metadata: { executionPath, denied: true, denyReasonCode: "owner_kill_switch_active" } })
      }
    }
    for (const paywallId of compiled.excluded) {
      const paywall = paywalls.find((p) => p.paywallId === paywallId)!
      const diagnostics = compiled.diagnostics.filter((d) => d.paywallId === paywallId)
      yield* excluded(paywall, "compile_validation_failed", {
        diagnostics,
        metadata: { executionPath, failure: { code: "compile_validation_failed", diagnostics: diagnostics.length } }
      })
    }

    const deploymentId = paused ? `dep_denied_${requestId}`.slice(0, 64) : deploymentIdOf(requestId)
    const configHash = compiled.configHash
    // Every paywall the table serves: each owner sees this deployment's outcome. Events go to the
    // first route's paywall. An empty table sells nothing: no paywall, nothing to probe but health,
    // and no rollback (it would sell again what was just withdrawn).
    const paywallIds = [...new Set(compiled.routes.map((r) => r.paywallId))].sort()
    const firstRoute = compiled.routes[0]
    const at = firstRoute === undefined ? undefined : { paywallId: firstRoute.paywallId, ownerId: firstRoute.ownerId }
    const progress = { healthOk: false, challengeOk: false, proxyOk: false }
    const metadata = (extra: Record<string, unknown> = {}) => ({
      executionPath,
      ...(paused ? { denied: true, denyReasonCode: "global_pause_active" } : {}),
      correlation: { requestId, deploymentId, configHash, paritySchemaVersion: "l402_run_artifact_v1", parityKeys: ["requestId", "deploymentId", "configHash"] },
      progress: { ...progress },
      ...extra
    })
    const intent = { deploymentId, configHash, ...at, paywallIds }
    yield* recordIntent({ ...intent, status: "pending", metadata: metadata() })

    let deployed = false
    let unchanged = false
    let proxyProbe: "passed" | "skipped" | undefined
    let imageDigest: string | undefined

    const steps = Effect.gen(function*() {
      if (Either.isLeft(active)) return yield* Effect.fail(new StepFailed({ code: "active_lookup_failed", message: active.left.message }))
      if (previous?.configHash === configHash) {
        unchanged = true
        imageDigest = previous.imageDigest
      } else {
        const applied = yield* gateway.deploy({ requestId, deploymentId, configHash, apertureYaml: compiled.apertureYaml, routes: compiled.routes }).pipe(
          Effect.mapError((e) => new StepFailed({ code: "deploy_apply_failed", message: e.message }))
        )
        deployed = true
        imageDigest = applied.imageDigest
      }

      const health = yield* gateway.probe(options.healthPath ?? "/healthz").pipe(Effect.mapError((e) => new StepFailed({ code: "health_check_failed", message: e.message })))
      if (health.status < 200 || health.status >= 300) return yield* Effect.fail(new StepFailed({ code: "health_check_failed", message: `health answered ${health.status}` }))
      progress.healthOk = true
      yield* event(at, "gateway_reconcile_health_ok", "info", deploymentId, configHash)
      if (compiled.routes.length === 0) return

      const target = probeTargetOf(compiled.routes)
      const challengeUrl = options.challengeUrl ?? target?.path
      if (challengeUrl === undefined) return yield* Effect.fail(new StepFailed({ code: "challenge_check_failed", message: "no challenge URL configured and no literal-host exact-path route to probe" }))
      const probeHeaders = options.challengeUrl === undefined ? target?.headers ?? {} : {}
      const challenged = yield* gateway.probe(challengeUrl, probeHeaders).pipe(Effect.mapError((e) => new StepFailed({ code: "challenge_check_failed", message: e.message })))
      if (challenged.status !== 402) return yield* Effect.fail(new StepFailed({ code: "challenge_check_failed", message: `challenge answered ${challenged.status}, not 402` }))
      const challenge = yield* L402.parseChallenge(challenged.headers["www-authenticate"] ?? "").pipe(
        Either.mapLeft((e) => new StepFailed({ code: "challenge_check_failed", message: `challenge: ${e.reason}` }))
      )
      const invoice = yield* Bolt11.decode(challenge.invoice).pipe(Either.mapLeft((e) => new StepFailed({ code: "challenge_check_failed", message: `challenge invoice: ${e.message}` })))
      const identifier = yield* L402.inspect(challenge.macaroon).pipe(Either.mapLeft((e) => new StepFailed({ code: "challenge_check_failed", message: `challenge token: ${e.reason}` })))
      if (identifier.paymentHash !== invoice.paymentHash) return yield* Effect.fail(new StepFailed({ code: "challenge_check_failed", message: "the token is not for the invoice" }))
      if (options.challengeUrl === undefined && target !== undefined && invoice.amountMsats !== BigInt(target.route.priceMsats)) {
        return yield* Effect.fail(new StepFailed({ code: "challenge_check_failed", message: `the invoice asks ${invoice.amountMsats} msat, the route costs ${target.route.priceMsats}` }))
      }
      progress.challengeOk = true
      yield* event(at, "gateway_reconcile_challenge_ok", "info", deploymentId, configHash)

      let authorization: string | undefined = options.proxyAuthorization === undefined ? undefined : Redacted.value(options.proxyAuthorization)
      if (authorization === undefined && options.proxyPayer !== undefined) {
        // Paying proves the paid path of a table once; an unchanged, verified table is not paid again.
        if (unchanged && options.forcePaidProbe !== true && (options.paidProbePassed?.(configHash) ?? true)) {
          proxyProbe = "skipped"
          yield* Effect.logInfo(`reconcile ${requestId}: ${configHash} unchanged and verified; the paid proxy probe is skipped`)
          return
        }
        const paid = yield* options.proxyPayer.payInvoice({
          invoice: challenge.invoice,
          maxAmountMsats: invoice.amountMsats ?? 0n,
          host: target?.route.host ?? new URL(challengeUrl, "http://gateway").host,
          requestId: `l402:${invoice.paymentHash}`
        }).pipe(Effect.mapError((e) => new StepFailed({ code: "proxy_check_failed", message: `paying the smoke challenge: ${e.code}: ${e.message}` })))
        authorization = L402.authorizationHeader(challenge.macaroon, paid.preimageHex)
      }
      if (authorization === undefined) return yield* Effect.fail(new StepFailed({ code: "proxy_check_failed", message: "no proxy credential: configure a smoke Authorization or a payer" }))
      const proxyUrl = options.proxyUrl ?? challengeUrl
      const proxyHeaders = options.proxyUrl === undefined ? probeHeaders : {}
      const proxied = yield* gateway.probe(proxyUrl, { ...proxyHeaders, authorization }).pipe(Effect.mapError((e) => new StepFailed({ code: "proxy_check_failed", message: e.message })))
      if (proxied.status < 200 || proxied.status >= 300) return yield* Effect.fail(new StepFailed({ code: "proxy_check_failed", message: `proxy answered ${proxied.status}` }))
      progress.proxyOk = true
      proxyProbe = "passed"
      yield* event(at, "gateway_reconcile_proxy_ok", "info", deploymentId, configHash)
    })

    const result = yield* Effect.either(steps)
    if (Either.isRight(result)) {
      const appliedAtMs = yield* now
      const probe = proxyProbe === undefined ? {} : { proxyProbe }
      yield* recordIntent({ ...intent, status: "applied", appliedAtMs, imageDigest, metadata: metadata({ unchanged, ...probe }) })
      if (paused) return { status: "denied", requestId, deploymentId, configHash, denyReason: "global_pause_active", routes: 0, unchanged } satisfies ReconcileOutcome
      return { status: "applied", requestId, deploymentId, configHash, routes: compiled.routes.length, unchanged, ...probe, diagnostics: compiled.diagnostics } satisfies ReconcileOutcome
    }

    const failure = result.left
    const failed = (code: FailureCode, message: string, extra: Record<string, unknown> = {}) =>
      Effect.gen(function*() {
        yield* recordIntent({ ...intent, status: "failed", failureCode: code, metadata: metadata({ failure: { code, message, ...extra } }) })
        yield* event(at, `gateway_reconcile_failed_${code}`, "error", deploymentId, configHash, { message, ...extra })
        const outcome: ReconcileOutcome = { status: "failed", requestId, deploymentId, configHash, failureCode: code, routes: compiled.routes.length, message }
        return outcome
      })
    // Never roll back under the pause, nor from an empty table (it withdrew everything).
    if (paused || compiled.routes.length === 0 || failurePlan({ deployed, previous }) === "fail" || previous === null) {
      return yield* failed(failure.code, failure.message)
    }
    // What may be served again is decided by the security state now, not at the start of the run.
    const fresh = yield* Effect.either(cp.getSecurityState)
    const plan = Either.isLeft(fresh)
      ? { kind: "withheld" as const, reason: `the security state is unreadable (${fresh.left.code})` }
      : rollbackPlan({
        paused: fresh.right.global.globalPause,
        killedOwners: new Set([...killed, ...killedOwnersOf(fresh.right)]),
        killedPaywalls: new Set(listed.filter(isKilled).map((p) => p.paywallId)),
        previousRoutes
      })
    if (plan.kind === "withheld") {
      yield* Effect.logWarning(`reconcile ${requestId}: no rollback to ${previous.deploymentId}: ${plan.reason}`)
      return yield* failed(failure.code, failure.message, { rollbackWithheld: plan.reason })
    }
    const rollbackId = rollbackIdOf(requestId)
    const table = plan.kind === "filtered" ? Compiler.routeTable(plan.routes, options.settings) : undefined
    const rolled = yield* Effect.either(
      table === undefined
        ? gateway.rollback({ requestId, deploymentId: previous.deploymentId })
        : gateway.deploy({ requestId, deploymentId: rollbackId, configHash: table.configHash, apertureYaml: table.apertureYaml, routes: table.routes })
    )
    if (Either.isLeft(rolled)) {
      yield* recordIntent({ ...intent, status: "failed", failureCode: "rollback_failed", metadata: metadata({ failure: { code: "rollback_failed", message: rolled.left.message, cause: failure.code } }) })
      yield* event(at, "gateway_reconcile_failed_rollback_failed", "error", deploymentId, configHash, { cause: failure.code })
      return { status: "failed", requestId, deploymentId, configHash, failureCode: "rollback_failed", routes: compiled.routes.length, message: rolled.left.message } satisfies ReconcileOutcome
    }
    const rollback = table === undefined
      ? { deploymentId: previous.deploymentId, configHash: previous.configHash, withheldOwnerIds: [] as ReadonlyArray<string> }
      : { deploymentId: rollbackId, configHash: table.configHash, withheldOwnerIds: plan.kind === "filtered" ? plan.withheldOwnerIds : [] }
    const filtered = plan.kind === "filtered"
      ? { filtered: { deploymentId: rollbackId, configHash: rollback.configHash, routes: plan.routes.length, withheldRoutes: plan.withheldRoutes, withheldOwnerIds: plan.withheldOwnerIds } }
      : {}
    yield* recordIntent({
      ...intent,
      status: "rolled_back",
      failureCode: failure.code,
      rolledBackFrom: deploymentId,
      metadata: metadata({ failure: { code: failure.code, message: failure.message }, rollback: { to: previous.deploymentId, configHash: previous.configHash, ...filtered } })
    })
    yield* event(at, "gateway_reconcile_rolled_back", "warn", deploymentId, configHash, { failureCode: failure.code, rolledBackTo: previous.deploymentId, ...filtered })
    return {
      status: "rolled_back",
      requestId,
      deploymentId,
      configHash,
      failureCode: failure.code,
      routes: compiled.routes.length,
      rollback,
      message: failure.message
    } satisfies ReconcileOutcome
  })
