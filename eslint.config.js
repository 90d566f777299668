// Lint, and the dependency boundaries of DESIGN.md §3 enforced by a tool rather than by review:
// - khala-client imports no server package, no SQL, and (outside src/node) nothing Node-only;
// - no file reaches into another package's src/ (imports go through package exports);
// - the runtime and control planes never import each other; no plane imports another's SQL
//   modules (the `/sql` and `/migrations` subpaths) — cross-plane calls are HTTP or @effect/rpc;
// - khala-core, the lower layer, imports no plane package.
// test/Boundaries.test.ts lints sample imports against this file, so the rules cannot rot.
import js from "@eslint/js"
import tseslint from "typescript-eslint"

const packages = ["proto", "sql-pglite", "host-kit", "khala-core", "khala-client", "runtime-core", "control-core", "lightning"]
const planes = ["runtime-core", "control-core", "lightning"]

const srcInternals = {
  group: ["@openagents/*/src", "@openagents/*/src/**", "../../*/src/**", "../../../*/src/**", "../../../../*/src/**", "**/proto/src/gen/**"],
  message: "Import another package through its package name and exports, never its src/ internals (DESIGN.md §2)."
}

const sqlOf = (pkg) => ({
  group: [`@openagents/${pkg}/sql`, `@openagents/${pkg}/sql/**`, `@openagents/${pkg}/migrations`, `@openagents/${pkg}/migrations/**`],
  message: "Planes never share SQL: use the other plane's HTTP or RPC API (DESIGN.md §3.1)."
})

const whole = (pkgs, message) => ({ group: pkgs.flatMap((p) => [`@openagents/${p}`, `@openagents/${p}/**`]), message })

/** The restricted import patterns of each package (no-restricted-imports does not merge across config objects). */
const restrictions = {
  "proto": [whole(packages.filter((p) => p !== "proto"), "proto is the bottom layer: it imports no other package.")],
  "sql-pglite": [whole(packages.filter((p) => p !== "sql-pglite"), "sql-pglite is a driver: it imports no other package.")],
  "host-kit": [whole(["khala-core", "khala-client", "runtime-core", "control-core", "lightning"], "host-kit is below the planes: it imports none of them.")],
  "khala-core": [whole(planes.concat("khala-client"), "khala-core is below the planes: it imports none of them.")],
  "khala-client": [
    whole(["khala-core", "runtime-core", "control-core", "lightning", "sql-pglite", "host-kit"], "khala-client must not import server packages (DESIGN.md §3)."),
    { group: ["@effect/sql", "@effect/sql/**", "@effect/sql-pg", "@effect/sql-pg/**", "pg", "@electric-sql/pglite", "@effect/platform-node", "@effect/platform-node/**"], message: "khala-client must not import database or server-only modules." }
  ],
  "runtime-core": [whole(["control-core"], "The runtime never imports the control plane: call its API."), sqlOf("lightning")],
  "control-core": [whole(["runtime-core"], "The control plane never imports the runtime: call its API."), sqlOf("lightning")],
  "lightning": [sqlOf("runtime-core"), sqlOf("control-core"), whole(["khala-core", "khala-client"], "Lightning does not use Khala.")]
}

const nodeOnlyMessage = "The khala-client browser entry must not import Node-only modules; put Node code under src/node/."
const nodeOnly = { group: ["node:*"], message: nodeOnlyMessage }
// Bare builtin names are matched exactly (a gitignore-style pattern "stream" would also match "effect/Stream").
const nodeOnlyPaths = ["fs", "fs/promises", "path", "os", "net", "http", "https", "crypto", "stream", "child_process", "ws"].map((name) => ({ name, message: nodeOnlyMessage }))

const boundaryConfigs = Object.entries(restrictions).flatMap(([pkg, groups]) => {
  const dir = pkg === "proto" ? "proto" : `packages/${pkg}`
  const base = { files: [`${dir}/**/*.ts`], rules: { "no-restricted-imports": ["error", { patterns: [srcInternals, ...groups] }] } }
  if (pkg !== "khala-client") return [base]
  // The client's tests run it against a real Khala server; only its src/ is kept server-free.
  return [
    { files: [`${dir}/**/*.ts`], rules: { "no-restricted-imports": ["error", { patterns: [srcInternals] }] } },
    { files: [`${dir}/src/**/*.ts`], rules: { "no-restricted-imports": ["error", { patterns: [srcInternals, ...groups] }] } },
    {
      files: [`${dir}/src/**/*.ts`],
      ignores: [`${dir}/src/node/**`],
      rules: { "no-restricted-imports": ["error", { paths: nodeOnlyPaths, patterns: [srcInternals, ...groups, nodeOnly] }] }
    }
  ]
})

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "proto/src/gen/**", "coverage/**", ".data/**", "**/.data/**", "test/docs/.generated/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { process: "readonly", console: "readonly", URL: "readonly" } },
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports", disallowTypeAnnotations: false }],
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-namespace": "off",
      "no-restricted-imports": ["error", { patterns: [srcInternals] }]
    }
  },
  ...boundaryConfigs
)
