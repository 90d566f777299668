// The paced subscriptions of a node: slow consumers demoted from live push to catch-up from the
// journal. The server sweeps every tick (250 ms) for paced subscriptions that fell further behind
// than their topic's replay budget; keeping them in a set of their own makes that work follow the
// number of slow consumers, not the number of subscriptions (a node holds many healthy ones, and
// the sweep used to walk every subscription of every connection on every tick). A subscription is
// in the set from its demotion until it goes live again or ends, whatever ends it.
export class PacedSubscriptions<C, S> {
  private readonly connectionOf = new Map<S, C>()

  add(connection: C, subscription: S): void {
    this.connectionOf.set(subscription, connection)
  }

  delete(subscription: S): void {
    this.connectionOf.delete(subscription)
  }

  get size(): number {
    return this.connectionOf.size
  }

  /**
   * For each connection with one, its first paced subscription for which `isBehind` holds.
   * Visits the paced subscriptions only, and no more of a connection's once one is found.
   */
  behind(isBehind: (subscription: S) => boolean): Array<readonly [C, S]> {
    const found = new Map<C, S>()
    for (const [subscription, connection] of this.connectionOf) {
      if (!found.has(connection) && isBehind(subscription)) found.set(connection, subscription)
    }
    return [...found]
  }
}
