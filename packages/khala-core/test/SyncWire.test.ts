// The hand-written update batch encoder against the generated messages: for any batch, its bytes
// are exactly protobuf-es's `toBinary` of the KhalaFrame whose payload is `toBinary` of the
// UpdateBatch — whether the event carries its payload's UTF-8 or only the text.
import { create, toBinary } from "@bufbuild/protobuf"
import { type Storage, SyncWire } from "@openagents/khala-core"
import { FrameKind, KhalaFrameSchema, UpdateBatchSchema } from "@openagents/proto/sync/v1"
import fc from "fast-check"
import { describe, expect, it } from "vitest"

const reference = (topic: string, events: ReadonlyArray<Storage.JournalEvent>, replayComplete: boolean, head: bigint, epoch: string) =>
  toBinary(
    KhalaFrameSchema,
    create(KhalaFrameSchema, {
      schemaVersion: SyncWire.SCHEMA_VERSION,
      topic,
      seq: events.at(-1)?.watermark ?? 0n,
      kind: FrameKind.UPDATE_BATCH,
      payload: toBinary(
        UpdateBatchSchema,
        create(UpdateBatchSchema, {
          updates: events.map((e) => ({
            topic: e.topic,
            docKey: e.docKey,
            docVersion: e.docVersion,
            payload: e.payload === null ? new Uint8Array() : new TextEncoder().encode(e.payload),
            watermark: e.watermark,
            payloadHash: e.payloadHash ?? new Uint8Array(),
            hydrationRequired: e.payload === null
          })),
          replayComplete,
          headWatermarks: [{ topic, watermark: head, epoch }]
        })
      )
    })
  )

// Small values, varint length boundaries and the whole uint64 range.
const u64 = fc.oneof(
  fc.constantFrom(0n, 1n, 127n, 128n, 16_383n, 16_384n, 2n ** 28n - 1n, 2n ** 28n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })
)
// ASCII (the usual case, written from char codes) and any code points, lone surrogates included.
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 20 }), fc.string({ unit: "grapheme", maxLength: 10 }))
const payload = fc.oneof(fc.constant(null), text, fc.string({ minLength: 100, maxLength: 3000 }))

const batch = fc.record({
  topic: text,
  replayComplete: fc.boolean(),
  head: u64,
  epoch: text,
  events: fc.array(
    fc.record({
      otherTopic: fc.option(text, { nil: undefined }),
      docKey: text,
      docVersion: u64,
      payload,
      withUtf8: fc.boolean(),
      watermark: u64,
      payloadHash: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null })
    }),
    { maxLength: 6 }
  )
})

describe("SyncWire.updateBatch (binary)", () => {
  it("is byte-identical to protobuf-es toBinary of the generated messages", () => {
    fc.assert(
      fc.property(batch, ({ epoch, events, head, replayComplete, topic }) => {
        const journal: Array<Storage.JournalEvent> = events.map((e) => ({
          topic: e.otherTopic ?? topic,
          watermark: e.watermark,
          docKey: e.docKey,
          docVersion: e.docVersion,
          payload: e.payload,
          ...(e.withUtf8 && e.payload !== null ? { payloadUtf8: new TextEncoder().encode(e.payload) } : {}),
          payloadHash: e.payloadHash,
          payloadBytes: 0,
          insertedAt: new Date(0)
        }))
        const ours = SyncWire.updateBatch("binary", topic, journal, replayComplete, head, epoch)
        expect(ours).toBeInstanceOf(Uint8Array)
        expect(Buffer.from(ours as Uint8Array).toString("hex")).toBe(Buffer.from(reference(topic, journal, replayComplete, head, epoch)).toString("hex"))
      }),
      { numRuns: 2000 }
    )
  })

  it("decodes back to the events", () => {
    const event: Storage.JournalEvent = {
      topic: "t", watermark: 7n, docKey: "k", docVersion: 3n, payload: `{"a":"é"}`, payloadHash: new Uint8Array([1, 2]), payloadBytes: 10, insertedAt: new Date(0)
    }
    const frame = SyncWire.decodeServerFrame(SyncWire.updateBatch("binary", "t", [event], true, 9n, "ep"))
    expect(frame.kind).toBe(FrameKind.UPDATE_BATCH)
    expect(frame.seq).toBe(7n)
    expect(frame.message.replayComplete).toBe(true)
    expect(frame.message.headWatermarks[0]).toMatchObject({ topic: "t", watermark: 9n, epoch: "ep" })
    expect(frame.message.updates[0]).toMatchObject({ topic: "t", docKey: "k", docVersion: 3n, watermark: 7n, hydrationRequired: false })
    expect(new TextDecoder().decode(frame.message.updates[0].payload)).toBe(`{"a":"é"}`)
  })
})
