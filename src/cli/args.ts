/** Argument parsing and output formats shared by the CLI's commands. */
import { userInfo } from 'node:os';
import { UsageError } from '../control/errors.js';

/** A whole number argument (counts, limits, seconds), with the option's name in the error. */
export function intArg(name: string, v: string, what = 'a whole number'): number {
  if (!/^\d+$/.test(v.trim())) throw new UsageError(`${name} '${v}' must be ${what}`);
  const n = Number(v.trim());
  if (!Number.isSafeInteger(n)) throw new UsageError(`${name} '${v}' is too large`);
  return n;
}

/** A calendar date that exists (2026-02-30 does not). */
export function validDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  return d <= new Date(Date.UTC(y, m, 0)).getUTCDate();
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * `2026-11-22 22:05:01 +08:00`: local time in `zone` with its offset, for tables an operator reads
 * (inputs are local dates, so outputs are too).
 */
export function localStamp(ms: number, zone: string): string {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset' });
    formatters.set(zone, f);
  }
  const p = Object.fromEntries(f.formatToParts(ms).map((x) => [x.type, x.value]));
  const offset = (p.timeZoneName ?? 'GMT').replace('GMT', '') || '+00:00';
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${offset}`;
}

/** `90`, `90s`, `30m`, `2h`, `1d` → seconds. */
export function durationArg(name: string, v: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(v.trim());
  if (!m) throw new UsageError(`${name} '${v}' must be a duration like 90s, 30m, 2h or 1d`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

/** Who is acting, for the journal: the login behind sudo where there is one. */
export function cliActor(): string {
  let name = process.env.SUDO_USER;
  if (!name) {
    try {
      name = userInfo().username;
    } catch {
      name = `uid ${process.getuid?.() ?? '?'}`;
    }
  }
  return `cli:${name}`;
}
