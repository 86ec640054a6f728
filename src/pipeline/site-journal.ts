/**
 * A door's journal on the site bus (issue 24): every decision and door event, in signed batches on
 * `<base>/journal/<gateway>` (QoS 1, never retained), and any range of it again when a signed
 * `journal_range` command asks (the collector, finding a gap). The door's own journal stays the
 * source of truth: a batch that could not be sent (no broker, a restart before it went out) is
 * not kept here — the reader sees the hole in the sequence, or below the head this door tells on
 * every (re)connect and every `HEAD_EVERY_MS`, and asks for it.
 *
 * Nothing here touches a decision: batches are built from writes that have landed, after them.
 */
import type { Config } from '../config/schema.js';
import { MAX_BATCH_BYTES, MAX_BATCH_RECORDS, signBatch, type JournalBatch } from '../domain/door-journal.js';
import type { JournalRecord } from '../domain/journal-records.js';
import { doorKey, type DoorKey } from '../io/door-key.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';

export interface JournalLink {
  /** Publish now if connected: false when not sent. */
  publishNow(topic: string, payload: string, retain: boolean): boolean;
}

const FLUSH_MS = 100;
const FLUSH_RECORDS = 200;
/** Records waiting for a flush at most (a burst beyond is left to the reader's range request). */
const PENDING_MAX = 5000;
export const HEAD_EVERY_MS = 30_000;
/** One range request is answered with at most this many records (the reader asks again for the rest). */
export const RANGE_MAX_RECORDS = 10_000;
const RANGES_QUEUED = 4;

export class SiteJournal {
  private link: JournalLink | null = null;
  private pending: JournalRecord[] = [];
  /** The first sequence number the pending records cover (the one after the last flushed). */
  private pendingFrom: number | null = null;
  private pendingTo = 0;
  private timer: NodeJS.Timeout | null = null;
  private headTimer: NodeJS.Timeout | null = null;
  private readonly unlisten: () => void;
  private key: DoorKey | null = null;
  private ranges: [number, number][] = [];
  private serving = false;
  private stopped = false;
  readonly counts = { batches: 0, records: 0, unsent: 0, ranges: 0 };

  constructor(private readonly o: { config: Config; store: Store; log: Logger; now?: () => number }) {
    this.unlisten = o.store.onSequenced((from, to, records) => this.take(from, to, records));
  }

  get topic(): string {
    return `${this.o.config.site.base_topic}/journal/${this.o.config.gateway_id}`;
  }

  attach(link: JournalLink): void {
    this.link = link;
    this.headTimer = setInterval(() => this.tellHead(), HEAD_EVERY_MS);
    this.headTimer.unref();
  }

  /** The link (re)connected: say where the journal is, so a reader finds what it missed meanwhile. */
  connected(): void {
    this.tellHead();
  }

  stop(): void {
    this.stopped = true;
    this.unlisten();
    if (this.timer) clearTimeout(this.timer);
    if (this.headTimer) clearInterval(this.headTimer);
    this.flush();
  }

  private take(from: number, to: number, records: readonly JournalRecord[]): void {
    if (this.stopped) return;
    if (this.pendingFrom !== null && from !== this.pendingTo + 1) this.flush(); // never cover what was not seen
    this.pendingFrom ??= from;
    this.pendingTo = to;
    this.pending.push(...records);
    if (this.pending.length > PENDING_MAX) {
      // Nobody is taking them (a long outage): let the reader ask for this range later.
      this.counts.unsent += this.pending.length;
      this.pending = [];
      this.pendingFrom = null;
      return;
    }
    if (this.pending.length >= FLUSH_RECORDS) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pendingFrom === null) return;
    const [from, to, records] = [this.pendingFrom, this.pendingTo, this.pending];
    this.pending = [];
    this.pendingFrom = null;
    this.send(from, to, records);
  }

  /** Publish [from, to] with its records, split so that no message exceeds MAX_BATCH_BYTES. */
  private send(from: number, to: number, records: readonly JournalRecord[]): boolean {
    let start = from;
    let chunk: JournalRecord[] = [];
    let bytes = 0;
    let sent = true;
    for (const r of records) {
      const size = JSON.stringify(r).length + 1;
      if (chunk.length && (bytes + size > MAX_BATCH_BYTES - 1024 || chunk.length >= MAX_BATCH_RECORDS)) {
        sent = this.publish([start, r.seq - 1], chunk) && sent;
        start = r.seq;
        chunk = [];
        bytes = 0;
      }
      chunk.push(r);
      bytes += size;
    }
    return this.publish([start, to], chunk) && sent;
  }

  private publish(covers: [number, number] | null, records: JournalRecord[]): boolean {
    const batch: JournalBatch = { gateway: this.o.config.gateway_id, at: (this.o.now ?? Date.now)(), covers, head: this.o.store.lastSeq, records };
    this.key ??= doorKey(this.o.config.data_dir);
    const ok = this.link?.publishNow(this.topic, JSON.stringify(signBatch(batch, this.key.kid, this.key.privateKey)), false) ?? false;
    if (ok) {
      this.counts.batches++;
      this.counts.records += records.length;
    } else this.counts.unsent += records.length;
    return ok;
  }

  private tellHead(): void {
    if (!this.stopped && this.o.store.lastSeq > 0) this.publish(null, []);
  }

  /** A verified `journal_range` request: sent again from the journal on disk, a bounded number at a time. */
  requestRange(from: number, to: number): void {
    if (this.ranges.length >= RANGES_QUEUED) return void this.o.log.warn({ from, to }, 'journal range request dropped: others are being answered (the reader asks again)');
    this.ranges.push([from, Math.min(to, this.o.store.lastSeq)]);
    void this.serve();
  }

  private async serve(): Promise<void> {
    if (this.serving) return;
    this.serving = true;
    try {
      while (this.ranges.length && !this.stopped) {
        const [from, to] = this.ranges.shift()!;
        if (to < from) {
          this.publish(null, []);
          continue;
        }
        const r = await this.o.store.journalRecords(from, to, RANGE_MAX_RECORDS);
        this.counts.ranges++;
        if (!this.send(from, r.to, r.records)) this.o.log.warn({ from, to: r.to }, 'journal range not sent: the broker is not connected');
        else this.o.log.info({ from, to: r.to, records: r.records.length }, 'journal range sent');
      }
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'journal range not read');
    } finally {
      this.serving = false;
    }
  }
}
