import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WecomAppEmulator } from '../../src/cloud/wecom-app/emulator.js';
import { fetchCloudPasses, matchPasses, monthSpans, zonedMidnight, type CloudPass, type LocalPass } from '../../src/cloud/wecom-app/reconcile.js';
import { WecomAppClient } from '../../src/cloud/wecom-app/client.js';
import { createLogger } from '../../src/log.js';
import { validateConfig } from '../../src/config/load.js';
import { localApi } from '../../src/control/api.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

const SH = 'Asia/Shanghai';
const iso = (s: number): string => new Date(s * 1000).toISOString();

describe('month spans', () => {
  it('never cross a month boundary in the corp time zone', () => {
    const since = zonedMidnight(2024, 1, 15, SH);
    const until = zonedMidnight(2024, 4, 2, SH);
    expect(monthSpans(since, until, SH).map(([a, b]) => [iso(a), iso(b)])).toEqual([
      ['2024-01-14T16:00:00.000Z', '2024-01-31T16:00:00.000Z'],
      ['2024-01-31T16:00:00.000Z', '2024-02-29T16:00:00.000Z'], // leap February
      ['2024-02-29T16:00:00.000Z', '2024-03-31T16:00:00.000Z'],
      ['2024-03-31T16:00:00.000Z', '2024-04-01T16:00:00.000Z'],
    ]);
    expect(monthSpans(until, until, SH)).toEqual([]);
  });

  it('finds local midnight across daylight saving', () => {
    expect(iso(zonedMidnight(2024, 3, 10, 'America/New_York'))).toBe('2024-03-10T05:00:00.000Z');
    expect(iso(zonedMidnight(2024, 3, 11, 'America/New_York'))).toBe('2024-03-11T04:00:00.000Z');
    expect(monthSpans(zonedMidnight(2024, 10, 30, 'America/New_York'), zonedMidnight(2024, 11, 5, 'America/New_York'), 'America/New_York').map(([a]) => iso(a))).toEqual([
      '2024-10-30T04:00:00.000Z',
      '2024-11-01T04:00:00.000Z',
    ]);
  });
});

describe('matching', () => {
  const l = (seq: number, ts: number, pt = 1, pm = 2, userid = 'u'): LocalPass => ({ seq, userid, user_type: 0, timestamp: ts, pass_type: pt, pass_method: pm, door: 'd', entry: {} as never });
  const c = (ts: number, pt = 1, pm = 2, id = 'ou'): CloudPass => ({ open_userid: id, user_type: 0, timestamp: ts, pass_type: pt, pass_method: pm, device_sn: 'SN' });

  it('matches on time, pass_type and pass_method as a multiset, whatever the userid form', () => {
    const r = matchPasses([l(1, 100), l(2, 100), l(3, 200), l(4, 300, 2)], [c(100), c(200, 1, 2, 'woXYZ'), c(300, 1), c(400)]);
    expect(r.matched.map((m) => m.local.seq)).toEqual([1, 3]);
    expect(r.missing_in_cloud.map((m) => m.seq)).toEqual([2, 4]); // the second pass at 100; the exit at 300
    expect(r.cloud_only.map((x) => x.timestamp)).toEqual([300, 400]);
  });
});

describe('doorgw records reconcile (API against the emulator)', () => {
  let emu: WecomAppEmulator | null = null;
  afterEach(async () => emu?.stop());

  it('reports what the cloud has, lacks and has alone; requeues the lacking; follows cursors through empty pages', async () => {
    emu = new WecomAppEmulator();
    emu.pageLimit = 3;
    emu.emptyFirstPage = true;
    const url = await emu.start();
    const store = await Store.open(join(tmpDir(), 'db'));
    const config = validateConfig({ doors: [{ id: 'front' }], cloud: { provider: 'none', wecom_app: { corpid: emu.corpid, corpsecret: emu.corpsecret, base_url: url, device_sn: 'SN-1' } } }, 't');
    // Local journal: 8 QR passes across the January/February boundary (Shanghai), one card pass (no WeCom code).
    const base = zonedMidnight(2024, 1, 31, SH) + 3600 * 20; // 31 Jan 20:00 Shanghai
    const at = (i: number): number => base + i * 3600;
    await store.append([
      ...Array.from({ length: 8 }, (_, i) => ({ decision: { decision: 'grant' as const, reason: 'default_allow' as const, userid: `u${i}`, user_type: 0 as const, method: 'qr' as const, door: 'front', at: at(i) * 1000, direction: 'in' } })),
      { decision: { decision: 'grant' as const, reason: 'default_allow' as const, userid: 'c1', user_type: 0 as const, method: 'card' as const, door: 'front', at: at(3) * 1000, direction: 'in' } },
      { decision: { decision: 'deny' as const, reason: 'expired' as const, userid: 'u9', user_type: 0 as const, method: 'qr' as const, door: 'front', at: at(4) * 1000, direction: 'in' } },
    ]);
    // The cloud has 6 of the 8 (not u2, u6), plus one record only it has, plus another door's.
    emu.records = [0, 1, 3, 4, 5, 7].map((i) => ({ open_userid: `wo_${i}`, user_type: 0, timestamp: at(i), pass_type: 1, pass_method: 2, device_sn: 'SN-1' }));
    emu.records.push({ open_userid: 'wo_x', user_type: 0, timestamp: at(2) + 7, pass_type: 2, pass_method: 1, device_sn: 'SN-1' });
    emu.records.push({ open_userid: 'wo_other', user_type: 0, timestamp: at(2), pass_type: 1, pass_method: 2, device_sn: 'OTHER' });
    emu.expireTokens();

    const api = localApi(store, config, 'test');
    const r = await api.reconcile({ since: zonedMidnight(2024, 1, 31, SH), until: zonedMidnight(2024, 2, 2, SH), requeue: true });
    expect(r.spans).toHaveLength(2); // split at 1 Feb 00:00 Shanghai
    expect([r.local, r.cloud, r.matched.length]).toEqual([8, 7, 6]);
    expect(r.missing_in_cloud.map((m) => m.userid)).toEqual(['u2', 'u6']);
    expect(r.cloud_only).toEqual([expect.objectContaining({ open_userid: 'wo_x', pass_method: 1 })]);
    expect(r.requeued).toBe(2);
    expect((await store.outboxPeek()).map((p) => [p.userid, p.method, p.direction])).toEqual([['u2', 'qr', 'in'], ['u6', 'qr', 'in']]);
    expect(emu.queries.every((q) => q.data_filter_type === 1 && JSON.stringify(q.device_sn_list) === '["SN-1"]')).toBe(true);
    expect(emu.queries.some((q) => q.cursor === '')).toBe(true);

    // Requeue again: those two are now waiting in the outbox, so nothing is duplicated.
    const again = await api.reconcile({ since: zonedMidnight(2024, 1, 31, SH), until: zonedMidnight(2024, 2, 2, SH), requeue: true });
    expect(again.requeued).toBe(0);
    await store.close();
  });

  it('fails clearly on refused credentials and non-JSON answers, and refuses a missing configuration', async () => {
    emu = new WecomAppEmulator();
    const url = await emu.start();
    const store = await Store.open(join(tmpDir(), 'db'));
    const bad = validateConfig({ doors: [{ id: 'a' }], cloud: { wecom_app: { corpid: 'x', corpsecret: 'wrong', base_url: url } } }, 't');
    await expect(localApi(store, bad, 't').reconcile({ since: 0, until: 10 })).rejects.toThrow(/gettoken refused: errcode 40001/);
    const good = validateConfig({ doors: [{ id: 'a' }], cloud: { wecom_app: { corpid: emu.corpid, corpsecret: emu.corpsecret, base_url: url } } }, 't');
    emu.fault = (req) => (req.path.includes('get_accesscontrol_data') ? { status: 502, text: 'Bad Gateway' } : undefined);
    await expect(localApi(store, good, 't').reconcile({ since: 0, until: 10 })).rejects.toThrow(/non-JSON body/);
    emu.fault = (req) => (req.path.includes('get_accesscontrol_data') ? { body: { errcode: 0, accesscontrol_data: { items: [] }, next_cursor: `c${Math.random()}` } } : undefined);
    const client = new WecomAppClient({ baseUrl: url, corpid: emu.corpid, corpsecret: emu.corpsecret, timeoutMs: 2000, log: createLogger({ level: 'silent', pretty: false }) });
    await expect(fetchCloudPasses(client, { sn: 'SN', userTypes: [0], since: 0, until: 10, zone: SH, maxPages: 5 })).rejects.toThrow(/did not end after 5 pages/);
    const none = validateConfig({ doors: [{ id: 'a' }] }, 't');
    await expect(localApi(store, none, 't').reconcile({ since: 0, until: 10 })).rejects.toThrow(/needs cloud.wecom_app/);
    // A gateway configured without it answers with the caller's section (the CLI sends its own).
    emu.fault = () => undefined;
    const callers = good.cloud.wecom_app!;
    await expect(localApi(store, none, 't').reconcile({ since: 0, until: 10, app: callers, zone: 'UTC' })).resolves.toMatchObject({ local: 0, cloud: 0 });
    await expect(localApi(store, good, 't').reconcile({ since: 0, until: 10, app: { ...callers, corpsecret: 'wrong' } })).rejects.toThrow(/errcode 40001/);
    await store.close();
  });
});

describe('doorgw records reconcile (the command)', () => {
  it('prints the table, exits 1 when passes are missing, and emits the JSON report', async () => {
    const { spawn } = await import('node:child_process');
    const { writeFileSync } = await import('node:fs');
    const emu = new WecomAppEmulator();
    const url = await emu.start();
    const dir = tmpDir();
    const config = join(dir, 'doorgw.yaml');
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\ndoors: [{ id: front }]\ncloud: { wecom_app: { corpid: ${emu.corpid}, corpsecret: ${emu.corpsecret}, base_url: "${url}", device_sn: SN-9 } }\n`);
    const s = await Store.open(join(dir, 'data'));
    const t = zonedMidnight(2024, 5, 10, SH) + 3600 * 9;
    await s.append([{ decision: { decision: 'grant', reason: 'rule_match', userid: 'zhangsan', user_type: 0, method: 'qr', door: 'front', at: t * 1000, direction: 'in' } }]);
    await s.close();
    emu.records = [{ open_userid: 'wo_other', user_type: 0, timestamp: t + 60, pass_type: 1, pass_method: 1, device_sn: 'SN-9' }];
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const c = spawn(process.execPath, [join(new URL('../..', import.meta.url).pathname, 'dist/cli/main.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        c.stdout.on('data', (b: Buffer) => (out += b.toString()));
        c.stderr.on('data', (b: Buffer) => (out += b.toString()));
        c.once('close', (code) => resolve({ code, out }));
      });
    const table = await run(['records', 'reconcile', '--since', '2024-05-01', '--until', '2024-06-01', '-c', config]);
    expect(table.code).toBe(1);
    expect(table.out).toMatch(/local passes 1, cloud records 1: matched 0, missing in cloud 1, only in cloud 1/);
    expect(table.out).toMatch(/MISSING IN CLOUD[\s\S]*zhangsan/);
    expect(table.out).toMatch(/ONLY IN CLOUD[\s\S]*wo_other/);
    const js = await run(['records', 'reconcile', '--since', '2024-05-01', '--until', '2024-06-01', '-c', config, '--json']);
    expect(JSON.parse(js.out)).toMatchObject({ device_sn: 'SN-9', local: 1, cloud: 1, requeued: 0 });
    expect((await run(['records', 'reconcile', '--since', 'last tuesday', '-c', config])).code).toBe(2);
    const checked = await run(['config', 'check', config, '--json']);
    expect(checked.out).toContain('"corpsecret": "[redacted]"');
    expect(checked.out).not.toContain(emu.corpsecret);
    await emu.stop();
  });
});
