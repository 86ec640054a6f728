/**
 * The muster (issue 24): who is inside an area now, from the presence the area's doors keep (for a
 * site area, every gateway's, replicated: any door of it can say, with the network down), with the
 * last door and time of each, and who has been marked safe since the muster began. Pure.
 */
import { livePresence, type AreaPolicy, type Presence } from './area-passback.js';
import type { Stamp } from './clock.js';

export interface MusterPerson {
  userid: string;
  name: string | null;
  /** When they passed in (wall clock of the door that saw it). */
  since: number;
  door: string | null;
  /** Another gateway's door (site areas); null: this gateway's. */
  gateway: string | null;
  safe: { by: string; at: number } | null;
}

export interface MusterArea {
  area: string;
  site: boolean;
  /** Seconds since a peer of a site area was heard, when too long (the list may be behind): null when current. */
  stale_s: number | null;
  started: { at: number; by: string; cause: string } | null;
  inside: MusterPerson[];
  safe: number;
  unaccounted: number;
}

export interface MusterReport {
  at: number;
  areas: MusterArea[];
}

/** What the API asks of the running gateway's musters. */
export interface MusterActions {
  report(area?: string): MusterReport;
  start(area: string, by: string): MusterArea;
  end(area: string, by: string): boolean;
  markSafe(area: string, userid: string, by: string): { marked: boolean; reason?: string };
}

export function musterList(presence: ReadonlyMap<string, Presence>, policy: AreaPolicy, now: Required<Stamp>, safe: ReadonlyMap<string, { by: string; at: number }>, nameOf: (userid: string) => string | null): MusterPerson[] {
  const out: MusterPerson[] = [];
  for (const [userid, p] of presence) {
    if (livePresence(p, policy, now)?.where !== 'in') continue;
    out.push({ userid, name: nameOf(userid), since: p.at, door: p.door ?? null, gateway: p.gateway ?? null, safe: safe.get(userid) ?? null });
  }
  return out.sort((a, b) => a.since - b.since || (a.userid < b.userid ? -1 : 1));
}
