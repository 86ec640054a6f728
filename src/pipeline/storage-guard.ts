/**
 * Disk-full protection (a start/stop unit). Keeps a reserve file in the data directory; watches free
 * space; when a write fails it releases the reserve so the database has room to recover, reopens
 * the store once there is room (LevelDB drops the failed partial record and keeps everything
 * written before it), and lets the journal writer drain what it held in memory. Tells the operator
 * through state$ (status, health, MQTT) and alarm events. Never blocks a decision.
 */
import { existsSync, statfsSync } from 'node:fs';
import { open, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BehaviorSubject } from 'rxjs';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';

export interface StorageState {
  /** False while writes fail: records are held in memory. */
  writable: boolean;
  /** The write error that stopped writing. */
  error: string | null;
  free_bytes: number | null;
  /** Below the configured low-space mark. */
  low: boolean;
  reserve: 'held' | 'released' | 'none';
}

export interface StorageGuardOptions {
  store: Store;
  dir: string;
  reserveBytes: number;
  lowBytes: number;
  checkIntervalMs: number;
  log: Logger;
  /** Raise a gateway alarm (storage_failure, storage_recovered, disk_low, disk_ok). */
  alarm: (type: 'storage_failure' | 'storage_recovered' | 'disk_low' | 'disk_ok', detail: string) => void;
  /** The store can be written again: retry what was held. */
  recovered: () => void;
}

export const RESERVE_FILE = 'reserve.bin';

/** Free bytes for an unprivileged writer on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** Delete the reserve file of a data directory; true when there was one. */
export async function releaseReserve(dir: string): Promise<boolean> {
  try {
    await unlink(join(dir, RESERVE_FILE));
    return true;
  } catch {
    return false;
  }
}

export class StorageGuard {
  readonly state$: BehaviorSubject<StorageState>;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private recovering = false;

  constructor(private readonly o: StorageGuardOptions) {
    const reserve = existsSync(this.reservePath) ? 'held' : 'none';
    this.state$ = new BehaviorSubject<StorageState>({ writable: o.store.writable, error: o.store.writeError, free_bytes: null, low: false, reserve });
  }

  private get reservePath(): string {
    return join(this.o.dir, RESERVE_FILE);
  }

  private set(p: Partial<StorageState>): void {
    this.state$.next({ ...this.state$.value, ...p });
  }

  async start(): Promise<void> {
    this.o.store.onWriteFailure = (e) => this.failed(e);
    this.o.store.onReopenError = (e) => this.o.log.error({ err: e.message }, 'database could not be opened again yet; retrying');
    await this.check();
    if (!this.o.store.writable) this.failed(new Error(this.o.store.writeError ?? 'write failed'));
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const ms = this.state$.value.writable ? this.o.checkIntervalMs : Math.min(2000, this.o.checkIntervalMs);
    this.timer = setTimeout(() => void this.check().finally(() => this.schedule()), ms);
    this.timer.unref();
  }

  /** Look at free space; recover or rebuild the reserve when there is room. */
  async check(): Promise<void> {
    let free: number;
    try {
      free = await freeBytes(this.o.dir);
    } catch (e) {
      return void this.o.log.warn({ err: (e as Error).message }, 'free space unknown');
    }
    const low = free < this.o.lowBytes;
    const was = this.state$.value;
    this.set({ free_bytes: free, low });
    if (low && !was.low) this.o.alarm('disk_low', `${mb(free)} MB free in ${this.o.dir} (mark ${mb(this.o.lowBytes)} MB)`);
    if (!low && was.low && was.free_bytes !== null) this.o.alarm('disk_ok', `${mb(free)} MB free`);
    if (!this.o.store.writable) await this.recover(free);
    else if (this.state$.value.reserve !== 'held' && this.o.reserveBytes > 0 && free > this.o.reserveBytes + this.o.lowBytes) await this.makeReserve();
  }

  private failed(e: Error): void {
    this.o.log.error({ err: e.message, dir: this.o.dir }, 'database write failed: records are held in memory until the disk recovers');
    this.set({ writable: false, error: e.message });
    this.o.alarm('storage_failure', e.message);
    // Room for LevelDB to recover, now: the reserve exists for this moment.
    void releaseReserve(this.o.dir).then((released) => {
      if (released) this.o.log.warn({ mb: mb(this.o.reserveBytes) }, 'reserve file released to let the database recover');
      this.set({ reserve: released ? 'released' : this.state$.value.reserve === 'held' ? 'released' : this.state$.value.reserve });
      return this.check();
    });
  }

  /** Reopen the store when there is room for its recovery; never closes it on a disk that is still full. */
  private async recover(free: number): Promise<void> {
    // Recovery writes the recovered log as a table (up to LevelDB's 4 MB write buffer) plus a margin.
    const needed = Math.max(8 * 1024 * 1024, Math.min(this.o.reserveBytes, 32 * 1024 * 1024));
    if (this.recovering || free < needed) return;
    this.recovering = true;
    try {
      await this.o.store.reopen();
      this.set({ writable: true, error: null });
      this.o.log.warn({ free_mb: mb(free) }, 'database writable again; writing the records held in memory');
      this.o.alarm('storage_recovered', `${mb(free)} MB free`);
      this.o.recovered();
    } catch (e) {
      this.o.log.error({ err: (e as Error).message }, 'database recovery failed');
    } finally {
      this.recovering = false;
    }
  }

  private async makeReserve(): Promise<void> {
    const tmp = `${this.reservePath}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        const chunk = Buffer.alloc(1024 * 1024);
        for (let left = this.o.reserveBytes; left > 0; left -= chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, left));
        await fh.sync();
      } finally {
        await fh.close();
      }
      const { rename } = await import('node:fs/promises');
      await rename(tmp, this.reservePath);
      this.set({ reserve: 'held' });
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      this.o.log.warn({ err: (e as Error).message }, 'could not create the reserve file');
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.state$.complete();
  }
}

const mb = (b: number): number => Math.round(b / 1024 / 1024);

/** Synchronous free space, for start-up decisions. */
export function freeBytesSync(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}
