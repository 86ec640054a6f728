import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store, StoreLockedError } from '../../src/store/store.js';
import { keyId } from '../../src/domain/qr.js';
import { makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const shared = makeKey();

describe('store: directory', () => {
  it('stores decision records apart from templates, keys once, and survives reopen', async () => {
    const path = join(tmpDir(), 'db');
    const s = await Store.open(path);
    await s.upsertUsers([
      user({ userid: 'a', openvid: '18446744073709551615', public_key: shared.publicB64, fp: [{ id: 0, data: 'RlA=' }], cards: [1001] }),
      user({ userid: 'b', openvid: 2, public_key: shared.publicB64, fa: 'TEVHQUNZ' }),
    ]);
    expect(await s.userCount()).toBe(2);
    const a = s.directory.user('a')!;
    expect(a.key_id).toBe(keyId(Buffer.from(shared.publicB64, 'base64')));
    expect(a).not.toHaveProperty('fp');
    expect(s.directory.useridByOpenvid('18446744073709551615')).toBe('a');
    expect(s.directory.useridByCard('1001')).toBe('a');
    expect(s.directory.publicKey(a.key_id!)).toBeTruthy();
    expect(await s.templatesOf('a')).toEqual([{ kind: 'fp', id: '0', data: 'RlA=' }]);
    expect(await s.templatesOf('b')).toEqual([{ kind: 'fa', id: 'legacy', data: 'TEVHQUNZ' }]);
    await s.close();

    const again = await Store.open(path);
    expect(again.directory.user('b')?.openvid).toBe('2');
    expect(await again.userCount()).toBe(2);
    await again.close();
  });

  it('moves index entries when a user changes openvid or cards, and drops old templates', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    await s.upsertUsers([user({ userid: 'a', openvid: 1, cards: [5, 6], fp: [{ id: 1, data: 'eA==' }] })]);
    await s.upsertUsers([user({ userid: 'a', openvid: 9, cards: [6, 7] })]);
    expect(s.directory.useridByOpenvid('1')).toBeUndefined();
    expect(s.directory.useridByOpenvid('9')).toBe('a');
    expect(s.directory.useridByCard('5')).toBeUndefined();
    expect(s.directory.useridByCard('7')).toBe('a');
    expect(await s.templatesOf('a')).toEqual([]);
    expect(await s.userCount()).toBe(1);
    await s.close();
  });

  it('marks a card or openvid claimed by two users as a conflict until one lets go', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    await s.upsertUsers([user({ userid: 'a', openvid: 3, cards: [42] }), user({ userid: 'b', openvid: 3, cards: [42] })]);
    expect(s.directory.useridByCard('42')).toBeNull();
    expect(s.directory.useridByOpenvid('3')).toBeNull();
    expect(await s.deleteUsers(['a', 'nobody'])).toBe(1);
    expect(s.directory.useridByCard('42')).toBe('b');
    expect(s.directory.useridByOpenvid('3')).toBe('b');
    expect(await s.userCount()).toBe(1);
    await s.close();
  });

  it('replaces the directory atomically and keeps the old one if the replacement fails midway', async () => {
    const path = join(tmpDir(), 'db');
    const s = await Store.open(path);
    await s.upsertUsers([user({ userid: 'old', openvid: 1 })]);
    async function* failing(): AsyncGenerator<ReturnType<typeof user>> {
      for (let i = 0; i < 1200; i++) yield await Promise.resolve(user({ userid: `n${i}`, openvid: 100 + i }));
      throw new Error('connection dropped mid-page');
    }
    await expect(s.replaceDirectory(failing())).rejects.toThrow('connection dropped');
    expect(s.directory.user('old')).toBeDefined();
    expect(s.directory.user('n5')).toBeUndefined();
    expect(await s.userCount()).toBe(1);
    await s.close();

    // On reopen the half-built generation is cleared, and a complete replacement switches over.
    const r = await Store.open(path);
    expect(r.directory.user('old')).toBeDefined();
    const progress: number[] = [];
    const n = await r.replaceDirectory(
      (function* () {
        for (let i = 0; i < 1200; i++) yield user({ userid: `n${i}`, openvid: 100 + i, public_key: shared.publicB64 });
      })(),
      (w) => progress.push(w),
    );
    expect(n).toBe(1200);
    expect(progress.at(-1)).toBe(1200);
    expect(r.directory.user('old')).toBeUndefined();
    expect(r.directory.useridByOpenvid('1')).toBeUndefined();
    expect(r.directory.useridByOpenvid('1299')).toBe('n1199');
    expect(await r.userCount()).toBe(1200);
    await r.close();
    const again = await Store.open(path);
    expect(again.directory.user('n0')).toBeDefined();
    expect(again.directory.user('old')).toBeUndefined();
    await again.close();
  });

  it('refuses a second process with a clear error', async () => {
    const path = join(tmpDir(), 'db');
    const s = await Store.open(path);
    await expect(Store.open(path)).rejects.toBeInstanceOf(StoreLockedError);
    await s.close();
  });
});

describe('store: journal, outbox, replay', () => {
  const decision = (at: number, userid = 'a') => ({
    decision: 'grant' as const, reason: 'default_allow' as const, userid, user_type: 0 as const, method: 'card' as const, door: 'front', at,
  });

  it('appends journal and outbox entries with increasing sequence numbers that survive reopen', async () => {
    const path = join(tmpDir(), 'db');
    const s = await Store.open(path);
    const written = await s.append([
      { decision: decision(1000), pass: { userid: 'a', user_type: 0, timestamp: 1, direction: 'in', method: 'qr', door: 'front' } },
      { decision: { ...decision(2000), decision: 'deny', reason: 'unknown_user', userid: null } },
    ]);
    expect(written.map((w) => w.seq)).toEqual([1, 2]);
    await s.close();
    const r = await Store.open(path);
    const [next] = await r.append([{ decision: decision(3000), pass: { userid: 'a', user_type: 0, timestamp: 3, direction: 'unknown', method: 'qr', door: 'front' } }]);
    expect(next!.seq).toBe(3);
    expect((await r.outboxPeek()).map((p) => p.seq)).toEqual([1, 3]);
    expect(await r.outboxDepth()).toBe(2);
    expect((await r.recentJournal(2)).map((j) => j.seq)).toEqual([3, 2]);
    await r.outboxRemove([1]);
    expect((await r.outboxPeek()).map((p) => p.seq)).toEqual([3]);
    await r.close();
  });

  it('tells of every sequenced write with its records, and reads the journal back by sequence range (decisions and door events, nothing else)', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    const told: [number, number, number[]][] = [];
    const off = s.onSequenced((from, to, records) => told.push([from, to, records.map((r) => r.seq)]));
    await s.append([{ decision: decision(1) }, { decision: decision(2) }]);
    await s.appendDoorEvent({ type: 'forced_open', door: 'front', at: 3 });
    await s.outboxAppend([{ userid: 'a', user_type: 0, timestamp: 4, direction: 'in', method: 'card', door: 'front' }]); // a number, no journal record
    await s.append([{ decision: decision(5) }]);
    expect(told).toEqual([[1, 2, [1, 2]], [3, 3, [3]], [4, 4, []], [5, 5, [5]]]);
    expect(s.lastSeq).toBe(5);
    const all = await s.journalRecords(1, 5, 100);
    expect(all.to).toBe(5);
    expect(all.records.map((r) => [r.seq, r.kind])).toEqual([[1, 'decision'], [2, 'decision'], [3, 'event'], [5, 'decision']]);
    // A limit: how far it looked is the last record it returned.
    const two = await s.journalRecords(2, 5, 2);
    expect([two.records.map((r) => r.seq), two.to]).toEqual([[2, 3], 3]);
    // Pruned, or never a journal record: the range is answered empty, covered.
    expect(await s.journalRecords(4, 4, 10)).toEqual({ records: [], to: 4 });
    off();
    await s.append([{ decision: decision(6) }]);
    expect(told).toHaveLength(4);
    await s.close();
  });

  it('prunes the journal to the newest entries', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    await s.append(Array.from({ length: 2500 }, (_, i) => ({ decision: decision(10_000 + i) })));
    expect(await s.pruneJournal(100)).toBe(2400);
    const left = await s.recentJournal(1000);
    expect(left).toHaveLength(100);
    expect(left.at(-1)!.seq).toBe(2401);
    await s.close();
  });

  it('keeps the outbox depth as records come and go, without counting keys', async () => {
    const path = join(tmpDir(), 'db');
    let s = await Store.open(path);
    const pass = { userid: 'a', user_type: 0, timestamp: 1_800_000_000, direction: 'in' as const, method: 'card' as const, door: 'front' };
    await s.append([{ decision: decision(1), pass }, { decision: decision(2) }, { decision: decision(3), pass }]);
    const seqs = await s.outboxAppend([pass, pass]);
    expect(await s.outboxDepth()).toBe(4);
    const [first, second] = await s.outboxPeek(2);
    await s.outboxRemove([first!.seq, 999_999]); // an unknown seq changes nothing
    await s.outboxHold([second!], 'test');
    expect(await s.outboxDepth()).toBe(2);
    await s.requeueHeld();
    expect(await s.outboxDepth()).toBe(3);
    await s.close();
    s = await Store.open(path); // counted once at open
    expect(await s.outboxDepth()).toBe(3);
    expect((await s.outboxPeek(10)).map((r) => r.seq)).toContain(seqs[1]);
    await s.close();
  });

  it('persists replay entries with both clocks, reads older bare entries, and deletes what the guard let go, across a restart', async () => {
    const path = join(tmpDir(), 'db');
    const s = await Store.open(path);
    const a = { key: 'sigA', until: 500, window_s: 300, mono_until: 9000, boot: 'b1' };
    const b = { key: 'sigB', until: 1500, window_s: 300, mono_until: 19000, boot: 'b1' };
    await s.append([{ decision: decision(1), replay: a }, { decision: decision(2), replay: b }]);
    await s.close();
    const r = await Store.open(path);
    expect(await r.loadReplay()).toEqual([['sigA', { until: 500, window_s: 300, mono_until: 9000, boot: 'b1' }], ['sigB', { until: 1500, window_s: 300, mono_until: 19000, boot: 'b1' }]]);
    expect(await r.deleteReplay(['sigA'])).toBe(1);
    expect((await r.loadReplay()).map(([k]) => k)).toEqual(['sigB']);
    await r.close();
  });

  it('deletes decisions and door events past their age, and nothing younger', async () => {
    const s = await Store.open(join(tmpDir(), 'db'));
    await s.append([1000, 2000, 3000, 4000].map((at) => ({ decision: { ...decision(at), at } })));
    for (const at of [1500, 3500]) await s.appendDoorEvent({ type: 'forced_open', door: 'front', at });
    expect(await s.pruneByAge(3000)).toBe(3); // 1000, 2000 and the door event at 1500
    expect((await s.recentJournal(10)).map((e) => e.at)).toEqual([4000, 3000]);
    expect((await s.recentDoorEvents(10)).map((e) => e.at)).toEqual([3500]);
    await s.close();
  });
});
