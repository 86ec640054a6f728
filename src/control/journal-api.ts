/**
 * Journal queries for the GatewayApi: decisions and door events by time range (read in the door's
 * zone), person, door, decision, reason, method and time of day, one page at a time with a cursor,
 * so an export of a year streams through a bounded buffer.
 */
import { localTime, parseLocalInstant } from '../domain/localtime.js';
import type { Config } from '../config/schema.js';
import type { DoorEventRecord, JournalEntry, Store } from '../store/store.js';
import { UsageError } from './errors.js';

export interface JournalQuery {
  /** decisions (default) or door_events (contact changes, alarms, mode changes, operator actions). */
  kind?: 'decisions' | 'door_events';
  /** Unix ms, ISO-8601 with an offset, or a local `YYYY-MM-DD[ HH:MM[:SS]]` read in `zone`. */
  from?: string | number;
  to?: string | number;
  /** Zone for local times: default the door's (with `door`), else the gateway's. */
  zone?: string;
  userid?: string;
  door?: string;
  decision?: 'grant' | 'deny';
  reason?: string;
  method?: string;
  /** Door events: their type (e.g. forced_open, operator_action). */
  type?: string;
  /** `HH:MM-HH:MM` in each entry's door zone; wraps past midnight when the end is earlier. */
  time_of_day?: string;
  /** Cursor from the previous page's `next`. */
  after?: string;
  limit?: number;
  /** asc: oldest first (exports); desc (default): newest first. */
  order?: 'asc' | 'desc';
}

export type JournalRow = (JournalEntry & { kind: 'decision' }) | (DoorEventRecord & { seq: number; kind: 'door_event' });

export interface JournalPage {
  entries: JournalRow[];
  /** Pass as `after` for the next page; null when the range is done. */
  next: string | null;
  from: number;
  to: number;
  zone: string;
}

const METHODS = ['qr', 'card', 'userid', 'face', 'fingerprint', 'scan', 'remote', 'exit', 'operator'];

function parseTimeOfDay(v: string): [number, number] {
  const m = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(v.trim());
  if (!m || Number(m[1]) > 24 || Number(m[3]) > 24 || Number(m[2]) > 59 || Number(m[4]) > 59) throw new UsageError(`time_of_day '${v}' must be HH:MM-HH:MM (e.g. 22:00-06:00)`);
  return [Number(m[1]) * 60 + Number(m[2]), Number(m[3]) * 60 + Number(m[4])];
}

export function journalQuery(store: Store, config: Config) {
  const zoneOf = (door: string): string => config.doors.find((d) => d.id === door)?.timezone ?? config.timezone;
  return async (q: JournalQuery): Promise<JournalPage> => {
    const kind = q.kind ?? 'decisions';
    if (kind !== 'decisions' && kind !== 'door_events') throw new UsageError("kind must be decisions or door_events");
    if (q.door !== undefined && !config.doors.some((d) => d.id === q.door)) throw new UsageError(`no door '${q.door}' (doors: ${config.doors.map((d) => d.id).join(', ')})`);
    const zone = q.zone ?? (q.door !== undefined ? zoneOf(q.door) : config.timezone);
    try {
      localTime(0, zone);
    } catch {
      throw new UsageError(`zone '${zone}' is not a known IANA time zone`);
    }
    const instant = (name: string, v: string | number | undefined, dflt: number): number => {
      if (v === undefined) return dflt;
      const t = typeof v === 'number' ? v : parseLocalInstant(v, zone);
      if (t === null || !Number.isFinite(t) || t < 0) throw new UsageError(`${name} '${v}': give YYYY-MM-DD, YYYY-MM-DD HH:MM, ISO-8601 with an offset, or unix ms`);
      return t;
    };
    const from = instant('from', q.from, 0);
    const to = instant('to', q.to, Date.now() + 86_400_000);
    if (!(from < to)) throw new UsageError('from must be before to');
    const limit = q.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 5000) throw new UsageError('limit must be 1 to 5000');
    if (q.decision !== undefined && q.decision !== 'grant' && q.decision !== 'deny') throw new UsageError('decision must be grant or deny');
    if (q.method !== undefined && !METHODS.includes(q.method)) throw new UsageError(`method must be one of ${METHODS.join(', ')}`);
    if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc') throw new UsageError('order must be asc or desc');
    // No time range given: pages follow the sequence (newest = last written, whatever the wall
    // clock said when it was written) and the cursor is a sequence number.
    const bySeq = q.from === undefined && q.to === undefined;
    if (q.after !== undefined && (typeof q.after !== 'string' || !(bySeq ? /^\d{12}$/ : /^\d{13}!\d{12}$/).test(q.after))) throw new UsageError('after must be a cursor from a previous page');
    const tod = q.time_of_day !== undefined ? parseTimeOfDay(q.time_of_day) : null;
    const inWindow = (at: number, door: string): boolean => {
      if (!tod) return true;
      const m = localTime(at, zoneOf(door)).minuteOfDay;
      return tod[0] <= tod[1] ? m >= tod[0] && m < tod[1] : m >= tod[0] || m < tod[1];
    };
    const page = { fromMs: from, toMs: to, limit, reverse: q.order !== 'asc', bySeq, ...(q.after !== undefined ? { after: q.after } : {}) };
    if (kind === 'door_events') {
      const r = await store.journalPage<DoorEventRecord & { seq: number }>('doorevents', page, (e) => (q.door === undefined || e.door === q.door) && (q.type === undefined || e.type === q.type) && inWindow(e.at, e.door));
      return { entries: r.entries.map((e) => ({ ...e, kind: 'door_event' as const })), next: r.next, from, to, zone };
    }
    const r = await store.journalPage<JournalEntry>('journal', page, (e) =>
      (q.userid === undefined || e.userid === q.userid) &&
      (q.door === undefined || e.door === q.door) &&
      (q.decision === undefined || e.decision === q.decision) &&
      (q.reason === undefined || e.reason === q.reason) &&
      (q.method === undefined || e.method === q.method) &&
      inWindow(e.at, e.door),
    );
    return { entries: r.entries.map((e) => ({ ...e, kind: 'decision' as const })), next: r.next, from, to, zone };
  };
}
