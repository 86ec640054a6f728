/** Journal queries over 100k entries across a DST change and a month end; streaming export. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { localApi, type GatewayApi, type JournalRow } from '../../src/control/api.js';
import { parseLocalInstant, zonedInstant } from '../../src/domain/localtime.js';
import { Store, type JournalAppend } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const NY = 'America/New_York';
// Not tmpDir(): that is emptied after each test, and this database serves the whole file.
const base = mkdtempSync(join(tmpdir(), 'doorgw-journal-'));
const dir = join(base, 'data');
const config = validateConfig({ gateway_id: 'j', data_dir: dir, timezone: NY, doors: [{ id: 'front' }, { id: 'east', timezone: 'Asia/Shanghai' }] }, 'test');
// 100k decisions from 2026-10-25 to 2026-11-05 (New York leaves DST on 1 November, 02:00 → 01:00).
const START = Date.parse('2026-10-25T00:00:00Z');
const STEP = 9_500;
const N = 100_000;
const REASONS = ['rule_match', 'outside_schedule', 'unknown_user', 'blocked'] as const;
const entryAt = (i: number): number => START + i * STEP;
const local = (ms: number, zone: string): { h: number; date: string } => {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit' }).formatToParts(ms).map((x) => [x.type, x.value]));
  return { h: Number(p.hour), date: `${p.year}-${p.month}-${p.day}` };
};

let store: Store;
let api: GatewayApi;
beforeAll(async () => {
  store = await Store.open(dir);
  for (let b = 0; b < N; b += 2000) {
    const batch: JournalAppend[] = [];
    for (let i = b; i < b + 2000; i++) {
      const reason = REASONS[i % 4]!;
      batch.push({ decision: { decision: reason === 'rule_match' ? 'grant' : 'deny', reason, userid: `u${i % 50}`, user_type: 0, method: i % 3 === 0 ? 'qr' : 'card', door: i % 2 ? 'east' : 'front', at: entryAt(i) } });
    }
    await store.append(batch);
  }
  api = localApi(store, config, 'test');
}, 60_000);
afterAll(async () => {
  await store.close();
  rmSync(base, { recursive: true, force: true });
});

async function all(q: Parameters<GatewayApi['journalQuery']>[0]): Promise<JournalRow[]> {
  const out: JournalRow[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await api.journalQuery({ ...q, limit: 1000, ...(after ? { after } : {}) });
    out.push(...page.entries);
    if (page.next === null) return out;
    after = page.next;
  }
}

describe('local times', () => {
  it('read wall-clock times in the zone across DST gaps and overlaps', () => {
    expect(new Date(parseLocalInstant('2026-11-01 01:30', NY)!).toISOString()).toBe('2026-11-01T05:30:00.000Z'); // the first 01:30 (EDT)
    expect(new Date(parseLocalInstant('2026-03-08 02:30', NY)!).toISOString()).toBe('2026-03-08T07:30:00.000Z'); // inside the gap: 03:30 EDT
    expect(new Date(parseLocalInstant('2026-11-01', NY)!).toISOString()).toBe('2026-11-01T04:00:00.000Z');
    expect(zonedInstant(2026, 11, 2, 0, 0, 0, NY) - zonedInstant(2026, 11, 1, 0, 0, 0, NY)).toBe(25 * 3_600_000);
    expect(new Date(parseLocalInstant('2026-12-31 23:59:59', 'Asia/Shanghai')!).toISOString()).toBe('2026-12-31T15:59:59.000Z');
    expect(parseLocalInstant('2026-02-29', NY)).toBeNull();
    expect(parseLocalInstant('2026-11-01T01:30:00-05:00', NY)).toBe(Date.parse('2026-11-01T06:30:00Z'));
    expect(parseLocalInstant('yesterday', NY)).toBeNull();
  });
});

describe('journal queries over 100k entries', () => {
  it('a local day with 25 hours, in the door zone, page by page, each entry once', async () => {
    const rows = await all({ door: 'front', from: '2026-11-01', to: '2026-11-02', order: 'asc' });
    const from = Date.parse('2026-11-01T04:00:00Z');
    const to = Date.parse('2026-11-02T05:00:00Z');
    const expected = Array.from({ length: N }, (_, i) => i).filter((i) => i % 2 === 0 && entryAt(i) >= from && entryAt(i) < to);
    expect(rows.map((r) => r.at)).toEqual(expected.map(entryAt));
    expect(new Set(rows.map((r) => r.seq)).size).toBe(rows.length);
    // Newest first gives the same entries in reverse.
    expect((await all({ door: 'front', from: '2026-11-01', to: '2026-11-02' })).map((r) => r.at)).toEqual(expected.map(entryAt).reverse());
  });

  it('a month end in Shanghai with person, decision, reason and method filters', async () => {
    const rows = await all({ door: 'east', from: '2026-10-31 22:00', to: '2026-11-01 02:00', userid: 'u7', decision: 'deny', reason: 'blocked', method: 'card', order: 'asc' });
    const from = Date.parse('2026-10-31T14:00:00Z');
    const to = Date.parse('2026-10-31T18:00:00Z');
    const expected = Array.from({ length: N }, (_, i) => i).filter((i) => i % 2 === 1 && i % 50 === 7 && i % 4 === 3 && i % 3 !== 0 && entryAt(i) >= from && entryAt(i) < to);
    expect(expected.length).toBeGreaterThan(0);
    expect(rows.map((r) => r.at)).toEqual(expected.map(entryAt));
  });

  it('who passed between 22:00 and 06:00 last week: a time-of-day window that wraps past midnight and a DST change', async () => {
    const rows = await all({ door: 'front', from: '2026-10-29', to: '2026-11-05', time_of_day: '22:00-06:00', decision: 'grant', order: 'asc' });
    const from = parseLocalInstant('2026-10-29', NY)!;
    const to = parseLocalInstant('2026-11-05', NY)!;
    const expected = Array.from({ length: N }, (_, i) => i).filter((i) => {
      if (i % 2 !== 0 || i % 4 !== 0 || entryAt(i) < from || entryAt(i) >= to) return false;
      const h = local(entryAt(i), NY).h;
      return h >= 22 || h < 6;
    });
    expect(rows.map((r) => r.at)).toEqual(expected.map(entryAt));
  });

  it('refuses bad queries with a clear message', async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ from: '2026-13-01' }, /from '2026-13-01': give YYYY-MM-DD/],
      [{ from: '2026-11-02', to: '2026-11-01' }, /from must be before to/],
      [{ door: 'garage' }, /no door 'garage'/],
      [{ decision: 'maybe' }, /decision must be grant or deny/],
      [{ method: 'telepathy' }, /method must be one of/],
      [{ time_of_day: '22-6' }, /time_of_day '22-6' must be HH:MM-HH:MM/],
      [{ limit: 0 }, /limit must be 1 to 5000/],
      [{ after: '../../etc' }, /after must be a cursor/],
      [{ zone: 'Mars/Olympus' }, /zone 'Mars\/Olympus' is not a known IANA time zone/],
    ];
    for (const [q, msg] of bad) await expect(api.journalQuery(q), JSON.stringify(q)).rejects.toThrow(msg);
  });

  it('exports a CSV of all 100k entries through a bounded buffer (the CLI runs in a 40 MB heap)', async () => {
    await store.close();
    const cfgFile = join(tmpDir(), 'doorgw.yaml');
    writeFileSync(cfgFile, `gateway_id: j\ndata_dir: ${dir}\ntimezone: ${NY}\ncontrol: { socket: ${join(tmpDir(), 's.sock')} }\ndoors: [{ id: front }, { id: east, timezone: Asia/Shanghai }]\n`);
    const out = join(tmpDir(), 'journal.csv');
    try {
      const r = spawnSync(process.execPath, ['--max-old-space-size=40', join(ROOT, 'dist/cli/main.js'), 'journal', '--format', 'csv', '--out', out, '-c', cfgFile], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe(`${N} decisions written to ${out}\n`);
      expect(r.status).toBe(0);
      const lines = readFileSync(out, 'utf8').split('\r\n');
      expect(lines[0]).toBe('time_local,at_ms,seq,door,decision,reason,method,userid,user_type,reader,direction,detail,latency_us');
      expect(lines).toHaveLength(N + 2); // header, entries, the empty string after the last CRLF
      expect(lines[1]).toBe(`2026-10-24 20:00:00 -04:00,${START},1,front,grant,rule_match,qr,u0,0,,,,`);
      expect(lines[N]).toMatch(new RegExp(`^2026-11-05 .+ \\+08:00,${entryAt(N - 1)},${N},east,`));
    } finally {
      store = await Store.open(dir);
      api = localApi(store, config, 'test');
    }
  }, 90_000);
});
