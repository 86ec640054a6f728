import { describe, expect, it } from 'vitest';
import { applySequence, newSequenceState } from '../../src/domain/door-sequence.js';
import type { Decision } from '../../src/domain/types.js';

const grant = (userid: string, reason: Decision['reason'] = 'default_allow'): Decision => ({ decision: 'grant', reason, userid, user_type: 0, method: 'card', door: 'd', at: 0 });

describe('timed anti-passback', () => {
  it('denies the same person within the window, never others, and forgets after it', () => {
    const s = newSequenceState();
    const p = { antiPassbackS: 60, twoPersonS: null };
    expect(applySequence(grant('a'), p, s, 0)).toMatchObject({ decision: 'grant' });
    expect(applySequence(grant('b'), p, s, 1000)).toMatchObject({ decision: 'grant' });
    expect(applySequence(grant('a'), p, s, 59_999)).toMatchObject({ decision: 'deny', reason: 'anti_passback', detail: 'passed 60 s ago (anti-passback 60 s)' });
    expect(applySequence(grant('a'), p, s, 60_000)).toMatchObject({ decision: 'grant' });
    // exits, operator and remote opens are not a person's own passage
    expect(applySequence({ ...grant('a', 'remote_open') }, p, s, 60_001)).toMatchObject({ decision: 'grant' });
    const deny = { ...grant('c'), decision: 'deny' as const, reason: 'unknown_user' as const };
    expect(applySequence(deny, p, s, 0)).toBe(deny);
  });
});

describe('two-person rule', () => {
  it('makes the first wait and lets the second, different, person open within the window', () => {
    const s = newSequenceState();
    const p = { antiPassbackS: null, twoPersonS: 10 };
    expect(applySequence(grant('a'), p, s, 0)).toMatchObject({ decision: 'deny', reason: 'awaiting_second_person' });
    expect(applySequence(grant('a'), p, s, 2000)).toMatchObject({ decision: 'deny', reason: 'awaiting_second_person' }); // the same person twice is not two
    expect(applySequence(grant('b'), p, s, 11_000)).toMatchObject({ decision: 'grant', userid: 'b' }); // 9 s after a's last
    // the pair is used up: the next one waits again
    expect(applySequence(grant('c'), p, s, 12_000)).toMatchObject({ decision: 'deny', reason: 'awaiting_second_person' });
    // too late: c waited more than 10 s, d becomes the first of a new pair
    expect(applySequence(grant('d'), p, s, 22_001)).toMatchObject({ decision: 'deny', reason: 'awaiting_second_person' });
  });

  it('combines with anti-passback: both people of a pair are recorded as passed', () => {
    const s = newSequenceState();
    const p = { antiPassbackS: 30, twoPersonS: 10 };
    applySequence(grant('a'), p, s, 0);
    expect(applySequence(grant('b'), p, s, 1000).decision).toBe('grant');
    expect(applySequence(grant('a'), p, s, 5000)).toMatchObject({ reason: 'anti_passback' });
    expect(applySequence(grant('b'), p, s, 5000)).toMatchObject({ reason: 'anti_passback' });
  });
});
