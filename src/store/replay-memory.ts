/**
 * Accepted QR codes still inside their validity (replay/<signed body>): never keyed on the
 * signature, which ECDSA lets anyone rewrite (s and n−s). Written with the journal entry of the
 * decision that accepted the code (store.ts append); which have ended is the guard's to say
 * (domain/replay.ts): the wall clock alone cannot.
 */
import type { ReplayEntry } from '../domain/replay.js';
import { putOp, type Op } from './directory-writer.js';
import { deleteKeys, type StoreDb } from './db.js';

/** A replay entry as stored: the entry without its key, or a bare `until` (older versions). */
export type StoredReplay = number | Omit<ReplayEntry, 'key'>;

export class ReplayMemory {
  constructor(private readonly db: StoreDb) {}
  private get sub() {
    return this.db.sub<StoredReplay>('replay');
  }

  putOp(e: ReplayEntry): Op {
    const { key, ...stored } = e;
    return putOp(this.sub, key, stored);
  }

  /** Delete entries the guard let go (ended on both clocks, or evicted). */
  delete(keys: readonly string[]): Promise<number> {
    return deleteKeys(this.db, this.sub, keys);
  }

  /** Every persisted entry (a bare number: `until`, as stored by versions before 2026-12). */
  async load(): Promise<[string, StoredReplay][]> {
    const out: [string, StoredReplay][] = [];
    for await (const [k, v] of this.sub.iterator()) out.push([k, v]);
    return out;
  }
}
