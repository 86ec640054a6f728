/**
 * WeCom pass rules (protocols.md §3): `TIME DATE`, e.g. `9:00-10:00,15:30-17:45 * * 1-5 *`.
 *
 * Rules are compiled once (at sync/import) into a small JSON-serialisable form and evaluated per
 * decision without allocation beyond the memoised local time.
 */
import { localTime } from './localtime.js';

/** Bitmask over a column's values (bit v set = value v matches); null = any. */
type Mask = number | null;

export type DomField = null | { mask: number } | { every_days: number };
export type YearField = null | { ranges: [number, number, number][] } | { every_years: number };

export interface CompiledRule {
  id: number | string;
  source: string;
  /** Unix seconds from which the rule is in force. */
  effect_time: number;
  /** Closed minute-of-day ranges. */
  times: [number, number][];
  dom: DomField;
  month: Mask;
  dow: Mask;
  year: YearField;
}

export type ParseResult = { ok: true; rule: CompiledRule } | { ok: false; error: string };

const MAX_RULE_LENGTH = 512;
const COLUMNS = [
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day-of-week', min: 0, max: 7 },
  { name: 'year', min: 1000, max: 9999 },
] as const;

class RuleError extends Error {}

function parseTime(token: string): [number, number][] {
  const out: [number, number][] = [];
  const ranges = token.split(',');
  ranges.forEach((range, i) => {
    const where = `time range ${i + 1} '${range}'`;
    const m = /^(\d{1,2}):(\d+)-(\d{1,2}):(\d+)$/.exec(range);
    if (!m) throw new RuleError(`${where}: expected H:MM-H:MM`);
    const [h1, m1, h2, m2] = [m[1]!, m[2]!, m[3]!, m[4]!];
    for (const mm of [m1, m2]) {
      if (mm.length !== 2) throw new RuleError(`${where}: minutes must have two digits (got '${mm}')`);
    }
    const a = toMinute(Number(h1), Number(m1), where);
    const b = toMinute(Number(h2), Number(m2), where);
    if (a > b) throw new RuleError(`${where}: start is after end (times never wrap past midnight; split a night shift in two ranges)`);
    out.push([a, b]);
  });
  return out;
}

function toMinute(h: number, m: number, where: string): number {
  if (h > 23) throw new RuleError(`${where}: hour ${h} out of range 0-23`);
  if (m > 59) throw new RuleError(`${where}: minute ${m} out of range 00-59`);
  return h * 60 + m;
}

interface ColumnSpec {
  name: string;
  min: number;
  max: number;
}

type Column = { kind: 'any' } | { kind: 'every'; step: number } | { kind: 'set'; ranges: [number, number, number][] };

function parseNumber(s: string, col: ColumnSpec, where: string): number {
  if (!/^\d+$/.test(s)) throw new RuleError(`${where}: '${s}' is not a number`);
  if (col.name === 'year' && s.length !== 4) throw new RuleError(`${where}: year must have four digits (got '${s}')`);
  const n = Number(s);
  if (n < col.min || n > col.max) throw new RuleError(`${where}: ${n} out of range ${col.min}-${col.max}`);
  return n;
}

function parseStep(s: string, where: string): number {
  if (!/^\d+$/.test(s) || Number(s) < 1) throw new RuleError(`${where}: step '${s}' must be a whole number ≥ 1`);
  return Number(s);
}

function parseColumn(token: string, col: ColumnSpec, index: number): Column {
  const where = `column ${index} (${col.name}) '${token}'`;
  if (token === '*') return { kind: 'any' };
  if (token.startsWith('*/')) return { kind: 'every', step: parseStep(token.slice(2), where) };
  const ranges: [number, number, number][] = [];
  for (const item of token.split(',')) {
    if (item === '') throw new RuleError(`${where}: empty list item`);
    if (item.includes('*')) throw new RuleError(`${where}: '*' cannot be part of a list`);
    const [range, step, extra] = item.split('/');
    if (extra !== undefined) throw new RuleError(`${where}: more than one '/' in '${item}'`);
    const bounds = range!.split('-');
    if (bounds.length > 2) throw new RuleError(`${where}: malformed range '${item}'`);
    const a = parseNumber(bounds[0]!, col, where);
    const b = bounds.length === 2 ? parseNumber(bounds[1]!, col, where) : a;
    if (a > b) throw new RuleError(`${where}: range ${a}-${b} runs backwards`);
    if (step !== undefined && bounds.length !== 2) throw new RuleError(`${where}: a step needs a range ('a-b/n' or '*/n')`);
    ranges.push([a, b, step === undefined ? 1 : parseStep(step, where)]);
  }
  return { kind: 'set', ranges };
}

function toMask(c: Column, min: number, max: number, fold7to0 = false): Mask {
  if (c.kind === 'any') return null;
  const ranges: [number, number, number][] = c.kind === 'every' ? [[min, max, c.step]] : c.ranges;
  let mask = 0;
  for (const [a, b, step] of ranges) {
    for (let v = a; v <= b; v += step) mask |= 1 << (fold7to0 && v === 7 ? 0 : v);
  }
  return mask >>> 0;
}

/** Parse and compile one rule. Never throws; errors say what is wrong and where. */
export function parseRule(source: unknown, id: number | string = 0, effectTime = 0): ParseResult {
  try {
    if (typeof source !== 'string') throw new RuleError(`rule must be a string (got ${source === null ? 'null' : typeof source})`);
    if (source.length > MAX_RULE_LENGTH) throw new RuleError(`rule longer than ${MAX_RULE_LENGTH} characters`);
    if (!Number.isSafeInteger(effectTime) || effectTime < 0) throw new RuleError(`effect_time must be unix seconds (got ${String(effectTime)})`);
    const tokens = source.trim().split(/\s+/);
    if (tokens.length !== 5 || tokens[0] === '') {
      throw new RuleError(`expected 'TIME DAY MONTH WEEKDAY YEAR' (5 fields), got ${tokens[0] === '' ? 0 : tokens.length}`);
    }
    const times = parseTime(tokens[0]!);
    const cols = COLUMNS.map((c, i) => parseColumn(tokens[i + 1]!, c, i + 1));
    const [dom, month, dow, year] = cols as [Column, Column, Column, Column];
    return {
      ok: true,
      rule: {
        id,
        source,
        effect_time: effectTime,
        times,
        dom: dom.kind === 'any' ? null : dom.kind === 'every' ? { every_days: dom.step } : { mask: toMask(dom, 1, 31)! },
        month: toMask(month, 1, 12),
        dow: toMask(dow, 0, 6, true),
        year: year.kind === 'any' ? null : year.kind === 'every' ? { every_years: year.step } : { ranges: year.ranges },
      },
    };
  } catch (e) {
    if (e instanceof RuleError) {
      return { ok: false, error: typeof source === 'string' ? `rule '${source.slice(0, 80)}': ${e.message}` : e.message };
    }
    throw e;
  }
}

const bit = (mask: number, v: number): boolean => ((mask >>> v) & 1) === 1;

/** Does `rule` admit the instant `nowMs` in time zone `zone`? */
export function ruleMatches(rule: CompiledRule, nowMs: number, zone: string): boolean {
  if (nowMs < rule.effect_time * 1000) return false;
  const t = localTime(nowMs, zone);
  let inTime = false;
  for (const [a, b] of rule.times) {
    if (t.minuteOfDay >= a && t.minuteOfDay <= b) {
      inTime = true;
      break;
    }
  }
  if (!inTime) return false;
  if (rule.month !== null && !bit(rule.month, t.month)) return false;
  if (rule.dow !== null && !bit(rule.dow, t.dow)) return false;
  if (rule.dom !== null) {
    if ('mask' in rule.dom) {
      if (!bit(rule.dom.mask, t.day)) return false;
    } else {
      // Anchored at the local date of effect_time (protocols.md §3): multiples of 7 select whole weeks.
      const n = rule.dom.every_days;
      const days = t.dayNumber - localTime(rule.effect_time * 1000, zone).dayNumber;
      const hit = n % 7 === 0 ? Math.floor(days / 7) % (n / 7) === 0 : days % n === 0;
      if (!hit) return false;
    }
  }
  if (rule.year !== null) {
    if ('ranges' in rule.year) {
      let ok = false;
      for (const [a, b, step] of rule.year.ranges) {
        if (t.year >= a && t.year <= b && (t.year - a) % step === 0) {
          ok = true;
          break;
        }
      }
      if (!ok) return false;
    } else {
      const effectYear = localTime(rule.effect_time * 1000, zone).year;
      if ((t.year - effectYear) % rule.year.every_years !== 0) return false;
    }
  }
  return true;
}
