// control's ingest payload of the invoice lifecycle (LightningOpsRpc.InvoiceLifecyclePayload, the
// storage's InvoiceInput) is openagents.lightning.v1.InvoiceLifecycleIngestRequest — the one
// message lightning-ops also sends (its test/ProtoContract.test.ts holds its side to it). Same
// JSON field names, same optionality, same status values. Also: the secret minimum is the shared one.
import * as LightningOpsRpc from "@openagents/control-core/lightning-ops-rpc"
import { InvoiceLifecycleIngestRequestSchema, InvoiceLifecycleStatusSchema, MIN_OPS_SECRET_LENGTH } from "@openagents/proto/lightning/v1"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { describe, expect, it } from "vitest"

const protoShape = (fields: ReadonlyArray<{ readonly jsonName: string; readonly proto: { readonly proto3Optional: boolean } }>) =>
  Object.fromEntries(fields.map((f) => [f.jsonName, f.proto.proto3Optional ? "optional" : "required"]))

const schemaShape = (schema: Schema.Schema.AnyNoContext) => {
  const ast = Schema.encodedSchema(schema).ast
  if (!SchemaAST.isTypeLiteral(ast)) throw new Error("not a struct")
  return Object.fromEntries(ast.propertySignatures.map((p) => [String(p.name), p.isOptional ? "optional" : "required"]))
}

describe("proto contract", () => {
  it("InvoiceLifecyclePayload is InvoiceLifecycleIngestRequest", () => {
    expect(schemaShape(LightningOpsRpc.InvoiceLifecyclePayload)).toEqual(protoShape(InvoiceLifecycleIngestRequestSchema.fields))
    const statuses = InvoiceLifecycleStatusSchema.values.filter((v) => v.number !== 0).map((v) => v.name.replace("INVOICE_LIFECYCLE_STATUS_", "").toLowerCase())
    expect([...LightningOpsRpc.InvoiceStatus.literals].sort()).toEqual(statuses.sort())
  })

  it("the operations secret minimum is the contract's", () => {
    expect(LightningOpsRpc.MIN_OPS_SECRET_LENGTH).toBe(MIN_OPS_SECRET_LENGTH)
    expect(MIN_OPS_SECRET_LENGTH).toBe(32)
  })
})
