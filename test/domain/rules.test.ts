import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRule, ruleMatches } from '../../src/domain/rules.js';

const SH = 'Asia/Shanghai';
const NY = 'America/New_York';
const ms = (iso: string): number => {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) throw new Error(`bad date ${iso}`);
  return t;
};
const sec = (iso: string): number => ms(iso) / 1000;

function matches(rule: string, at: string, opts: { tz?: string; effect?: string } = {}): boolean {
  const parsed = parseRule(rule, 0, opts.effect ? sec(opts.effect) : 0);
  if (!parsed.ok) throw new Error(parsed.error);
  return ruleMatches(parsed.rule, ms(at), opts.tz ?? SH);
}

// [rule, instant (with offset), expected, options]
type Row = [string, string, boolean, { tz?: string; effect?: string }?];
const table: Row[] = [
  // protocols.md §3 rule examples
  ['9:00-10:00 * * 1-5 *', '2024-06-03T09:00:00+08:00', true], // Monday
  ['9:00-10:00 * * 1-5 *', '2024-06-03T10:00:59+08:00', true], // closed at minute granularity
  ['9:00-10:00 * * 1-5 *', '2024-06-03T10:01:00+08:00', false],
  ['9:00-10:00 * * 1-5 *', '2024-06-03T08:59:59+08:00', false],
  ['9:00-10:00 * * 1-5 *', '2024-06-01T09:30:00+08:00', false], // Saturday
  ['9:00-10:00 * * 1-5 *', '2024-06-03T01:30:00Z', true], // same instant given in UTC
  ['9:00-10:00,15:30-17:45 * * 0,6 *', '2024-06-01T16:00:00+08:00', true],
  ['9:00-10:00,15:30-17:45 * * 0,6 *', '2024-06-02T17:45:59+08:00', true],
  ['9:00-10:00,15:30-17:45 * * 0,6 *', '2024-06-02T17:46:00+08:00', false],
  ['9:00-10:00,15:30-17:45 * * 0,6 *', '2024-06-03T16:00:00+08:00', false],
  ['0:00-2:00,9:30-18:00,23:00-23:59 * * * *', '2024-06-03T00:00:00+08:00', true],
  ['0:00-2:00,9:30-18:00,23:00-23:59 * * * *', '2024-06-03T23:59:59+08:00', true],
  ['0:00-2:00,9:30-18:00,23:00-23:59 * * * *', '2024-06-03T02:01:00+08:00', false],
  ['0:00-2:00,9:30-18:00,23:00-23:59 * * * *', '2024-06-03T09:29:59+08:00', false],
  // DATE examples
  ['0:00-23:59 * * 1-5 *', '2024-06-07T12:00:00+08:00', true], // Friday
  ['0:00-23:59 * * 1-5 *', '2024-06-09T12:00:00+08:00', false], // Sunday
  ['0:00-23:59 1 * * *', '2024-07-01T08:00:00+08:00', true],
  ['0:00-23:59 1 * * *', '2024-07-02T08:00:00+08:00', false],
  ['0:00-23:59 1 * * *', '2024-06-30T23:59:00+08:00', false], // 15:59Z on the 30th, still June in Shanghai
  ['0:00-23:59 1 * * *', '2024-06-30T16:00:00Z', true], // 00:00 on 1 July in Shanghai
  ['0:00-23:59 */2 * * *', '2024-06-01T10:00:00+08:00', true, { effect: '2024-06-01T00:00:00+08:00' }],
  ['0:00-23:59 */2 * * *', '2024-06-02T10:00:00+08:00', false, { effect: '2024-06-01T00:00:00+08:00' }],
  ['0:00-23:59 */2 * * *', '2024-06-03T10:00:00+08:00', true, { effect: '2024-06-01T00:00:00+08:00' }],
  ['0:00-23:59 */2 * * *', '2024-06-30T10:00:00+08:00', false, { effect: '2024-06-01T00:00:00+08:00' }], // day 29
  ['0:00-23:59 */2 * * *', '2024-07-01T10:00:00+08:00', true, { effect: '2024-06-01T00:00:00+08:00' }], // day 30: counts across months
  ['0:00-23:59 */2 * * *', '2024-06-01T23:00:00+08:00', true, { effect: '2024-06-01T22:00:00+08:00' }], // anchored on the local date, not 24 h
  ['0:00-23:59 1,15 9 * *', '2024-09-01T12:00:00+08:00', true],
  ['0:00-23:59 1,15 9 * *', '2024-09-15T12:00:00+08:00', true],
  ['0:00-23:59 1,15 9 * *', '2024-09-02T12:00:00+08:00', false],
  ['0:00-23:59 1,15 9 * *', '2024-10-01T12:00:00+08:00', false],
  ['0:00-23:59 15 10 * 2018', '2018-10-15T12:00:00+08:00', true],
  ['0:00-23:59 15 10 * 2018', '2019-10-15T12:00:00+08:00', false],
  ['0:00-23:59 2-20 9 * 2018', '2018-09-02T00:00:00+08:00', true],
  ['0:00-23:59 2-20 9 * 2018', '2018-09-20T23:59:59+08:00', true],
  ['0:00-23:59 2-20 9 * 2018', '2018-09-21T00:00:00+08:00', false],
  ['0:00-23:59 2-20 9 * 2018', '2018-09-01T23:59:59+08:00', false],
  ['0:00-23:59 */14 * * *', '2024-06-03T09:00:00+08:00', true, { effect: '2024-06-03T08:00:00+08:00' }], // week 0
  ['0:00-23:59 */14 * * *', '2024-06-09T09:00:00+08:00', true, { effect: '2024-06-03T08:00:00+08:00' }], // day 6
  ['0:00-23:59 */14 * * *', '2024-06-10T09:00:00+08:00', false, { effect: '2024-06-03T08:00:00+08:00' }], // week 1
  ['0:00-23:59 */14 * * *', '2024-06-16T09:00:00+08:00', false, { effect: '2024-06-03T08:00:00+08:00' }],
  ['0:00-23:59 */14 * * *', '2024-06-17T09:00:00+08:00', true, { effect: '2024-06-03T08:00:00+08:00' }], // week 2
  // AND semantics (not crontab's OR between day-of-month and day-of-week)
  ['0:00-23:59 1 * 1 *', '2024-07-01T12:00:00+08:00', true], // 1 July 2024 is a Monday
  ['0:00-23:59 1 * 1 *', '2024-06-03T12:00:00+08:00', false], // Monday, not the 1st
  ['0:00-23:59 1 * 1 *', '2024-08-01T12:00:00+08:00', false], // the 1st, a Thursday
  ['0:00-23:59 * * 7 *', '2024-06-02T12:00:00+08:00', true], // 7 = Sunday
  ['0:00-23:59 * * 0 *', '2024-06-02T12:00:00+08:00', true],
  // steps in other columns
  ['0:00-23:59 * */3 * *', '2024-04-10T12:00:00+08:00', true], // months 1,4,7,10
  ['0:00-23:59 * */3 * *', '2024-05-10T12:00:00+08:00', false],
  ['0:00-23:59 * * 1-5/2 *', '2024-06-05T12:00:00+08:00', true], // Mon, Wed, Fri
  ['0:00-23:59 * * 1-5/2 *', '2024-06-04T12:00:00+08:00', false],
  ['0:00-23:59 1-31/10 * * *', '2024-06-21T12:00:00+08:00', true], // 1, 11, 21, 31
  ['0:00-23:59 1-31/10 * * *', '2024-06-20T12:00:00+08:00', false],
  ['0:00-23:59 * * * */2', '2026-03-01T12:00:00+08:00', true, { effect: '2024-01-01T00:00:00+08:00' }],
  ['0:00-23:59 * * * */2', '2025-03-01T12:00:00+08:00', false, { effect: '2024-01-01T00:00:00+08:00' }],
  ['0:00-23:59 * * * 2020-2030/5', '2025-03-01T12:00:00+08:00', true],
  ['0:00-23:59 * * * 2020-2030/5', '2024-03-01T12:00:00+08:00', false],
  ['0:00-23:59 * * * 2024,2026', '2026-03-01T12:00:00+08:00', true],
  // midnight split of a night shift
  ['22:00-23:59,0:00-6:00 * * * *', '2024-06-03T23:59:30+08:00', true],
  ['22:00-23:59,0:00-6:00 * * * *', '2024-06-04T00:00:00+08:00', true],
  ['22:00-23:59,0:00-6:00 * * * *', '2024-06-04T06:00:59+08:00', true],
  ['22:00-23:59,0:00-6:00 * * * *', '2024-06-04T06:01:00+08:00', false],
  ['9:00-9:00 * * * *', '2024-06-04T09:00:30+08:00', true], // a one-minute range
  // leap days
  ['0:00-23:59 29 2 * *', '2024-02-29T12:00:00+08:00', true],
  ['0:00-23:59 29 2 * *', '2023-03-01T12:00:00+08:00', false],
  ['0:00-23:59 * 2 * 2024', '2024-02-29T23:59:59+08:00', true],
  ['0:00-23:59 * 2 * 2024', '2024-03-01T00:00:00+08:00', false],
  ['0:00-23:59 */2 * * *', '2024-02-29T12:00:00+08:00', false, { effect: '2024-02-28T00:00:00+08:00' }], // day 1
  ['0:00-23:59 */2 * * *', '2024-03-01T12:00:00+08:00', true, { effect: '2024-02-28T00:00:00+08:00' }], // day 2: 29 Feb counted
  ['0:00-23:59 */2 * * *', '2023-03-01T12:00:00+08:00', false, { effect: '2023-02-28T00:00:00+08:00' }], // day 1 in a common year
  // DST (America/New_York): local wall-clock times on both sides of the change
  ['9:00-9:59 * * * *', '2024-03-09T14:30:00Z', true, { tz: NY }], // EST: 9:30
  ['9:00-9:59 * * * *', '2024-03-11T13:30:00Z', true, { tz: NY }], // EDT: 9:30
  ['9:00-9:59 * * * *', '2024-03-11T14:30:00Z', false, { tz: NY }], // EDT: 10:30
  ['2:00-2:59 * * * *', '2024-03-10T07:30:00Z', false, { tz: NY }], // 2:30 does not exist that day: it is 3:30 EDT
  ['3:00-3:59 * * * *', '2024-03-10T07:30:00Z', true, { tz: NY }],
  ['1:00-1:59 * * * *', '2024-11-03T05:30:00Z', true, { tz: NY }], // 1:30 EDT
  ['1:00-1:59 * * * *', '2024-11-03T06:30:00Z', true, { tz: NY }], // 1:30 EST, the repeated hour
  ['0:00-23:59 * * 0 *', '2024-11-03T04:30:00Z', true, { tz: NY }], // 00:30 Sunday local, Saturday 23:30 a day earlier
  // effect_time
  ['0:00-23:59 * * * *', '2024-06-03T11:59:59+08:00', false, { effect: '2024-06-03T12:00:00+08:00' }],
  ['0:00-23:59 * * * *', '2024-06-03T12:00:00+08:00', true, { effect: '2024-06-03T12:00:00+08:00' }],
];

describe('rule evaluation table', () => {
  it.each(table)('%s at %s → %s', (rule, at, expected, opts) => {
    expect(matches(rule, at, opts)).toBe(expected);
  });
});

describe('invalid rules are rejected with what and where', () => {
  it.each([
    ['9:300-10:00 * * 6 *', /time range 1 '9:300-10:00': minutes must have two digits/],
    ['10:00-9:00 * * * *', /start is after end/],
    ['24:00-24:30 * * * *', /hour 24 out of range/],
    ['9:00-9:60 * * * *', /minute 60 out of range/],
    ['9-10 * * * *', /expected H:MM-H:MM/],
    ['9:00-10:00 * * 8 *', /column 3 \(day-of-week\) '8': 8 out of range 0-7/],
    ['9:00-10:00 32 * * *', /column 1 \(day-of-month\) '32'/],
    ['9:00-10:00 0 * * *', /out of range 1-31/],
    ['9:00-10:00 * 13 * *', /column 2 \(month\)/],
    ['9:00-10:00 * * * 18', /year must have four digits/],
    ['9:00-10:00 * * *', /5 fields\), got 4/],
    ['9:00-10:00 * * * * *', /got 6/],
    ['', /got 0/],
    ['9:00-10:00 */0 * * *', /step '0' must be a whole number ≥ 1/],
    ['9:00-10:00 5-1 * * *', /runs backwards/],
    ['9:00-10:00 1,,2 * * *', /empty list item/],
    ['9:00-10:00 * * 1/2 *', /a step needs a range/],
    ['9:00-10:00 *,1 * * *', /'\*' cannot be part of a list/],
    ['9:00-10:00 a * * *', /'a' is not a number/],
    ['9:00-10:00 1-2-3 * * *', /malformed range/],
    [`9:00-10:00 ${'1,'.repeat(300)}1 * * *`, /longer than 512/],
  ])('%s', (rule, error) => {
    const r = parseRule(rule);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(error);
  });

  it('rejects non-strings and bad effect times', () => {
    expect(parseRule(42)).toMatchObject({ ok: false, error: 'rule must be a string (got number)' });
    expect(parseRule(null)).toMatchObject({ ok: false });
    expect(parseRule('9:00-10:00 * * * *', 0, -5)).toMatchObject({ ok: false });
    expect(parseRule('9:00-10:00 * * * *', 0, Number.NaN)).toMatchObject({ ok: false });
  });
});

describe('rule parser properties', () => {
  it('never throws on arbitrary text', () => {
    const alphabet = fc.constantFrom(...'0123456789:-,*/ \t9a'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.array(alphabet, { maxLength: 40 }).map((a) => a.join(''))), (s) => {
        const r = parseRule(s);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts every well-formed rule and matches exactly inside its time range', () => {
    const hm = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }));
    fc.assert(
      fc.property(hm, hm, fc.integer({ min: 0, max: 6 }), (a, b, dow) => {
        const [s, e] = a[0] * 60 + a[1] <= b[0] * 60 + b[1] ? [a, b] : [b, a];
        const fmt = ([h, m]: [number, number]): string => `${h}:${String(m).padStart(2, '0')}`;
        const r = parseRule(`${fmt(s)}-${fmt(e)} * * ${dow} *`);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        // 2024-06-02 is a Sunday; check the start minute and the minute after the end in Shanghai.
        const day = Date.parse('2024-06-02T00:00:00+08:00') + dow * 86_400_000;
        expect(ruleMatches(r.rule, day + (s[0] * 60 + s[1]) * 60_000, SH)).toBe(true);
        const after = e[0] * 60 + e[1] + 1;
        if (after < 1440) expect(ruleMatches(r.rule, day + after * 60_000, SH)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
