/**
 * Remembers accepted QR codes until their validity ends, so a photographed or forwarded code cannot
 * be used again while it would still verify. Bounded: the oldest entries go first.
 *
 * An entry ends only when its validity has passed on the wall clock (what verification uses) AND
 * its window has passed on the monotonic clock. Pruned by the wall clock alone, a step forward and
 * back let a used code in again: grant, +1 day, prune, −1 day, the code verifies and is not known.
 * Across a reboot the monotonic clock restarts: a restored entry then keeps its whole window again
 * from the restart (conservative: a used code stays refused at least as long as it could verify).
 */
import { monotonicMs, type MonoClock } from './clock.js';

/** What is persisted for one entry (in the journal's synced write). */
export interface ReplayEntry {
  key: string;
  /** End of the code's validity, wall clock, unix s. */
  until: number;
  /** The code's window as accepted (s): how long the entry lives on the monotonic clock. */
  window_s: number;
  /** End of the window on the monotonic clock (ms) of boot `boot`. */
  mono_until: number;
  boot: string;
}

interface Live {
  until: number;
  monoUntil: number;
}

export class ReplayGuard {
  private readonly seen = new Map<string, Live>();
  /** Persistence is the caller's: the decision carries the entry into the journal's synced write. */
  constructor(
    private readonly o: { limit?: number; mono?: MonoClock; boot?: string } = {},
  ) {}

  private mono(): number {
    return (this.o.mono ?? monotonicMs)();
  }

  private expired(e: Live, nowS: number): boolean {
    return e.until <= nowS && this.mono() >= e.monoUntil;
  }

  /** True when `key` was accepted before and its window has not ended on both clocks. */
  isReplay(key: string, nowS: number): boolean {
    const e = this.seen.get(key);
    if (e === undefined) return false;
    if (this.expired(e, nowS)) {
      this.seen.delete(key);
      return false;
    }
    return true;
  }

  /** Remember a code accepted at `nowS` whose validity ends at `untilS`; returns what to persist. */
  remember(key: string, untilS: number, nowS: number): ReplayEntry {
    // Insertion order is age order: evict the oldest entry when full.
    if (this.seen.size >= (this.o.limit ?? 100_000)) this.seen.delete(this.seen.keys().next().value!);
    const windowS = Math.max(0, untilS - nowS);
    const e: Live = { until: untilS, monoUntil: this.mono() + windowS * 1000 };
    this.seen.set(key, e);
    return { key, until: untilS, window_s: windowS, mono_until: e.monoUntil, boot: this.o.boot ?? '' };
  }

  /** Take back an entry (the code was accepted, but the door did not open after all). */
  forget(key: string): void {
    this.seen.delete(key);
  }

  /**
   * Restore an entry remembered before a restart. Of this boot: as it was. Of another boot (or
   * stored as a bare `until` by an older version): its whole window again from now.
   */
  restore(key: string, v: number | Omit<ReplayEntry, 'key'>, nowS: number): void {
    const until = typeof v === 'number' ? v : v.until;
    const windowS = typeof v === 'number' ? Math.max(0, until - nowS) : v.window_s;
    const monoUntil = typeof v !== 'number' && v.boot === (this.o.boot ?? '') ? v.mono_until : this.mono() + windowS * 1000;
    this.seen.set(key, { until, monoUntil });
  }

  /** Drop entries whose window ended on both clocks; returns the keys dropped (to delete on disk too). */
  prune(nowS: number): string[] {
    const gone: string[] = [];
    for (const [k, e] of this.seen) {
      if (this.expired(e, nowS)) {
        this.seen.delete(k);
        gone.push(k);
      }
    }
    return gone;
  }

  get size(): number {
    return this.seen.size;
  }
}
