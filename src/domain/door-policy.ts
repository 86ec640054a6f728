/**
 * Door policies that sit beside a user's own pass rules: holiday closures, who passes a lockdown,
 * who gets a longer unlock. Compiled once from the configuration (groups expanded to userid sets,
 * holiday dates to local day numbers), so a decision only does set lookups. Pure: no I/O, no clock.
 */
import { localTime } from './localtime.js';

/** A holiday entry: `YYYY-MM-DD` or an inclusive range `YYYY-MM-DD..YYYY-MM-DD`, as day numbers. */
export function parseHoliday(text: string): { from: number; to: number } | { error: string } {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:\.\.(\d{4})-(\d{2})-(\d{2}))?$/.exec(text.trim());
  if (!m) return { error: `'${text}': give YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD` };
  const day = (y: string, mo: string, d: string): number | null => {
    const t = Date.UTC(Number(y), Number(mo) - 1, Number(d));
    const back = new Date(t);
    return back.getUTCMonth() === Number(mo) - 1 && back.getUTCDate() === Number(d) ? t / 86_400_000 : null;
  };
  const from = day(m[1]!, m[2]!, m[3]!);
  const to = m[4] ? day(m[4], m[5]!, m[6]!) : from;
  if (from === null || to === null) return { error: `'${text}' is not a date that exists` };
  if (to < from) return { error: `'${text}': the range ends before it starts` };
  if (to - from > 366) return { error: `'${text}': a range longer than a year` };
  return { from, to };
}

export interface DoorPolicy {
  /** Local day numbers (days since 1970-01-01 of the local date) on which holidays fall. */
  holidays: ReadonlySet<number>;
  /** Closed on those days: every credential denied `holiday`, except `holidayExempt`. */
  closedOnHolidays: boolean;
  holidayExempt: ReadonlySet<string>;
  /** Users who still pass while the door is in lockdown (security staff). */
  lockdownOverride: ReadonlySet<string>;
  /** Users who get a longer unlock (accessibility), and how long. */
  extendedUnlock: { users: ReadonlySet<string>; pulseMs: number; groups: ReadonlySet<string> } | null;
  /** The group names behind holidayExempt and lockdownOverride (local users name their groups). */
  holidayExemptGroups: ReadonlySet<string>;
  lockdownOverrideGroups: ReadonlySet<string>;
  /** Card and PIN at this door's readers. */
  cardAndPin: boolean;
}

export const NO_POLICY: DoorPolicy = { holidays: new Set(), closedOnHolidays: false, holidayExempt: new Set(), lockdownOverride: new Set(), extendedUnlock: null, holidayExemptGroups: new Set(), lockdownOverrideGroups: new Set(), cardAndPin: false };

export interface DoorPolicyConfig {
  holidays: readonly string[];
  closed_on_holidays: boolean;
  holiday_exempt_groups: readonly string[];
  lockdown_override_groups: readonly string[];
  extended_unlock?: { groups: readonly string[]; pulse_ms: number } | undefined;
  card_and_pin?: boolean | undefined;
}

/**
 * Compile a door's policy. `groups` are named userid lists, `calendars` named holiday entries (both
 * validated by the configuration schema: names exist, entries parse).
 */
/** The userids the configured `groups` list for these group names. */
export function groupMembers(groups: Readonly<Record<string, readonly string[]>>, names: readonly string[]): Set<string> {
  return new Set(names.flatMap((g) => groups[g] ?? []));
}

export function compileDoorPolicy(p: DoorPolicyConfig, groups: Readonly<Record<string, readonly string[]>>, calendars: Readonly<Record<string, readonly string[]>>): DoorPolicy {
  const members = (names: readonly string[]): Set<string> => groupMembers(groups, names);
  const holidays = new Set<number>();
  for (const name of p.holidays) {
    for (const entry of calendars[name] ?? []) {
      const r = parseHoliday(entry);
      if ('error' in r) throw new RangeError(`holiday calendar '${name}': ${r.error}`);
      for (let d = r.from; d <= r.to; d++) holidays.add(d);
    }
  }
  return {
    holidays,
    closedOnHolidays: p.closed_on_holidays,
    holidayExempt: members(p.holiday_exempt_groups),
    lockdownOverride: members(p.lockdown_override_groups),
    extendedUnlock: p.extended_unlock ? { users: members(p.extended_unlock.groups), pulseMs: p.extended_unlock.pulse_ms, groups: new Set(p.extended_unlock.groups) } : null,
    holidayExemptGroups: new Set(p.holiday_exempt_groups),
    lockdownOverrideGroups: new Set(p.lockdown_override_groups),
    cardAndPin: p.card_and_pin ?? false,
  };
}

/** Is `nowMs` on one of the policy's holidays, in the door's zone? */
export function isHoliday(p: DoorPolicy, nowMs: number, timezone: string): boolean {
  return p.holidays.size > 0 && p.holidays.has(localTime(nowMs, timezone).dayNumber);
}

/** Is the person in a policy list: by userid (configured groups), or by a group their local entry names? */
export function inPolicyList(users: ReadonlySet<string>, groups: ReadonlySet<string>, userid: string, localGroups: readonly string[] | undefined): boolean {
  return users.has(userid) || (localGroups !== undefined && localGroups.length > 0 && localGroups.some((g) => groups.has(g)));
}
