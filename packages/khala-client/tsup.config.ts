import { packageConfig } from "../../scripts/tsup.shared.js"

export default packageConfig(["src/index.ts", "src/node.ts", "src/testing.ts", "src/react.ts", "src/effect.ts"])
