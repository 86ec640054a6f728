/**
 * Feishu permission groups (`rule_external`, protocols.md §15) decided at a door, offline: who may
 * pass the door's Feishu device, on which days, weekdays and hours. Pure: the groups are the
 * adapter's (read with a user token and kept on disk), the time is an input.
 *
 * Decisions where Feishu is silent, written down (docs/clouds.md):
 * - `weekdays` are 1 = Monday … 7 = Sunday; empty means every day.
 * - `valid_day` is [start_day, end_day] in unix seconds, both ends inclusive.
 * - `day_times` holds at most one window `{start_hhmm, end_hhmm}` in the door's zone, end exclusive
 *   (2400 = midnight); none means all day. A window that ends before it starts wraps past midnight.
 * - Members: `user_type` 1 an employee by `user_id`, 10 every employee, 11 a visitor by `user_id`
 *   (also in `visitors`). 2 (a department) cannot be resolved at the door (the directory has no
 *   departments): it matches nobody, and the adapter says so once.
 */
import { localTime } from './localtime.js';

export interface FeishuMember {
  user_type: number;
  user_id?: string;
}

export interface FeishuRule {
  id: string;
  name?: string;
  is_temp?: boolean;
  devices?: { id: string; name?: string }[];
  users?: FeishuMember[];
  visitors?: FeishuMember[];
  opening_time?: {
    valid_day?: { start_day: number; end_day: number };
    weekdays?: number[];
    day_times?: { start_hhmm: number; end_hhmm: number }[];
  };
}

export type GroupVerdict = { ok: true; rule: FeishuRule } | { ok: false; reason: 'no_permission_group' | 'outside_permission_group'; detail: string };

const isMember = (r: FeishuRule, userid: string, visitor: boolean): boolean =>
  [...(r.users ?? []), ...(r.visitors ?? [])].some((m) => (m.user_type === 10 && !visitor) || ((m.user_type === 1 || m.user_type === 11) && m.user_id === userid));

/** Whether the group's opening time holds at `nowMs` in `zone`; the reason when not. */
export function openNow(r: FeishuRule, nowMs: number, zone: string): string | null {
  const t = r.opening_time;
  if (!t) return null;
  const s = Math.floor(nowMs / 1000);
  if (t.valid_day && (s < t.valid_day.start_day || s > t.valid_day.end_day)) return 'outside its valid days';
  const lt = localTime(nowMs, zone);
  const weekday = lt.dow === 0 ? 7 : lt.dow; // localTime: 0 = Sunday
  if (t.weekdays?.length && !t.weekdays.includes(weekday)) return 'not on this weekday';
  const w = t.day_times?.[0];
  if (w) {
    const hhmm = Math.floor(lt.minuteOfDay / 60) * 100 + (lt.minuteOfDay % 60);
    const inside = w.start_hhmm <= w.end_hhmm ? hhmm >= w.start_hhmm && hhmm < w.end_hhmm : hhmm >= w.start_hhmm || hhmm < w.end_hhmm;
    if (!inside) return `outside ${String(w.start_hhmm).padStart(4, '0')}–${String(w.end_hhmm).padStart(4, '0')}`;
  }
  return null;
}

/** The groups bound to the door's device: a person in one whose time holds passes; else the named reason. */
export function decideGroups(rules: readonly FeishuRule[], userid: string, visitor: boolean, nowMs: number, zone: string): GroupVerdict {
  const mine = rules.filter((r) => isMember(r, userid, visitor));
  if (!mine.length) return { ok: false, reason: 'no_permission_group', detail: 'in no Feishu permission group of this door' };
  const why: string[] = [];
  for (const r of mine) {
    const no = openNow(r, nowMs, zone);
    if (no === null) return { ok: true, rule: r };
    why.push(`${r.name ?? r.id}: ${no}`);
  }
  return { ok: false, reason: 'outside_permission_group', detail: why.join('; ').slice(0, 200) };
}
