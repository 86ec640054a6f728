/**
 * The site console (issue 24): one page for the whole site, served by the collector — every door
 * (online, mode, alarm, threat level, last event), the site journal with search and CSV export,
 * presence and the muster with "mark safe". The door console's rules: accounts with roles and
 * scrypt hashes (made by the CLI), HttpOnly SameSite=Strict session cookies, a CSRF token and an
 * Origin check on every change, login throttling, idle and absolute expiry, strict headers.
 */
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { CollectorConfig } from '../config/collector-schema.js';
import { UsageError } from '../control/errors.js';
import { contiguous, missing } from '../domain/coverage.js';
import { csvRow } from '../domain/csv.js';
import type { DoorReport } from '../domain/door-report.js';
import { localStamp } from '../domain/localtime.js';
import type { WebRole } from '../domain/password.js';
import type { Logger } from '../log.js';
import type { SiteJournalDb } from '../store/site-journal-db.js';
import { ConnectionGuard } from '../web/connections.js';
import { cookie, HttpError, passwordLogin, readJsonBody, safeEqual, sameOrigin, securityHeaders, sessionCookie, TLS_PROFILE } from '../web/server.js';
import { LoginThrottle, ROLE_RANK, Sessions, type Session } from '../web/sessions.js';
import type { Collector } from './collector.js';
import { siteJournalFilter, type SiteJournalQuery } from './query.js';

const ASSETS = [new URL('./assets/', import.meta.url), new URL('../../src/collector/assets/', import.meta.url)].find((u) => existsSync(u)) ?? new URL('./assets/', import.meta.url);
const STATIC = new Map([['/', 'site.html'], ['/site.js', 'site.js'], ['/site.css', 'site.css']]);
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
const COOKIE = 'doorgw_site_sid';
const STATUS_OF: Record<string, number> = { invalid: 400, not_found: 404, conflict: 409, unavailable: 503, forbidden: 403, internal: 500 };
const COLUMNS = ['time_local', 'at_ms', 'gateway', 'seq', 'door', 'kind', 'decision', 'reason', 'method', 'userid', 'user_type', 'reader', 'direction', 'type', 'detail'];

export class SiteConsole {
  private server: Server | null = null;
  private readonly sessions: Sessions;
  private readonly throttle: LoginThrottle;
  private readonly assets = new Map<string, Buffer>();
  private readonly tls: boolean;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: { config: CollectorConfig; db: SiteJournalDb; collector: Collector; log: Logger; version: string }) {
    const w = o.config.web;
    this.sessions = new Sessions(w.session_idle_min * 60_000, w.session_max_h * 3_600_000);
    this.throttle = new LoginThrottle(w.login_max_failures, w.login_lockout_s * 1000);
    this.tls = w.tls !== undefined;
    for (const f of new Set(STATIC.values())) this.assets.set(f, readFileSync(new URL(f, ASSETS)));
  }

  async start(): Promise<{ url: string }> {
    const w = this.o.config.web;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    this.server = w.tls ? createHttps({ cert: readFileSync(w.tls.cert), key: readFileSync(w.tls.key), ...TLS_PROFILE }, handler) : createHttp(handler);
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 60_000;
    new ConnectionGuard({ maxTotal: w.max_connections, maxPerClient: 32, idleMs: 60_000, proxies: w.trusted_proxies }, this.o.log).attach(this.server);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(w.port, w.bind, () => resolve());
    });
    this.timer = setInterval(() => this.sessions.sweep(), 60_000);
    this.timer.unref();
    const a = this.server.address() as AddressInfo;
    const url = `${this.tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    this.o.log.info({ url }, 'site console listening');
    return { url };
  }

  get address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null) ?? null;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }

  private json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text), ...extra });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    securityHeaders(res, this.tls);
    const url = new URL(req.url ?? '/', 'http://x');
    try {
      if (req.method !== 'GET' && req.method !== 'POST' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed');
      const asset = STATIC.get(url.pathname);
      if (asset && req.method !== 'POST') {
        const body = this.assets.get(asset)!;
        res.writeHead(200, { 'Content-Type': TYPES[asset.split('.').pop()!]!, 'Content-Length': body.length, 'Cache-Control': 'no-cache' });
        return void res.end(body);
      }
      if (url.pathname === '/healthz') return this.json(res, 200, { healthy: true });
      if (url.pathname === '/api/login' && req.method === 'POST') return await this.login(req, res);
      if (!url.pathname.startsWith('/api/')) throw new HttpError(404, 'not found', 'not_found');
      const s = this.sessions.get(cookie(req, COOKIE));
      if (!s) throw new HttpError(401, 'log in first', 'unauthenticated');
      if (req.method === 'POST') {
        if (!sameOrigin(req)) throw new HttpError(403, 'cross-origin request refused', 'forbidden');
        if (!safeEqual(String(req.headers['x-csrf-token'] ?? ''), s.csrf)) throw new HttpError(403, 'missing or wrong CSRF token (reload the page)', 'forbidden');
      }
      await this.route(req, res, url, s);
    } catch (e) {
      if (res.headersSent) return void res.destroy();
      if (e instanceof HttpError) return this.json(res, e.status, { error: e.message, code: e.code }, e.headers);
      if (e instanceof UsageError) return this.json(res, STATUS_OF[e.code] ?? 400, { error: e.message, code: e.code });
      this.o.log.error({ err: e, path: url.pathname }, 'site console request failed');
      this.json(res, 500, { error: 'internal error', code: 'internal' });
    }
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const w = this.o.config.web;
    const s = await passwordLogin(req, { throttle: this.throttle, sessions: this.sessions, trustedProxies: w.trusted_proxies, account: (name) => this.o.db.webAccount(name), log: this.o.log, what: 'site console' });
    this.json(res, 200, this.info(s), { 'Set-Cookie': sessionCookie(COOKIE, s.id, w.cookie_secure ?? this.tls, w.session_max_h) });
  }

  private info(s: Session): Record<string, unknown> {
    return { user: s.user, role: s.role, csrf: s.csrf, version: this.o.version, collector: this.o.config.collector_id, timezone: this.o.config.timezone };
  }

  private need(s: Session, role: WebRole): void {
    if (ROLE_RANK[s.role] < ROLE_RANK[role]) throw new HttpError(403, `this needs the ${role} role (you are ${s.role})`, 'forbidden');
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, s: Session): Promise<void> {
    const p = url.pathname;
    const get = req.method !== 'POST';
    const q = Object.fromEntries(url.searchParams);
    if (p === '/api/session' && get) return this.json(res, 200, this.info(s));
    if (p === '/api/logout' && !get) {
      this.sessions.end(cookie(req, COOKIE)!);
      return this.json(res, 200, { ok: true }, { 'Set-Cookie': `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` });
    }
    if (p === '/api/doors' && get) return this.json(res, 200, await this.doors());
    if (p === '/api/journal' && get) {
      const limit = Math.min(500, Math.max(1, Number(q.limit ?? 50) || 50));
      const after = q.after ? cursor(q.after) : null;
      const rows = await this.o.db.page(siteJournalFilter(journalQuery(q), this.o.config.timezone), limit, after, 'desc');
      const last = rows[rows.length - 1];
      return this.json(res, 200, { entries: rows.map((r) => ({ ...r, time_local: localStamp(r.at, this.o.config.timezone) })), next: rows.length === limit && last ? Buffer.from(JSON.stringify([last.at, last.gateway, last.seq])).toString('base64url') : null });
    }
    if (p === '/api/journal.csv' && get) return this.csv(res, journalQuery(q));
    if (p === '/api/muster' && get) return this.json(res, 200, await this.musterReport(q.area));
    if (p === '/api/muster/safe' && !get) {
      this.need(s, 'operator');
      const b = await readJsonBody(req);
      if (typeof b.area !== 'string' || typeof b.userid !== 'string') throw new UsageError('area and userid are required');
      const r = await this.musterReport(b.area);
      if (!this.o.collector.muster) throw new UsageError('no site muster is on (start one first)', 'conflict');
      if (!r.inside.some((x) => x.userid === b.userid)) throw new UsageError(`${b.userid} is not inside area '${b.area}'`, 'conflict');
      await this.o.db.markSafe(b.area, b.userid, `web:${s.user}`);
      this.o.log.warn({ area: b.area, userid: b.userid, by: `web:${s.user}` }, 'marked safe (site muster)');
      return this.json(res, 200, { marked: true });
    }
    if ((p === '/api/muster/start' || p === '/api/muster/end') && !get) {
      this.need(s, 'operator');
      if (p.endsWith('start')) this.o.collector.startMuster(`web:${s.user}`, 'started in the site console');
      else if (!this.o.collector.endMuster(`web:${s.user}`)) throw new UsageError('no site muster is on', 'conflict');
      return this.json(res, 200, await this.musterReport(undefined));
    }
    throw new HttpError(404, 'not found', 'not_found');
  }

  /** Every gateway: online (its report is recent), its doors with mode, threat level and alarm, the last record, what is missing. */
  private async doors(): Promise<unknown> {
    const now = Date.now();
    const offlineMs = this.o.config.web.offline_after_s * 1000;
    const gws = await this.o.db.overview();
    return {
      gateways: gws.map((g) => {
        const r = g.report as (DoorReport & { at: number }) | null;
        return {
          gateway: g.gateway,
          online: r !== null && g.last_seen !== null && now - g.last_seen.getTime() < offlineMs,
          last_seen: g.last_seen?.getTime() ?? null,
          doors: (r?.doors ?? []).map((d) => {
            const st = r?.states?.find((x) => x.door === d);
            return { id: d, level: r?.levels.find((l) => l.door === d)?.level ?? null, by: r?.levels.find((l) => l.door === d)?.by ?? null, mode: st?.mode ?? null, alarm: st?.alarm ?? null, fire: st?.fire ?? false };
          }),
          complete: r?.complete ?? null,
          head: g.head,
          held_to: contiguous(g.covered),
          missing: missing(g.covered, g.head),
          last: g.last && { ...g.last, time_local: localStamp(g.last.at, this.o.config.timezone) },
        };
      }),
    };
  }

  private async musterReport(area: string | undefined) {
    const m = this.o.collector.muster;
    const rows = await this.o.db.inside(area, m?.at ?? Number.MAX_SAFE_INTEGER);
    const tz = this.o.config.timezone;
    return {
      muster: m && { ...m, time_local: localStamp(m.at, tz) },
      inside: rows.map((r) => ({ area: r.area, userid: r.userid, since: r.at, since_local: localStamp(r.at, tz), gateway: r.gateway, door: r.door, safe: r.safe_by ? { by: r.safe_by, at: r.safe_at } : null })),
    };
  }

  private async csv(res: ServerResponse, q: SiteJournalQuery): Promise<void> {
    const f = siteJournalFilter(q, this.o.config.timezone); // validated before the headers go
    res.writeHead(200, { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': 'attachment; filename="doorgw-site-journal.csv"', 'Cache-Control': 'no-store' });
    res.write(csvRow(COLUMNS));
    let after: [number, string, number] | null = null;
    for (;;) {
      const rows = await this.o.db.page(f, 1000, after, 'asc');
      for (const r of rows) {
        if (!res.write(csvRow([localStamp(r.at, f.zone), r.at, r.gateway, r.seq, r.door, r.kind, r.decision, r.reason, r.method, r.userid, r.user_type, r.reader, r.direction, r.type, r.detail]))) await new Promise((ok) => res.once('drain', ok));
      }
      const last = rows[rows.length - 1];
      if (!last || rows.length < 1000) break;
      after = [last.at, last.gateway, last.seq];
    }
    res.end();
  }
}

function journalQuery(q: Record<string, string>): SiteJournalQuery {
  const out: SiteJournalQuery = { kind: q.kind === 'door_events' || q.kind === 'all' ? q.kind : 'decisions' };
  for (const k of ['from', 'to', 'gateway', 'door', 'userid', 'decision', 'reason', 'method', 'type', 'time_of_day'] as const) if (q[k]) out[k] = q[k];
  return out;
}

/** A page cursor as the console got it ([at, gateway, seq], base64url JSON); anything else is refused. */
function cursor(v: string): [number, string, number] {
  try {
    const c = JSON.parse(Buffer.from(v, 'base64url').toString()) as unknown;
    if (Array.isArray(c) && c.length === 3 && Number.isSafeInteger(c[0]) && typeof c[1] === 'string' && Number.isSafeInteger(c[2])) return c as [number, string, number];
  } catch {
    /* refused below */
  }
  throw new UsageError('after: not a cursor this console gave');
}
