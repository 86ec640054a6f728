/**
 * What a repository needs of the open database (store.ts owns it): its sublevels as now opened —
 * a reopen after a failed write replaces them, so a repository asks each time instead of keeping
 * one — and the one guarded write path (every write in order, none after a failure until reopen).
 */
import { delOp, type Op, type Sub } from './directory-writer.js';

export interface StoreDb {
  sub<V>(name: string): Sub<V>;
  /** One atomic write across sublevels; `sync` waits for the disk. */
  batch(ops: Op[], sync?: boolean): Promise<void>;
}

export const pad = (n: number, w: number): string => String(n).padStart(w, '0');

/**
 * Delete a sublevel's keys as they come, 1,000 to a batch: a large prune never builds one huge
 * write. (Iterators read a snapshot, so deleting behind them is safe.)
 */
export async function deleteKeys(db: StoreDb, sub: Sub<unknown>, keys: AsyncIterable<string> | Iterable<string>): Promise<number> {
  let deleted = 0;
  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    await db.batch(batch.map((key) => delOp(sub, key)));
    deleted += batch.length;
    batch = [];
  };
  for await (const k of keys as AsyncIterable<string>) {
    batch.push(k);
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return deleted;
}

export async function countKeys(sub: Sub<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of sub.keys()) n++;
  return n;
}
