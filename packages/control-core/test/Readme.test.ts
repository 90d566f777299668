// The README's example, run as written (between the ```ts fences of "Example").
import { Auth, ControlHost, LocalIdentity, MemoryStorage, SyncTokens } from "@openagents/control-core"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { expect, it } from "vitest"

it("README example: sign in with the local provider and mint a sync token, in memory", async () => {
  const program = Effect.gen(function*() {
    const auth = yield* Auth.Auth
    const outbox = yield* LocalIdentity.LocalOutbox
    const { challengeId } = yield* auth.startSignIn("ada@example.com", { ip: "127.0.0.1" })
    const { code } = (yield* outbox.latest("ada@example.com"))!
    const { session } = yield* auth.verify({ code, challengeId }, { ip: "127.0.0.1", client: "autopilot-ios" })
    const sync = yield* SyncTokens.SyncTokens
    const minted = yield* sync.mint(Auth.principalOf(session), { scopes: ["runtime.run_summaries"], topics: [] })
    return [session.tokenName, minted.grantedTopics.map((g) => g.topic)] as const
  })
  const control = ControlHost.services(ControlHost.developmentConfig(), MemoryStorage.layer)
  const [tokenName, topics] = await Effect.runPromise(program.pipe(Effect.provide(control)))

  expect(tokenName).toBe("mobile:autopilot-ios")
  expect(topics).toEqual([expect.stringMatching(/^runtime\.run_summaries:user:usr_[0-9a-f]{32}$/)])
  // The README shows this very program.
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
  expect(readme).toContain("const minted = yield* sync.mint(Auth.principalOf(session), { scopes: [\"runtime.run_summaries\"], topics: [] })")
  expect(readme).toContain("const control = ControlHost.services(ControlHost.developmentConfig(), MemoryStorage.layer)")
})
