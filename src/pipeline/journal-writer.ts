/**
 * Durable effect of every decision: the journal entry and, for a granted pass by a person, the
 * outbox record for the cloud. Entries are queued synchronously and written in group commits
 * (one synced batch for everything queued meanwhile), so the relay never waits on the disk and
 * a burst costs one fsync. A failing disk keeps entries queued in memory and retries; past
 * `maxQueued` the oldest entries without a pass record go first, then the oldest of any (counted
 * and logged as errors: the bound keeps a long outage from exhausting memory).
 */
import { Subject } from 'rxjs';
import { Backoff } from '../domain/backoff.js';
import type { Logger } from '../log.js';
import type { JournalAppend, JournalEntry, PassRecord, Store } from '../store/store.js';
import type { DecisionEvent } from '../domain/events.js';


export function passRecordOf(d: DecisionEvent): Omit<PassRecord, 'seq'> | undefined {
  if (d.decision !== 'grant' || d.userid === null || d.method === 'exit') return undefined;
  return {
    userid: d.userid,
    user_type: d.user_type ?? 0,
    timestamp: Math.floor(d.at / 1000),
    direction: d.direction,
    method: d.method,
    door: d.door,
  };
}

export interface JournalWriterOptions {
  store: Store;
  log: Logger;
  /** Journal entries kept (the oldest go beyond). */
  maxEntries: number;
  /** Records held in memory while the disk cannot be written. */
  maxQueued?: number;
  /**
   * Keep pass records for upload: known from the configuration (the provider uploads records), so
   * a grant decided before the cloud adapter has started keeps its record too.
   */
  keepPassRecords: boolean;
}

export class JournalWriter {
  private queue: JournalAppend[] = [];
  private writing: Promise<void> | null = null;
  /** Retries of a failing disk: 100 ms doubling to 5 s. */
  private readonly retry = new Backoff({ initialMs: 100, maxMs: 5000 });
  private sincePrune = 0;
  private closed = false;
  /** Entries dropped because the memory bound was reached while the disk could not be written. */
  dropped = 0;
  private waiters: { upTo: JournalAppend; resolve: () => void }[] = [];
  private inFlight = new Set<JournalAppend>();
  private wake: (() => void) | null = null;

  /** Entries as they reach the disk (the cloud's uploader wakes on them). */
  readonly written$ = new Subject<JournalEntry[]>();
  private readonly store: Store;
  private readonly log: Logger;
  private readonly maxEntries: number;
  private readonly maxQueued: number;
  private readonly keepPassRecords: boolean;

  constructor(o: JournalWriterOptions) {
    this.store = o.store;
    this.log = o.log;
    this.maxEntries = o.maxEntries;
    this.maxQueued = o.maxQueued ?? 50_000;
    this.keepPassRecords = o.keepPassRecords;
  }

  get pending(): number {
    return this.queue.length;
  }

  enqueue(d: DecisionEvent): void {
    const pass = this.keepPassRecords ? passRecordOf(d) : undefined;
    const { replay, use, ...decision } = d;
    const e: JournalAppend = { decision };
    if (pass) e.pass = pass;
    if (replay) e.replay = replay;
    if (use) e.use = use;
    if (this.queue.length >= this.maxQueued) this.dropOne();
    this.queue.push(e);
    this.writing ??= this.writeLoop();
  }

  /** Enqueue and resolve once this decision's entry is on disk (strict durability). */
  enqueueDurable(d: DecisionEvent): Promise<void> {
    this.enqueue(d);
    const upTo = this.queue.at(-1)!;
    return new Promise((resolve) => this.waiters.push({ upTo, resolve }));
  }

  /** Over the memory bound: the oldest journal-only entry goes first, a pass record only if all are. */
  private dropOne(): void {
    // Entries in a write under way are not the writer's to lose.
    let i = this.queue.findIndex((q) => !q.pass && !this.inFlight.has(q));
    if (i < 0) i = this.queue.findIndex((q) => !this.inFlight.has(q));
    if (i < 0) return;
    const [gone] = this.queue.splice(i, 1);
    this.dropped++;
    if (this.dropped === 1 || this.dropped % 1000 === 0) {
      this.log.error({ dropped: this.dropped, kept: this.queue.length, pass_record: gone?.pass !== undefined }, 'journal memory bound reached while the disk cannot be written: oldest entries dropped');
    }
    this.settle(gone);
  }

  private settle(gone: JournalAppend | undefined): void {
    const w = this.waiters.findIndex((x) => x.upTo === gone);
    if (w >= 0) this.waiters.splice(w, 1)[0]!.resolve();
  }

  private async writeLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, 1000);
      this.inFlight = new Set(batch);
      try {
        const written = await this.store.append(batch);
        const done = this.inFlight;
        this.queue = this.queue.filter((q) => !done.has(q));
        this.waiters = this.waiters.filter((w) => (done.has(w.upTo) ? (w.resolve(), false) : true));
        this.retry.reset();
        this.written$.next(written);
        this.sincePrune += written.length;
        if (this.sincePrune >= 1000) {
          this.sincePrune = 0;
          await this.store.pruneJournal(this.maxEntries).catch((e: unknown) => this.log.warn({ err: e }, 'journal prune failed'));
        }
      } catch (e) {
        // Strict grants waiting for this write go on without it (the door must keep working); the
        // entries stay queued in memory and are written when the disk recovers.
        for (const w of this.waiters.splice(0)) w.resolve();
        if (this.closed) break;
        // One line per outage, not one per retry: the storage guard reports the disk itself.
        if (this.retry.attempts === 0) this.log.error({ err: (e as Error).message, queued: this.queue.length }, 'journal write failed; keeping entries in memory and retrying');
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, this.retry.next());
        });
        this.wake = null;
      }
    }
    this.inFlight = new Set();
    this.writing = null;
  }

  /** Retry a failed write now (the store has recovered). */
  retryNow(): void {
    this.wake?.();
  }

  /** Wait until everything queued so far is on disk. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Flush, then refuse further retries (the store is about to close). */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.queue.length) this.log.error({ lost: this.queue.length }, 'stopping with journal entries that could not be written (disk full or failing)');
    for (const w of this.waiters.splice(0)) w.resolve();
  }
}
