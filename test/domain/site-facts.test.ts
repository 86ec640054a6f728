import { describe, expect, it } from 'vitest';
import { FactDigest, levelAt, levelModeAt, parseFact, scheduledLevels, type LevelDefinition } from '../../src/domain/site-facts.js';
import { SiteLayer } from '../../src/store/site-layer.js';
import type { UserRecord } from '../../src/domain/user.js';

const L = (name: string, o: Partial<LevelDefinition> = {}): LevelDefinition => ({ name, deny_groups: [], override_groups: [], doors: {}, ...o });
const levels = [L('normal'), L('elevated', { deny_groups: ['visitors'] }), L('lockdown', { mode: 'lockdown', doors: { exit: { mode: 'none' } } })];
const set = (scope: string, level: string) => ({ scope, level, by: 'guard', at: 1, reason: null });

describe('site facts', () => {
  it('the digest is order-free and a removal undoes an add', () => {
    const a = new FactDigest();
    const b = new FactDigest();
    const s1 = { version: 1, iat: 10, id: 'aaaaaaaa' };
    const s2 = { version: 2, iat: 11, id: 'bbbbbbbb' };
    a.add('block/card:1', s1);
    a.add('user/x', s2);
    b.add('user/x', s2);
    b.add('block/card:1', s1);
    expect(a.hex).toBe(b.hex);
    b.remove('user/x', s2);
    expect(b.hex).not.toBe(a.hex);
    b.add('user/x', { ...s2, version: 3 });
    expect(b.hex).not.toBe(a.hex);
    expect([a.count, b.count]).toEqual([2, 2]);
  });

  it('the most severe level of the site and the door\'s areas holds; an unknown level holds as a lockdown', () => {
    expect(levelAt([set('site', 'elevated'), set('hq', 'lockdown')], ['hq'], levels)?.name).toBe('lockdown');
    expect(levelAt([set('site', 'elevated'), set('lab', 'lockdown')], ['hq'], levels)?.name).toBe('elevated');
    const unknown = levelAt([set('site', 'normal'), set('hq', 'zombies')], ['hq'], levels)!;
    expect([unknown.name, levelModeAt(unknown, 'lobby')]).toEqual(['zombies', 'lockdown']);
    const l = levelAt([set('site', 'lockdown')], [], levels);
    expect([levelModeAt(l, 'lobby'), levelModeAt(l, 'exit')]).toEqual(['lockdown', null]);
    expect(levelAt([], ['hq'], levels)).toBeNull();
  });

  it('bodies are checked per type, with the subject', () => {
    expect(parseFact('block/card:0012', {})).toMatchObject({ ok: false });
    expect(parseFact('block/card:12', { until: 'tomorrow' })).toMatchObject({ ok: false });
    expect(parseFact('block/card:12', null)).toEqual({ ok: true, fact: { type: 'deleted' } });
    expect(parseFact('user/bob', { cards: ['x'] })).toMatchObject({ ok: false });
    expect(parseFact('user/bob', { pin_hash: '1234' })).toMatchObject({ ok: false });
    expect(parseFact('door_mode/lobby', { mode: 'open' })).toMatchObject({ ok: false });
    expect(parseFact('weather/today', {})).toMatchObject({ ok: false, detail: expect.stringContaining('unknown fact type') });
    expect(parseFact('user/bob', { cards: ['2002'], groups: ['a'] })).toMatchObject({ ok: true, fact: { type: 'user', userid: 'bob', user: { cards: ['2002'], groups: ['a'], user_type: 0 } } });
  });

  it('site blocks apply to whoever holds the card, and a longer block wins over an ended local one', () => {
    const layer = new SiteLayer();
    const held = (fact: Parameters<SiteLayer['set']>[1]['fact'], doors: string[] | null = null) => ({ stamp: { version: 1, iat: 5, id: 'idididid' }, sig: 's', kid: 'k', by: 'guard', scope: { site: true as const }, doors, fact });
    const alice: UserRecord = { userid: 'alice', user_type: 0, name: null, openvid: null, key_id: null, cards: ['1001'], rules: [], invalid_rules: [], source: 'wecom', fp_ver: null, fa_ver: null };
    expect(layer.adjust(alice)).toBe(alice);
    layer.set('block/card:1001', held({ type: 'block', target: { card: '1001' }, until: null, reason: 'lost' }));
    expect(layer.adjust(alice).local?.blocked_cards['1001']?.reason).toBe('lost');
    const ended = { ...alice, local: { ...layer.adjust(alice).local!, blocked: { until: 1, reason: 'old', at: 0, by: 'x' } } };
    layer.set('block/user:alice', held({ type: 'block', target: { userid: 'alice' }, until: null, reason: 'left' }));
    expect(layer.adjust(ended).local?.blocked?.reason).toBe('left');
    // Out of scope: held, counted, not applied.
    layer.set('user/zed', held({ type: 'user', userid: 'zed', user: { name: null, user_type: 0, cards: ['9'], groups: [], doors: null, valid_from: null, valid_until: null, rules: [], pin_hash: null }, rules: [] }, []));
    expect([layer.users.has('zed'), layer.digest.count]).toEqual([false, 3]);
    layer.set('block/card:1001', held({ type: 'deleted' }));
    expect(layer.blockedCards.size).toBe(0);
  });

  it('scheduled levels: in their window on their days (wrapping past midnight counts for the day it began), stamped with its start', () => {
    const at = (iso: string) => Date.parse(iso);
    const night = [{ level: 'elevated', scope: 'site', days: [1, 2, 3, 4, 5], from: '22:00', to: '06:00' }];
    const day = [{ level: 'lockdown', scope: 'hq', days: [6], from: '08:00', to: '12:30' }];
    const z = 'Asia/Shanghai';
    // Monday 2026-12-07, 23:15 and Tuesday 05:59: in; Tuesday 06:00: out (end exclusive).
    expect(scheduledLevels(night, at('2026-12-07T23:15:00+08:00'), z)).toEqual([{ scope: 'site', level: 'elevated', by: 'schedule', at: at('2026-12-07T22:00:00+08:00'), reason: 'scheduled 22:00–06:00' }]);
    expect(scheduledLevels(night, at('2026-12-08T05:59:30+08:00'), z)[0]?.at).toBe(at('2026-12-07T22:00:00+08:00'));
    expect(scheduledLevels(night, at('2026-12-08T06:00:00+08:00'), z)).toEqual([]);
    // Saturday 01:00 is Friday night's window; Sunday 01:00 would be Saturday's, which is not a day of it.
    expect(scheduledLevels(night, at('2026-12-12T01:00:00+08:00'), z)).toHaveLength(1);
    expect(scheduledLevels(night, at('2026-12-13T01:00:00+08:00'), z)).toEqual([]);
    expect(scheduledLevels(day, at('2026-12-12T12:29:00+08:00'), z)).toMatchObject([{ scope: 'hq', level: 'lockdown' }]);
    expect(scheduledLevels(day, at('2026-12-12T12:30:00+08:00'), z)).toEqual([]);
    expect(scheduledLevels(day, at('2026-12-11T09:00:00+08:00'), z)).toEqual([]); // a Friday
    // Combined with signed levels, the most severe holds.
    const levels = [{ name: 'normal', deny_groups: [], override_groups: [], doors: {} }, { name: 'elevated', deny_groups: [], override_groups: [], doors: {} }, { name: 'lockdown', mode: 'lockdown' as const, deny_groups: [], override_groups: [], doors: {} }];
    const signed = [{ scope: 'site', level: 'normal', by: 'desk', at: 1, reason: null }];
    expect(levelAt([...signed, ...scheduledLevels(night, at('2026-12-07T23:15:00+08:00'), z)], [], levels)?.name).toBe('elevated');
    expect(levelAt([...signed, ...scheduledLevels(night, at('2026-12-07T12:00:00+08:00'), z)], [], levels)?.name).toBe('normal');
  });
});
