/**
 * A token bucket: `burst` tokens, refilled at `perS` a second. Pure: time is an argument.
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
    if (this.last !== null) this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) / 1000) * this.perS);
    this.last = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
