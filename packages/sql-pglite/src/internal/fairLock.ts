// A one-permit lock that hands the permit to its waiters in arrival order.
//
// Effect's `makeSemaphore(1)` is not FIFO: `release` only schedules a wake-up for the waiters, so
// a fiber that releases and asks again straight away takes the permit back before any of them
// runs. On PGlite (one backend) that lets a fiber in a loop — a long replay, a pruning run — hold
// off every other request until it stops. Here `release` passes the permit directly to the
// oldest waiter, so a fiber that asks again queues behind everyone already waiting.
import * as Effect from "effect/Effect"

export interface FairLock {
  /** Wait for the permit (interruptible while waiting). */
  readonly take: Effect.Effect<void>
  /** Give the permit back, or to the oldest waiter. */
  readonly release: Effect.Effect<void>
  /** Run `effect` holding the permit. */
  readonly withPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

interface Waiter {
  granted: boolean
  readonly wake: () => void
}

export const make: Effect.Effect<FairLock> = Effect.sync(() => {
  let held = false
  const waiters: Array<Waiter> = []

  const releaseNow = () => {
    const next = waiters.shift()
    if (next === undefined) held = false
    else next.wake() // the permit moves to `next`: `held` stays true
  }

  const take = Effect.async<void>((resume) => {
    if (!held) {
      held = true
      resume(Effect.void)
      return
    }
    const waiter: Waiter = {
      granted: false,
      wake: () => {
        waiter.granted = true
        resume(Effect.void)
      }
    }
    waiters.push(waiter)
    // Interrupted while waiting: leave the queue; interrupted just after being handed the
    // permit: pass it on, or it would be lost.
    return Effect.sync(() => {
      if (waiter.granted) releaseNow()
      else {
        const i = waiters.indexOf(waiter)
        if (i >= 0) waiters.splice(i, 1)
      }
    })
  })

  const release = Effect.sync(releaseNow)

  return {
    take,
    release,
    withPermit: (effect) => Effect.uninterruptibleMask((restore) => Effect.zipRight(restore(take), Effect.ensuring(restore(effect), release)))
  }
})
