// The invoice lifecycle is ONE message, openagents.lightning.v1.InvoiceLifecycleIngestRequest:
// lightning's ControlPlane.InvoiceLifecycle (what the gateway journals and lightning-ops sends)
// must have exactly its fields (JSON names), with the same optionality and status values.
// control-core holds its ingest payload to the same message (its test/ProtoContract.test.ts).
import { ControlPlane } from "@openagents/lightning"
import { InvoiceLifecycleIngestRequestSchema, InvoiceLifecycleStatusSchema } from "@openagents/proto/lightning/v1"
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

const protoStatuses = InvoiceLifecycleStatusSchema.values.filter((v) => v.number !== 0).map((v) => v.name.replace("INVOICE_LIFECYCLE_STATUS_", "").toLowerCase())

describe("proto contract", () => {
  it("ControlPlane.InvoiceLifecycle is InvoiceLifecycleIngestRequest", () => {
    expect(schemaShape(ControlPlane.InvoiceLifecycle)).toEqual(protoShape(InvoiceLifecycleIngestRequestSchema.fields))
    expect([...ControlPlane.InvoiceStatus.literals].sort()).toEqual(protoStatuses.sort())
  })
})
