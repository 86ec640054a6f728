/**
 * Area anti-passback: an area is a set of doors; a person's presence is `in` after passing an `in`
 * reader of one of them and `out` after an `out` reader. Passing in while in (the card was passed
 * back over the fence) or out while out is a violation: denied `anti_passback` (hard) or granted and
 * flagged (soft). Presence expires after `timeoutS` and at the daily reset; an operator can forgive a
 * person (presence unknown: the next passage is allowed either way). Pure: the state is the caller's.
 */
import { elapsedMs, type Stamp } from './clock.js';
import { localTime } from './localtime.js';
import { isPersonalGrant, type Decision, type Direction } from './types.js';

export interface AreaPolicy {
  name: string;
  hard: boolean;
  timeoutS: number | null;
  /** Local minute of day at which every presence is forgotten (null: never). */
  resetMinute: number | null;
  timezone: string;
  /** Shared across the site's gateways (domain/site-presence.ts). */
  site?: boolean;
}

/** A presence, stamped on both clocks (`mono`/`boot` absent in records of older versions). */
export interface Presence extends Stamp {
  where: 'in' | 'out';
  /** Where it was passed (the muster's "last door"): absent in records of older versions. */
  door?: string;
  /** Another gateway's (site areas); absent: this one. */
  gateway?: string;
}

export type PresenceMap = Map<string, Presence>;

/**
 * The presence that still counts `now` (expired by timeout or a reset since), or undefined. Its age
 * is measured on the monotonic clock where it can be (see domain/clock.ts): a wall clock stepped
 * back a day must not keep everyone "in" for a day, nor one stepped forward forget them all.
 */
export function livePresence(p: Presence | undefined, a: AreaPolicy, now: Required<Stamp>): Presence | undefined {
  if (!p) return undefined;
  const age = elapsedMs(p, now);
  if (a.timeoutS !== null && age >= a.timeoutS * 1000) return undefined;
  if (a.resetMinute !== null) {
    // When it was, on today's wall clock; then: the last reset at or before now, in the area's zone.
    const at = now.at - age;
    const nowMs = now.at;
    // The last reset at or before now, in the area's zone.
    const lt = localTime(nowMs, a.timezone);
    const sinceReset = lt.minuteOfDay >= a.resetMinute ? (lt.minuteOfDay - a.resetMinute) * 60_000 : (lt.minuteOfDay + 1440 - a.resetMinute) * 60_000;
    const lastReset = Math.floor(nowMs / 60_000) * 60_000 - sinceReset;
    if (at < lastReset) return undefined;
  }
  return p;
}

/**
 * Apply the area's anti-passback to a decision at one of its doors. Returns the decision the door
 * acts on, the presence to record (null: unchanged) and whether it was a (soft) violation.
 */
export function applyAreaPassback(d: Decision, direction: Direction, a: AreaPolicy, presence: PresenceMap, now: Required<Stamp>, staleS: number | null = null): { decision: Decision; record: Presence | null; violation: boolean } {
  if (!isPersonalGrant(d) || direction === 'unknown') return { decision: d, record: null, violation: false };
  const live = livePresence(presence.get(d.userid), a, now);
  const violation = live?.where === direction;
  const record: Presence = { where: direction, ...now };
  // A site area whose peers have not been heard for a while: what this door holds may be old, so it
  // decides soft, and says so on every decision of the area.
  const stale = staleS !== null ? `site presence not current (no peer heard for ${staleS} s)` : null;
  if (violation && a.hard && !stale) {
    return { decision: { ...d, decision: 'deny', reason: 'anti_passback', detail: `already ${direction} area '${a.name}' (anti-passback)` }, record: null, violation: true };
  }
  const detail = [violation ? `anti-passback violation (soft): already ${direction} area '${a.name}'` : null, stale].filter((x) => x !== null).join('; ');
  return { decision: detail ? { ...d, detail } : d, record, violation };
}
