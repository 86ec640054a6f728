import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from '../../src/domain/backoff.js';

describe('backoff', () => {
  const p = { initialMs: 100, maxMs: 1000 };
  it('doubles from the initial delay up to the cap, with equal jitter in [d/2, d]', () => {
    expect([0, 1, 2, 3, 4, 10, 2000].map((n) => backoffDelay(n, p, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(n, p, () => 0))).toEqual([50, 100, 200, 400, 500]);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, p);
      expect(d).toBeGreaterThanOrEqual(400);
      expect(d).toBeLessThanOrEqual(800);
    }
  });

  it('counts attempts and starts over after a reset', () => {
    const b = new Backoff(p, () => 1);
    expect([b.next(), b.next(), b.next()]).toEqual([100, 200, 400]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect([b.attempts, b.next()]).toEqual([0, 100]);
  });
});
