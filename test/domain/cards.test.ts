import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CARD_FORMATS, decodeCard, decodeKey, encodeCard, type CardFormat } from '../../src/domain/cards.js';

describe('card formats', () => {
  it('decode hand-made frames by the published layouts', () => {
    // H10301, facility 1, card 1: P1 even over 2–13 sees one 1 → 1; P26 odd over 14–25 sees one 1 → 0.
    expect(decodeCard('1' + '00000001' + '0000000000000001' + '0')).toEqual({ ok: true, format: 'h10301', value: String((1 << 16) + 1), facility: 1, card: '1' });
    expect(decodeCard('10000000100000000000000010', 'h10301', 'card')).toMatchObject({ value: '1' });
    // A Chinese "Wiegand 34" reader: the 32-bit UID 0x12345678 between its parities.
    const uid = (0x12345678).toString(2).padStart(32, '0');
    const even = [...uid.slice(0, 16)].filter((b) => b === '1').length % 2 ? '1' : '0';
    const odd = [...uid.slice(16)].filter((b) => b === '1').length % 2 ? '0' : '1';
    expect(decodeCard(even + uid + odd)).toMatchObject({ ok: true, format: 'h10306', value: '305419896', facility: 0x1234, card: String(0x5678) });
    // Raw UIDs.
    expect(decodeCard(uid)).toMatchObject({ ok: true, format: 'uid32', value: '305419896' });
    expect(decodeCard('1'.repeat(56))).toMatchObject({ ok: true, format: 'uid56', value: String(2n ** 56n - 1n) });
  });

  it('round-trip every format, and read the facility and card fields', () => {
    const vectors: [Exclude<CardFormat, 'auto'>, number | null, bigint][] = [
      ['h10301', 123, 45678n],
      ['h10306', 65535, 65535n],
      ['c1000', 4095, 1048575n],
      ['c1000', 1000, 123456n],
      ['h10302', null, 34359738367n],
      ['h10304', 9999, 524287n],
    ];
    for (const [f, fac, card] of vectors) {
      const r = decodeCard(encodeCard(f, fac, card), f, 'card');
      expect(r, f).toMatchObject({ ok: true, format: f, facility: fac, card: card.toString(), value: card.toString() });
    }
    expect(decodeCard(encodeCard('h10304', 1, 2n))).toMatchObject({ format: 'h10304', value: String((1 << 19) + 2) }); // auto: 37 bits → h10304
    expect(() => encodeCard('h10301', 256, 1n)).toThrow(/facility 256 does not fit in 8 bits/);
  });

  it('refuse any single flipped bit of a frame with parity (never guess), and wrong lengths', () => {
    const withParity = CARD_FORMATS.filter((f): f is Exclude<CardFormat, 'auto' | 'uid32' | 'uid56'> => f !== 'auto' && !f.startsWith('uid'));
    fc.assert(
      fc.property(fc.constantFrom(...withParity), fc.nat(0xffff), fc.bigInt({ min: 0n, max: (1n << 19n) - 1n }), fc.nat(40), (f, fac, card, flip) => {
        const facility = f === 'h10302' ? null : fac & (f === 'h10301' ? 0xff : f === 'c1000' ? 0xfff : 0xffff);
        const c = f === 'h10301' || f === 'h10306' ? card & 0xffffn : card;
        const bits = encodeCard(f, facility, c);
        expect(decodeCard(bits, f).ok).toBe(true);
        const i = flip % bits.length;
        const bad = bits.slice(0, i) + (bits[i] === '1' ? '0' : '1') + bits.slice(i + 1);
        const r = decodeCard(bad, f);
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.error).toMatch(/parity bit \d+ .* does not match: a misread, never guessed/);
      }),
      { numRuns: 500 },
    );
    expect(decodeCard('1'.repeat(27))).toEqual({ ok: false, error: 'no card format has 27 bits (formats: 26 h10301, 32 uid32, 34 h10306, 35 c1000, 37 h10304, 56 uid56)' });
    expect(decodeCard('1'.repeat(26), 'h10306')).toEqual({ ok: false, error: 'h10306 has 34 bits, got 26' });
    expect(decodeCard('10x1')).toEqual({ ok: false, error: 'bits must be a string of 0 and 1' });
  });

  it('read keypad bursts of 4 and 8 bits', () => {
    expect(['0101', '1010', '1011', '0000'].map((b) => decodeKey(b))).toEqual([{ ok: true, key: '5' }, { ok: true, key: '*' }, { ok: true, key: '#' }, { ok: true, key: '0' }]);
    expect(decodeKey('10100101')).toEqual({ ok: true, key: '5' });
    expect(decodeKey('01001011')).toEqual({ ok: true, key: '#' });
    expect(decodeKey('10100100')).toMatchObject({ ok: false, error: expect.stringContaining('complement') });
    expect(decodeKey('1111')).toMatchObject({ ok: false, error: 'key code 15 is not a key' });
    expect(decodeKey('101')).toMatchObject({ ok: false });
  });
});
