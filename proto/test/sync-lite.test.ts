// The lite codec must agree with the generated code (the schema source of truth): same fields,
// and identical bytes-to-object and object-to-bytes behaviour for random messages.
import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf"
import * as Gen from "@openagents/proto/sync/v1"
import * as Lite from "@openagents/proto/sync/lite"
import fc from "fast-check"
import { describe, expect, it } from "vitest"

const pairs: Array<[string, DescMessage, any]> = [
  ["KhalaFrame", Gen.KhalaFrameSchema, Lite.KhalaFrame],
  ["TopicCursor", Gen.TopicCursorSchema, Lite.TopicCursor],
  ["Hello", Gen.HelloSchema, Lite.Hello],
  ["ConnectionLimits", Gen.ConnectionLimitsSchema, Lite.ConnectionLimits],
  ["Welcome", Gen.WelcomeSchema, Lite.Welcome],
  ["Subscribe", Gen.SubscribeSchema, Lite.Subscribe],
  ["Subscribed", Gen.SubscribedSchema, Lite.Subscribed],
  ["Unsubscribe", Gen.UnsubscribeSchema, Lite.Unsubscribe],
  ["Unsubscribed", Gen.UnsubscribedSchema, Lite.Unsubscribed],
  ["Update", Gen.UpdateSchema, Lite.Update],
  ["UpdateBatch", Gen.UpdateBatchSchema, Lite.UpdateBatch],
  ["Heartbeat", Gen.HeartbeatSchema, Lite.Heartbeat],
  ["RefreshToken", Gen.RefreshTokenSchema, Lite.RefreshToken],
  ["TokenRefreshed", Gen.TokenRefreshedSchema, Lite.TokenRefreshed],
  ["StaleTopic", Gen.StaleTopicSchema, Lite.StaleTopic],
  ["SnapshotSource", Gen.SnapshotSourceSchema, Lite.SnapshotSource],
  ["SnapshotPlanTopic", Gen.SnapshotPlanTopicSchema, Lite.SnapshotPlanTopic],
  ["SnapshotPlan", Gen.SnapshotPlanSchema, Lite.SnapshotPlan],
  ["StaleCursorDetails", Gen.StaleCursorDetailsSchema, Lite.StaleCursorDetails],
  ["SlowConsumerDetails", Gen.SlowConsumerDetailsSchema, Lite.SlowConsumerDetails],
  ["UpgradeRequiredDetails", Gen.UpgradeRequiredDetailsSchema, Lite.UpgradeRequiredDetails],
  ["ReauthRequiredDetails", Gen.ReauthRequiredDetailsSchema, Lite.ReauthRequiredDetails],
  ["ForbiddenTopicDetails", Gen.ForbiddenTopicDetailsSchema, Lite.ForbiddenTopicDetails],
  ["UnauthorizedDetails", Gen.UnauthorizedDetailsSchema, Lite.UnauthorizedDetails],
  ["PayloadTooLargeDetails", Gen.PayloadTooLargeDetailsSchema, Lite.PayloadTooLargeDetails],
  ["SyncError", Gen.SyncErrorSchema, Lite.SyncError],
  ["SnapshotDocument", Gen.SnapshotDocumentSchema, Lite.SnapshotDocument],
  ["SnapshotResponse", Gen.SnapshotResponseSchema, Lite.SnapshotResponse]
]

const liteKind = (field: DescMessage["fields"][number]): string => {
  if (field.fieldKind === "message") return `message:${field.message.typeName.split(".").pop()}`
  if (field.fieldKind === "enum") return "enum"
  if (field.fieldKind === "list") {
    return field.listKind === "message" ? `message:${field.message.typeName.split(".").pop()}` : field.listKind === "enum" ? "enum" : scalarName(field.scalar)
  }
  return scalarName(field.scalar)
}
const scalarName = (scalar: number | undefined) => ({ 9: "string", 12: "bytes", 8: "bool", 13: "uint32", 4: "uint64", 3: "int64" } as Record<number, string>)[scalar ?? -1] ?? `scalar${scalar}`

const liteFields = (desc: any) =>
  desc.fields.map((x: any) => {
    const kind = typeof x.type === "function" ? `message:${nameOf(x.type())}` : x.type
    return [x.no, x.name, kind, !!x.repeated, x.oneof ?? null]
  })
const nameOf = (desc: any) => pairs.find(([, , lite]) => lite === desc)![0]

/** A random value for a lite descriptor, in the generated code's shape. */
const arbitrary = (desc: any, depth = 0): fc.Arbitrary<Record<string, unknown>> => {
  const scalar = (type: string): fc.Arbitrary<unknown> =>
    type === "string" ? fc.string({ unit: "binary", maxLength: 12 })
      : type === "bytes" ? fc.uint8Array({ maxLength: 12 })
      : type === "bool" ? fc.boolean()
      : type === "uint32" ? fc.nat({ max: 0xffffffff })
      : type === "enum" ? fc.nat({ max: 20 })
      : type === "uint64" ? fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })
      : fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
  const parts: Record<string, fc.Arbitrary<unknown>> = {}
  const oneofs: Array<any> = []
  for (const field of desc.fields) {
    if (field.oneof) {
      oneofs.push(field)
      continue
    }
    const item = typeof field.type === "function" ? (depth > 3 ? fc.constant(undefined) : arbitrary(field.type(), depth + 1)) : scalar(field.type)
    parts[field.name] = field.repeated ? fc.array(item.filter((v) => v !== undefined), { maxLength: 3 }) : typeof field.type === "function" ? fc.option(item, { nil: undefined }) : item
  }
  if (oneofs.length > 0) {
    parts["details"] = fc.oneof(
      fc.constant({ case: undefined }),
      ...oneofs.map((o) => arbitrary(o.type(), depth + 1).map((value) => ({ case: o.name, value })))
    )
  }
  return fc.record(parts) as fc.Arbitrary<Record<string, unknown>>
}

/** Strip the generated code's $typeName and undefined message fields, for comparison. */
const plain = (v: unknown): unknown => {
  if (v instanceof Uint8Array) return [...v]
  if (Array.isArray(v)) return v.map(plain)
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).filter(([k, x]) => k !== "$typeName" && x !== undefined).map(([k, x]) => [k, plain(x)]))
  }
  return v
}

describe("sync lite codec", () => {
  for (const [name, gen, lite] of pairs) {
    it(`${name}: has exactly the generated message's fields`, () => {
      const generated = gen.fields.map((x) => [x.number, x.localName, liteKind(x), x.fieldKind === "list", x.oneof?.localName ?? null])
      expect(liteFields(lite)).toEqual(generated)
    })

    it(`${name}: agrees with the generated code in both directions for random messages`, () => {
      fc.assert(
        fc.property(arbitrary(lite), (value) => {
          const viaLite = Lite.encode(lite, value)
          const decodedByGen = fromBinary(gen, viaLite)
          const viaGen = toBinary(gen, create(gen, value as never))
          expect(plain(Lite.decode(lite, viaGen))).toEqual(plain(decodedByGen))
          expect(plain(Lite.decode(lite, viaLite))).toEqual(plain(decodedByGen))
        }),
        { numRuns: 150 }
      )
    })
  }

  it("skips unknown fields and reports truncated input as DecodeError", () => {
    const known = toBinary(Gen.TopicCursorSchema, create(Gen.TopicCursorSchema, { topic: "t", watermark: 5n }))
    const withUnknown = new Uint8Array([...known, 0x78, 0x07, 0x82, 0x01, 0x02, 0x41, 0x42]) // field 15 varint, field 16 bytes
    expect(Lite.decode(Lite.TopicCursor, withUnknown)).toEqual({ topic: "t", watermark: 5n, epoch: "" })
    expect(() => Lite.decode(Lite.TopicCursor, known.subarray(0, known.length - 1))).toThrow(Lite.DecodeError)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          Lite.decode(Lite.SyncError, bytes)
        } catch (e) {
          expect(e).toBeInstanceOf(Error)
        }
      }),
      { numRuns: 2000 }
    )
  })
})
