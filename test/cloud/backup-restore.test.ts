/** Backup while the door decides and uploads; restore onto a fresh directory; every record sent once. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { CloudUser } from '../../src/cloud/wecom/emulator.js';
import { credentialEvent } from '../../src/domain/events.js';
import { restoreBackup, verifyBackup } from '../../src/store/backup.js';
import { Store, type PassRecord } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { startRig, synced, type Rig } from '../helpers/wecom.js';
import { until } from '../helpers/wait.js';

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.stop();
});

const person = (i: number): CloudUser => ({ userid: `p${i}`, openvid: String(7000 + i), user_type: 0, name: `p${i}` });
const key = (r: { userid: string; timestamp: number }): string => `${r.userid}|${r.timestamp}`;

describe('backup and restore', () => {
  it('a backup taken during decisions and uploads restores onto a fresh directory, and each waiting record is uploaded exactly once', async () => {
    const rig = await startRig({ users: 0 });
    rigs.push(rig);
    rig.emu.upsertUsers(Array.from({ length: 400 }, (_, i) => person(i)), { push: false });
    await synced(rig);
    await rig.gw.api.usersAdd({ userid: 'cleaner', cards: [900] });
    // A slow cloud: uploads run all through the backup, with a backlog.
    rig.emu.fault = (cmd) => (cmd === 'checkin' ? { delayMs: 120 } : undefined);
    let i = 0;
    const pass = (): void => void rig.gw.pipeline.handle(credentialEvent('front', 'face-terminal', 'in', { type: 'userid', value: `p${i++}`, method: 'face' }));
    const timer = setInterval(pass, 4);
    await until(() => i >= 150 && rig.emu.received.length > 0, 'decisions and uploads under way');
    const sentBefore = new Set(rig.emu.received.map(key));
    const file = join(tmpDir(), 'door.doorgw-backup');
    const report = await rig.gw.api.backup({ file, by: 'test' });
    const decidedAtBackup = i;
    await until(() => i >= decidedAtBackup + 100, 'more decisions after the backup');
    clearInterval(timer);
    expect(report).toMatchObject({ file, files: 1 });
    expect(report.entries).toBeGreaterThan(400);
    // The original drains its outbox and goes away (the SD card dies).
    await until(async () => (await rig.gw.store.outboxDepth()) === 0, 'original outbox drained', 20_000);
    await rig.gw.stop();

    const dataDir = join(tmpDir(), 'fresh');
    const info = await restoreBackup(file, dataDir);
    expect(info.sha256).toBe(report.sha256);
    const restored = await Store.open(dataDir);
    const waiting: PassRecord[] = await restored.outboxPeek(10_000);
    const journaled = (await restored.recentJournal(10_000)).length;
    expect(restored.localUser('cleaner')).toBeDefined();
    await restored.close();
    expect(journaled).toBeGreaterThanOrEqual(140); // a few may still be in the group-commit window at the snapshot
    expect(journaled).toBeLessThanOrEqual(decidedAtBackup);
    expect(waiting.length).toBeGreaterThan(0); // the backlog the slow cloud left at the snapshot

    // The restored door, on the same cloud with the secret from the backup.
    rig.emu.fault = () => undefined;
    const mark = rig.emu.received.length;
    const again = await startRig({ emu: rig.emu, dataDir, provisioned: false });
    rigs.push(again);
    await until(async () => (await again.gw.store.outboxDepth()) === 0, 'restored outbox drained', 20_000);
    const resent = rig.emu.received.slice(mark).map(key);
    expect(resent.sort()).toEqual(waiting.map(key).sort()); // each waiting record once, nothing else
    expect(resent.filter((k) => sentBefore.has(k))).toEqual([]); // nothing sent before the snapshot goes again
    // It decides as the old one did (local layer included) and numbers on from the restored journal.
    const d = again.gw.pipeline.handle(credentialEvent('front', 'reader', 'in', { type: 'card', value: '900' }));
    expect(d).toMatchObject({ decision: 'grant', userid: 'cleaner' });
    await until(async () => (await again.gw.store.recentJournal(1))[0]?.userid === 'cleaner', 'journaled');
    expect((await again.gw.store.recentJournal(1))[0]!.seq).toBeGreaterThan(journaled);
  }, 60_000);

  it('refuses a damaged or truncated file and a directory with data, and writes nothing', async () => {
    const dir = join(tmpDir(), 'src');
    const s = await Store.open(dir);
    await s.append([{ decision: { decision: 'grant', reason: 'rule_match', userid: 'a', user_type: 0, method: 'card', door: 'front', at: 1 } }]);
    const { writeBackup } = await import('../../src/store/backup.js');
    const file = join(tmpDir(), 'b.gz');
    await writeBackup(s, dir, file, { gateway_id: 'g', doorgw: 't' });
    await s.close();
    expect((await verifyBackup(file)).entries).toBeGreaterThan(0);

    const text = gunzipSync(readFileSync(file)).toString();
    const damaged = join(tmpDir(), 'damaged.gz');
    const flipped = text.replace('\\"userid\\":\\"a\\"', '\\"userid\\":\\"b\\"');
    expect(flipped).not.toBe(text);
    writeFileSync(damaged, gzipSync(flipped));
    const truncated = join(tmpDir(), 'truncated.gz');
    writeFileSync(truncated, gzipSync(text.split('\n').slice(0, -2).join('\n')));
    const newer = join(tmpDir(), 'newer.gz');
    writeFileSync(newer, gzipSync(text.replace('"version":1', '"version":2')));
    const target = join(tmpDir(), 'target');
    await expect(restoreBackup(damaged, target)).rejects.toThrow(/checksum mismatch: the file is damaged/);
    await expect(restoreBackup(truncated, target)).rejects.toThrow(/truncated \(no end record\)/);
    await expect(restoreBackup(newer, target)).rejects.toThrow(/backup format version 2; this doorgw reads version 1/);
    await expect(restoreBackup(join(tmpDir(), 'none'), target)).rejects.toThrow(/no such file/);
    expect(Store.exists(target)).toBe(false);

    await restoreBackup(file, target);
    await expect(restoreBackup(file, target)).rejects.toThrow(/holds a gateway database: restore onto a fresh data directory, or give --force/);
    await restoreBackup(file, target, { force: true });
    expect(existsSync(join(target, 'RESTORE-INCOMPLETE'))).toBe(false);
    const r = await Store.open(target);
    expect((await r.recentJournal(5)).map((e) => e.userid)).toEqual(['a']);
    await r.close();
  });

  it('a restore that did not finish keeps the gateway from starting on half a directory', async () => {
    const dir = join(tmpDir(), 'half');
    const s = await Store.open(dir);
    await s.close();
    writeFileSync(join(dir, 'RESTORE-INCOMPLETE'), 'x');
    await expect(Store.open(dir)).rejects.toThrow(/a restore into .* did not finish: run doorgw restore again with --force/);
  });
});
