/**
 * Disk-full protection (a start/stop unit). Keeps two reserve files in the data directory: the
 * first is released when a write fails at run time, the second only when the database cannot be
 * opened at start (LevelDB must write to recover its log), so a gateway restarted on a full disk
 * still opens its directory and decides. Watches free space; reopens the store once there is room
 * (LevelDB drops the failed partial record and keeps everything written before it) and lets the
 * journal writer drain what it held in memory. Tells the operator through state$ (status, health,
 * MQTT) and alarm events. Never blocks a decision.
 */
import { existsSync } from 'node:fs';
import { open, rename, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BehaviorSubject } from 'rxjs';
import type { Logger } from '../log.js';
import type { Store } from './store.js';

export interface StorageState {
  /** False while writes fail: records are held in memory. */
  writable: boolean;
  /** The write error that stopped writing. */
  error: string | null;
  free_bytes: number | null;
  /** Below the configured low-space mark. */
  low: boolean;
  /** Reserve files in place (0, 1 or 2). */
  reserve_files: number;
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

/** reserve-run.bin: released at run time. reserve-start.bin: released only to open at start. */
export const RESERVE_FILES = ['reserve-run.bin', 'reserve-start.bin'] as const;

/** Free bytes for an unprivileged writer on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Delete one reserve file; true when there was one. At run time only the first may go (`atStart`
 * false); at start either, the run-time one first.
 */
export async function releaseReserve(dir: string, atStart: boolean): Promise<boolean> {
  for (const f of atStart ? RESERVE_FILES : RESERVE_FILES.slice(0, 1)) {
    try {
      await unlink(join(dir, f));
      return true;
    } catch {
      /* not there: the next one */
    }
  }
  return false;
}

const reserveCount = (dir: string): number => RESERVE_FILES.filter((f) => existsSync(join(dir, f))).length;

export class StorageGuard {
  readonly state$: BehaviorSubject<StorageState>;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private recovering = false;

  constructor(private readonly o: StorageGuardOptions) {
    this.state$ = new BehaviorSubject<StorageState>({ writable: o.store.writable, error: o.store.writeError, free_bytes: null, low: false, reserve_files: reserveCount(o.dir) });
  }

  /** Each reserve file holds half the configured reserve. */
  private get fileBytes(): number {
    return Math.floor(this.o.reserveBytes / RESERVE_FILES.length);
  }

  private set(p: Partial<StorageState>): void {
    this.state$.next({ ...this.state$.value, ...p });
  }

  async start(): Promise<void> {
    this.o.store.onWriteFailure = (e) => this.failed(e);
    this.o.store.onReopenError = (e) => this.o.log.error({ err: e.message }, 'database could not be opened again yet; retrying');
    // The reserve is written by the first scheduled check, not here: start stays fast.
    await this.check(false);
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
  async check(mayReserve = true): Promise<void> {
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
    else if (mayReserve && this.o.reserveBytes > 0 && reserveCount(this.o.dir) < RESERVE_FILES.length && free > this.o.reserveBytes + this.o.lowBytes) await this.makeReserve();
  }

  private failed(e: Error): void {
    this.o.log.error({ err: e.message, dir: this.o.dir }, 'database write failed: records are held in memory until the disk recovers');
    this.set({ writable: false, error: e.message });
    this.o.alarm('storage_failure', e.message);
    // Room for LevelDB to recover, now: the run-time reserve exists for this moment.
    void releaseReserve(this.o.dir, false).then((released) => {
      if (released) this.o.log.warn({ mb: mb(this.fileBytes) }, 'reserve file released to let the database recover');
      this.set({ reserve_files: reserveCount(this.o.dir) });
      return this.check();
    });
  }

  /**
   * Reopen the store when there is room for its recovery (the recovered log becomes a table of up
   * to LevelDB's write buffer); never closes it on a disk that is still full.
   */
  private async recover(free: number): Promise<void> {
    const needed = Math.max(this.fileBytes, 1024 * 1024);
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

  /** Create the missing reserve files (written, not sparse: the blocks must really be taken). */
  private async makeReserve(): Promise<void> {
    for (const f of RESERVE_FILES) {
      const path = join(this.o.dir, f);
      if (existsSync(path)) continue;
      const tmp = `${path}.tmp`;
      try {
        const fh = await open(tmp, 'w', 0o600);
        try {
          const chunk = Buffer.alloc(1024 * 1024);
          for (let left = this.fileBytes; left > 0; left -= chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, left));
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path);
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        this.o.log.warn({ err: (e as Error).message }, 'could not create a reserve file');
        break;
      }
    }
    this.set({ reserve_files: reserveCount(this.o.dir) });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.state$.complete();
  }
}

const mb = (b: number): number => Math.round(b / 1024 / 1024);

