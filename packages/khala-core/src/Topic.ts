// Topics and topic classes. Topics are partitioned by owner (ADR 0004): a topic names its class
// and the one owner whose documents it carries, so fanout never filters per document and a
// token's grants are checked once, at subscribe, against the class (scope) and the owner.
//
//   <class>:<partition>:<id>        runtime.run_summaries:user:42
//                                   runtime.codex_worker_events:worker:w_7f3a
//
// The class fixes the partition kind, the retention horizon, the replay budget, the payload cap,
// the QoS tier and whether a snapshot exists. `parse` is the only way a string becomes a Topic:
// anything outside the scheme is refused with InvalidTopicError.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { InvalidTopicError } from "./Errors.js"

export const MAX_TOPIC_LENGTH = 160
/** Server clamps, whatever a client or a caller asks (DESIGN.md §4). */
export const MAX_BATCH_UPDATES = 200
export const MAX_BATCH_BYTES = 2 * 1024 * 1024
export const MAX_UPDATE_PAYLOAD_BYTES = 256 * 1024

export type QosTier = "hot" | "warm" | "cold"
export type PartitionKind = "user" | "worker" | "run" | "org"

export interface TopicClass {
  /** The class name, which is also the token scope that grants it ("runtime.run_summaries"). */
  readonly name: string
  readonly partition: PartitionKind
  readonly kind: "durable_summary" | "high_churn_events" | "ephemeral_notifications"
  readonly qosTier: QosTier
  /** A resume point further behind the head than this is stale (replay_budget_exceeded). */
  readonly replayBudgetEvents: number
  /** Journal rows older than this are pruned (in watermark order). */
  readonly retentionSeconds: number
  /** Largest canonical-JSON payload of one document, at most MAX_UPDATE_PAYLOAD_BYTES. */
  readonly maxPayloadBytes: number
  /** "pointer": journal rows carry no payload; clients hydrate over HTTP (hydration_required). */
  readonly payloadMode: "inline" | "pointer"
  /** The read-model table documents are upserted into; none for pure event streams. */
  readonly readModelTable: string | undefined
  /** Snapshot support (recovery from stale cursors); requires a read model. */
  readonly snapshot: { readonly cadenceSeconds: number } | undefined
}

const KiB = 1024

/** The classes of the OpenAgents runtime, with the upstream (C3) policy defaults. */
export const defaultClasses: ReadonlyArray<TopicClass> = [
  {
    name: "runtime.run_summaries",
    partition: "user",
    kind: "durable_summary",
    qosTier: "warm",
    replayBudgetEvents: 20_000,
    retentionSeconds: 604_800,
    maxPayloadBytes: 256 * KiB,
    payloadMode: "inline",
    readModelTable: "sync_run_summaries",
    snapshot: { cadenceSeconds: 300 }
  },
  {
    name: "runtime.codex_worker_summaries",
    partition: "user",
    kind: "durable_summary",
    qosTier: "warm",
    replayBudgetEvents: 10_000,
    retentionSeconds: 259_200,
    maxPayloadBytes: 256 * KiB,
    payloadMode: "inline",
    readModelTable: "sync_codex_worker_summaries",
    snapshot: { cadenceSeconds: 120 }
  },
  {
    name: "runtime.codex_worker_events",
    partition: "worker",
    kind: "high_churn_events",
    qosTier: "hot",
    replayBudgetEvents: 3_000,
    retentionSeconds: 86_400,
    maxPayloadBytes: 128 * KiB,
    payloadMode: "inline",
    readModelTable: undefined,
    snapshot: undefined
  },
  {
    name: "runtime.notifications",
    partition: "user",
    kind: "ephemeral_notifications",
    qosTier: "cold",
    replayBudgetEvents: 500,
    retentionSeconds: 43_200,
    maxPayloadBytes: 64 * KiB,
    payloadMode: "inline",
    readModelTable: "sync_documents",
    snapshot: { cadenceSeconds: 300 }
  }
]

export interface Topic {
  readonly topic: string
  readonly topicClass: TopicClass
  readonly partition: PartitionKind
  /** The owner id within the partition ("42" for user:42). */
  readonly owner: string
}

const CLASS_NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/
const OWNER_ID = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/
const TABLE_NAME = /^[a-z][a-z0-9_]{0,62}$/

/** The registry of topic classes in force; defaults to `defaultClasses`. */
export class TopicClasses extends Context.Reference<TopicClasses>()("@openagents/khala-core/TopicClasses", {
  defaultValue: () => makeRegistry(defaultClasses)
}) {}

export interface Registry {
  readonly classes: ReadonlyArray<TopicClass>
  readonly get: (name: string) => TopicClass | undefined
  readonly parse: (topic: string) => Topic | InvalidTopicError
}

/** Validate a set of classes and build the registry. Throws on a malformed definition (a defect). */
export const makeRegistry = (classes: ReadonlyArray<TopicClass>): Registry => {
  const byName = new Map<string, TopicClass>()
  for (const c of classes) {
    const problem = !CLASS_NAME.test(c.name)
      ? "name must be dotted lower-case words"
      : byName.has(c.name)
      ? "defined twice"
      : !(Number.isSafeInteger(c.replayBudgetEvents) && c.replayBudgetEvents > 0)
      ? "replayBudgetEvents must be a positive integer"
      : !(Number.isSafeInteger(c.retentionSeconds) && c.retentionSeconds > 0)
      ? "retentionSeconds must be a positive integer"
      : !(Number.isSafeInteger(c.maxPayloadBytes) && c.maxPayloadBytes > 0 && c.maxPayloadBytes <= MAX_UPDATE_PAYLOAD_BYTES)
      ? `maxPayloadBytes must be in 1..${MAX_UPDATE_PAYLOAD_BYTES}`
      : c.readModelTable !== undefined && !TABLE_NAME.test(c.readModelTable)
      ? "readModelTable must be a lower-case SQL identifier"
      : c.snapshot !== undefined && c.readModelTable === undefined
      ? "a snapshot needs a read model"
      : undefined
    if (problem) throw new Error(`topic class ${JSON.stringify(c.name)}: ${problem}`)
    byName.set(c.name, c)
  }
  const parse = (topic: string): Topic | InvalidTopicError => {
    const fail = (reason: string) => new InvalidTopicError({ topic, reason })
    if (typeof topic !== "string" || topic.length === 0) return fail("empty")
    if (topic.length > MAX_TOPIC_LENGTH) return fail(`longer than ${MAX_TOPIC_LENGTH} characters`)
    const first = topic.indexOf(":")
    const second = first < 0 ? -1 : topic.indexOf(":", first + 1)
    if (second < 0) return fail("expected <class>:<partition>:<id>")
    const topicClass = byName.get(topic.slice(0, first))
    if (topicClass === undefined) return fail(`unknown topic class ${JSON.stringify(topic.slice(0, first))}`)
    const partition = topic.slice(first + 1, second)
    if (partition !== topicClass.partition) return fail(`class ${topicClass.name} is partitioned by ${topicClass.partition}, not ${JSON.stringify(partition)}`)
    const owner = topic.slice(second + 1)
    if (!OWNER_ID.test(owner)) return fail("the id must be 1..128 characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit")
    return { topic, topicClass, partition: topicClass.partition, owner }
  }
  return { classes: [...byName.values()], get: (name) => byName.get(name), parse }
}

/** Build a topic string from its parts (validated). */
export const make = (className: string, owner: string): Effect.Effect<Topic, InvalidTopicError> =>
  Effect.flatMap(TopicClasses, (registry) => {
    const c = registry.get(className)
    return c === undefined
      ? Effect.fail(new InvalidTopicError({ topic: `${className}:?:${owner}`, reason: `unknown topic class ${JSON.stringify(className)}` }))
      : fromResult(registry.parse(`${c.name}:${c.partition}:${owner}`))
  })

/** Parse a topic string against the registry in force. */
export const parse = (topic: string): Effect.Effect<Topic, InvalidTopicError> =>
  Effect.flatMap(TopicClasses, (registry) => fromResult(registry.parse(topic)))

const fromResult = (result: Topic | InvalidTopicError): Effect.Effect<Topic, InvalidTopicError> =>
  result instanceof InvalidTopicError ? Effect.fail(result) : Effect.succeed(result)

/** Provide a registry of custom classes (replacing the defaults). */
export const withClasses = (classes: ReadonlyArray<TopicClass>) => Effect.provideService(TopicClasses, makeRegistry(classes))
