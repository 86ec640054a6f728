import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCard, decodeKey, encodeCard } from '../../src/domain/cards.js';
import { WiegandFramer, type WiegandEdge } from '../../src/domain/wiegand.js';

const MS = 1_000_000n;
const T0 = 10_000n * MS; // the lines watched since 10 s of monotonic time

/** Edges of a frame starting at `start`, bits `gapUs` apart with up to ±`jitterUs` of jitter. */
function edges(bits: string, start: bigint, gapUs = 2000, jitterUs = 0, rnd = Math.random): WiegandEdge[] {
  let t = start;
  return [...bits].map((b) => {
    const e: WiegandEdge = { line: b === '1' ? 1 : 0, ns: t };
    t += BigInt(Math.round((gapUs + (rnd() * 2 - 1) * jitterUs) * 1000));
    return e;
  });
}

describe('Wiegand framing from kernel-timestamped edges', () => {
  it('decodes every format exactly under realistic jitter', () => {
    fc.assert(
      fc.property(fc.constantFrom('h10301', 'h10306', 'c1000', 'h10304'), fc.nat(255), fc.nat(65535), fc.integer({ min: 500, max: 3000 }), fc.integer({ min: 0, max: 400 }), (f, fac, card, gap, jitter) => {
        const bits = encodeCard(f, fac, BigInt(card));
        const w = new WiegandFramer(T0);
        const start = T0 + 1000n * MS;
        const got = w.push(edges(bits, start, gap, Math.min(jitter, gap / 3))); // readers keep bits ≥ ~0.3 ms apart
        expect(got).toEqual([]);
        const [frame] = w.flush(start + 1000n * MS);
        expect(frame).toMatchObject({ ok: true, bits });
        expect(decodeCard(frame!.ok ? frame!.bits : '', 'auto')).toMatchObject({ ok: true });
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same frames when a stalled event loop delivers the edges late, in one batch', () => {
    const a = encodeCard('h10301', 12, 3456n);
    const b = encodeCard('h10301', 13, 4567n);
    const all = [...edges(a, T0 + 100n * MS, 1800, 200), ...edges(b, T0 + 300n * MS, 1800, 200)];
    // Live: edges as they come, flushes on time.
    const live = new WiegandFramer(T0);
    const liveFrames = [...live.push(all.slice(0, a.length)), ...live.flush(T0 + 200n * MS), ...live.push(all.slice(a.length)), ...live.flush(T0 + 400n * MS)];
    // Stalled: nothing for 2 s, then everything at once.
    const late = new WiegandFramer(T0);
    const lateFrames = [...late.push(all), ...late.flush(T0 + 2300n * MS)];
    expect(lateFrames).toEqual(liveFrames);
    expect(lateFrames.map((f) => (f.ok ? decodeCard(f.bits).ok && f.bits : f))).toEqual([a, b]);
  });

  it('separates frames back to back by the gap, and keypad keys typed one by one', () => {
    const card = encodeCard('h10301', 1, 1n);
    const w = new WiegandFramer(T0);
    const frames = [
      ...w.push(edges(card, T0 + 100n * MS)),
      ...w.push(edges('00100', T0 + 100n * MS + 52n * MS + 30n * MS).slice(0, 4)), // '0010' = key 2
      ...w.push(edges('10100101', T0 + 300n * MS)), // key 5 as an 8-bit burst
      ...w.flush(T0 + 400n * MS),
    ];
    expect(frames.map((f) => (f.ok ? f.bits : f.error))).toEqual([card, '0010', '10100101']);
    expect(frames.slice(1).map((f) => (f.ok ? decodeKey(f.bits) : null))).toEqual([{ ok: true, key: '2' }, { ok: true, key: '5' }]);
  });

  it('refuses impossible timing, truncated frames and a frame already under way at start — never guesses', () => {
    const bits = encodeCard('h10301', 7, 777n);
    // Both lines at once.
    const both = new WiegandFramer(T0);
    const e = edges(bits, T0 + 100n * MS);
    e.splice(5, 0, { line: e[4]!.line === 1 ? 0 : 1, ns: e[4]!.ns + 5000n });
    both.push(e);
    expect(both.flush(T0 + 500n * MS)).toEqual([{ ok: false, error: 'both lines low at once (wiring or noise)', bits: 27, startNs: T0 + 100n * MS }]);
    // Bits 80 µs apart.
    const fast = new WiegandFramer(T0);
    fast.push(edges(bits, T0 + 100n * MS, 80));
    expect(fast.flush(T0 + 500n * MS)[0]).toMatchObject({ ok: false, error: 'bits 80 µs apart (faster than any reader)' });
    // Truncated: the frame ends early; it is a frame no format has.
    const cut = new WiegandFramer(T0);
    cut.push(edges(bits.slice(0, 23), T0 + 100n * MS));
    const [f] = cut.flush(T0 + 500n * MS);
    expect(f).toMatchObject({ ok: true, bits: bits.slice(0, 23) });
    expect(decodeCard(f!.ok ? f!.bits : '')).toMatchObject({ ok: false, error: expect.stringContaining('no card format has 23 bits') });
    // Started while a frame was on the wire.
    const early = new WiegandFramer(T0);
    early.push(edges(bits.slice(10), T0 + 3n * MS));
    expect(early.flush(T0 + 500n * MS)[0]).toMatchObject({ ok: false, error: 'began before the lines were watched (partial frame)' });
    // Too long.
    const long = new WiegandFramer(T0);
    long.push(edges('1'.repeat(200), T0 + 100n * MS, 500));
    expect(long.flush(T0 + 900n * MS)[0]).toMatchObject({ ok: false, error: 'longer than 128 bits', bits: 128 });
    expect(long.dueNs).toBeNull();
  });
});
