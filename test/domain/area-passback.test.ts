import { describe, expect, it } from 'vitest';
import { applyAreaPassback, livePresence, type AreaPolicy, type PresenceMap } from '../../src/domain/area-passback.js';
import type { Decision } from '../../src/domain/types.js';

const grant: Decision = { decision: 'grant', reason: 'default_allow', userid: 'a', user_type: 0, method: 'card', door: 'lobby', at: 0 };
const area = (o: Partial<AreaPolicy> = {}): AreaPolicy => ({ name: 'office', hard: true, timeoutS: null, resetMinute: null, timezone: 'Asia/Shanghai', ...o });
const t = (iso: string) => Date.parse(iso);
/** A moment on both clocks (the monotonic one kept in step with the wall here). */
const n = (at: number) => ({ at, mono: at, boot: 'b' });

describe('area anti-passback', () => {
  it('hard: in, in again is denied; out then in is fine; unknown presence is allowed either way', () => {
    const m: PresenceMap = new Map();
    const step = (dir: 'in' | 'out', at: number) => {
      const r = applyAreaPassback(grant, dir, area(), m, n(at));
      if (r.record) m.set('a', r.record);
      return r;
    };
    expect(step('out', 0)).toMatchObject({ decision: { decision: 'grant' }, violation: false }); // first seen going out
    expect(step('in', 1000)).toMatchObject({ decision: { decision: 'grant' }, violation: false });
    expect(step('in', 2000)).toMatchObject({ decision: { decision: 'deny', reason: 'anti_passback', detail: "already in area 'office' (anti-passback)" }, violation: true, record: null });
    expect(step('out', 3000).decision.decision).toBe('grant');
    expect(step('out', 4000).decision).toMatchObject({ reason: 'anti_passback' });
    // readers without a direction, and non-personal openings, are not tracked
    expect(applyAreaPassback(grant, 'unknown', area(), m, n(5000))).toMatchObject({ record: null, violation: false });
    expect(applyAreaPassback({ ...grant, reason: 'remote_open' }, 'out', area(), m, n(5000))).toMatchObject({ record: null, violation: false });
  });

  it('soft: lets the violation through, flags it, and records the new presence', () => {
    const m: PresenceMap = new Map([['a', { where: 'in', at: 0 }]]);
    const r = applyAreaPassback(grant, 'in', area({ hard: false }), m, n(1000));
    expect(r).toMatchObject({ decision: { decision: 'grant', detail: "anti-passback violation (soft): already in area 'office'" }, violation: true, record: { where: 'in', at: 1000 } });
  });

  it('forgets presence after the timeout and at the daily reset, in the area\'s zone', () => {
    const p = { where: 'in' as const, at: t('2026-11-02T20:00:00+08:00') };
    expect(livePresence(p, area({ timeoutS: 3600 }), n(t('2026-11-02T20:59:00+08:00')))).toBe(p);
    expect(livePresence(p, area({ timeoutS: 3600 }), n(t('2026-11-02T21:00:00+08:00')))).toBeUndefined();
    const reset = area({ resetMinute: 3 * 60 }); // 03:00 local
    expect(livePresence(p, reset, n(t('2026-11-03T02:59:00+08:00')))).toBe(p);
    expect(livePresence(p, reset, n(t('2026-11-03T03:00:00+08:00')))).toBeUndefined();
    expect(livePresence({ where: 'in', at: t('2026-11-03T03:30:00+08:00') }, reset, n(t('2026-11-03T23:00:00+08:00')))).toBeDefined();
  });
});
