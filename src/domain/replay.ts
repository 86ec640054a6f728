/**
 * Remembers accepted QR codes until their validity ends, so a photographed or forwarded code cannot
 * be used again while it would still verify. Bounded: the oldest entries go first.
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  /** Persistence is the caller's: the decision carries the entry into the journal's synced write. */
  constructor(private readonly limit = 100_000) {}

  /** True when `key` was accepted before and its window (unix s) has not ended. */
  isReplay(key: string, nowS: number): boolean {
    const until = this.seen.get(key);
    if (until === undefined) return false;
    if (until <= nowS) {
      this.seen.delete(key);
      return false;
    }
    return true;
  }

  remember(key: string, untilS: number): void {
    // Insertion order is age order: evict the oldest entry when full.
    if (this.seen.size >= this.limit) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(key, untilS);
  }

  /** Take back an entry (the code was accepted, but the door did not open after all). */
  forget(key: string): void {
    this.seen.delete(key);
  }

  /** Restore an entry remembered before a restart (does not notify). */
  restore(key: string, untilS: number): void {
    this.seen.set(key, untilS);
  }

  /** Drop entries whose window ended at or before `nowS`; returns how many. */
  prune(nowS: number): number {
    let n = 0;
    for (const [k, until] of this.seen) {
      if (until <= nowS) {
        this.seen.delete(k);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.seen.size;
  }

  entries(): IterableIterator<[string, number]> {
    return this.seen.entries();
  }
}
