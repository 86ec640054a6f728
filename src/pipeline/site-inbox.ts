/**
 * Site messages wait their turn behind decisions (issue 23: a flood of forged envelopes raised the
 * decision p99 by 42 %): each one costs an Ed25519 verification, and MQTT delivers them in bursts
 * from one socket read, so handled as they arrive a burst held the event loop for milliseconds.
 * Queued here, they are handled in slices of at most SLICE_MS with the event loop let go between,
 * in arrival order; a queue past MAX_QUEUED drops the newest (counted, logged once a minute) — the
 * retained facts come again on the next resubscription, commands expire anyway.
 */
import { monotonicMs } from '../domain/clock.js';
import type { Logger } from '../log.js';

const SLICE_MS = 1;
export const MAX_QUEUED = 20_000;

export class SiteInbox {
  private readonly queue: (() => void)[] = [];
  private head = 0;
  private scheduled = false;
  private stopped = false;
  dropped = 0;
  private lastDropLog = Number.NEGATIVE_INFINITY;

  constructor(private readonly log: Logger) {}

  get size(): number {
    return this.queue.length - this.head;
  }

  push(work: () => void): void {
    if (this.stopped) return;
    if (this.size >= MAX_QUEUED) {
      this.dropped++;
      const now = monotonicMs();
      if (now - this.lastDropLog > 60_000) {
        this.lastDropLog = now;
        this.log.warn({ queued: this.size, dropped: this.dropped }, 'site messages arrive faster than they can be verified: the newest are dropped (retained facts come again; commands expire)');
      }
      return;
    }
    this.queue.push(work);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.scheduled = false;
    const until = monotonicMs() + SLICE_MS;
    while (this.head < this.queue.length && !this.stopped) {
      const w = this.queue[this.head++]!;
      try {
        w();
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'site message handling failed');
      }
      if (monotonicMs() >= until) break;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.size > 0 && !this.stopped) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.head = 0;
  }
}
