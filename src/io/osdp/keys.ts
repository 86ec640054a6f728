/**
 * OSDP reader keys (SCBK), one file in the data directory: `osdp-keys.json`, mode 0600, written to a
 * temporary file, synced and renamed (a key the reader holds must never be lost half-written). Keyed
 * by reader id. A key sent by KEYSET is first kept as `pending`: if the gateway dies before the
 * reader's ACK, the next handshake tries it (and drops it when the reader still holds the old one).
 * Included in backups. Never logged.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { OsdpKeyRing } from './device.js';

interface Entry {
  key?: string;
  pending?: string;
  enrolled_at?: number;
}

export const OSDP_KEY_FILE = 'osdp-keys.json';

export class OsdpKeyFile {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, OSDP_KEY_FILE);
  }

  /** Tighten a file someone made readable by others (it holds keys). Returns whether it had to. */
  tighten(): boolean {
    if (!existsSync(this.path) || (statSync(this.path).mode & 0o077) === 0) return false;
    chmodSync(this.path, 0o600);
    return true;
  }

  private read(): Record<string, Entry> {
    if (!existsSync(this.path)) return {};
    const j = JSON.parse(readFileSync(this.path, 'utf8')) as { version?: number; readers?: Record<string, Entry> };
    if (j.version !== 1 || typeof j.readers !== 'object' || j.readers === null) throw new Error(`${this.path}: not an OSDP key file of version 1`);
    return j.readers;
  }

  private write(readers: Record<string, Entry>): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify({ version: 1, readers }, null, 1));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
  }

  private update(id: string, f: (e: Entry) => Entry | null): void {
    const all = this.read();
    const next = f(all[id] ?? {});
    if (next) all[id] = next;
    else delete all[id];
    this.write(all);
  }

  /** Which readers have a key (for status; never the key). */
  enrolled(id: string): { enrolled: boolean; pending: boolean; enrolled_at: number | null } {
    const e = this.read()[id];
    return { enrolled: !!e?.key, pending: !!e?.pending, enrolled_at: e?.enrolled_at ?? null };
  }

  /** Forget a reader's key (a reader replaced by a new one: it will be enrolled afresh). */
  forget(id: string): boolean {
    const had = id in this.read();
    if (had) this.update(id, () => null);
    return had;
  }

  ring(id: string): OsdpKeyRing {
    const buf = (h: string | undefined): Buffer | null => (h && /^[0-9a-f]{32}$/.test(h) ? Buffer.from(h, 'hex') : null);
    return {
      get: () => {
        const e = this.read()[id];
        return { key: buf(e?.key), pending: buf(e?.pending) };
      },
      setPending: (key) => this.update(id, (e) => ({ ...e, pending: key.toString('hex') })),
      confirm: (key) => this.update(id, () => ({ key: key.toString('hex'), enrolled_at: Date.now() })),
      dropPending: () =>
        this.update(id, (e) => {
          const { pending: _, ...rest } = e;
          return rest.key ? rest : null;
        }),
    };
  }
}
