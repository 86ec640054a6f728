/**
 * A full replacement from a listing (an async source, as a cloud sync gives) is written by the
 * generation worker; from an in-memory list it is written on this thread. Both must build the same
 * directory, and a worker that fails or is stopped must leave the previous directory in force and
 * the database free for the next open.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { NormalizedUser } from '../../src/domain/user.js';
import { GenerationBuilder, WorkerLostError } from '../../src/store/generation-builder.js';
import { Store } from '../../src/store/store.js';
import { makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const keys = [makeKey(), makeKey(), makeKey()];
const ROOT = new URL('../..', import.meta.url).pathname;

/** 450 users over five chunks, with what crosses chunk boundaries: a card shared by u5 and u250, u7 listed twice (the later wins). */
function listing(): NormalizedUser[] {
  const out: NormalizedUser[] = [];
  for (let i = 0; i < 450; i++) {
    const cards = i === 5 || i === 250 ? [777] : [10_000 + i];
    out.push(user({ userid: `u${i}`, openvid: 1000 + i, public_key: keys[i % 3]!.publicB64, cards, pass_rule_list: i % 2 ? [{ id: 0, rule: '9:00-18:00 * * 1-5 *', effect_time: 0 }] : [], fp: i === 3 ? [{ id: 0, data: 'RlA=' }] : [] }));
  }
  out.splice(300, 0, user({ userid: 'u7', openvid: 5007, public_key: keys[0]!.publicB64, cards: [55_007] }));
  return out;
}

async function* slowly<T>(items: readonly T[], o: { failAt?: number; onItem?: (i: number) => Promise<void> } = {}): AsyncGenerator<T> {
  for (let i = 0; i < items.length; i++) {
    if (i === o.failAt) throw new Error('listing failed: perm_version moved');
    await o.onItem?.(i);
    yield items[i]!;
  }
}

/** What a decision sees of the directory, for every user of the listing. */
function view(s: Store): unknown[] {
  return listing().map((u) => {
    const id = u.record.userid;
    const r = s.directory.user(id);
    return [id, r, s.directory.useridByOpenvid(u.record.openvid!), u.record.cards.map((c) => s.directory.useridByCard(c)), r?.key_id ? Boolean(s.directory.publicKey(r.key_id)) : null];
  });
}

/** Can another process open the database? Only if every handle in this one (the worker's too) was closed. */
function openableElsewhere(path: string): boolean {
  const code = `const { Level } = require('level'); const db = new Level(${JSON.stringify(path)}); db.open().then(() => db.close()).then(() => process.exit(0), (e) => { console.error(e.cause?.code ?? e.code); process.exit(3); });`;
  return spawnSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8' }).status === 0;
}

describe('store: full replacement in the generation worker', () => {
  it('builds the same directory from a listing as from a list, across chunk boundaries', async () => {
    const a = await Store.open(join(tmpDir(), 'db'));
    const b = await Store.open(join(tmpDir(), 'db'));
    const progress: number[] = [];
    expect(await a.replaceDirectory(slowly(listing()), (n) => progress.push(n))).toBe(450);
    expect(await b.replaceDirectory(listing())).toBe(450);
    expect(view(a)).toEqual(view(b));
    expect(await a.userCount()).toBe(450);
    // The shared card is a conflict however far apart its users were listed; u7 is its later listing.
    expect(a.directory.useridByCard('777')).toBeNull();
    expect(a.directory.user('u7')!.cards).toEqual(['55007']);
    expect(a.directory.useridByCard('10007')).toBeUndefined();
    expect(a.directory.useridByOpenvid('1007')).toBeUndefined();
    expect(await a.templatesOf('u3')).toEqual([{ kind: 'fp', id: '0', data: 'RlA=' }]);
    expect(progress.at(-1)).toBe(451);
    expect(progress).toEqual([...progress].sort((x, y) => x - y));
    // A second replacement (generation 3) drops who is gone.
    expect(await a.replaceDirectory(slowly(listing().slice(0, 100)))).toBe(100);
    expect(a.directory.user('u200')).toBeUndefined();
    expect(a.generationNumber).toBe(3);
    await Promise.all([a.close(), b.close()]);
  });

  it('a listing that fails halfway leaves the previous directory, the store writable and the database free', async () => {
    const path = join(tmpDir(), 'db');
    const s = await Store.open(path);
    await s.replaceDirectory(slowly(listing().slice(0, 50)));
    await expect(s.replaceDirectory(slowly(listing(), { failAt: 230 }))).rejects.toThrow('perm_version moved');
    expect(await s.userCount()).toBe(50);
    expect(s.directory.user('u49')).toBeDefined();
    expect(s.directory.user('u200')).toBeUndefined();
    expect(s.writable).toBe(true);
    // Bad input (a record that cannot be posted to the worker) is refused the same way.
    const bad = { ...listing()[0]!, record: { ...listing()[0]!.record, name: (() => 1) as unknown as string } };
    await expect(s.replaceDirectory(slowly([bad, ...listing().slice(1, 120)]))).rejects.toThrow(/could not be cloned/);
    expect(s.writable).toBe(true);
    expect(await s.replaceDirectory(slowly(listing()))).toBe(450);
    await s.close();
    expect(openableElsewhere(path)).toBe(true);
    const again = await Store.open(path);
    expect(await again.userCount()).toBe(450);
    await again.close();
  });

  it('closing the store during a sync ends the worker and keeps the previous directory', async () => {
    const path = join(tmpDir(), 'db');
    const s = await Store.open(path);
    await s.replaceDirectory(listing().slice(0, 10));
    let closing: Promise<void> | null = null;
    const sync = s.replaceDirectory(
      slowly(listing(), {
        onItem: async (i) => {
          if (i === 250) closing = s.close();
          if (i >= 250) await new Promise((r) => setTimeout(r, 1));
        },
      }),
    );
    await expect(sync).rejects.toThrow();
    await (closing as Promise<void> | null);
    expect(openableElsewhere(path)).toBe(true);
    const again = await Store.open(path);
    expect(await again.userCount()).toBe(10);
    expect(again.directory.user('u9')).toBeDefined();
    expect(again.directory.user('u100')).toBeUndefined();
    await again.close();
  });
});

describe('store: full replacement without a worker', () => {
  it('writes the listing on this thread when no worker can start, and says so', async () => {
    const spy = vi.spyOn(GenerationBuilder, 'start').mockRejectedValue(new Error('ERR_WORKER_INIT_FAILED: no thread'));
    try {
      const s = await Store.open(join(tmpDir(), 'db'));
      const told: string[] = [];
      s.onWorkerUnavailable = (e) => told.push(e.message);
      const b = await Store.open(join(tmpDir(), 'db'));
      expect(await s.replaceDirectory(slowly(listing()))).toBe(450);
      await b.replaceDirectory(listing());
      expect(view(s)).toEqual(view(b));
      expect(told).toEqual(['ERR_WORKER_INIT_FAILED: no thread']);
      await Promise.all([s.close(), b.close()]);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('store: records bigger than the worker', () => {
  const withTemplate = (i: number, data: string): NormalizedUser => ({ ...user({ userid: `b${i}`, cards: [i] }), templates: [{ kind: 'fa', id: 'x', data }] });

  it('ends a chunk at 4 MB of templates, so 24 users with 1 MB each go through the worker four at a time', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    const told: string[] = [];
    s.onWorkerUnavailable = (e) => told.push(e.message);
    const mb = 'A'.repeat(1 << 20);
    const progress: number[] = [];
    expect(await s.replaceDirectory(slowly(Array.from({ length: 24 }, (_, i) => withTemplate(i, mb))), (n) => progress.push(n))).toBe(24);
    expect(told).toEqual([]);
    // Written four users (4 MB) at a time, not all at once.
    expect(progress.slice(0, 3)).toEqual([4, 8, 12]);
    expect((await s.templatesOf('b23'))[0]!.data).toHaveLength(1 << 20);
    await s.close();
  }, 30_000);

  it('a user too big for the worker fails that sync cleanly, and the next one is written here', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    const told: string[] = [];
    s.onWorkerUnavailable = (e) => told.push(e.message);
    await s.replaceDirectory(listing().slice(0, 5));
    const huge = (): NormalizedUser[] => [...listing().slice(0, 150), withTemplate(0, 'B'.repeat(9 << 20)), ...listing().slice(150, 160)];
    await expect(s.replaceDirectory(slowly(huge()))).rejects.toThrow(/user b0 has 9437184 bytes of templates, too many for the generation worker/);
    expect([s.writable, await s.userCount()]).toEqual([true, 5]);
    expect(await s.replaceDirectory(slowly(huge()))).toBe(161);
    expect(told).toEqual([expect.stringMatching(/too many for the generation worker/)]);
    expect((await s.templatesOf('b0'))[0]!.data).toHaveLength(9 << 20);
    await s.close();
  });

  it('after a worker died in a sync, the next full syncs are written here (it would die again on the same listing)', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    const told: string[] = [];
    s.onWorkerUnavailable = (e) => told.push(e.message);
    await s.replaceDirectory(listing().slice(0, 5));
    // As Node reports a worker that reached its heap limit.
    const died = vi.spyOn(GenerationBuilder.prototype, 'prepare').mockRejectedValueOnce(new WorkerLostError('the generation worker failed: Worker terminated due to reaching memory limit: JS heap out of memory'));
    try {
      await expect(s.replaceDirectory(slowly(listing()))).rejects.toThrow(/memory limit/);
      expect(s.writable).toBe(true);
      expect(await s.userCount()).toBe(5);
      expect(await s.replaceDirectory(slowly(listing()))).toBe(450);
      expect(await s.replaceDirectory(slowly(listing().slice(0, 30)))).toBe(30);
      expect(told).toEqual([expect.stringMatching(/memory limit/), expect.stringMatching(/memory limit/)]);
      expect(died).toHaveBeenCalledTimes(1);
    } finally {
      died.mockRestore();
      await s.close();
    }
  });
});

