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

export { localStamp } from '../domain/localtime.js';

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
