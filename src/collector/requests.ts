/**
 * Requests to the collector over the site broker (issue 24): `<base>/collector/request/<name>`,
 * answered on the response topic the request names (MQTT 5 Response Topic, or `response_topic` in
 * the payload), which must lie under `<base>/collector/response/` — the site ACL lets each account
 * read only `…/response/<its account>/#`, so a reply reaches only whoever asked. Who may ask is the
 * broker's to say (the site ACL); the answers only read. A retained request is ignored.
 *
 *   journal   the site journal: the CLI's filters, newest first, `limit` ≤ 500, `after` (cursor)
 *   muster    who is inside each site area (or `area`), the site muster, safe marks
 *   status    each door's head, how far the journal holds it, what is missing
 */
import { UsageError } from '../control/errors.js';
import { localStamp } from '../domain/localtime.js';
import type { MqttMessage } from '../io/mqtt/client.js';
import type { Logger } from '../log.js';
import type { SiteJournalDb } from '../store/site-journal-db.js';
import type { Collector } from './collector.js';
import { siteJournalFilter, type SiteJournalQuery } from './query.js';

const MAX_REQUEST_BYTES = 16 * 1024;
/** An answer stays well under any broker's packet limit (500 rows of ~400 B). */
const MAX_ROWS = 500;

export class CollectorRequests {
  constructor(private readonly o: { base: string; timezone: string; db: SiteJournalDb; collector: Collector; log: Logger; reply: (topic: string, payload: string, correlationData?: Buffer) => boolean }) {}

  get filter(): string {
    return `${this.o.base}/collector/request/+`;
  }

  async onMessage(m: MqttMessage): Promise<void> {
    if (m.retain) return void this.o.log.warn({ topic: m.topic }, 'retained request ignored');
    const name = m.topic.slice(this.filter.length - 1);
    let p: Record<string, unknown> = {};
    try {
      const v: unknown = m.payload.length > MAX_REQUEST_BYTES ? null : m.payload ? JSON.parse(m.payload) : {};
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) p = v as Record<string, unknown>;
    } catch {
      /* answered below as invalid */
    }
    const to = m.responseTopic ?? (typeof p.response_topic === 'string' ? p.response_topic : undefined);
    const prefix = `${this.o.base}/collector/response/`;
    if (!to || !to.startsWith(prefix) || /[+#]/.test(to)) return void this.o.log.warn({ topic: m.topic, response_topic: to }, `request without a response topic under ${prefix}<account>/ ignored`);
    const answer = (body: Record<string, unknown>) => this.o.reply(to, JSON.stringify({ ...(p.transaction !== undefined ? { transaction: p.transaction } : {}), ...body }), m.correlationData);
    try {
      answer({ status: 'ok', data: await this.run(name, p) });
    } catch (e) {
      const code = e instanceof UsageError ? e.code : 'internal';
      if (!(e instanceof UsageError)) this.o.log.error({ err: e, request: name }, 'collector request failed');
      answer({ status: 'error', code, error: e instanceof UsageError ? e.message : 'internal error' });
    }
  }

  private async run(name: string, p: Record<string, unknown>): Promise<unknown> {
    const tz = this.o.timezone;
    if (name === 'journal') {
      const q: SiteJournalQuery = {};
      for (const k of ['from', 'to', 'zone', 'gateway', 'door', 'userid', 'decision', 'reason', 'method', 'type', 'time_of_day'] as const) {
        const v = p[k];
        if (v === undefined) continue;
        if (typeof v !== 'string' && !(typeof v === 'number' && (k === 'from' || k === 'to'))) throw new UsageError(`${k} must be a string`);
        (q as Record<string, unknown>)[k] = v;
      }
      if (p.kind !== undefined) q.kind = p.kind as NonNullable<SiteJournalQuery['kind']>;
      const limit = p.limit === undefined ? 50 : Number(p.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ROWS) throw new UsageError(`limit must be 1 to ${MAX_ROWS}`);
      const after = p.after === undefined ? null : (p.after as [number, string, number]);
      if (after !== null && !(Array.isArray(after) && after.length === 3 && Number.isSafeInteger(after[0]) && typeof after[1] === 'string' && Number.isSafeInteger(after[2]))) throw new UsageError('after: the `next` of the previous answer');
      const f = siteJournalFilter(q, tz);
      const rows = await this.o.db.page(f, limit, after, 'desc');
      const last = rows[rows.length - 1];
      return { entries: rows.map((r) => ({ ...r, time_local: localStamp(r.at, f.zone) })), next: rows.length === limit && last ? [last.at, last.gateway, last.seq] : null };
    }
    if (name === 'muster') {
      if (p.area !== undefined && typeof p.area !== 'string') throw new UsageError('area must be a string');
      const m = this.o.collector.muster;
      const rows = await this.o.db.inside(p.area, m?.at ?? Number.MAX_SAFE_INTEGER);
      return { muster: m, inside: rows.slice(0, 5000).map((r) => ({ area: r.area, userid: r.userid, since: r.at, since_local: localStamp(r.at, tz), gateway: r.gateway, door: r.door, safe: r.safe_by ? { by: r.safe_by, at: r.safe_at } : null })) };
    }
    if (name === 'status') return this.o.collector.status();
    throw new UsageError(`no request '${name}' (journal, muster, status)`, 'not_found');
  }
}
