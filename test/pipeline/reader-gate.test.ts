import { describe, expect, it } from 'vitest';
import { credentialEvent } from '../../src/domain/events.js';
import { TokenBucket } from '../../src/domain/rate-limit.js';
import { ReaderGate } from '../../src/pipeline/reader-gate.js';

describe('token bucket', () => {
  it('allows a burst, then the rate', () => {
    const b = new TokenBucket(5, 3);
    expect([0, 0, 0, 0].map(() => b.take(1000))).toEqual([true, true, true, false]);
    expect(b.take(1100)).toBe(false); // half a token
    expect(b.take(1200)).toBe(true); // one token after 200 ms at 5/s
    expect(b.take(10_000)).toBe(true);
  });
});

describe('reader gate', () => {
  const gate = () => new ReaderGate(new Map([['card', { accepts: ['card', 'qr'] as const, rate: { perS: 5, burst: 3 } }], ['face', { accepts: ['face'] as const, rate: null }]]));
  const card = (reader: string) => credentialEvent('d', reader, 'in', { type: 'card', value: '1' });

  it('refuses kinds a reader may not present, and lets the gateway\'s own sources through', () => {
    const g = gate();
    expect(g.admit(credentialEvent('d', 'card', 'in', { type: 'userid', value: 'x', method: 'face' }), 0)).toEqual({ verdict: 'not_allowed', detail: "reader 'card' may present card, qr; it presented face" });
    expect(g.admit(card('face'), 0)).toMatchObject({ verdict: 'not_allowed' });
    expect(g.admit(credentialEvent('d', 'face', 'in', { type: 'userid', value: 'x', method: 'face' }), 0)).toEqual({ verdict: 'ok' });
    expect(g.admit(credentialEvent('d', 'exit_button', 'out', { type: 'exit' }), 0)).toEqual({ verdict: 'ok' });
    expect(g.admit(credentialEvent('d', 'wecom', 'in', { type: 'remote', userid: 'x' }), 0)).toEqual({ verdict: 'ok' });
  });

  it('reports a sustained flood once, and its end only after the reader has been quiet', () => {
    const g = gate();
    const verdicts: string[] = [];
    // 50 credentials a second for 2 s: 3 burst + 5/s pass, the rest are dropped, one flood.
    for (let t = 0; t < 2000; t += 20) {
      const v = g.admit(card('card'), t);
      verdicts.push(v.verdict === 'flood' ? (v.firstDrop ? 'F' : 'f') : v.floodEnded ? 'E' : 'o');
    }
    expect(verdicts.filter((v) => v === 'F')).toHaveLength(1);
    expect(verdicts.filter((v) => v === 'E')).toHaveLength(0);
    expect(verdicts.filter((v) => v === 'o').length).toBeGreaterThanOrEqual(12);
    expect(verdicts.filter((v) => v === 'o').length).toBeLessThanOrEqual(14);
    // Quiet for a while: the next one ends the flood with the count.
    const end = g.admit(card('card'), 5000);
    expect(end).toEqual({ verdict: 'ok', floodEnded: g.droppedTotal.get('card') });
    expect(g.admit(card('card'), 5001)).toEqual({ verdict: 'ok' });
  });
});
