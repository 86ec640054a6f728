/**
 * Third outside probe: a refused 100,000-row import parsed every row before the 20,000 cap refused
 * it (decisions waited up to 663 ms; RSS 120 → 314 MB). Now it is refused before parsing, an
 * accepted import lets decisions run between rows, and the card conflicts it creates are reported.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { localApi } from '../../src/control/api.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

async function open() {
  const dir = join(tmpDir(), 'data');
  const store = await Store.open(dir);
  return { store, api: localApi(store, validateConfig({ data_dir: dir, doors: [{ id: 'front' }] }, 't'), 't') };
}

describe('users import', () => {
  it('refuses an import beyond the local layer\'s cap before parsing a row, and writes nothing', async () => {
    const { store, api } = await open();
    try {
      const records = Array.from({ length: 100_000 }, (_, i) => ({ kind: 'local_user', userid: `p${i}`, cards: [i + 1], note: 'x'.repeat(50) }));
      // The event loop is never held long: a timer set now fires within a short time of its due.
      let late = 0;
      const due = performance.now() + 1;
      const timer = new Promise<void>((r) => setTimeout(() => ((late = performance.now() - due), r()), 1));
      const t0 = performance.now();
      await expect(api.usersImport({ records, by: 't' })).rejects.toThrow(/100000 records: the local layer holds at most 20000 people/);
      await expect(api.usersImport({ records: records.slice(0, 25_000), by: 't' })).rejects.toThrow(/holds at most 20000 people \(it holds 0; this import would add 25000\): nothing was imported/);
      expect(performance.now() - t0).toBeLessThan(300);
      await timer;
      expect(late).toBeLessThan(300);
      expect(store.localCount.users).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('an accepted import yields between rows, and reports the card conflicts it creates', async () => {
    const { store, api } = await open();
    try {
      await store.upsertUsers([user({ userid: 'alice', cards: [1001] })]);
      let ticks = 0;
      const tick = setInterval(() => ticks++, 0);
      const r = await api.usersImport({ records: Array.from({ length: 2000 }, (_, i) => ({ kind: 'local_user', userid: `p${i}`, cards: [i === 7 ? 1001 : 50_000 + i] })), by: 't' });
      clearInterval(tick);
      expect(ticks).toBeGreaterThan(0);
      expect(r).toMatchObject({ imported: 2000, rejected: [], conflicts: [{ kind: 'card', value: '1001', userids: ['alice', 'p7'] }] });
    } finally {
      await store.close();
    }
  });
});
