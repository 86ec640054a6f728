/** Argument parsing and output formats shared by the CLI's commands. */
import { userInfo } from 'node:os';
import { UsageError } from '../control/errors.js';
import { localStamp, parseLocalInstant } from '../domain/localtime.js';

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

export { localStamp } from '../domain/localtime.js';

/** A time typed by the operator, read in the gateway's zone. */
export function timeArg(name: string, v: string, zone: string): number {
  const t = parseLocalInstant(v, zone);
  if (t === null) throw new UsageError(`${name} '${v}': give YYYY-MM-DD, YYYY-MM-DD HH:MM (in ${zone}), or ISO-8601 with an offset`);
  return t;
}

/** "Today only": from today's start to the next midnight in `zone` (a DST day is 23 or 25 h). */
export function todayWindow(zone: string, nowMs = Date.now()): [number, number] {
  const from = timeArg('--today', localStamp(nowMs, zone).slice(0, 10), zone);
  const past = from + 86_400_000 + 3_600_000; // past the next midnight, then cut to it
  return [from, timeArg('--today', localStamp(past, zone).slice(0, 10), zone)];
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
