/**
 * Reconciliation of this door's journaled passes with the WeCom pass-record API
 * (get_accesscontrol_data, protocols.md §4): which passes the cloud has, which it lacks, and which
 * exist only in the cloud. Windows are split into spans within one calendar month (in the corp's
 * time zone): the API refuses spans over a month and repeats records across month boundaries.
 */
import { localTime, zonedInstant } from '../../domain/localtime.js';
import type { JournalEntry } from '../../store/store.js';
import { passMethodOf, PASS_TYPE } from '../wecom/uploader.js';
import type { WecomAppClient } from './client.js';
import { WecomAppError } from './client.js';

export interface CloudPass {
  open_userid: string;
  user_type: number;
  timestamp: number;
  pass_type: number;
  pass_method: number;
  device_sn: string;
}

export interface LocalPass {
  seq: number;
  userid: string;
  user_type: number;
  timestamp: number;
  pass_type: number;
  pass_method: number;
  door: string;
  entry: JournalEntry;
}

export interface ReconcileReport {
  device_sn: string;
  since: number;
  until: number;
  spans: [number, number][];
  local: number;
  cloud: number;
  matched: { local: Omit<LocalPass, 'entry'>; cloud: CloudPass }[];
  missing_in_cloud: Omit<LocalPass, 'entry'>[];
  cloud_only: CloudPass[];
  requeued: number;
}

/** Unix seconds of local midnight starting `y-m-d` in `zone` (DST-safe). */
export function zonedMidnight(y: number, m: number, d: number, zone: string): number {
  return Math.floor(zonedInstant(y, m, d, 0, 0, 0, zone) / 1000);
}

/** Split [since, until) (unix s) into spans that never cross a month boundary in `zone`. */
export function monthSpans(since: number, until: number, zone: string): [number, number][] {
  const spans: [number, number][] = [];
  let start = since;
  while (start < until) {
    const lt = localTime(start * 1000, zone);
    const nextMonth = lt.month === 12 ? zonedMidnight(lt.year + 1, 1, 1, zone) : zonedMidnight(lt.year, lt.month + 1, 1, zone);
    const end = Math.min(until, nextMonth);
    spans.push([start, end]);
    start = end;
  }
  return spans;
}

const MAX_PAGES = 10_000;

/** All records of `sn` in [since, until), de-duplicated. */
export async function fetchCloudPasses(
  client: WecomAppClient,
  o: { sn: string; userTypes: readonly number[]; since: number; until: number; zone: string; agentid?: number | undefined; maxPages?: number },
): Promise<{ passes: CloudPass[]; spans: [number, number][] }> {
  const spans = monthSpans(o.since, o.until, o.zone);
  const seen = new Map<string, CloudPass>();
  for (const [begin, end] of spans) {
    for (const userType of o.userTypes) {
      let cursor = '';
      for (let page = 0; ; page++) {
        const maxPages = o.maxPages ?? MAX_PAGES;
        if (page >= maxPages) throw new WecomAppError(`get_accesscontrol_data: paging did not end after ${maxPages} pages`, null);
        const body: Record<string, unknown> = {
          user_type: userType,
          begin_time: begin,
          end_time: end - 1, // spans are half-open; the API's end is inclusive
          data_filter_type: 1,
          device_sn_list: [o.sn],
          cursor,
          limit: 500,
        };
        if (o.agentid !== undefined) body.agentid = o.agentid;
        const r = await client.post('/cgi-bin/devicedata/get_accesscontrol_data', body);
        const items = (r.accesscontrol_data as { items?: unknown } | undefined)?.items ?? [];
        if (!Array.isArray(items)) throw new WecomAppError('get_accesscontrol_data: items is not a list', null);
        for (const raw of items as Partial<CloudPass>[]) {
          if (typeof raw?.timestamp !== 'number' || typeof raw.pass_type !== 'number' || typeof raw.pass_method !== 'number') continue;
          const p: CloudPass = {
            open_userid: String(raw.open_userid ?? ''),
            user_type: typeof raw.user_type === 'number' ? raw.user_type : userType,
            timestamp: raw.timestamp,
            pass_type: raw.pass_type,
            pass_method: raw.pass_method,
            device_sn: String(raw.device_sn ?? o.sn),
          };
          seen.set(`${p.open_userid}|${p.timestamp}|${p.pass_type}|${p.pass_method}`, p);
        }
        // An empty page with a cursor is possible: keep paging until the cursor is empty.
        const next = typeof r.next_cursor === 'string' ? r.next_cursor : '';
        if (next === '' || next === cursor) break;
        cursor = next;
      }
    }
  }
  return { passes: [...seen.values()].sort((a, b) => a.timestamp - b.timestamp), spans };
}

/** Granted journal passes WeCom would have a record of (those the uploader sends). */
export function localPasses(entries: readonly JournalEntry[], qrPassMethod: number): LocalPass[] {
  const out: LocalPass[] = [];
  for (const e of entries) {
    if (e.decision !== 'grant' || e.userid === null) continue;
    const method = passMethodOf(e.method, qrPassMethod);
    if (method === null) continue;
    const direction = (e.direction ?? 'unknown') as keyof typeof PASS_TYPE;
    out.push({ seq: e.seq, userid: e.userid, user_type: e.user_type ?? 0, timestamp: Math.floor(e.at / 1000), pass_type: PASS_TYPE[direction] ?? 3, pass_method: method, door: e.door, entry: e });
  }
  return out;
}

/** Match on (timestamp, pass_type, pass_method): the cloud may report open_userids, not userids. */
export function matchPasses(local: LocalPass[], cloud: CloudPass[]): Pick<ReconcileReport, 'matched' | 'missing_in_cloud' | 'cloud_only'> {
  const key = (p: { timestamp: number; pass_type: number; pass_method: number }): string => `${p.timestamp}|${p.pass_type}|${p.pass_method}`;
  const pool = new Map<string, CloudPass[]>();
  for (const c of cloud) pool.set(key(c), [...(pool.get(key(c)) ?? []), c]);
  const matched: ReconcileReport['matched'] = [];
  const missing: ReconcileReport['missing_in_cloud'] = [];
  for (const l of local) {
    const { entry: _e, ...plain } = l;
    const bucket = pool.get(key(l));
    // Prefer the cloud record with the same userid when several share the key.
    const i = bucket ? Math.max(0, bucket.findIndex((c) => c.open_userid === l.userid)) : -1;
    if (bucket && bucket.length > 0) matched.push({ local: plain, cloud: bucket.splice(i, 1)[0]! });
    else missing.push(plain);
  }
  return { matched, missing_in_cloud: missing, cloud_only: [...pool.values()].flat().sort((a, b) => a.timestamp - b.timestamp) };
}
