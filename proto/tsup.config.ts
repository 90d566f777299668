import { packageConfig } from "../scripts/tsup.shared.js"

export default packageConfig(["src/index.ts","src/sync/v1.ts","src/runtime/v1.ts","src/control/v1.ts","src/lightning/v1.ts", "src/canonical-json.ts", "src/sync/lite.ts"])
