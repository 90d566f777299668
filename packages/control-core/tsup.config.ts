import { packageConfig } from "../../scripts/tsup.shared.js"

export default packageConfig(["src/index.ts", "src/lightning-ops-rpc.ts"])
