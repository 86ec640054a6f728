/** What every benchmark shares: percentiles, rounding, and a relay that only notes when it was commanded. */
import { BehaviorSubject } from 'rxjs';
import type { Relay } from '../../src/io/relay.js';

/** The p-th percentile (nearest rank) of `xs`; 0 for none. */
export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};
export const r2 = (x: number): number => Math.round(x * 100) / 100;

/** A relay that notes when it was commanded (process.hrtime), and tells `onPulse`. */
export class TimingRelay implements Relay {
  energised = false;
  last = 0n;
  readonly times: bigint[] = [];
  readonly state$ = new BehaviorSubject(false);
  onPulse: (() => void) | null = null;
  pulse(): void {
    this.last = process.hrtime.bigint();
    this.times.push(this.last);
    if (this.times.length > 100_000) this.times.splice(0, 50_000);
    this.onPulse?.();
  }
  relock(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}
