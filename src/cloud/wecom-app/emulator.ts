/**
 * Emulator of the WeCom server API for door pass records: gettoken with expiring tokens (errcodes
 * 40014/42001), get_accesscontrol_data with span validation, cursor paging including empty pages
 * with a cursor, and the duplicates the vendor warns of for windows crossing a month boundary.
 */
import { randomBytes } from 'node:crypto';
import { JsonHttpServer, type JsonReply, type JsonRequest } from '../http-emulator.js';
import type { CloudPass } from './reconcile.js';

export class WecomAppEmulator {
  corpid = 'wwEMULATOR';
  corpsecret = 'emulator-corpsecret';
  tokenTtlS = 7200;
  pageLimit = 500;
  /** Answer the first page of every query empty, with a cursor (the API may do so). */
  emptyFirstPage = false;
  records: CloudPass[] = [];
  readonly queries: Record<string, unknown>[] = [];
  fault: (req: JsonRequest, n: number) => JsonReply | undefined = () => undefined;
  private readonly tokens = new Map<string, number>();
  private count = 0;
  private readonly http = new JsonHttpServer((r) => this.handle(r));

  start(port = 0): Promise<string> {
    return this.http.start(port);
  }
  stop(): Promise<void> {
    return this.http.stop();
  }
  expireTokens(): void {
    for (const k of this.tokens.keys()) this.tokens.set(k, 0);
  }
  get tokenRequests(): number {
    return this.tokensIssued;
  }
  private tokensIssued = 0;

  private handle(req: JsonRequest): JsonReply {
    const fault = this.fault(req, ++this.count);
    if (fault) return fault;
    const err = (errcode: number, errmsg: string): JsonReply => ({ body: { errcode, errmsg } });
    if (req.path === '/cgi-bin/gettoken') {
      if (req.query.get('corpid') !== this.corpid || req.query.get('corpsecret') !== this.corpsecret) return err(40001, 'invalid credential');
      const token = randomBytes(16).toString('hex');
      this.tokens.set(token, Date.now() + this.tokenTtlS * 1000);
      this.tokensIssued++;
      return { body: { errcode: 0, errmsg: 'ok', access_token: token, expires_in: this.tokenTtlS } };
    }
    if (req.path === '/cgi-bin/devicedata/get_accesscontrol_data' && req.method === 'POST') {
      const exp = this.tokens.get(req.query.get('access_token') ?? '');
      if (exp === undefined) return err(40014, 'invalid access_token');
      if (exp < Date.now()) return err(42001, 'access_token expired');
      const b = (req.body ?? {}) as Record<string, unknown>;
      this.queries.push(b);
      const begin = Number(b.begin_time);
      const end = Number(b.end_time);
      if (!Number.isInteger(begin) || !Number.isInteger(end) || end < begin) return err(40058, 'invalid begin_time/end_time');
      if (end - begin > 31 * 86_400) return err(40058, 'time span exceeds one month');
      if (b.data_filter_type !== 1 || !Array.isArray(b.device_sn_list) || b.device_sn_list.length === 0 || b.device_sn_list.length > 100) return err(40058, 'device_sn_list required (1-100)');
      const limit = Math.min(this.pageLimit, Number(b.limit ?? 200));
      const sns = new Set(b.device_sn_list as string[]);
      let items = this.records.filter((r) => sns.has(r.device_sn) && r.user_type === b.user_type && r.timestamp >= begin && r.timestamp <= end);
      // The vendor warns that windows crossing a month boundary return duplicates.
      if (new Date(begin * 1000).getUTCMonth() !== new Date(end * 1000).getUTCMonth()) items = [...items, ...items.slice(0, 2)];
      const cursor = typeof b.cursor === 'string' && b.cursor ? Buffer.from(b.cursor, 'base64').toString() : '';
      if (cursor === '' && this.emptyFirstPage) return { body: { errcode: 0, errmsg: 'ok', accesscontrol_data: { items: [] }, next_cursor: Buffer.from('0').toString('base64') } };
      const offset = cursor === '' ? 0 : Number(cursor);
      const page = items.slice(offset, offset + limit);
      const next = offset + limit < items.length ? Buffer.from(String(offset + limit)).toString('base64') : '';
      return { body: { errcode: 0, errmsg: 'ok', accesscontrol_data: { items: page }, next_cursor: next } };
    }
    return { status: 404, body: { errcode: 404, errmsg: 'no such api' } };
  }
}
