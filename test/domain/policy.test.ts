import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decide, type PolicyOptions } from '../../src/domain/policy.js';
import { ReplayGuard } from '../../src/domain/replay.js';
import type { Credential } from '../../src/domain/types.js';
import { Store } from '../../src/store/store.js';
import { employeeQr, makeKey, malleate, visitorQr } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const key = makeKey();
const otherKey = makeKey();
const NOW = Date.parse('2024-06-03T09:30:00+08:00'); // a Monday
const nowS = NOW / 1000;
const policy: PolicyOptions = { default_allow: { employee: true, visitor: false, student: true }, replay_protection: true, qr_skew_s: 30 };
const door = { id: 'front', mode: 'normal' as const, timezone: 'Asia/Shanghai' };

let store: Store;
beforeEach(async () => {
  store = await Store.open(join(tmpDir(), 'db'));
  await store.upsertUsers([
    user({ userid: 'emp', openvid: '18446744073709551615', public_key: key.publicB64, cards: [100] }),
    user({ userid: 'emp-u', openvid: 2, public_key: key.publicUncompressedB64 }),
    user({ userid: 'vis', user_type: 1, openvid: 3, public_key: key.publicB64 }),
    user({ userid: 'vis-ok', user_type: 1, openvid: 4, public_key: key.publicB64, pass_rule_list: [{ id: 0, rule: '9:00-18:00 * * 1-5 *', effect_time: 0 }] }),
    user({ userid: 'stu', user_type: 2, cards: [200] }),
    user({ userid: 'nokey', openvid: 5 }),
    user({ userid: 'all-invalid', cards: [300], pass_rule_list: [{ id: 0, rule: '9:300-10:00 * * 6 *' }] }),
    user({ userid: 'some-invalid', cards: [301], pass_rule_list: [{ id: 0, rule: 'bad' }, { id: 1, rule: '9:00-10:00 * * 1-5 *' }] }),
    user({ userid: 'weekend', cards: [302], pass_rule_list: [{ id: 0, rule: '9:00-10:00 * * 0,6 *' }] }),
    user({ userid: 'future', cards: [303], pass_rule_list: [{ id: 0, rule: '0:00-23:59 * * * *', effect_time: nowS + 3600 }] }),
    user({ userid: 'dup1', cards: [400] }),
    user({ userid: 'dup2', cards: [400] }),
  ]);
});
afterEach(async () => store.close());

const run = (credential: Credential, o: { replay?: ReplayGuard; mode?: 'normal' | 'lockdown'; at?: number; p?: PolicyOptions } = {}) =>
  decide({ credential, door: { ...door, mode: o.mode ?? 'normal' }, nowMs: o.at ?? NOW, directory: store.directory, policy: o.p ?? policy, replay: o.replay });

describe('QR decisions', () => {
  it('grants a valid employee code (uint64 openvid, compressed or uncompressed key) and denies its replay', () => {
    const replay = new ReplayGuard();
    const text = employeeQr(key.privateKey, '18446744073709551615', nowS - 10);
    expect(run({ type: 'qr', text }, { replay })).toMatchObject({ decision: 'grant', reason: 'default_allow', userid: 'emp', user_type: 0, method: 'qr', door: 'front' });
    expect(run({ type: 'qr', text }, { replay })).toMatchObject({ decision: 'deny', reason: 'replayed', userid: 'emp' });
    expect(run({ type: 'qr', text: employeeQr(key.privateKey, '2', nowS) }, { replay })).toMatchObject({ decision: 'grant', userid: 'emp-u' });
    // after the code's window (plus skew) the memory is gone, and the code is expired anyway
    expect(run({ type: 'qr', text }, { replay, at: NOW + 400_000 })).toMatchObject({ decision: 'deny', reason: 'expired' });
  });

  it('denies a used code whose signature was malleated (s → n−s): the memory is keyed on what was signed', () => {
    const replay = new ReplayGuard();
    const text = employeeQr(key.privateKey, '18446744073709551615', nowS - 10);
    const twin = malleate(text);
    expect(twin).not.toBe(text);
    // The twin is a valid signature of the same body: it would be granted on its own.
    expect(run({ type: 'qr', text: twin })).toMatchObject({ decision: 'grant' });
    const first = run({ type: 'qr', text }, { replay });
    expect(first).toMatchObject({ decision: 'grant' });
    expect(first.replay?.key).toBe(Buffer.from(text, 'base64').subarray(0, 16).toString('base64'));
    expect(run({ type: 'qr', text: twin }, { replay })).toMatchObject({ decision: 'deny', reason: 'replayed', userid: 'emp' });
    // and the other way round, starting from the high-S/low-S twin
    const replay2 = new ReplayGuard();
    expect(run({ type: 'qr', text: twin }, { replay: replay2 }).decision).toBe('grant');
    expect(run({ type: 'qr', text }, { replay: replay2 })).toMatchObject({ decision: 'deny', reason: 'replayed' });
  });

  it('does not remember replays when protection is off, nor codes that were denied', () => {
    const replay = new ReplayGuard();
    const text = employeeQr(key.privateKey, '18446744073709551615', nowS);
    const off = { ...policy, replay_protection: false };
    expect(run({ type: 'qr', text }, { replay, p: off }).decision).toBe('grant');
    expect(run({ type: 'qr', text }, { replay, p: off }).decision).toBe('grant');
    expect(replay.size).toBe(0);
  });

  it.each([
    ['expired', () => employeeQr(key.privateKey, '18446744073709551615', nowS - 400, 300), 'expired'],
    ['not yet valid', () => employeeQr(key.privateKey, '18446744073709551615', nowS + 100), 'not_yet_valid'],
    ['forged (other key)', () => employeeQr(otherKey.privateKey, '18446744073709551615', nowS), 'bad_signature'],
    ['unknown openvid', () => employeeQr(key.privateKey, '999', nowS), 'unknown_user'],
    ['employee without a key', () => employeeQr(key.privateKey, '5', nowS), 'no_key'],
    ['visitor code for an employee', () => visitorQr(key.privateKey, '18446744073709551615'), 'type_mismatch'],
    ['employee code for a visitor', () => employeeQr(key.privateKey, '3', nowS), 'type_mismatch'],
    ['garbage', () => '!!!', 'malformed'],
  ])('denies %s', (_l, text, reason) => {
    expect(run({ type: 'qr', text: text() })).toMatchObject({ decision: 'deny', reason });
  });

  it('applies the visitor default (deny) and visitor rules; visitor codes carry no time and are not replay-limited', () => {
    const replay = new ReplayGuard();
    expect(run({ type: 'qr', text: visitorQr(key.privateKey, '3') }, { replay })).toMatchObject({ decision: 'deny', reason: 'default_deny', userid: 'vis' });
    const ok = visitorQr(key.privateKey, '4');
    expect(run({ type: 'qr', text: ok }, { replay })).toMatchObject({ decision: 'grant', reason: 'rule_match' });
    expect(run({ type: 'qr', text: ok }, { replay })).toMatchObject({ decision: 'grant' });
    expect(run({ type: 'qr', text: ok }, { at: Date.parse('2024-06-03T19:00:00+08:00') })).toMatchObject({ decision: 'deny', reason: 'outside_schedule' });
  });
});

describe('rules and defaults', () => {
  it.each([
    ['100', 'grant', 'default_allow', 'emp'],
    ['200', 'grant', 'default_allow', 'stu'],
    ['300', 'deny', 'invalid_rules', 'all-invalid'],
    ['301', 'grant', 'rule_match', 'some-invalid'],
    ['302', 'deny', 'outside_schedule', 'weekend'],
    ['303', 'deny', 'rule_not_in_force', 'future'],
    ['400', 'deny', 'credential_conflict', null],
    ['999', 'deny', 'unknown_user', null],
  ])('card %s → %s %s', (card, decision, reason, userid) => {
    expect(run({ type: 'card', value: card })).toMatchObject({ decision, reason, userid });
  });

  it('honours configured defaults per user type', () => {
    const p = { ...policy, default_allow: { employee: false, visitor: true, student: false } };
    expect(run({ type: 'card', value: '100' }, { p })).toMatchObject({ decision: 'deny', reason: 'default_deny' });
    expect(run({ type: 'card', value: '200' }, { p })).toMatchObject({ decision: 'deny', reason: 'default_deny' });
    expect(run({ type: 'qr', text: visitorQr(key.privateKey, '3') }, { p })).toMatchObject({ decision: 'grant', reason: 'default_allow' });
  });

  it('identifies by userid (face terminal) with the method it reports', () => {
    expect(run({ type: 'userid', value: 'stu', method: 'face' })).toMatchObject({ decision: 'grant', method: 'face', userid: 'stu' });
    expect(run({ type: 'userid', value: 'ghost' })).toMatchObject({ decision: 'deny', reason: 'unknown_user' });
  });
});

describe('door modes and non-credential openings', () => {
  it('denies everything in lockdown except the exit request, naming the identified person', () => {
    expect(run({ type: 'card', value: '100' }, { mode: 'lockdown' })).toMatchObject({ decision: 'deny', reason: 'lockdown', userid: 'emp', user_type: 0 });
    expect(run({ type: 'remote', userid: 'emp' }, { mode: 'lockdown' })).toMatchObject({ decision: 'deny', reason: 'lockdown', userid: 'emp' });
    expect(run({ type: 'userid', value: 'stu', method: 'face' }, { mode: 'lockdown' })).toMatchObject({ decision: 'deny', reason: 'lockdown', userid: 'stu' });
    const replay = new ReplayGuard();
    const text = employeeQr(key.privateKey, '18446744073709551615', nowS);
    expect(run({ type: 'qr', text }, { mode: 'lockdown', replay })).toMatchObject({ decision: 'deny', reason: 'lockdown', userid: 'emp' });
    expect(replay.size).toBe(0); // a code refused in lockdown is not used up
    // unidentified credentials keep their own reason
    expect(run({ type: 'card', value: '999' }, { mode: 'lockdown' })).toMatchObject({ decision: 'deny', reason: 'unknown_user', userid: null });
    expect(run({ type: 'qr', text: employeeQr(otherKey.privateKey, '18446744073709551615', nowS) }, { mode: 'lockdown' })).toMatchObject({ decision: 'deny', reason: 'bad_signature' });
    expect(run({ type: 'operator', source: 'mqtt' }, { mode: 'lockdown' })).toMatchObject({ decision: 'deny', reason: 'lockdown' });
    expect(run({ type: 'exit' }, { mode: 'lockdown' })).toMatchObject({ decision: 'grant', reason: 'exit_request', method: 'exit' });
  });

  it('grants a remote open to the operator-named user', () => {
    expect(run({ type: 'remote', userid: 'emp', oper_id: 'op1' })).toMatchObject({ decision: 'grant', reason: 'remote_open', userid: 'emp', method: 'remote' });
  });
});
