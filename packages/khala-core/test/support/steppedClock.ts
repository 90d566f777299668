// A clock for driving one of the server's loops by hand: its sleeps of exactly `stepMs` wait for
// `step()`, every other sleep is real. Give it to the server with `tickMs: stepMs` and the server's
// tick (session timers, the slow-consumer sweep) runs when the test says, in the macrotask it says.
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

export const steppedClock = (stepMs: number) => {
  const waiting: Array<() => void> = []
  const real = Clock.make()
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => real.unsafeCurrentTimeMillis(),
    currentTimeMillis: real.currentTimeMillis,
    unsafeCurrentTimeNanos: () => real.unsafeCurrentTimeNanos(),
    currentTimeNanos: real.currentTimeNanos,
    sleep: (duration) =>
      Duration.toMillis(duration) === stepMs
        ? Effect.async<void>((resume) => void waiting.push(() => resume(Effect.void)))
        : real.sleep(duration)
  }
  return {
    clock,
    /** Loops waiting for the step. */
    waiting: () => waiting.length,
    /** Let every loop waiting for the step run once (its fiber resumes in a microtask). */
    step: () => {
      for (const resume of waiting.splice(0)) resume()
    }
  }
}
