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
