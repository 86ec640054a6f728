/**
 * Pass records to the cloud with `checkin` (≤200 a call). A record leaves the outbox only when the
 * cloud accepted it; fail_list entries are retried with backoff; records that keep failing, or that
 * WeCom has no code for, are set aside (held), never dropped. Resends after a lost answer are
 * de-duplicated by the cloud on (userid, timestamp, pass_type, pass_method).
 */
import { backoffDelay } from '../../domain/backoff.js';
import type { Method } from '../../domain/types.js';
import type { Logger } from '../../log.js';
import type { PassRecord, Store } from '../../store/store.js';
import type { WecomSession } from './session.js';

export interface UploaderOptions {
  batch: number;
  maxAttempts: number;
  /** pass_method for QR codes: 2 (QR code) or 6 (device scans the phone's code). */
  qrPassMethod: number;
}

export const PASS_TYPE = { in: 1, out: 2, unknown: 3 } as const;
const EPOCH_2018 = 1_514_764_800;

export function passMethodOf(method: Method, qrPassMethod: number): number | null {
  switch (method) {
    case 'face': return 1;
    case 'qr': return qrPassMethod;
    case 'remote': return 3;
    case 'fingerprint': return 4;
    case 'scan': return 5; // the WeCom app scanned the door's code (protocols.md §10.3)
    default: return null; // card, plain userid, exit: WeCom has no code for them
  }
}

/** A record the cloud refused (fail_list) is retried after 2 s, 4 s, … up to an hour (with jitter). */
const RECORD_RETRY = { initialMs: 1000, maxMs: 3_600_000 };

export class CheckinUploader {
  private readonly attempts = new Map<number, { n: number; nextAt: number }>();
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly session: WecomSession,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly o: UploaderOptions,
    private readonly ready: () => boolean,
  ) {}

  /** Periodic retries (failed records, link back up). */
  start(periodMs = 5000): void {
    this.timer = setInterval(() => this.wake(), periodMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Upload what is due, now (coalesced with a run in progress). */
  wake(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /** Wait for the current run. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.ready()) {
      const sent = await this.uploadOnce().catch((e: unknown) => {
        this.log.warn({ err: (e as Error).message }, 'checkin upload failed; records stay queued');
        return 0;
      });
      if (sent === 0) return;
    }
  }

  /** One checkin call; returns how many records were sent. */
  async uploadOnce(): Promise<number> {
    const now = Date.now();
    const due: PassRecord[] = [];
    const unreportable: PassRecord[] = [];
    const beforeClock: PassRecord[] = [];
    for (const r of await this.store.outboxPeek(this.o.batch * 5)) {
      const a = this.attempts.get(r.seq);
      if (a && a.nextAt > now) continue;
      if (passMethodOf(r.method, this.o.qrPassMethod) === null) unreportable.push(r);
      else if (r.timestamp < EPOCH_2018) beforeClock.push(r);
      else if (due.length < this.o.batch) due.push(r);
    }
    if (unreportable.length) await this.store.outboxHold(unreportable, 'WeCom has no pass_method for this credential');
    if (beforeClock.length) await this.store.outboxHold(beforeClock, 'timestamp before 2018: the clock was not set; the cloud would ignore it');
    if (due.length === 0) return 0;

    const body = await this.session.request('checkin', {
      checkin_data: due.map((r) => ({
        userid: r.userid,
        user_type: r.user_type,
        timestamp: r.timestamp,
        pass_type: PASS_TYPE[r.direction],
        pass_method: passMethodOf(r.method, this.o.qrPassMethod),
      })),
    });
    const failList = Array.isArray(body.fail_list) ? (body.fail_list as { userid?: unknown; timestamp?: unknown }[]) : [];
    const failed = new Set(failList.map((f) => `${String(f.userid)}|${String(f.timestamp)}`));
    const accepted = due.filter((r) => !failed.has(`${r.userid}|${r.timestamp}`));
    const refused = due.filter((r) => failed.has(`${r.userid}|${r.timestamp}`));
    await this.store.outboxRemove(accepted.map((r) => r.seq));
    for (const r of accepted) this.attempts.delete(r.seq);
    const hold: PassRecord[] = [];
    for (const r of refused) {
      const n = (this.attempts.get(r.seq)?.n ?? 0) + 1;
      if (n >= this.o.maxAttempts) {
        hold.push(r);
        this.attempts.delete(r.seq);
      } else {
        this.attempts.set(r.seq, { n, nextAt: now + backoffDelay(n, RECORD_RETRY) });
      }
    }
    if (hold.length) await this.store.outboxHold(hold, `the cloud refused it ${this.o.maxAttempts} times (fail_list)`);
    this.log.info({ sent: due.length, accepted: accepted.length, refused: refused.length, held: hold.length }, 'pass records uploaded');
    return due.length;
  }
}
