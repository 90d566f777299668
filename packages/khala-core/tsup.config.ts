import { packageConfig } from "../../scripts/tsup.shared.js"

export default packageConfig(["src/index.ts", "src/testing.ts", "src/testing/vitest.ts"])
