// A protocol-faithful LND simulator for development and tests (LND, bitcoind and Aperture cannot
// be installed here). A `SimNetwork` holds simulated nodes that share one in-memory "Lightning
// network": each node has a secp256k1 identity key, a channel balance, real BOLT #11 invoices
// signed with its key and backed by real preimages, and the payments it sent. A payment to an
// invoice of another node of the network settles that invoice and hands its preimage back, so
// sha256(preimage) == payment_hash holds end to end (L402 tokens verify against it).
//
// What lnd does and the simulator keeps (LIGHTNING.md §3.4): one payment per hash (409 "payment
// is in transition" / "invoice is already paid"; a FAILED hash may be retried), 404 "payment
// isn't initiated" for an unknown hash, macaroon checks with lnd's permission names, and
// failure reasons from lnd's vocabulary. What it adds for tests: scripted outcomes per payment
// hash or for the next payments — settle after a delay, fail with a reason, hold in flight until
// released, break the HTTP connection mid-stream while the payment carries on, or refuse before
// starting. `router` (lndsim/http.ts) serves a node over lnd's REST API.
//
// State is in memory and mutated synchronously (JavaScript runs one callback at a time), so
// every transition below is atomic.
import { randomBytes } from "@noble/hashes/utils"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Bolt11 from "./Bolt11.js"
import { fromHex, toHex } from "./internal/bytes.js"
import type { FailureReason, PaymentStatus } from "./Lnd.js"
import { GrpcCode, isTerminal } from "./Lnd.js"
import * as Macaroon from "./Macaroon.js"

/** What happens to a payment the node is asked to send. */
export type Outcome =
  /** Route to the payee node of the network and settle its invoice (the default). */
  | { readonly _tag: "Settle"; readonly delayMs?: number | undefined; readonly feeMsat?: bigint | undefined }
  /** Fail with an lnd failure reason (after a delay). */
  | { readonly _tag: "Fail"; readonly reason: FailureReason; readonly delayMs?: number | undefined }
  /** Stay IN_FLIGHT until `node.resolve(hash, outcome)` (a hold invoice, a stuck HTLC). */
  | { readonly _tag: "Hold" }
  /** Break the client's HTTP connection mid-stream; the payment carries on with `then`. */
  | { readonly _tag: "Drop"; readonly then: Outcome }
  /** Refuse the send before any payment exists (an lnd error answer). */
  | { readonly _tag: "Reject"; readonly grpcCode: number; readonly message: string }

export const Outcome = {
  settle: (options?: { readonly delayMs?: number; readonly feeMsat?: bigint }): Outcome => ({ _tag: "Settle", ...options }),
  fail: (reason: FailureReason = "FAILURE_REASON_NO_ROUTE", options?: { readonly delayMs?: number }): Outcome => ({ _tag: "Fail", reason, ...options }),
  hold: (): Outcome => ({ _tag: "Hold" }),
  drop: (then: Outcome = { _tag: "Settle" }): Outcome => ({ _tag: "Drop", then }),
  reject: (grpcCode: number, message: string): Outcome => ({ _tag: "Reject", grpcCode, message })
}

export interface SimPayment {
  readonly paymentHash: string
  readonly paymentRequest: string
  readonly status: PaymentStatus
  readonly failureReason: FailureReason
  /** Hex; all zeros until SUCCEEDED. */
  readonly preimage: string
  readonly valueMsat: bigint
  readonly feeMsat: bigint
  readonly creationTimeNs: bigint
  readonly paymentIndex: number
}

export interface SimInvoice {
  readonly paymentHash: string
  readonly preimage: string
  readonly paymentAddr: string
  readonly paymentRequest: string
  readonly memo: string
  readonly descriptionHash: string | undefined
  readonly valueMsat: bigint
  readonly creationDate: number
  readonly expiry: number
  readonly cltvExpiry: number
  readonly state: "OPEN" | "SETTLED" | "CANCELED"
  readonly settleDate: number
  readonly amtPaidMsat: bigint
  readonly addIndex: number
  readonly settleIndex: number
}

/** lnd permission names ("entity:action"). */
export type Permission = `${"info" | "offchain" | "invoices" | "onchain" | "address" | "message" | "peers"}:${"read" | "write"}`

/** The macaroons lnd bakes by default and their permissions. */
export const ROLES: Readonly<Record<"admin" | "invoice" | "readonly", ReadonlyArray<Permission>>> = {
  admin: ["info:read", "info:write", "offchain:read", "offchain:write", "invoices:read", "invoices:write", "onchain:read", "onchain:write", "address:read", "address:write", "message:read", "message:write", "peers:read", "peers:write"],
  invoice: ["invoices:read", "invoices:write", "address:read", "address:write", "onchain:read"],
  readonly: ["info:read", "offchain:read", "invoices:read", "onchain:read", "address:read", "message:read", "peers:read"]
}
type Role = keyof typeof ROLES

export class SimError extends Error {
  constructor(readonly grpcCode: number, message: string) {
    super(message)
  }
}

const ZERO_PREIMAGE = "00".repeat(32)
const random32 = () => toHex(randomBytes(32))

export interface SendRequest {
  readonly paymentRequest: string
  readonly feeLimitMsat?: bigint | undefined
  readonly amtMsat?: bigint | undefined
  readonly allowSelfPayment?: boolean | undefined
}

export interface NodeOptions {
  readonly alias: string
  /** Initial channel balance (default 10 000 000 sat). */
  readonly balanceMsat?: bigint | undefined
  /** Hex node key (default: random). Fix it to keep the node id across restarts. */
  readonly privateKey?: string | undefined
  /** Hex macaroon root key (default: random). Fix it to keep macaroons valid across restarts. */
  readonly macaroonRootKey?: string | undefined
}

export class SimNode {
  readonly pubkey: string
  readonly macaroons: Readonly<Record<Role, string>>
  private balance: bigint
  private readonly rootKey: Uint8Array
  private readonly paymentsByHash = new Map<string, SimPayment>()
  private readonly invoicesByHash = new Map<string, SimInvoice>()
  private readonly listeners = new Set<(p: SimPayment) => void>()
  private readonly scripted = new Map<string, Outcome>()
  private readonly nextOutcomes: Array<Outcome> = []
  private readonly held = new Map<string, SendRequest>()
  private paymentIndex = 0
  private addIndex = 0
  private settleIndex = 0
  /** Sends that started a payment (lnd accepted and tried to route it). */
  sendAttempts = 0

  constructor(
    private readonly net: SimNetwork,
    readonly alias: string,
    readonly privateKey: string,
    options: NodeOptions
  ) {
    this.pubkey = Bolt11.publicKeyOf(privateKey)
    this.balance = options.balanceMsat ?? 10_000_000_000n
    this.rootKey = fromHex(options.macaroonRootKey ?? random32()) ?? randomBytes(32)
    const bake = (role: Role) =>
      Macaroon.toHexString(Macaroon.mint({ rootKey: this.rootKey, identifier: `lndsim:v1:${role}:${this.pubkey.slice(0, 16)}`, location: "lnd" }))
    this.macaroons = { admin: bake("admin"), invoice: bake("invoice"), readonly: bake("readonly") }
  }

  get network(): Bolt11.Network {
    return this.net.network
  }

  get balanceMsat(): bigint {
    return this.balance
  }

  /** undefined when the macaroon grants `permission`, else lnd's error message. */
  authorize(macaroonHex: string | undefined, permission: Permission): string | undefined {
    if (macaroonHex === undefined || macaroonHex === "") return "expected 1 macaroon, got 0"
    const parsed = Macaroon.fromHexString(macaroonHex)
    if (Either.isLeft(parsed)) return `cannot get macaroon: ${parsed.left.reason}`
    const mac = parsed.right
    if (!Macaroon.verifySignature(mac, this.rootKey)) return "verification failed: signature mismatch after caveat verification"
    // No caveat is understood here: fail closed rather than ignore a restriction.
    if (mac.caveats.length > 0) return "verification failed: unsupported caveat"
    const role = new TextDecoder().decode(mac.identifier).split(":")[2] as Role | undefined
    const granted = role !== undefined && Object.hasOwn(ROLES, role) ? ROLES[role] : []
    return granted.includes(permission) ? undefined : `permission denied: ${permission} not granted to the ${role ?? "unknown"} macaroon`
  }

  // --- scripting (tests) ---------------------------------------------------------------------

  /** The outcome of the payment of this hash (overrides the queue and the default). */
  script(paymentHash: string, outcome: Outcome): void {
    this.scripted.set(paymentHash, outcome)
  }

  /** Outcomes of the next payments, in order. */
  scriptNext(...outcomes: ReadonlyArray<Outcome>): void {
    this.nextOutcomes.push(...outcomes)
  }

  /** Finish a held payment. */
  resolve(paymentHash: string, outcome: Outcome): Effect.Effect<void> {
    return Effect.suspend(() => {
      const request = this.held.get(paymentHash)
      if (request === undefined) return Effect.void
      this.held.delete(paymentHash)
      return this.run(paymentHash, request, outcome)
    })
  }

  payments(): ReadonlyArray<SimPayment> {
    return [...this.paymentsByHash.values()].sort((a, b) => a.paymentIndex - b.paymentIndex)
  }

  payment(paymentHash: string): SimPayment | undefined {
    return this.paymentsByHash.get(paymentHash)
  }

  invoices(): ReadonlyArray<SimInvoice> {
    return [...this.invoicesByHash.values()].map((i) => this.current(i)).sort((a, b) => a.addIndex - b.addIndex)
  }

  invoice(paymentHash: string): SimInvoice | undefined {
    const i = this.invoicesByHash.get(paymentHash)
    return i === undefined ? undefined : this.current(i)
  }

  // --- invoices ------------------------------------------------------------------------------

  private current(invoice: SimInvoice): SimInvoice {
    // lnd cancels an open invoice once it expires.
    if (invoice.state === "OPEN" && Date.now() / 1000 >= invoice.creationDate + invoice.expiry) {
      const canceled = { ...invoice, state: "CANCELED" as const }
      this.invoicesByHash.set(invoice.paymentHash, canceled)
      return canceled
    }
    return invoice
  }

  addInvoice(input: {
    readonly valueMsat: bigint
    readonly memo?: string | undefined
    readonly expiry?: number | undefined
    readonly descriptionHash?: string | undefined
    readonly preimage?: string | undefined
  }): SimInvoice {
    if (input.valueMsat < 0n) throw new SimError(GrpcCode.invalidArgument, "amount must not be negative")
    const preimage = input.preimage ?? random32()
    if (fromHex(preimage)?.length !== 32) throw new SimError(GrpcCode.invalidArgument, "preimage must be 32 bytes")
    const paymentHash = Bolt11.paymentHashOf(preimage)
    if (this.invoicesByHash.has(paymentHash)) throw new SimError(GrpcCode.alreadyExists, "invoice with payment hash already exists")
    const creationDate = Math.floor(Date.now() / 1000)
    const expiry = input.expiry ?? 86_400
    const paymentAddr = random32()
    const memo = input.memo ?? ""
    const paymentRequest = Bolt11.encode({
      network: this.net.network,
      amountMsats: input.valueMsat === 0n ? undefined : input.valueMsat,
      timestamp: creationDate,
      paymentHash,
      paymentSecret: paymentAddr,
      ...(input.descriptionHash !== undefined ? { descriptionHash: input.descriptionHash } : { description: memo }),
      expirySeconds: expiry,
      minFinalCltvExpiry: 80,
      privateKey: this.privateKey
    })
    const invoice: SimInvoice = {
      paymentHash,
      preimage,
      paymentAddr,
      paymentRequest,
      memo,
      descriptionHash: input.descriptionHash,
      valueMsat: input.valueMsat,
      creationDate,
      expiry,
      cltvExpiry: 80,
      state: "OPEN",
      settleDate: 0,
      amtPaidMsat: 0n,
      addIndex: ++this.addIndex,
      settleIndex: 0
    }
    this.invoicesByHash.set(paymentHash, invoice)
    return invoice
  }

  /** Called by the network when a payer settles one of this node's invoices. */
  receive(paymentHash: string, amountMsat: bigint): { readonly preimage: string } | { readonly failure: FailureReason } {
    const found = this.invoicesByHash.get(paymentHash)
    if (found === undefined) return { failure: "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS" }
    const invoice = this.current(found)
    if (invoice.state !== "OPEN" || amountMsat < invoice.valueMsat) return { failure: "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS" }
    this.invoicesByHash.set(paymentHash, {
      ...invoice,
      state: "SETTLED",
      settleDate: Math.floor(Date.now() / 1000),
      amtPaidMsat: amountMsat,
      settleIndex: ++this.settleIndex
    })
    this.balance += amountMsat
    return { preimage: invoice.preimage }
  }

  // --- payments ------------------------------------------------------------------------------

  private update(payment: SimPayment): void {
    this.paymentsByHash.set(payment.paymentHash, payment)
    for (const listener of [...this.listeners]) listener(payment)
  }

  /** The payment's current state then each change, ending after a terminal status. */
  updates(paymentHash: string): Stream.Stream<SimPayment> {
    return Stream.asyncPush<SimPayment>((emit) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const listener = (p: SimPayment) => {
            if (p.paymentHash !== paymentHash) return
            emit.single(p)
            if (isTerminal(p.status)) emit.end()
          }
          const current = this.paymentsByHash.get(paymentHash)
          if (current !== undefined) {
            emit.single(current)
            if (isTerminal(current.status)) emit.end()
          } else {
            emit.end()
          }
          this.listeners.add(listener)
          return listener
        }),
        (listener) => Effect.sync(() => this.listeners.delete(listener))
      ), { bufferSize: "unbounded" })
  }

  /**
   * Validate and start a payment (`/v2/router/send`). Fails with a SimError when lnd would answer
   * an error; otherwise the payment exists (IN_FLIGHT) when this returns, and `drop` says whether
   * the HTTP layer must break the client's connection.
   */
  send(request: SendRequest): Effect.Effect<{ readonly paymentHash: string; readonly drop: boolean }, SimError> {
    return Effect.suspend(() => {
      const decoded = Bolt11.decode(request.paymentRequest)
      if (Either.isLeft(decoded)) return Effect.fail(new SimError(GrpcCode.invalidArgument, `invalid payment request: ${decoded.left.reason}`))
      const invoice = decoded.right
      if (invoice.network !== this.net.network) {
        return Effect.fail(new SimError(GrpcCode.invalidArgument, `invoice not for current active network '${this.net.network}'`))
      }
      if (Date.now() / 1000 >= invoice.expiresAt) return Effect.fail(new SimError(GrpcCode.invalidArgument, "invoice expired"))
      const amount = invoice.amountMsats ?? request.amtMsat
      if (amount === undefined || amount <= 0n) {
        return Effect.fail(new SimError(GrpcCode.invalidArgument, "amount must be specified when paying a zero amount invoice"))
      }
      const existing = this.paymentsByHash.get(invoice.paymentHash)
      if (existing?.status === "SUCCEEDED") return Effect.fail(new SimError(GrpcCode.alreadyExists, "invoice is already paid"))
      if (existing !== undefined && existing.status !== "FAILED") return Effect.fail(new SimError(GrpcCode.alreadyExists, "payment is in transition"))

      const outcome = this.scripted.get(invoice.paymentHash) ?? this.nextOutcomes.shift() ?? this.net.defaultOutcome
      this.scripted.delete(invoice.paymentHash)
      if (outcome._tag === "Reject") return Effect.fail(new SimError(outcome.grpcCode, outcome.message))

      this.sendAttempts++
      this.update({
        paymentHash: invoice.paymentHash,
        paymentRequest: invoice.paymentRequest,
        status: "IN_FLIGHT",
        failureReason: "FAILURE_REASON_NONE",
        preimage: ZERO_PREIMAGE,
        valueMsat: amount,
        feeMsat: 0n,
        creationTimeNs: BigInt(Date.now()) * 1_000_000n,
        paymentIndex: ++this.paymentIndex
      })
      const drop = outcome._tag === "Drop"
      const effective = outcome._tag === "Drop" ? outcome.then : outcome
      this.net.fork(this.run(invoice.paymentHash, { ...request, amtMsat: amount }, effective))
      return Effect.succeed({ paymentHash: invoice.paymentHash, drop })
    })
  }

  private run(paymentHash: string, request: SendRequest, outcome: Outcome): Effect.Effect<void> {
    const finish = (change: Partial<SimPayment>) =>
      Effect.sync(() => {
        const p = this.paymentsByHash.get(paymentHash)
        if (p !== undefined && !isTerminal(p.status)) this.update({ ...p, ...change })
      })
    switch (outcome._tag) {
      case "Hold":
        return Effect.sync(() => void this.held.set(paymentHash, request))
      case "Fail":
        return Effect.sleep(Duration.millis(outcome.delayMs ?? 0)).pipe(
          Effect.zipRight(finish({ status: "FAILED", failureReason: outcome.reason }))
        )
      case "Drop":
        return this.run(paymentHash, request, outcome.then)
      case "Reject":
        return finish({ status: "FAILED", failureReason: "FAILURE_REASON_ERROR" })
      case "Settle":
        return Effect.sleep(Duration.millis(outcome.delayMs ?? 0)).pipe(
          Effect.zipRight(Effect.suspend(() => {
            const p = this.paymentsByHash.get(paymentHash)
            if (p === undefined || isTerminal(p.status)) return Effect.void
            const result = this.net.route(this, p, request, outcome.feeMsat ?? this.net.feeMsat)
            return "failure" in result
              ? finish({ status: "FAILED", failureReason: result.failure })
              : finish({ status: "SUCCEEDED", preimage: result.preimage, feeMsat: result.feeMsat })
          }))
        )
    }
  }

  /** Called by the network: take amount + fee from this node's balance. */
  debit(amountMsat: bigint): boolean {
    if (this.balance < amountMsat) return false
    this.balance -= amountMsat
    return true
  }
}

export interface NetworkOptions {
  /** The chain every node of this network is on (default regtest). */
  readonly network?: Bolt11.Network | undefined
  /** Routing fee charged on every payment (default 0: direct channels). */
  readonly feeMsat?: bigint | undefined
  /** What a payment does when nothing is scripted (default: settle). */
  readonly defaultOutcome?: Outcome | undefined
}

export class SimNetwork {
  private readonly nodes = new Map<string, SimNode>()
  readonly network: Bolt11.Network
  feeMsat: bigint
  defaultOutcome: Outcome

  constructor(
    readonly fork: (effect: Effect.Effect<void>) => void,
    options: NetworkOptions
  ) {
    this.network = options.network ?? "regtest"
    this.feeMsat = options.feeMsat ?? 0n
    this.defaultOutcome = options.defaultOutcome ?? Outcome.settle()
  }

  addNode(options: NodeOptions): SimNode {
    const node = new SimNode(this, options.alias, options.privateKey ?? Bolt11.randomPrivateKey(), options)
    if (this.nodes.has(node.pubkey)) throw new Error(`node ${node.pubkey} already exists`)
    this.nodes.set(node.pubkey, node)
    return node
  }

  node(pubkey: string): SimNode | undefined {
    return this.nodes.get(pubkey)
  }

  /** Move a payment from payer to the payee's invoice, atomically. */
  route(payer: SimNode, payment: SimPayment, request: SendRequest, feeMsat: bigint):
    | { readonly preimage: string; readonly feeMsat: bigint }
    | { readonly failure: FailureReason } {
    const invoice = Either.getOrUndefined(Bolt11.decode(payment.paymentRequest))
    const payee = invoice === undefined ? undefined : this.nodes.get(invoice.payee)
    if (payee === undefined) return { failure: "FAILURE_REASON_NO_ROUTE" }
    if (payee === payer && request.allowSelfPayment !== true) return { failure: "FAILURE_REASON_NO_ROUTE" }
    if (request.feeLimitMsat !== undefined && feeMsat > request.feeLimitMsat) return { failure: "FAILURE_REASON_NO_ROUTE" }
    if (payer.balanceMsat < payment.valueMsat + feeMsat) return { failure: "FAILURE_REASON_INSUFFICIENT_BALANCE" }
    const received = payee.receive(payment.paymentHash, payment.valueMsat)
    if ("failure" in received) return received
    payer.debit(payment.valueMsat + feeMsat)
    return { preimage: received.preimage, feeMsat }
  }
}

/** A network whose background payment fibers live as long as the scope. */
export const makeNetwork = (options: NetworkOptions = {}): Effect.Effect<SimNetwork, never, Scope.Scope> =>
  Effect.map(FiberSet.makeRuntime<never, void, never>(), (runFork) => new SimNetwork((effect) => void runFork(effect), options))

/** A 32-byte hex preimage and its payment hash, for hand-made invoices in tests. */
export const newPreimage = (): { readonly preimage: string; readonly paymentHash: string } => {
  const preimage = random32()
  return { preimage, paymentHash: Bolt11.paymentHashOf(preimage) }
}

/** Serve a node over lnd's REST API. */
export { router } from "./lndsim/http.js"
