/**
 * Durable effect of every decision: the journal entry and, for a granted pass by a person, the
 * outbox record for the cloud. Entries are queued synchronously and written in group commits
 * (one synced batch for everything queued meanwhile), so the relay never waits on the disk and
 * a burst costs one fsync. A failing disk keeps entries queued and retries; nothing is dropped.
 */
import type { Logger } from '../log.js';
import type { JournalAppend, JournalEntry, PassRecord, Store } from '../store/store.js';
import type { DecisionEvent } from './events.js';


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

export class JournalWriter {
  private queue: JournalAppend[] = [];
  private writing: Promise<void> | null = null;
  private retryMs = 100;
  private sincePrune = 0;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly maxEntries: number,
    private readonly onWritten?: (entries: JournalEntry[]) => void,
    /** Keep pass records for upload (only when a cloud that takes them is configured). */
    private readonly keepPassRecords: () => boolean = () => true,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  enqueue(d: DecisionEvent): void {
    const pass = this.keepPassRecords() ? passRecordOf(d) : undefined;
    const { replay, ...decision } = d;
    const e: JournalAppend = { decision };
    if (pass) e.pass = pass;
    if (replay) e.replay = replay;
    this.queue.push(e);
    this.writing ??= this.writeLoop();
  }

  private async writeLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, 1000);
      try {
        const written = await this.store.append(batch);
        this.queue.splice(0, batch.length);
        this.retryMs = 100;
        this.onWritten?.(written);
        this.sincePrune += written.length;
        if (this.sincePrune >= 1000) {
          this.sincePrune = 0;
          await this.store.pruneJournal(this.maxEntries).catch((e: unknown) => this.log.warn({ err: e }, 'journal prune failed'));
        }
      } catch (e) {
        if (this.closed) break;
        this.log.error({ err: e, queued: this.queue.length, retry_ms: this.retryMs }, 'journal write failed; keeping entries queued');
        await new Promise((r) => setTimeout(r, this.retryMs));
        this.retryMs = Math.min(this.retryMs * 2, 5000);
      }
    }
    this.writing = null;
  }

  /** Wait until everything queued so far is on disk. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Flush, then refuse further retries (the store is about to close). */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }
}
