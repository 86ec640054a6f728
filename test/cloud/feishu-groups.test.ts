/**
 * Feishu permission groups (issue 26, item 1; protocols.md §15) against the emulated open
 * platform: the admin's one-time authorisation, groups read with the user token and decided at
 * each door offline (in a group and its time → grant; another door, another hour, no group → deny
 * with the reason), the token refreshed (each refresh token once), a refresh that fails (the last
 * groups stay, the gateway is unhealthy and says why), and a site that never authorised.
 */
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { FeishuAdapter } from '../../src/cloud/feishu/adapter.js';
import { FeishuEmulator, feishuUsers } from '../../src/cloud/feishu/emulator.js';
import { validateConfig } from '../../src/config/load.js';
import { decideGroups, type FeishuRule } from '../../src/domain/feishu-groups.js';
import { credentialEvent } from '../../src/domain/events.js';
import { localTime } from '../../src/domain/localtime.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { doorgwAsync } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { writeFileSync } from 'node:fs';

const log = createLogger({ level: 'silent', pretty: false });
let emu: FeishuEmulator | null = null;
let gw: Gateway | null = null;
afterEach(async () => {
  await gw?.stop();
  await emu?.stop();
  gw = null;
  emu = null;
});

const ZONE = 'Asia/Shanghai';
/** A window of the day that holds now (±2 h), and one that does not. */
function windows(): { now: { start_hhmm: number; end_hhmm: number }; notNow: { start_hhmm: number; end_hhmm: number } } {
  const m = localTime(Date.now(), ZONE).minuteOfDay;
  const hhmm = (x: number) => Math.floor((((x % 1440) + 1440) % 1440) / 60) * 100 + ((((x % 1440) + 1440) % 1440) % 60);
  return { now: { start_hhmm: hhmm(m - 120), end_hhmm: hhmm(m + 120) }, notNow: { start_hhmm: hhmm(m + 180), end_hhmm: hhmm(m + 240) } };
}

async function start(o: { authorise?: boolean } = {}) {
  emu = new FeishuEmulator();
  emu.users = feishuUsers(6);
  const w = windows();
  emu.rules = [
    { id: 'r1', name: 'warehouse staff', devices: [{ id: 'dev-wh' }], users: [{ user_type: 1, user_id: 'ou_00000001' }], opening_time: { day_times: [w.now] } },
    { id: 'r2', name: 'night shift', devices: [{ id: 'dev-wh' }], users: [{ user_type: 1, user_id: 'ou_00000002' }], opening_time: { day_times: [w.notNow] } },
    { id: 'r3', name: 'everyone at the front', devices: [{ id: 'dev-front' }], users: [{ user_type: 10 }] },
    { id: 'r4', name: 'visitors today', is_temp: true, devices: [{ id: 'dev-wh' }], visitors: [{ user_type: 11, user_id: 'v_1' }], opening_time: { valid_day: { start_day: Math.floor(Date.now() / 1000) - 86_400, end_day: Math.floor(Date.now() / 1000) + 86_400 } } },
    { id: 'r5', name: 'visitors yesterday', is_temp: true, devices: [{ id: 'dev-wh' }], visitors: [{ user_type: 11, user_id: 'v_2' }], opening_time: { valid_day: { start_day: Math.floor(Date.now() / 1000) - 2 * 86_400, end_day: Math.floor(Date.now() / 1000) - 86_400 } } },
  ] as FeishuRule[];
  const url = await emu.start();
  const dataDir = join(tmpDir(), 'data');
  const config = validateConfig(
    {
      data_dir: dataDir,
      timezone: ZONE,
      policy: { debounce_ms: 0 },
      doors: [{ id: 'front' }, { id: 'warehouse' }, { id: 'side' }],
      cloud: { provider: 'feishu', feishu: { base_url: url, app_id: emu.appId, app_secret: emu.appSecret, backoff_ms: 20, user_id_type: 'user_id', permission_groups: { devices: { front: 'dev-front', warehouse: 'dev-wh' } } } },
    },
    'test',
  );
  const file = join(tmpDir(), 'doorgw.yaml');
  writeFileSync(file, JSON.stringify({ data_dir: dataDir, doors: [{ id: 'front' }, { id: 'warehouse' }, { id: 'side' }], cloud: { provider: 'feishu', feishu: { base_url: url, app_id: emu.appId, app_secret: emu.appSecret, permission_groups: { devices: { front: 'dev-front', warehouse: 'dev-wh' } } } } }));
  if (o.authorise !== false) {
    const r = await doorgwAsync(['feishu', 'authorize', '--code', emu.issueAuthCode(), '-c', file]);
    expect(r.stdout + r.stderr).toMatch(/^authorised \(scope acs:device:write acs:users offline_access\)/);
    expect(statSync(join(dataDir, 'feishu-user-token.json')).mode & 0o777).toBe(0o600);
  }
  gw = await Gateway.start({ config, log, controlSocket: false });
  return { emu, gw, adapter: gw.cloud as FeishuAdapter, file };
}
const card = (g: Gateway, door: string, n: number) => g.pipeline.handle(credentialEvent(door, 'reader', 'in', { type: 'card', value: String(n) }))!;

describe('Feishu permission groups', () => {
  it('decide at each door: in a group and its hours → grant; another door, another hour, no group → deny with the reason', async () => {
    const { adapter, gw } = await start();
    await until(() => adapter.state$.value.permission_groups?.startsWith('in force'), 'groups in force');
    await until(async () => (await gw.store.userCount()) === 6, 'users synced');
    expect(card(gw, 'warehouse', 100_001)).toMatchObject({ decision: 'grant', userid: 'ou_00000001' });
    expect(card(gw, 'warehouse', 100_002)).toMatchObject({ decision: 'deny', reason: 'outside_permission_group', detail: expect.stringMatching(/^night shift: outside \d{4}–\d{4}$/) });
    expect(card(gw, 'warehouse', 100_003)).toMatchObject({ decision: 'deny', reason: 'no_permission_group' });
    expect(card(gw, 'front', 100_003)).toMatchObject({ decision: 'grant' }); // all employees at the front
    expect(card(gw, 'side', 100_003)).toMatchObject({ decision: 'grant' }); // a door with no Feishu device: as before
    // Visitors the groups name: known at the door by their user id (a face terminal's), passing only by their group's days.
    await until(() => gw.store.directory.user('v_1'), 'the groups\' visitors in the directory');
    const face = (door: string, userid: string) => gw.pipeline.handle(credentialEvent(door, 'face', 'in', { type: 'userid', value: userid, method: 'face' }))!;
    expect(face('warehouse', 'v_1')).toMatchObject({ decision: 'grant', reason: 'rule_match', detail: 'permission group visitors today' });
    expect(face('front', 'v_1')).toMatchObject({ decision: 'deny', reason: 'no_permission_group' }); // "all employees" is not visitors
    expect(face('warehouse', 'v_2')).toMatchObject({ decision: 'deny', reason: 'outside_permission_group', detail: 'visitors yesterday: outside its valid days' });
    expect(face('side', 'v_1')).toMatchObject({ decision: 'deny', reason: 'default_deny' }); // no groups at that door: a visitor has no rules
    // The user token is never the tenant's: the groups call was made with a user token only.
    expect(emu!.requests.filter((r) => r.path === '/open-apis/acs/v1/rule_external').map((r) => r.query.device_id).sort()).toEqual(['dev-front', 'dev-wh']);
  });

  it('refreshes the user token (each refresh token once); a refresh that fails keeps the last groups and makes the gateway unhealthy, saying what to do', async () => {
    const { adapter, gw, emu: e } = await start();
    await until(() => adapter.state$.value.permission_groups?.startsWith('in force'), 'groups in force');
    // The access token expires: the next read refreshes it first.
    writeFileSync(join(gw.config.data_dir, 'feishu-user-token.json'), JSON.stringify({ ...JSON.parse((await import('node:fs')).readFileSync(join(gw.config.data_dir, 'feishu-user-token.json'), 'utf8')), access_expires_at: Date.now() - 1 }), { mode: 0o600 });
    await adapter.readGroups();
    expect(e.refreshes).toBe(1);
    expect(adapter.state$.value.credentials_problem).toBeNull();
    // Revoked: the groups read before stay in force; the gateway says so and is unhealthy.
    e.refreshRevoked = true;
    writeFileSync(join(gw.config.data_dir, 'feishu-user-token.json'), JSON.stringify({ ...JSON.parse((await import('node:fs')).readFileSync(join(gw.config.data_dir, 'feishu-user-token.json'), 'utf8')), access_expires_at: Date.now() - 1 }), { mode: 0o600 });
    await adapter.readGroups();
    expect(adapter.state$.value.credentials_problem).toMatch(/^Feishu permission groups: the permission groups could not be read \(the user token was refused.*\); the groups read .* stay in force\. Authorise again: doorgw feishu authorize$/);
    await until(async () => (await gw.store.userCount()) === 6, 'users synced');
    expect(card(gw, 'warehouse', 100_003).reason).toBe('no_permission_group');
    const s = await gw.api.status();
    expect(JSON.stringify(s.cloud)).toMatch(/Authorise again/);
  });

  it('creates and removes visitors in Feishu with the user token (doorgw feishu visitor)', async () => {
    const { emu: e, file } = await start();
    const add = await doorgwAsync(['feishu', 'visitor', 'add', '--name', 'Wang Wu', '--phone', '13800000000', '-c', file, '--json']);
    const id = (JSON.parse(add.stdout) as { visitor_id: string }).visitor_id;
    expect(e.visitors.get(id)).toEqual({ user_type: 11, user_name: 'Wang Wu', phone_num: '13800000000' });
    expect((await doorgwAsync(['feishu', 'visitor', 'remove', id, '-c', file])).stdout).toBe(`visitor ${id} removed\n`);
    expect(e.visitors.size).toBe(0);
  });

  it('a site that never authorised keeps today\'s behaviour, and says so', async () => {
    const { adapter, gw } = await start({ authorise: false });
    await until(() => adapter.state$.value.permission_groups?.startsWith('not authorised'), 'the warning in status');
    await until(async () => (await gw.store.userCount()) === 6, 'users synced');
    expect(card(gw, 'warehouse', 100_003).decision).toBe('grant');
  });

  it('reads the groups\' time rules as written down (a table)', () => {
    const mon9 = Date.parse('2026-12-07T09:00:00+08:00'); // a Monday
    const r = (t: NonNullable<FeishuRule['opening_time']>): FeishuRule[] => [{ id: 'g', name: 'g', users: [{ user_type: 1, user_id: 'u' }], opening_time: t }];
    expect(decideGroups(r({ weekdays: [1, 2, 3, 4, 5] }), 'u', false, mon9, ZONE).ok).toBe(true);
    expect(decideGroups(r({ weekdays: [6, 7] }), 'u', false, mon9, ZONE)).toMatchObject({ ok: false, detail: 'g: not on this weekday' });
    expect(decideGroups(r({ day_times: [{ start_hhmm: 800, end_hhmm: 900 }] }), 'u', false, mon9, ZONE).ok).toBe(false); // end exclusive
    expect(decideGroups(r({ day_times: [{ start_hhmm: 2200, end_hhmm: 1000 }] }), 'u', false, mon9, ZONE).ok).toBe(true); // wraps past midnight
    expect(decideGroups(r({ valid_day: { start_day: mon9 / 1000 + 1, end_day: mon9 / 1000 + 86_400 } }), 'u', false, mon9, ZONE)).toMatchObject({ ok: false, detail: 'g: outside its valid days' });
    expect(decideGroups([{ id: 'v', users: [{ user_type: 10 }] }], 'x', true, mon9, ZONE)).toMatchObject({ ok: false, reason: 'no_permission_group' }); // all employees is not visitors
    expect(decideGroups([{ id: 'd', users: [{ user_type: 2, user_id: 'dept-1' }] }], 'u', false, mon9, ZONE).ok).toBe(false); // departments: unresolved
  });
});
