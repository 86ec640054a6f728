import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compileDoorPolicy, parseHoliday } from '../../src/domain/door-policy.js';
import { decide, type DoorContext, type PolicyOptions } from '../../src/domain/policy.js';
import { ReplayGuard } from '../../src/domain/replay.js';
import type { Credential } from '../../src/domain/types.js';
import { Store } from '../../src/store/store.js';
import { employeeQr, makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const key = makeKey();
const policy: PolicyOptions = { default_allow: { employee: true, visitor: false, student: true }, replay_protection: true, qr_skew_s: 30 };
const groups = { security: ['guard'], accessible: ['wheel'], cleaners: ['cleaner'] };
const calendars = { cn: ['2026-10-01..2026-10-07', '2026-01-01'] };
const doorPolicy = compileDoorPolicy(
  { holidays: ['cn'], closed_on_holidays: true, holiday_exempt_groups: ['security'], lockdown_override_groups: ['security'], extended_unlock: { groups: ['accessible'], pulse_ms: 12_000 } },
  groups,
  calendars,
);
const door = (mode: 'normal' | 'lockdown' = 'normal', timezone = 'Asia/Shanghai'): DoorContext => ({ id: 'lobby', mode, timezone, policy: doorPolicy });

let store: Store;
beforeEach(async () => {
  store = await Store.open(join(tmpDir(), 'db'));
  await store.upsertUsers([
    user({ userid: 'guard', cards: [1], openvid: 10, public_key: key.publicB64 }),
    user({ userid: 'staff', cards: [2], openvid: 20, public_key: key.publicB64 }),
    user({ userid: 'wheel', cards: [3] }),
    user({ userid: 'night', cards: [4], pass_rule_list: [{ id: 0, rule: '9:00-18:00 * * 1-5 *', effect_time: 0 }] }),
  ]);
});
afterEach(async () => store.close());

const run = (credential: Credential, at: string, d: DoorContext = door(), replay?: ReplayGuard) => decide({ credential, door: d, nowMs: Date.parse(at), directory: store.directory, policy, replay });
const card = (value: string, duress?: boolean): Credential => (duress ? { type: 'card', value, duress } : { type: 'card', value });

describe('holiday entries', () => {
  it('parse dates and ranges, and refuse what does not exist', () => {
    expect(parseHoliday('2026-10-01')).toEqual({ from: 20727, to: 20727 });
    expect(parseHoliday('2026-10-01..2026-10-07')).toEqual({ from: 20727, to: 20733 });
    expect(parseHoliday('2026-02-30')).toEqual({ error: "'2026-02-30' is not a date that exists" });
    expect(parseHoliday('2026-10-07..2026-10-01')).toEqual({ error: "'2026-10-07..2026-10-01': the range ends before it starts" });
    expect(parseHoliday('1/10/2026')).toMatchObject({ error: expect.stringContaining('YYYY-MM-DD') });
  });
});

describe('door policies', () => {
  it('closes the door on holidays at local midnight, in the door\'s zone, except for the exempt', () => {
    expect(run(card('2'), '2026-09-30T23:59:00+08:00')).toMatchObject({ decision: 'grant' });
    expect(run(card('2'), '2026-10-01T00:00:00+08:00')).toMatchObject({ decision: 'deny', reason: 'holiday', userid: 'staff' });
    expect(run(card('2'), '2026-10-07T23:59:00+08:00')).toMatchObject({ decision: 'deny', reason: 'holiday' });
    expect(run(card('2'), '2026-10-08T00:00:00+08:00')).toMatchObject({ decision: 'grant' });
    expect(run(card('1'), '2026-10-03T12:00:00+08:00')).toMatchObject({ decision: 'grant', userid: 'guard' });
    // The same instant is still 30 September in New York: not a holiday there.
    expect(run(card('2'), '2026-10-01T03:00:00+08:00', door('normal', 'America/New_York'))).toMatchObject({ decision: 'grant' });
    // A door that observes the calendar but stays open on holidays.
    const open = { ...door(), policy: { ...doorPolicy, closedOnHolidays: false } };
    expect(run(card('2'), '2026-10-02T10:00:00+08:00', open)).toMatchObject({ decision: 'grant' });
  });

  it('lets the override group through a lockdown with a reason of its own; everyone else stays out', () => {
    expect(run(card('1'), '2026-11-02T03:00:00+08:00', door('lockdown'))).toMatchObject({ decision: 'grant', reason: 'lockdown_override', userid: 'guard' });
    expect(run(card('2'), '2026-11-02T10:00:00+08:00', door('lockdown'))).toMatchObject({ decision: 'deny', reason: 'lockdown', userid: 'staff' });
    // QR: verified, replay-checked, then the override; the code is used up only because it opened.
    const replay = new ReplayGuard();
    const nowS = Date.parse('2026-11-02T03:00:00+08:00') / 1000;
    const guardCode = employeeQr(key.privateKey, '10', nowS);
    expect(run({ type: 'qr', text: guardCode }, '2026-11-02T03:00:00+08:00', door('lockdown'), replay)).toMatchObject({ decision: 'grant', reason: 'lockdown_override' });
    expect(run({ type: 'qr', text: guardCode }, '2026-11-02T03:00:00+08:00', door('lockdown'), replay)).toMatchObject({ decision: 'deny', reason: 'replayed' });
    const staffCode = employeeQr(key.privateKey, '20', nowS);
    expect(run({ type: 'qr', text: staffCode }, '2026-11-02T03:00:00+08:00', door('lockdown'), replay)).toMatchObject({ decision: 'deny', reason: 'lockdown' });
    expect(replay.size).toBe(1);
  });

  it('gives the extended-unlock group a longer pulse, and only on a grant', () => {
    expect(run(card('3'), '2026-11-02T10:00:00+08:00')).toMatchObject({ decision: 'grant', userid: 'wheel', pulse_ms: 12_000 });
    expect(run(card('2'), '2026-11-02T10:00:00+08:00')).not.toHaveProperty('pulse_ms');
    expect(run(card('3'), '2026-10-02T10:00:00+08:00')).not.toHaveProperty('pulse_ms'); // holiday: denied
  });

  it('decides a credential under duress exactly as any other, and marks it', () => {
    for (const [c, at] of [['2', '2026-11-02T10:00:00+08:00'], ['4', '2026-11-02T22:00:00+08:00'], ['2', '2026-10-02T10:00:00+08:00']] as const) {
      const plain = run(card(c), at);
      const duress = run(card(c, true), at);
      expect(duress).toEqual({ ...plain, duress: true });
    }
  });
});
