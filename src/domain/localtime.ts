/**
 * Wall-clock fields of an instant in an IANA time zone, daylight-saving correct.
 *
 * Intl formatting costs microseconds, so results are memoised per (zone, minute): every zone in use
 * today has whole-minute offsets, so all instants of one UTC minute share their local fields.
 */

export interface LocalTime {
  year: number;
  month: number; // 1-12
  day: number; // 1-31
  dow: number; // 0 = Sunday
  minuteOfDay: number; // 0-1439
  /** Days since 1970-01-01 in the local calendar: differences count calendar days. */
  dayNumber: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const memo = new Map<string, LocalTime>();
const MEMO_LIMIT = 4096;

export function isValidTimeZone(zone: string): boolean {
  try {
    formatterFor(zone);
    return true;
  } catch {
    return false;
  }
}

function formatterFor(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** Local fields of `unixMs` in `zone`. Throws RangeError for an unknown zone. */
export function localTime(unixMs: number, zone: string): LocalTime {
  const minute = Math.floor(unixMs / 60_000);
  const key = `${zone}|${minute}`;
  const hit = memo.get(key);
  if (hit) return hit;
  const parts = formatterFor(zone).formatToParts(new Date(minute * 60_000));
  let year = 0, month = 0, day = 0, hour = 0, min = 0;
  for (const p of parts) {
    switch (p.type) {
      case 'year': year = Number(p.value); break;
      case 'month': month = Number(p.value); break;
      case 'day': day = Number(p.value); break;
      case 'hour': hour = Number(p.value); break;
      case 'minute': min = Number(p.value); break;
      default: break;
    }
  }
  const dayNumber = Math.floor(Date.UTC(year, month - 1, day) / 86_400_000);
  const lt: LocalTime = { year, month, day, dow: (((dayNumber + 4) % 7) + 7) % 7, minuteOfDay: hour * 60 + min, dayNumber };
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(key, lt);
  return lt;
}

/**
 * Unix ms of the wall-clock time y-m-d h:mi:s in `zone`. In a DST gap (a time that never happened)
 * the result is the instant that many minutes after the gap began; in an overlap, the first one.
 */
export function zonedInstant(y: number, m: number, d: number, h: number, mi: number, s: number, zone: string): number {
  const wall = Date.UTC(y, m - 1, d, h, mi, s);
  const wallMinute = Math.floor(wall / 60_000) * 60_000;
  const offsetAt = (t: number): number => {
    const lt = localTime(t, zone);
    return Date.UTC(lt.year, lt.month - 1, lt.day) + lt.minuteOfDay * 60_000 - Math.floor(t / 60_000) * 60_000;
  };
  // Try the offsets in force a day either side: the earliest candidate that reads back as `wall` wins.
  const offsets = [...new Set([offsetAt(wallMinute - 86_400_000), offsetAt(wallMinute), offsetAt(wallMinute + 86_400_000)])];
  const candidates = offsets.map((o) => wall - o).sort((a, b) => a - b);
  for (const c of candidates) if (offsetAt(c) === wall - c) return c;
  // In a gap no candidate reads back: take the one computed with the offset before the change.
  return wall - offsets[0]!;
}

/**
 * A time an operator types, read in `zone`: `YYYY-MM-DD` (local midnight), `YYYY-MM-DD HH:MM[:SS]`
 * (or with `T`), ISO-8601 with an offset or `Z` (absolute), or unix milliseconds. Null if unreadable.
 */
export function parseLocalInstant(text: string, zone: string): number | null {
  const v = text.trim();
  if (/^\d{10,14}$/.test(v)) return Number(v);
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$/.exec(v);
  if (m) {
    const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
    if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate() || h > 23 || mi > 59 || s > 59) return null;
    return zonedInstant(y, mo, d, h, mi, s, zone);
  }
  if (/(Z|[+-]\d{2}:?\d{2})$/i.test(v)) {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

const stampFormatters = new Map<string, Intl.DateTimeFormat>();

/**
 * `2026-11-22 22:05:01 +08:00`: local time in `zone` with its offset, for tables an operator reads
 * (inputs are local dates, so outputs are too).
 */
export function localStamp(ms: number, zone: string): string {
  let f = stampFormatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset' });
    stampFormatters.set(zone, f);
  }
  const p = Object.fromEntries(f.formatToParts(ms).map((x) => [x.type, x.value]));
  const offset = (p.timeZoneName ?? 'GMT').replace('GMT', '') || '+00:00';
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${offset}`;
}

