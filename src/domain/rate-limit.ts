/**
 * A token bucket: `burst` tokens, refilled at `perS` a second. Pure: time is an argument — give it
 * the monotonic clock. Time that runs backwards refills nothing (it must never drain the bucket:
 * a wall clock stepped back a day once silenced a reader for that day).
 */
export class TokenBucket {
  private tokens: number;
  private last: number | null = null;

  constructor(
    private readonly perS: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Take one token at `nowMs`; false when the bucket is empty. */
  take(nowMs: number): boolean {
    if (this.last !== null) this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, nowMs - this.last) / 1000) * this.perS);
    this.last = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Events within the last `windowMs` (a session lost, a secure channel restarted), counted. Pure:
 * time is an argument — give it the monotonic clock. Holds at most `max` times (the newest).
 */
export class SlidingWindow {
  private times: number[] = [];
  constructor(
    private readonly windowMs: number,
    private readonly max = 1000,
  ) {}

  /** Record an event at `nowMs`; returns how many fall in the window now. */
  add(nowMs: number): number {
    this.times = [...this.times.filter((t) => nowMs - t < this.windowMs), nowMs].slice(-this.max);
    return this.times.length;
  }

  count(nowMs: number): number {
    return this.times.filter((t) => nowMs - t < this.windowMs).length;
  }

  clear(): void {
    this.times = [];
  }
}
