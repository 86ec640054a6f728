/**
 * Pass records for the cloud (outbox/<seq>) and those set aside (held/<seq>: they kept failing, or
 * the cloud has no code for them). Records enter the outbox with their journal entry, in the
 * journal's synced write (store.ts append), or by a requeue; the count is kept as they change
 * (status and health checks ask often).
 */
import type { Direction, Method } from '../domain/types.js';
import { delOp, putOp, type Op } from './directory-writer.js';
import { countKeys, pad, type StoreDb } from './db.js';

/**
 * A granted pass waiting in the outbox for the cloud. Kept in doorgw's own terms; each cloud
 * adapter maps direction and method to its codes (WeCom pass_type / pass_method).
 */
export interface PassRecord {
  seq: number;
  userid: string;
  user_type: number;
  /** Unix seconds. */
  timestamp: number;
  direction: Direction;
  method: Method;
  door: string;
}

export interface HeldRecord extends PassRecord {
  held_reason: string;
  /** Date.now() when set aside. */
  held_at: number;
}

export class Outbox {
  private count = 0;
  constructor(private readonly db: StoreDb) {}
  private get outbox() {
    return this.db.sub<PassRecord>('outbox');
  }
  private get held() {
    return this.db.sub<HeldRecord>('held');
  }

  /** Count what is there (at open). */
  async load(): Promise<void> {
    this.count = await countKeys(this.outbox);
  }

  /** The write that puts a record in (part of a larger batch); `added` once that batch landed. */
  putOp(r: PassRecord): Op {
    return putOp(this.outbox, pad(r.seq, 12), r);
  }
  added(n: number): void {
    this.count += n;
  }

  async peek(limit = 200): Promise<PassRecord[]> {
    const out: PassRecord[] = [];
    for await (const v of this.outbox.values({ limit })) out.push(v);
    return out;
  }

  get depth(): number {
    return this.count;
  }

  /** How many of these seqs are in the outbox now. */
  private present(seqs: readonly number[]): number {
    return seqs.filter((s) => this.outbox.getSync(pad(s, 12)) !== undefined).length;
  }

  async remove(seqs: readonly number[]): Promise<void> {
    const n = this.present(seqs);
    await this.db.batch(seqs.map((s) => delOp(this.outbox, pad(s, 12))), true);
    this.count -= n;
  }

  /** Move outbox records aside (they keep failing, or the cloud has no code for them). */
  async hold(records: readonly PassRecord[], reason: string): Promise<void> {
    const at = Date.now();
    const n = this.present(records.map((r) => r.seq));
    await this.db.batch(records.flatMap((r) => [delOp(this.outbox, pad(r.seq, 12)), putOp(this.held, pad(r.seq, 12), { ...r, held_reason: reason, held_at: at })]), true);
    this.count -= n;
  }

  async heldRecords(limit = 1000): Promise<HeldRecord[]> {
    const out: HeldRecord[] = [];
    for await (const v of this.held.values({ limit })) out.push(v);
    return out;
  }

  heldCount(): Promise<number> {
    return countKeys(this.held);
  }

  /** Delete held records (all, or the given seqs): the journal keeps the passes; returns how many. */
  async discardHeld(seqs?: readonly number[]): Promise<number> {
    const held = (await this.heldRecords(1_000_000)).filter((h) => !seqs || seqs.includes(h.seq));
    await this.db.batch(held.map((h) => delOp(this.held, pad(h.seq, 12))), true);
    return held.length;
  }

  /** Put held records back into the outbox (all, or the given seqs); returns how many. */
  async requeueHeld(seqs?: readonly number[]): Promise<number> {
    const held = (await this.heldRecords(1_000_000)).filter((h) => !seqs || seqs.includes(h.seq));
    await this.db.batch(held.flatMap(({ held_reason: _r, held_at: _a, ...r }) => [delOp(this.held, pad(r.seq, 12)), putOp(this.outbox, pad(r.seq, 12), r)]), true);
    this.count += held.length;
    return held.length;
  }
}
