/**
 * Third outside probe, backups: `backup` wrote wherever it was told (LevelDB's CURRENT included);
 * `restore` read unbounded lines (a 917 KB file with a 900 MB line crashed it) and restored unknown
 * prefixes, path-like keys, garbage values and a broken local user with exit 0.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { localApi } from '../../src/control/api.js';
import { backupTargetProblem, restoreBackup, verifyBackup, writeBackup } from '../../src/store/backup.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

/** A backup with these lines between header and end, with a correct checksum (anyone can compute one). */
function forge(records: unknown[]): string {
  const lines = [{ format: 'doorgw-backup', version: 1, created: 1, gateway_id: 'g', doorgw: 't' }, ...records].map((r) => `${JSON.stringify(r)}\n`);
  const sha256 = createHash('sha256').update(lines.join('')).digest('hex');
  const entries = records.filter((r) => typeof (r as { k?: unknown }).k === 'string').length;
  const file = join(tmpDir(), 'forged.doorgw-backup');
  writeFileSync(file, gzipSync(lines.join('') + `${JSON.stringify({ end: true, entries, files: 0, sha256 })}\n`));
  return file;
}

async function realBackupLines(): Promise<{ k: string; v: string }[]> {
  const dir = join(tmpDir(), 'src');
  const config = validateConfig({ data_dir: dir, doors: [{ id: 'front' }] }, 't');
  const s = await Store.open(dir);
  await localApi(s, config, 't').usersAdd({ userid: 'cleaner', cards: ['900'], by: 'test' });
  const file = join(tmpDir(), 'real.gz');
  await writeBackup(s, dir, file, { gateway_id: 'g', doorgw: 't' });
  await s.close();
  return gunzipSync(readFileSync(file)).toString().trim().split('\n').slice(1, -1).map((l) => JSON.parse(l) as { k: string; v: string });
}

describe('restore trusts nothing it reads', () => {
  it('a genuine backup passes the entry checks', async () => {
    const lines = await realBackupLines();
    expect(lines.some((l) => l.k.startsWith('!lu!'))).toBe(true);
    await expect(verifyBackup(forge(lines))).resolves.toMatchObject({ entries: lines.length });
  });

  it.each([
    ['an unknown prefix', { k: '!evil!x', v: '1' }, /unknown sublevel 'evil'/],
    ['a key outside every sublevel', { k: '../../etc/passwd', v: '1' }, /a key outside every sublevel/],
    ['a journal key that is a path', { k: '!journal!../../x', v: '{"seq":1,"at":1,"decision":"grant"}' }, /journal key is not/],
    ['a value that is not JSON', { k: '!outbox!000000000001', v: 'garbage' }, /not JSON/],
    ['a local user with a broken shape', { k: '!lu!bob', v: JSON.stringify({ userid: 'bob', user_type: 7, cards: 'all' }) }, /lu: user_type is not 0, 1 or 2/],
    ['a local user filed under another id', { k: '!lu!bob', v: JSON.stringify({ userid: 'admin', user_type: 0, name: null, openvid: null, key_id: null, cards: [], rules: [], invalid_rules: [], source: 'local' }) }, /under another userid/],
    ['a console account without a scrypt hash', { k: '!webaccounts!root', v: JSON.stringify({ name: 'root', role: 'admin', hash: 'plain' }) }, /console account/],
  ])('refuses %s, naming it, and writes nothing', async (_l, bad, why) => {
    const lines = await realBackupLines();
    const file = forge([...lines, bad]);
    const target = join(tmpDir(), 'target');
    await expect(restoreBackup(file, target)).rejects.toThrow(why);
    await expect(restoreBackup(file, target)).rejects.toThrow(/nothing was written/);
    expect(Store.exists(target)).toBe(false);
  });

  it('a 300 MB line (a few hundred KB of gzip) is refused while it is read, in bounded memory', async () => {
    const file = join(tmpDir(), 'bomb.gz');
    const gz = createGzip({ level: 1 });
    const out = gz.pipe(createWriteStream(file));
    gz.write('{"format":"doorgw-backup","version":1}\n{"k":"!meta!x","v":"');
    const mb = Buffer.alloc(1024 * 1024, 'a');
    for (let i = 0; i < 300; i++) if (!gz.write(mb)) await once(gz, 'drain');
    gz.end('"}\n');
    await once(out, 'finish');
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    try {
      await expect(verifyBackup(file)).rejects.toThrow(/a line longer than 8388608 bytes/);
    } finally {
      clearInterval(sample);
    }
    expect(peak - before).toBeLessThan(120 * 1024 * 1024);
  }, 30_000);
});

describe('backup writes only where it may', () => {
  it('never into the data directory, never over a file unless forced, and over MQTT only into backup.dir', async () => {
    const dir = join(tmpDir(), 'data');
    const s = await Store.open(dir);
    const api = localApi(s, validateConfig({ data_dir: dir, doors: [{ id: 'front' }] }, 't'), 't');
    try {
      await expect(api.backup({ file: join(dir, 'CURRENT'), by: 'cli:root' })).rejects.toThrow(/inside the data directory/);
      await expect(api.backup({ file: join(dir, 'CURRENT'), by: 'cli:root', force: true })).rejects.toThrow(/inside the data directory/);
      expect(readFileSync(join(dir, 'CURRENT'), 'utf8')).toMatch(/^MANIFEST-/);
      const file = join(tmpDir(), 'b.gz');
      await api.backup({ file, by: 'cli:root' });
      await expect(api.backup({ file, by: 'cli:root' })).rejects.toThrow(/exists: give another name, or --force to replace it/);
      await expect(api.backup({ file, by: 'cli:root', force: true })).resolves.toMatchObject({ file });
      await expect(api.backup({ file: join(tmpDir(), 'm.gz'), by: 'mqtt' })).rejects.toThrow(/backup.dir, and none is configured/);
      // A subdirectory of the data directory (the role's backups/) is fine.
      expect(backupTargetProblem(join(dir, 'backups', 'x.gz'), { dataDir: dir, force: false })).toBeNull();
      expect(existsSync(join(dir, 'backups'))).toBe(false);
    } finally {
      await s.close();
    }
  });
});
