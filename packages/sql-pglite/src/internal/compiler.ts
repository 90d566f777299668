// The Postgres dialect of @effect/sql's statement compiler: `$n` placeholders, double-quoted
// identifiers, `(values …) AS alias(cols)` record updates, and the PgJson custom fragment.
// It mirrors `makeCompiler` of @effect/sql-pg so that the same `sql\`…\`` templates, including
// `sql.insert`, `sql.update`, `sql.in` and identifiers, compile to identical SQL on PGlite and on
// node-pg; it is reimplemented here so this package does not depend on `pg`.
import * as Statement from "@effect/sql/Statement"

export interface PgliteJson extends Statement.Custom<"PgliteJson", unknown> {}

export const PgliteJson = Statement.custom<PgliteJson>("PgliteJson")

const escape = Statement.defaultEscape("\"")

export const makeCompiler = (transform?: (_: string) => string, transformJson = true): Statement.Compiler => {
  const transformValue = transformJson && transform ? Statement.defaultTransforms(transform).value : undefined
  return Statement.makeCompiler<PgliteJson>({
    dialect: "pg",
    placeholder: (index) => `$${index}`,
    onIdentifier: transform
      ? (value, withoutTransform) => (withoutTransform ? escape(value) : escape(transform(value)))
      : escape,
    onRecordUpdate: (placeholders, valueAlias, valueColumns, values, returning) => [
      `(values ${placeholders}) AS ${valueAlias}${valueColumns}${returning ? ` RETURNING ${returning[0]}` : ""}`,
      returning ? values.flat().concat(returning[1]) : values.flat()
    ],
    onCustom: (type, placeholder, withoutTransform) => [
      placeholder(undefined),
      [JSON.stringify(withoutTransform || transformValue === undefined ? type.i0 : transformValue(type.i0))]
    ]
  })
}
