/**
 * The one retry policy: exponential backoff with "equal jitter". Attempt n waits a random time in
 * [d/2, d] where d = min(max, initial · 2ⁿ): never less than half the exponential delay (so a dead
 * peer is not hammered), never more than it (so recovery is prompt), and spread out so a fleet of
 * doors does not reconnect in lockstep after a cloud outage. Pure: the random source is an argument.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  const d = Math.min(p.maxMs, p.initialMs * 2 ** Math.min(attempt, 52));
  return Math.round(d / 2 + random() * (d / 2));
}

/** A retry loop's state: the next delay grows until `reset()` (call it on success). */
export class Backoff {
  private n = 0;
  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next retry; counts the attempt. */
  next(): number {
    return backoffDelay(this.n++, this.policy, this.random);
  }

  /** Retries so far since the last reset. */
  get attempts(): number {
    return this.n;
  }

  reset(): void {
    this.n = 0;
  }
}
