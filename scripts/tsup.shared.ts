// Shared tsup settings: every published package builds ESM + CJS + .d.ts from its entry points.
import { defineConfig } from "tsup"

export const packageConfig = (entry: ReadonlyArray<string>) =>
  defineConfig({
    entry: [...entry],
    format: ["esm", "cjs"],
    dts: true,
    clean: true,
    sourcemap: true,
    target: "es2022",
    splitting: true,
    treeshake: true
  })
