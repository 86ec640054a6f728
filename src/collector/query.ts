/**
 * Site journal queries: the door journal's filters (time read in the site's zone, person, door,
 * decision, reason, method, time of day) across every door, checked into a database filter.
 */
import { UsageError } from '../control/errors.js';
import { isValidTimeZone, parseLocalInstant } from '../domain/localtime.js';
import type { SiteJournalFilter } from '../store/site-journal-db.js';

export interface SiteJournalQuery {
  from?: string | number;
  to?: string | number;
  zone?: string;
  gateway?: string;
  door?: string;
  userid?: string;
  /** decisions (default), door_events, or all. */
  kind?: 'decisions' | 'door_events' | 'all';
  decision?: string;
  reason?: string;
  method?: string;
  type?: string;
  /** `HH:MM-HH:MM` in the zone; wraps past midnight when the end is earlier. */
  time_of_day?: string;
}

const METHODS = ['qr', 'card', 'userid', 'face', 'fingerprint', 'scan', 'remote', 'exit', 'operator'];

export function siteJournalFilter(q: SiteJournalQuery, siteZone: string, nowMs = Date.now()): SiteJournalFilter {
  const zone = q.zone ?? siteZone;
  if (!isValidTimeZone(zone)) throw new UsageError(`zone '${zone}' is not a known IANA time zone`);
  const instant = (name: string, v: string | number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    const t = typeof v === 'number' ? v : /^\d{10,}$/.test(v) ? Number(v) : parseLocalInstant(v, zone);
    if (t === null || !Number.isFinite(t) || t < 0) throw new UsageError(`${name} '${v}': give YYYY-MM-DD, YYYY-MM-DD HH:MM, ISO-8601 with an offset, or unix ms`);
    return t;
  };
  const fromMs = instant('from', q.from, 0);
  const toMs = instant('to', q.to, nowMs + 86_400_000);
  if (!(fromMs < toMs)) throw new UsageError('from must be before to');
  if (q.decision !== undefined && q.decision !== 'grant' && q.decision !== 'deny') throw new UsageError('decision must be grant or deny');
  if (q.method !== undefined && !METHODS.includes(q.method)) throw new UsageError(`method must be one of ${METHODS.join(', ')}`);
  const kind = q.kind ?? 'decisions';
  if (!['decisions', 'door_events', 'all'].includes(kind)) throw new UsageError('kind must be decisions, door_events or all');
  const f: SiteJournalFilter = { fromMs, toMs, zone };
  if (kind !== 'all') f.kind = kind === 'decisions' ? 'decision' : 'event';
  for (const k of ['gateway', 'door', 'userid', 'decision', 'reason', 'method', 'type'] as const) if (q[k] !== undefined) f[k] = q[k];
  if (q.time_of_day !== undefined) {
    const m = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(q.time_of_day.trim());
    if (!m || Number(m[1]) > 24 || Number(m[3]) > 24 || Number(m[2]) > 59 || Number(m[4]) > 59) throw new UsageError(`time_of_day '${q.time_of_day}' must be HH:MM-HH:MM (e.g. 22:00-06:00)`);
    f.timeOfDay = [Number(m[1]) * 60 + Number(m[2]), Number(m[3]) * 60 + Number(m[4])];
  }
  return f;
}
