// The README's example, run as written: the README must contain test/readme-example.ts verbatim.
import { Effect } from "effect"
import { L402 } from "@openagents/lightning"
import { readFileSync } from "node:fs"
import { expect, it } from "vitest"
import { program } from "./readme-example.js"

it("README example: issue an invoice on the simulator, decode it, mint and verify an L402 token", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
  const example = readFileSync(new URL("./readme-example.ts", import.meta.url), "utf8")
  expect(readme).toContain(example.replace("export const program", "const program").trim())
  expect(await Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(L402.memorySecrets)))).toEqual([21000n, true, "services=weather:0", false])
})
