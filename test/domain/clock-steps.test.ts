/**
 * Every memory kept "for a while", with the wall clock stepped forward and back while the
 * monotonic clock runs on (what NTP, an RTC-less boot or an operator's `date -s` do). Third outside
 * probe: a used QR code was granted again after +1 day, a prune, −1 day.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyAreaPassback, livePresence, type AreaPolicy, type PresenceMap } from '../../src/domain/area-passback.js';
import { elapsedMs } from '../../src/domain/clock.js';
import { decide, type PolicyOptions } from '../../src/domain/policy.js';
import { TokenBucket } from '../../src/domain/rate-limit.js';
import { ReplayGuard } from '../../src/domain/replay.js';
import type { Credential, Decision } from '../../src/domain/types.js';
import { Store } from '../../src/store/store.js';
import { employeeQr, makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const DAY = 86_400_000;
const T0 = Date.parse('2026-12-02T09:00:00+08:00');

/** A wall clock that an operator steps, and a monotonic clock that only runs. */
function clocks() {
  let wall = T0;
  let mono = 1_000_000;
  return {
    wall: () => wall,
    mono: () => mono,
    /** Real time passes: both clocks move. */
    pass(ms: number) {
      wall += ms;
      mono += ms;
    },
    /** The wall clock is set: only it moves. */
    step(ms: number) {
      wall += ms;
    },
  };
}

describe('replay memory survives wall-clock steps', () => {
  const key = makeKey();
  const policy: PolicyOptions = { default_allow: { employee: true, visitor: false, student: true }, replay_protection: true, qr_skew_s: 30 };
  const door = { id: 'front', mode: 'normal' as const, timezone: 'Asia/Shanghai' };
  let store: Store;
  beforeEach(async () => {
    store = await Store.open(join(tmpDir(), 'db'));
    await store.upsertUsers([user({ userid: 'emp', openvid: 7, public_key: key.publicB64 })]);
  });
  afterEach(async () => store.close());

  it('grant, +1 day, prune, −1 day: the used code is still refused; it is let go once its window has passed on both clocks', () => {
    const c = clocks();
    const replay = new ReplayGuard({ mono: c.mono, boot: 'b1' });
    const run = (cred: Credential) => decide({ credential: cred, door, nowMs: c.wall(), directory: store.directory, policy, replay });
    const text = employeeQr(key.privateKey, '7', Math.floor(T0 / 1000), 300);
    expect(run({ type: 'qr', text })).toMatchObject({ decision: 'grant' });
    c.step(DAY);
    expect(replay.prune(Math.floor(c.wall() / 1000))).toEqual([]); // expired by the wall only: kept
    c.pass(60_000);
    expect(replay.prune(Math.floor(c.wall() / 1000))).toEqual([]);
    c.step(-DAY);
    expect(run({ type: 'qr', text })).toMatchObject({ decision: 'deny', reason: 'replayed' });
    // Backwards first: −1 day, then the window passes in real time, then the clock is put right.
    c.pass(330_001);
    expect(replay.prune(Math.floor(c.wall() / 1000))).toHaveLength(1);
    expect(run({ type: 'qr', text })).toMatchObject({ decision: 'deny', reason: 'expired' });
  });

  it('a wall clock stepped back does not free a code early either', () => {
    const c = clocks();
    const replay = new ReplayGuard({ mono: c.mono, boot: 'b1' });
    const run = (cred: Credential) => decide({ credential: cred, door, nowMs: c.wall(), directory: store.directory, policy, replay });
    const text = employeeQr(key.privateKey, '7', Math.floor(T0 / 1000), 300);
    expect(run({ type: 'qr', text }).decision).toBe('grant');
    c.step(-DAY);
    c.pass(400_000); // the window has passed in real time, but the wall says the code is in the future
    expect(replay.prune(Math.floor(c.wall() / 1000))).toEqual([]);
    expect(run({ type: 'qr', text }).reason).not.toBe('default_allow');
  });

  it('restored entries: of this boot as they were; of another boot, or stored bare by an older version, with their whole window again', () => {
    const c = clocks();
    const first = new ReplayGuard({ mono: c.mono, boot: 'b1' });
    const e = first.remember('k', Math.floor(T0 / 1000) + 300, Math.floor(T0 / 1000));
    const { key: _k, ...stored } = e;
    c.step(DAY); // the wall clock jumps while the gateway is down
    const sameBoot = new ReplayGuard({ mono: c.mono, boot: 'b1' });
    sameBoot.restore('k', stored, Math.floor(c.wall() / 1000));
    expect(sameBoot.isReplay('k', Math.floor(c.wall() / 1000))).toBe(true);
    c.pass(300_001);
    expect(sameBoot.isReplay('k', Math.floor(c.wall() / 1000))).toBe(false);
    const rebooted = new ReplayGuard({ mono: () => 5, boot: 'b2' });
    rebooted.restore('k', stored, Math.floor(c.wall() / 1000));
    expect(rebooted.prune(Math.floor(c.wall() / 1000))).toEqual([]); // monotonic 5 ms < 300 s from the restart
    const legacy = new ReplayGuard({ mono: c.mono, boot: 'b1' });
    legacy.restore('old', Math.floor(c.wall() / 1000) + 60, Math.floor(c.wall() / 1000));
    c.step(DAY);
    expect(legacy.isReplay('old', Math.floor(c.wall() / 1000))).toBe(true);
  });
});

describe('rate limits, presence and stamps', () => {
  it('a token bucket is never drained by time running backwards', () => {
    const b = new TokenBucket(5, 2);
    expect(b.take(10_000)).toBe(true);
    expect(b.take(10_000)).toBe(true);
    expect(b.take(10_000)).toBe(false);
    // fed a clock that went back a day: before, the bucket stayed empty for that day
    expect(b.take(10_000 - DAY)).toBe(false);
    expect(b.take(10_000 - DAY + 400)).toBe(true);
  });

  it('elapsed time is monotonic within a boot, wall time across boots, and never negative', () => {
    const now = { at: T0, mono: 50_000, boot: 'b1' };
    expect(elapsedMs({ at: T0 + DAY, mono: 20_000, boot: 'b1' }, now)).toBe(30_000);
    expect(elapsedMs({ at: T0 - 7000, mono: 999_999, boot: 'b0' }, now)).toBe(7000);
    expect(elapsedMs({ at: T0 + DAY }, now)).toBe(0);
  });

  it('area presence: a step back a day does not keep a person in for a day; a step forward does not forget everyone', () => {
    const area: AreaPolicy = { name: 'office', hard: true, timeoutS: 3600, resetMinute: 3 * 60, timezone: 'Asia/Shanghai' };
    const grant: Decision = { decision: 'grant', reason: 'default_allow', userid: 'a', user_type: 0, method: 'card', door: 'lobby', at: 0 };
    const c = clocks();
    const now = () => ({ at: c.wall(), mono: c.mono(), boot: 'b1' });
    const m: PresenceMap = new Map();
    const r = applyAreaPassback(grant, 'in', area, m, now());
    m.set('a', r.record!);
    c.step(2 * 3_600_000); // +2 h on the wall only: still in (and the 03:00 reset is not crossed in real time)
    expect(livePresence(m.get('a'), area, now())).toBeDefined();
    expect(applyAreaPassback(grant, 'in', area, m, now()).decision.reason).toBe('anti_passback');
    c.step(-2 * 3_600_000 - DAY); // back a day
    c.pass(3_600_000); // the timeout passes in real time
    expect(livePresence(m.get('a'), area, now())).toBeUndefined();
  });
});

describe('console sessions and login throttling', () => {
  it('measure on the monotonic clock they are given, and the throttle table drops its longest-idle key, never all', async () => {
    const { LoginThrottle, Sessions } = await import('../../src/web/sessions.js');
    let mono = 0;
    const th = new LoginThrottle(2, 60_000, () => mono, 4);
    th.failed('admin', 'evil');
    th.failed('admin', 'evil');
    expect(th.retryAfterS('admin', 'evil')).toBe(1);
    expect(th.retryAfterS('admin', 'good')).toBe(0);
    th.failed('x', 'a');
    th.failed('admin', 'evil');
    expect(th.retryAfterS('admin', 'evil')).toBe(2);
    // More keys than the table holds: the idlest go one by one; the latest lockout stays.
    th.failed('y', 'b');
    expect(th.size).toBe(4);
    expect(th.retryAfterS('admin', 'evil')).toBe(2);
    const s = new Sessions(60_000, 3_600_000, () => mono);
    const session = s.create('ada', 'viewer');
    mono += 59_000;
    expect(s.get(session.id)).not.toBeNull();
    mono += 61_000;
    expect(s.get(session.id)).toBeNull();
  });
});

describe('sliding windows', () => {
  it('count the events of the last window only, and hold at most the newest', async () => {
    const { SlidingWindow } = await import('../../src/domain/rate-limit.js');
    const w = new SlidingWindow(60_000, 3);
    expect([w.add(0), w.add(10_000), w.add(59_999)]).toEqual([1, 2, 3]);
    expect(w.add(60_000)).toBe(3); // the first has left the window
    expect(w.count(125_000)).toBe(0);
    for (let i = 0; i < 5; i++) w.add(200_000 + i);
    expect(w.count(200_010)).toBe(3);
    w.clear();
    expect(w.count(200_010)).toBe(0);
  });
});
