/** The local directory layer: decisions, precedence, persistence, and what a sync may not touch. */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { localApi, type GatewayApi } from '../../src/control/api.js';
import { compileDoorPolicy } from '../../src/domain/door-policy.js';
import { hashPin, pinMatches } from '../../src/domain/local-directory.js';
import { decide, type PolicyOptions } from '../../src/domain/policy.js';
import type { Credential } from '../../src/domain/types.js';
import { Store } from '../../src/store/store.js';
import { employeeQr, makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const key = makeKey();
const policy: PolicyOptions = { default_allow: { employee: true, visitor: false, student: true }, replay_protection: false, qr_skew_s: 30 };
const config = validateConfig(
  {
    gateway_id: 't',
    data_dir: '/nonexistent',
    timezone: 'Asia/Shanghai',
    groups: { security: ['guard'] },
    doors: [
      { id: 'lobby', policy: { lockdown_override_groups: ['security'] } },
      { id: 'server', policy: { card_and_pin: true } },
    ],
  },
  'test',
);
const T0 = Date.parse('2026-11-23T10:00:00+08:00'); // a Monday

let dir: string;
let store: Store;
let api: GatewayApi;
beforeEach(async () => {
  // The API checks times against its clock (a block "until" must be in the future): it is T0 here.
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(T0);
  dir = join(tmpDir(), 'db');
  store = await Store.open(dir);
  api = localApi(store, config, 'test');
  await store.upsertUsers([
    user({ userid: 'alice', cards: [100, 101], openvid: 11, public_key: key.publicB64 }),
    user({ userid: 'bob', cards: [200] }),
    user({ userid: 'guard', cards: [300] }),
  ]);
});
afterEach(async () => {
  vi.useRealTimers();
  await store.close();
});

const door = (id = 'lobby', mode: 'normal' | 'lockdown' = 'normal') => ({ id, mode, timezone: 'Asia/Shanghai', policy: compileDoorPolicy(config.doors.find((d) => d.id === id)!.policy, config.groups, {}) });
const run = (credential: Credential, nowMs = T0, d = door()) => decide({ credential, door: d, nowMs, directory: store.directory, policy });
const card = (value: string, pin?: string): Credential => (pin === undefined ? { type: 'card', value } : { type: 'card', value, pin });

describe('local users', () => {
  it('decide like cloud users, within their validity and doors, and never appear in the cloud generation', async () => {
    const r = await api.usersAdd({ userid: 'cleaner', name: 'Night cleaner', cards: [900], rules: ['18:00-23:00 * * * *'], valid_from: '2026-11-01T00:00:00+08:00', valid_until: '2026-12-01T00:00:00+08:00', doors: ['lobby'], by: 'test' });
    expect(r.user).toMatchObject({ layer: 'local', source: 'local', cards: ['900'] });
    expect(run(card('900'), Date.parse('2026-11-23T19:00:00+08:00'))).toMatchObject({ decision: 'grant', reason: 'rule_match', userid: 'cleaner' });
    expect(run(card('900'), Date.parse('2026-11-23T12:00:00+08:00'))).toMatchObject({ decision: 'deny', reason: 'outside_schedule' });
    expect(run(card('900'), Date.parse('2026-12-01T19:00:00+08:00'))).toMatchObject({ decision: 'deny', reason: 'outside_validity', userid: 'cleaner' });
    expect(run(card('900'), Date.parse('2026-10-31T19:00:00+08:00'))).toMatchObject({ decision: 'deny', reason: 'outside_validity' });
    expect(run(card('900'), Date.parse('2026-11-23T19:00:00+08:00'), door('server'))).toMatchObject({ decision: 'deny', reason: 'door_not_allowed' });
    expect(store.cloudUser('cleaner')).toBeUndefined();
    expect((await api.status()).users).toBe(4);
  });

  it('refuse bad input with a clear error and change nothing', async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ userid: '' }, /userid is required/],
      [{ userid: 'x', cards: ['12a'] }, /card "12a" is not a non-negative whole number/],
      [{ userid: 'x', groups: ['nobody'] }, /no group 'nobody' \(groups: security\)/],
      [{ userid: 'x', doors: ['garage'] }, /no door 'garage'/],
      [{ userid: 'x', rules: ['25:00-26:00 * * * *'] }, /rule 1 '25:00-26:00 \* \* \* \*'/],
      [{ userid: 'x', valid_from: 2000, valid_until: 1000 }, /valid_until must be after valid_from/],
      [{ userid: 'x', valid_until: '2026-12-01' }, /unix milliseconds or an ISO-8601 time with an offset/],
      [{ userid: 'x', pin: '12' }, /pin must be 4 to 12 digits/],
      [{ userid: 'x', user_type: 'boss' }, /user_type must be employee, visitor or student/],
      [{ userid: 'alice' }, /'alice' is a cloud user/],
    ];
    for (const [p, msg] of bad) await expect(api.usersAdd(p), JSON.stringify(p)).rejects.toThrow(msg);
    expect(store.localCount).toEqual({ users: 0, adjustments: 0 });
    await expect(api.usersAdd({ userid: 'alice' })).rejects.toMatchObject({ code: 'conflict' });
    await expect(api.usersSet({ userid: 'ghost', note: 'x' })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('persist across a reopen, and are removed by users remove', async () => {
    await api.usersAdd({ userid: 'temp', cards: [5] });
    await store.close();
    store = await Store.open(dir);
    api = localApi(store, config, 'test');
    expect(run(card('5'))).toMatchObject({ decision: 'grant', userid: 'temp' });
    expect(await api.usersRemove({ userid: 'temp' })).toEqual({ removed: 'local_user' });
    expect(run(card('5'))).toMatchObject({ decision: 'deny', reason: 'unknown_user' });
  });

  it('shadow a cloud user of the same userid (imported), and say so', async () => {
    const rep = await api.usersImport({ records: [{ userid: 'bob', cards: [201] }] });
    expect(rep.warnings).toContain("local user 'bob' shadows the cloud user of the same userid");
    // The cloud card of the shadowed cloud record no longer names bob: the local entry decides.
    expect(run(card('200'))).toMatchObject({ decision: 'deny', reason: 'unknown_user' });
    expect(run(card('201'))).toMatchObject({ decision: 'grant', userid: 'bob' });
    const show = await api.usersShow({ userid: 'bob' });
    expect(show?.decided_by).toBe('local user (shadows the cloud user of the same userid)');
    expect(show?.conflicts.map((c) => c.kind)).toEqual(['userid']);
  });
});

describe('local adjustments of cloud users', () => {
  it('block a person or one lost card now, until a time or until lifted, and name it in the decision', async () => {
    await api.usersBlock({ card: '100', reason: 'lost', by: 'guard-desk' });
    expect(run(card('100'))).toMatchObject({ decision: 'deny', reason: 'blocked', userid: 'alice', detail: 'card blocked until lifted (lost)' });
    expect(run(card('101'))).toMatchObject({ decision: 'grant', userid: 'alice' }); // her other card
    expect(run({ type: 'qr', text: employeeQr(key.privateKey, '11', Math.floor(T0 / 1000)) })).toMatchObject({ decision: 'grant' });

    await api.usersBlock({ userid: 'bob', until: T0 + 3_600_000, reason: 'suspended' });
    expect(run(card('200'))).toMatchObject({ decision: 'deny', reason: 'blocked', detail: expect.stringMatching(/^person blocked until 2026-11-23 11:00:00 \+08:00 \(suspended\)$/) });
    expect(run(card('200'), T0 + 3_600_000)).toMatchObject({ decision: 'grant' }); // the block ends by itself

    // A blocked guard does not pass a lockdown either.
    await api.usersBlock({ userid: 'guard' });
    expect(run(card('300'), T0, door('lobby', 'lockdown'))).toMatchObject({ decision: 'deny', reason: 'blocked' });
    await api.usersUnblock({ userid: 'guard' });
    expect(run(card('300'), T0, door('lobby', 'lockdown'))).toMatchObject({ decision: 'grant', reason: 'lockdown_override' });

    await api.usersUnblock({ card: '100' });
    expect(run(card('100'))).toMatchObject({ decision: 'grant' });
    await expect(api.usersUnblock({ card: '100' })).rejects.toMatchObject({ code: 'not_found', message: 'card 100 is not blocked' });
    await expect(api.usersBlock({ card: '999' })).rejects.toMatchObject({ code: 'not_found' });
    await expect(api.usersBlock({ userid: 'bob', until: Date.now() - 1000 })).rejects.toThrow(/in the past/);
    // Every change is journaled with who made it.
    const actions = await api.journalQuery({ kind: 'door_events', type: 'operator_action', order: 'asc' });
    expect(actions.entries.map((e) => (e.kind === 'door_event' ? e.detail : ''))).toEqual([
      'guard-desk: users block card 100 of alice (lost)',
      'api: users block bob until 2026-11-23 11:00:00 +08:00 (suspended)',
      'api: users block guard',
      'api: users unblock guard',
      'api: users unblock card 100 of alice',
    ]);
  });

  it('add cards and groups to a cloud user, refuse to change what the cloud owns, and report card conflicts', async () => {
    await api.usersSet({ userid: 'bob', add_cards: [777], groups: ['security'] });
    expect(run(card('777'))).toMatchObject({ decision: 'grant', userid: 'bob' });
    expect(run(card('777'), T0, door('lobby', 'lockdown'))).toMatchObject({ decision: 'grant', reason: 'lockdown_override' });
    await expect(api.usersSet({ userid: 'bob', name: 'Robert' })).rejects.toThrow(/name of a cloud user comes from the cloud/);
    await expect(api.usersSet({ userid: 'bob', remove_cards: [200] })).rejects.toThrow(/card 200 comes from the cloud: block it instead/);

    // A local user given alice's card: both claim it, so it opens for neither.
    const r = await api.usersAdd({ userid: 'contractor', cards: [100] });
    expect(r.conflicts).toEqual([expect.objectContaining({ kind: 'card', value: '100', userids: ['alice', 'contractor'] })]);
    expect(run(card('100'))).toMatchObject({ decision: 'deny', reason: 'credential_conflict' });
    expect((await api.usersConflicts({})).map((c) => c.kind)).toEqual(['card']);
    await api.usersRemove({ userid: 'contractor' });
    expect(run(card('100'))).toMatchObject({ decision: 'grant', userid: 'alice' });

    // Removing the adjustments leaves the cloud user as the cloud has them.
    expect(await api.usersRemove({ userid: 'bob' })).toEqual({ removed: 'adjustment' });
    expect(run(card('777'))).toMatchObject({ reason: 'unknown_user' });
    await expect(api.usersRemove({ userid: 'bob' })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('card and PIN: the PIN is checked, never stored in clear, never shown', async () => {
    await api.usersSet({ userid: 'bob', pin: '4321' });
    const server = door('server');
    expect(run(card('200'), T0, server)).toMatchObject({ decision: 'deny', reason: 'pin_required' });
    expect(run(card('200', '1111'), T0, server)).toMatchObject({ decision: 'deny', reason: 'wrong_pin' });
    expect(run(card('200', '4321'), T0, server)).toMatchObject({ decision: 'grant' });
    expect(run(card('300', '4321'), T0, server)).toMatchObject({ decision: 'deny', reason: 'pin_required', detail: 'no PIN is set for this person' });
    expect(run(card('200'))).toMatchObject({ decision: 'grant' }); // the lobby takes a card alone
    const raw = JSON.stringify(store.localAdjustment('bob'));
    expect(raw).not.toContain('4321');
    const shown = JSON.stringify(await api.usersShow({ userid: 'bob' }));
    expect(shown).toContain('"pin_set":true');
    expect(shown).not.toMatch(/"pin":/);
    expect(JSON.stringify(await api.usersExport({}))).not.toMatch(/pin/);
    const h = hashPin('0000');
    expect([pinMatches(h, '0000'), pinMatches(h, '0001'), hashPin('0000') === h]).toEqual([true, false, false]);
  });
});

describe('what a sync may not touch', () => {
  it('a full replacement and an incremental change keep the local layer; adjustments follow the user', async () => {
    await api.usersAdd({ userid: 'cleaner', cards: [900] });
    await api.usersBlock({ card: '100', reason: 'lost' });
    await api.usersSet({ userid: 'bob', add_cards: [777] });
    // Full sync: a new generation without bob, alice with a new key.
    await store.replaceDirectory([user({ userid: 'alice', cards: [100, 101] }), user({ userid: 'guard', cards: [300] })]);
    expect(run(card('900'))).toMatchObject({ decision: 'grant', userid: 'cleaner' });
    expect(run(card('100'))).toMatchObject({ decision: 'deny', reason: 'blocked' });
    expect(run(card('777'))).toMatchObject({ reason: 'unknown_user' }); // bob is gone: so is what names him
    expect((await api.usersConflicts({})).map((c) => `${c.kind}:${c.value}`)).toEqual(['orphan:bob']);
    // He comes back in an increment: the adjustment applies again.
    await store.applyChanges({ upsert: [user({ userid: 'bob', cards: [200] })] });
    expect(run(card('777'))).toMatchObject({ decision: 'grant', userid: 'bob' });
    await store.eraseDirectory();
    expect(run(card('900'))).toMatchObject({ decision: 'grant', userid: 'cleaner' });
  });
});

describe('export and import of the local layer', () => {
  it('round-trips through JSON without PINs, and rejects bad entries one by one', async () => {
    await api.usersAdd({ userid: 'cleaner', name: 'Li', cards: [900], rules: ['18:00-23:00 * * * *'], groups: ['security'], valid_until: '2027-01-01T00:00:00+08:00', pin: '1234', note: 'night shift' });
    await api.usersBlock({ userid: 'cleaner', until: '2030-01-01T00:00:00Z', reason: 'holiday' });
    await api.usersSet({ userid: 'bob', add_cards: [777] });
    const exported = await api.usersExport({});
    expect(exported).toEqual([
      expect.objectContaining({ kind: 'local_user', userid: 'cleaner', name: 'Li', cards: ['900'], rules: ['18:00-23:00 * * * *'], groups: ['security'], valid_until: '2026-12-31T16:00:00.000Z', note: 'night shift', blocked: { until: '2030-01-01T00:00:00.000Z', reason: 'holiday' } }),
      expect.objectContaining({ kind: 'adjustment', userid: 'bob', add_cards: ['777'] }),
    ]);
    const fresh = await Store.open(join(tmpDir(), 'db2'));
    try {
      await fresh.upsertUsers([user({ userid: 'bob', cards: [200] })]);
      const api2 = localApi(fresh, config, 'test');
      const rep = await api2.usersImport({ records: [...exported, { kind: 'local_user', userid: 'bad', cards: ['x'] }] });
      expect(rep).toMatchObject({ layer: 'local', imported: 2, rejected: [{ index: 2, userid: 'bad', error: expect.stringMatching(/card "x"/) }] });
      expect(await api2.usersExport({})).toEqual(exported.map((e) => ({ ...e })));
    } finally {
      await fresh.close();
    }
  });
});

describe('listing both layers page by page', () => {
  it('returns every person once, in userid order, whatever the page size and the mix of layers', async () => {
    const { default: fc } = await import('fast-check');
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.stringMatching(/^[a-d]{1,3}$/), { minLength: 0, maxLength: 25 }), fc.func(fc.boolean()), fc.integer({ min: 1, max: 7 }), async (ids, isLocal, limit) => {
        const dir = join(tmpDir(), 'p');
        const s = await Store.open(dir);
        try {
          const local = ids.filter((id) => isLocal(id));
          const cloud = ids.filter((id) => !isLocal(id));
          await s.upsertUsers(cloud.map((id) => user({ userid: id })));
          const a = localApi(s, config, 't');
          for (const id of local) await a.usersAdd({ userid: id });
          const seen: string[] = [];
          let after: string | undefined;
          for (let guard = 0; guard < 100; guard++) {
            const page = await a.usersList({ limit, ...(after !== undefined ? { after } : {}) });
            seen.push(...page.users.map((u) => u.userid));
            if (page.next === null) break;
            after = page.next;
          }
          expect(seen).toEqual([...ids].sort());
        } finally {
          await s.close();
        }
      }),
      { numRuns: 40 },
    );
  }, 60_000);
});
