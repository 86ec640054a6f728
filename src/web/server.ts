/**
 * The local web console and metrics: an HTTP(S) server in the gateway, a consumer of the same
 * GatewayApi the control socket and MQTT use. Nothing here is on the decision path: decisions reach
 * it as events after the relay has moved, and every request is served between decisions.
 *
 * Security: accounts with roles (viewer < operator < admin), scrypt hashes, session cookies
 * (HttpOnly, SameSite=Strict, Secure under TLS), a per-session CSRF token on every state change
 * (plus an Origin check and JSON-only bodies), login throttling per account and per address,
 * idle and absolute session expiry, strict security headers. Only /healthz (and /metrics, with its
 * token or when configured public) answers without a session.
 */
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/schema.js';
import { healthProblems, type GatewayApi } from '../control/api.js';
import { UsageError } from '../control/errors.js';
import type { DecisionEvent, DoorEvent } from '../domain/events.js';
import { localStamp } from '../domain/localtime.js';
import { csvRow } from '../domain/csv.js';
import { verifyPassword, type WebRole } from '../domain/password.js';
import { redactSecrets, type Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { GatewayMetrics } from './metrics.js';
import { bareAddress, ConnectionGuard } from './connections.js';
import { API_ROLES } from '../control/roles.js';
import { LoginThrottle, ROLE_RANK, Sessions, type Session } from './sessions.js';

/** The pages: next to the built server in a release (dist/web/assets), or the sources in development. */
const ASSETS = [new URL('./assets/', import.meta.url), new URL('../../src/web/assets/', import.meta.url)].find((u) => existsSync(u)) ?? new URL('./assets/', import.meta.url);
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml', json: 'application/json' };
const STATIC = new Map<string, string>([['/', 'index.html'], ['/index.html', 'index.html'], ['/app.js', 'app.js'], ['/i18n.js', 'i18n.js'], ['/app.css', 'app.css'], ['/icon.svg', 'icon.svg'], ['/kiosk.js', 'kiosk.js'], ['/kiosk.css', 'kiosk.css']]);
const MAX_BODY = 64 * 1024;
const COOKIE = 'doorgw_sid';
/** A never-matching hash: an unknown account costs the same time as a wrong password. */
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export interface WebContext {
  config: Config;
  api: GatewayApi;
  store: Store;
  metrics: GatewayMetrics | null;
  log: Logger;
  version: string;
  now?: () => number;
  /** The door's scan-to-open code now (the cloud's), for the kiosk page. */
  loginCode?: (door: string) => { text: string; expires_at: number } | null;
  /** A cloud's callback (`POST /cloud/<provider>/<name>`, e.g. Feishu events): authenticated by the cloud adapter, not by a session. */
  cloudCallback?: (provider: string, req: { name: string; headers: IncomingMessage['headers']; body: Buffer }) => Promise<{ status: number; body: Record<string, unknown> }>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'invalid',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const STATUS_OF: Record<string, number> = { invalid: 400, not_found: 404, conflict: 409, unavailable: 503, forbidden: 403, internal: 500 };

/**
 * A live event stream (server-sent events) of decisions and door events. Each event is serialised
 * once. A client that cannot keep up is never waited for: past 1 MiB queued its events are skipped
 * (it is told how many when it catches up), and one that stays behind for a minute is dropped.
 */
class EventHub {
  private readonly clients = new Map<ServerResponse, { skipped: number; behindSince: number | null }>();
  constructor(
    private readonly max: number,
    private readonly now: () => number,
  ) {}

  get full(): boolean {
    return this.clients.size >= this.max;
  }

  add(res: ServerResponse): void {
    this.clients.set(res, { skipped: 0, behindSince: null });
    res.on('close', () => this.clients.delete(res));
  }

  send(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const [res, c] of this.clients) {
      if (res.writableLength > 1024 * 1024) {
        c.skipped++;
        c.behindSince ??= this.now();
        if (this.now() - c.behindSince > 60_000) {
          res.destroy();
          this.clients.delete(res);
        }
        continue;
      }
      if (c.skipped) res.write(`event: skipped\ndata: {"count":${c.skipped}}\n\n`);
      c.skipped = 0;
      c.behindSince = null;
      res.write(frame);
    }
  }

  ping(): void {
    for (const res of this.clients.keys()) res.write(': ping\n\n');
  }

  closeAll(): void {
    for (const res of this.clients.keys()) res.end();
    this.clients.clear();
  }

  get size(): number {
    return this.clients.size;
  }
}

/**
 * A modern TLS profile (Mozilla's "intermediate", less what no console browser needs): TLS 1.2 and
 * 1.3 only, forward-secret AEAD suites only — Node's defaults still offer CBC with SHA-1 and CCM8.
 * TLS 1.3's suites are fixed by Node (all AEAD).
 */
export const TLS_PROFILE = {
  minVersion: 'TLSv1.2',
  ciphers: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'].join(':'),
  honorCipherOrder: true,
} as const;

/** An Origin header (when sent) naming this host; one that is not a URL (`null`, garbage) is not ours. */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * The client's address: the socket's, or — only when the socket is a configured trusted proxy —
 * the rightmost X-Forwarded-For entry that is not itself a trusted proxy (what a client can forge
 * lies to the left of what its proxy appended).
 */
export function clientAddress(req: IncomingMessage, trusted: readonly string[]): string {
  const peer = bareAddress(req.socket.remoteAddress ?? '?');
  if (!trusted.includes(peer)) return peer;
  const xff = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(xff) ? xff.join(',') : (xff ?? '')).split(',').map((h) => bareAddress(h.trim())).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.includes(hops[i]!)) return hops[i]!;
  return peer;
}

export class WebServer {
  private server: Server | null = null;
  private readonly sessions: Sessions;
  private readonly throttle: LoginThrottle;
  private readonly hub: EventHub;
  private readonly tls: boolean;
  private readonly secureCookie: boolean;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly assets = new Map<string, Buffer>();

  constructor(private readonly ctx: WebContext) {
    const w = ctx.config.web;
    this.now = ctx.now ?? (() => performance.now());
    this.sessions = new Sessions(w.session_idle_min * 60_000, w.session_max_h * 3_600_000, this.now);
    this.throttle = new LoginThrottle(w.login_max_failures, w.login_lockout_s * 1000, this.now);
    this.hub = new EventHub(w.max_streams, this.now);
    this.tls = w.tls !== undefined;
    this.secureCookie = w.cookie_secure ?? this.tls;
    for (const file of new Set(STATIC.values())) this.assets.set(file, readFileSync(new URL(file, ASSETS)));
  }

  async start(): Promise<{ url: string }> {
    const w = this.ctx.config.web;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    this.server = w.tls ? createHttps({ cert: readFileSync(w.tls.cert), key: readFileSync(w.tls.key), ...TLS_PROFILE }, handler) : createHttp(handler);
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.keepAliveTimeout = 5_000;
    new ConnectionGuard({ maxTotal: w.max_connections, maxPerClient: w.max_connections_per_client, idleMs: w.idle_timeout_s * 1000, proxies: w.trusted_proxies }, this.ctx.log).attach(this.server);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(w.port, w.bind, () => resolve());
    });
    // Streams are pinged well inside the idle timeout, so only sockets that carry nothing are closed.
    this.timer = setInterval(() => {
      this.sessions.sweep();
      this.hub.ping();
    }, Math.min(15_000, (w.idle_timeout_s * 1000) / 2));
    this.timer.unref();
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    const url = `${this.tls ? 'https' : 'http'}://${host}:${a.port}`;
    this.ctx.log.info({ url, tls: this.tls }, 'web console listening');
    return { url };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.hub.closeAll();
    if (!this.server) return;
    const s = this.server;
    this.server = null;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }

  get address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null) ?? null;
  }

  // Events from the gateway (subscribers after the relay).
  decision(d: DecisionEvent): void {
    this.hub.send('decision', d);
  }
  doorEvent(e: DoorEvent): void {
    this.hub.send('door_event', e);
  }
  doorState(door: string): void {
    this.hub.send('door_state', { door });
  }
  /** An account removed or changed: its sessions end. */
  accountChanged(name: string): void {
    this.sessions.endAllOf(name);
  }

  // ---------------------------------------------------------------------------------------------

  private headers(res: ServerResponse): void {
    securityHeaders(res, this.tls);
  }

  private json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text), ...extra });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.headers(res);
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    try {
      if (req.method !== 'GET' && req.method !== 'POST' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed');
      const asset = STATIC.get(path);
      if (asset && req.method !== 'POST') return this.serveAsset(res, asset);
      if (path === '/healthz') return await this.health(res);
      const kiosk = /^\/kiosk\/([A-Za-z0-9_-]{1,64})(\/code\.svg)?$/.exec(path);
      if (kiosk && req.method !== 'POST') return await this.kiosk(res, kiosk[1]!, kiosk[2] !== undefined);
      if (path === '/metrics') return await this.serveMetrics(req, res);
      const callback = /^\/cloud\/([a-z]{1,16})\/([a-z_]{1,32})$/.exec(path);
      if (callback && req.method === 'POST') return await this.cloudCallback(req, res, callback[1]!, callback[2]!);
      if (path === '/api/login' && req.method === 'POST') return await this.login(req, res);
      if (!path.startsWith('/api/')) throw new HttpError(404, 'not found', 'not_found');
      const session = this.sessions.get(cookie(req, COOKIE));
      if (!session) throw new HttpError(401, 'log in first', 'unauthenticated');
      if (req.method === 'POST') this.checkCsrf(req, session);
      await this.route(req, res, url, session);
    } catch (e) {
      if (res.headersSent) return void res.destroy();
      if (e instanceof HttpError) return this.json(res, e.status, { error: e.message, code: e.code }, e.headers);
      if (e instanceof URIError) return this.json(res, 400, { error: 'a malformed %-escape in the path', code: 'invalid' });
      if (e instanceof UsageError) return this.json(res, STATUS_OF[e.code] ?? 400, { error: e.message, code: e.code });
      this.ctx.log.error({ err: e, path }, 'web request failed');
      this.json(res, 500, { error: 'internal error', code: 'internal' });
    }
  }

  /** The scan-to-open kiosk: no session (it shows what a screen at the door shows anyone), nothing but the door's name and code. */
  private async kiosk(res: ServerResponse, door: string, svg: boolean): Promise<void> {
    const d = this.ctx.config.doors.find((x) => x.id === door);
    if (!d) throw new HttpError(404, 'no such door', 'not_found');
    const { codeSvg, kioskHtml } = await import('./kiosk.js');
    if (!svg) {
      const html = kioskHtml(d.id, d.name ?? d.id);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      return void res.end(html);
    }
    const code = this.ctx.loginCode?.(door) ?? null;
    if (!code) throw new HttpError(503, 'no scan-to-open code now (the cloud is not connected, or scan_to_open is off)', 'unavailable');
    const body = await codeSvg(code.text);
    res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'no-store', 'X-Code-Expires': new Date(code.expires_at).toISOString() });
    res.end(body);
  }

  /** A cloud's callback: no session or CSRF (a server calls), the adapter authenticates what it is sent. */
  private async cloudCallback(req: IncomingMessage, res: ServerResponse, provider: string, name: string): Promise<void> {
    if (!this.ctx.cloudCallback) throw new HttpError(404, 'no cloud takes callbacks here', 'not_found');
    const body = await readBody(req);
    const r = await this.ctx.cloudCallback(provider, { name, headers: req.headers, body });
    this.json(res, r.status, r.body);
  }

  private serveAsset(res: ServerResponse, file: string): void {
    const body = this.assets.get(file)!;
    res.writeHead(200, { 'Content-Type': TYPES[file.split('.').pop()!] ?? 'application/octet-stream', 'Content-Length': body.length, 'Cache-Control': 'no-cache' });
    res.end(body);
  }

  private async health(res: ServerResponse): Promise<void> {
    const s = await this.ctx.api.status();
    const problems = healthProblems(s, { maxLinkDownS: 600, maxOutboxAgeS: 900, maxSkewS: this.ctx.config.qr.clock_skew_s });
    // No details without a session: only whether the door is healthy.
    this.json(res, problems.length ? 503 : 200, { healthy: problems.length === 0 });
  }

  private async serveMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = this.ctx.config.web.metrics;
    if (!m.enabled || !this.ctx.metrics) throw new HttpError(404, 'metrics are off (web.metrics.enabled)', 'not_found');
    if (m.token) {
      const got = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!safeEqual(got, m.token)) throw new HttpError(401, 'metrics need the bearer token (web.metrics.token)', 'unauthenticated', { 'WWW-Authenticate': 'Bearer' });
    }
    const text = await this.ctx.metrics.metricsText();
    res.writeHead(200, { 'Content-Type': this.ctx.metrics.contentType, 'Cache-Control': 'no-store' });
    res.end(text);
  }

  /** Same-origin JSON from a page of ours: the token, an Origin (when sent) naming this host, JSON. */
  private checkCsrf(req: IncomingMessage, s: Session): void {
    if (!sameOrigin(req)) throw new HttpError(403, 'cross-origin request refused', 'forbidden');
    if (!safeEqual(String(req.headers['x-csrf-token'] ?? ''), s.csrf)) throw new HttpError(403, 'missing or wrong CSRF token (reload the page)', 'forbidden');
  }

  private body(req: IncomingMessage): Promise<Record<string, unknown>> {
    return readJsonBody(req);
  }


  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const s = await passwordLogin(req, { throttle: this.throttle, sessions: this.sessions, trustedProxies: this.ctx.config.web.trusted_proxies, account: (name) => this.ctx.store.webAccount(name), log: this.ctx.log, what: 'console' });
    this.json(res, 200, this.sessionInfo(s), { 'Set-Cookie': sessionCookie(COOKIE, s.id, this.secureCookie, this.ctx.config.web.session_max_h) });
  }

  private sessionInfo(s: Session): Record<string, unknown> {
    const c = this.ctx.config;
    return { user: s.user, role: s.role, csrf: s.csrf, version: this.ctx.version, gateway_id: c.gateway_id, timezone: c.timezone, doors: c.doors.map((d) => ({ id: d.id, name: d.name ?? d.id, timezone: d.timezone ?? c.timezone, readers: d.readers.map((r) => ({ id: r.id, type: r.type, direction: r.direction })) })), cloud: c.cloud.provider };
  }

  /** The session's role suffices for an API method (its role from the one table, roles.ts) or a role named. */
  private need(s: Session, what: WebRole | keyof GatewayApi): void {
    const role: WebRole = what === 'viewer' || what === 'operator' || what === 'admin' ? what : API_ROLES[what];
    if (ROLE_RANK[s.role] < ROLE_RANK[role]) throw new HttpError(403, `this needs the ${role} role (you are ${s.role})`, 'forbidden');
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, s: Session): Promise<void> {
    const api = this.ctx.api;
    const by = `web:${s.user}`;
    const path = url.pathname;
    const q = Object.fromEntries(url.searchParams);
    const get = req.method !== 'POST';
    const door = /^\/api\/doors\/([^/]+)\/(open|lock|mode)$/.exec(path);

    if (path === '/api/session' && get) return this.json(res, 200, this.sessionInfo(s));
    if (path === '/api/logout' && !get) {
      this.sessions.end(s.id);
      return this.json(res, 200, { ok: true }, { 'Set-Cookie': `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` });
    }
    if (path === '/api/status' && get) {
      const st = await api.status();
      return this.json(res, 200, { ...st, problems: healthProblems(st, { maxLinkDownS: 600, maxOutboxAgeS: 900, maxSkewS: this.ctx.config.qr.clock_skew_s }) });
    }
    if (path === '/api/events' && get) return this.stream(req, res);
    if (door && !get) {
      const id = decodeURIComponent(door[1]!);
      const method = door[2] === 'open' ? 'open' : door[2] === 'lock' ? 'lock' : 'setMode';
      this.need(s, method);
      if (method === 'open') return this.json(res, 200, await api.open({ door: id, by }));
      if (method === 'lock') return this.json(res, 200, await api.lock({ door: id, by }));
      const b = await this.body(req);
      const duration = b.duration_s === undefined || b.duration_s === null ? undefined : Number(b.duration_s);
      return this.json(res, 200, await api.setMode({ door: id, mode: String(b.mode) as 'normal', ...(duration !== undefined ? { duration_s: duration } : {}), by }));
    }
    if (path === '/api/journal' && get) return this.json(res, 200, await api.journalQuery(journalParams(q)));
    if (path === '/api/journal.csv' && get) return this.journalCsv(res, journalParams(q));
    if (path === '/api/users' && get) {
      return this.json(res, 200, await api.usersList({ ...(q.query ? { query: q.query } : {}), ...(q.after ? { after: q.after } : {}), layer: (q.layer ?? 'all') as 'all', limit: q.limit ? Number(q.limit) : 50 }));
    }
    const user = /^\/api\/users\/([^/]+)$/.exec(path);
    if (user && get) {
      const userid = decodeURIComponent(user[1]!);
      const detail = await api.usersShow({ userid });
      if (!detail) throw new HttpError(404, `no user '${userid}'`, 'not_found');
      const last = await api.journalQuery({ userid, limit: 10 });
      return this.json(res, 200, { ...detail, last: last.entries });
    }
    if (path === '/api/users/block' && !get) {
      this.need(s, 'usersBlock');
      return this.json(res, 200, await api.usersBlock({ ...(await this.body(req)), by }));
    }
    if (path === '/api/users/unblock' && !get) {
      this.need(s, 'usersUnblock');
      return this.json(res, 200, await api.usersUnblock({ ...(await this.body(req)), by }));
    }
    if (path === '/api/outbox' && get) return this.json(res, 200, await api.outbox({ limit: 200 }));
    if (path === '/api/outbox/requeue' && !get) {
      this.need(s, 'requeue');
      const b = await this.body(req);
      return this.json(res, 200, await api.requeue({ ...(b.seqs !== undefined ? { seqs: b.seqs as number[] } : {}), by }));
    }
    if (path === '/api/outbox/discard' && !get) {
      this.need(s, 'discard');
      const b = await this.body(req);
      return this.json(res, 200, await api.discard({ ...(b.seqs !== undefined ? { seqs: b.seqs as number[] } : {}), ...(typeof b.reason === 'string' ? { reason: b.reason } : {}), by }));
    }
    if (path === '/api/fire/reset' && !get) {
      this.need(s, 'fireReset');
      const b = await this.body(req);
      return this.json(res, 200, await api.fireReset({ ...(typeof b.door === 'string' ? { door: b.door } : {}), by }));
    }
    if (path === '/api/sync' && !get) {
      this.need(s, 'sync');
      return this.json(res, 200, await api.sync());
    }
    if (path === '/api/config' && get) {
      this.need(s, 'admin');
      return this.json(res, 200, redactSecrets(this.ctx.config));
    }
    throw new HttpError(404, `no ${req.method ?? ''} ${path}`, 'not_found');
  }

  private stream(req: IncomingMessage, res: ServerResponse): void {
    if (this.hub.full) throw new HttpError(503, `too many live streams (web.max_streams ${this.ctx.config.web.max_streams})`, 'unavailable');
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write(': connected\n\n');
    req.socket.setNoDelay(true);
    this.hub.add(res);
  }

  /** The journal as CSV, streamed a page at a time. */
  private async journalCsv(res: ServerResponse, q: ReturnType<typeof journalParams>): Promise<void> {
    const zoneOf = (door: string): string => this.ctx.config.doors.find((d) => d.id === door)?.timezone ?? this.ctx.config.timezone;
    let page = await this.ctx.api.journalQuery({ ...q, order: 'asc', limit: 1000 }); // validates before the headers go
    res.writeHead(200, { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': `attachment; filename="doorgw-journal-${this.ctx.config.gateway_id}.csv"`, 'Cache-Control': 'no-store' });
    res.write(csvRow(['time_local', 'at_ms', 'seq', 'door', 'decision', 'reason', 'method', 'userid', 'user_type', 'reader', 'direction', 'detail']));
    for (;;) {
      for (const e of page.entries) {
        const row = e.kind === 'decision' ? [localStamp(e.at, zoneOf(e.door)), e.at, e.seq, e.door, e.decision, e.reason, e.method, e.userid, e.user_type, e.reader, e.direction, e.detail] : [localStamp(e.at, zoneOf(e.door)), e.at, e.seq, e.door, e.type, '', '', '', '', e.reader, '', e.detail];
        if (!res.write(csvRow(row))) await new Promise((r) => res.once('drain', r));
      }
      if (page.next === null) break;
      page = await this.ctx.api.journalQuery({ ...q, order: 'asc', limit: 1000, after: page.next });
    }
    res.end();
  }
}

function journalParams(q: Record<string, string>) {
  const out: Parameters<GatewayApi['journalQuery']>[0] = {};
  for (const k of ['from', 'to', 'userid', 'door', 'reason', 'method', 'time_of_day', 'after', 'type'] as const) if (q[k]) out[k] = q[k];
  if (q.decision) out.decision = q.decision as 'grant';
  if (q.kind) out.kind = q.kind as 'decisions';
  if (q.order) out.order = q.order as 'asc';
  if (q.limit) out.limit = Number(q.limit);
  return out;
}

export function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}


/**
 * A password login by the console's rules — shared by the door console and the site console:
 * same-origin, bounded fields, throttled per (account, client), the same work for an unknown name
 * as for a wrong password (which is not logged: it is often a password typed into the user field).
 * Returns the new session; a refusal is an HttpError.
 */
export async function passwordLogin(
  req: IncomingMessage,
  o: { throttle: LoginThrottle; sessions: Sessions; trustedProxies: readonly string[]; account: (name: string) => Promise<{ name: string; role: WebRole; hash: string } | null | undefined>; log: Logger; what: string },
): Promise<Session> {
  if (!sameOrigin(req)) throw new HttpError(403, 'cross-origin login refused', 'forbidden');
  const b = await readJsonBody(req);
  if (typeof b.user !== 'string' || typeof b.password !== 'string' || b.user.length > 64 || b.password.length > 256) throw new HttpError(400, 'user and password are required');
  const from = clientAddress(req, o.trustedProxies);
  const wait = o.throttle.retryAfterS(b.user, from);
  if (wait) throw new HttpError(429, `too many failed logins: try again in ${wait} s`, 'locked_out', { 'Retry-After': String(wait) });
  const account = await o.account(b.user);
  const ok = await verifyPassword(account?.hash ?? DUMMY_HASH, b.password);
  if (!ok || !account) {
    o.throttle.failed(b.user, from);
    o.log.warn({ user: account ? b.user : '(no such account)', from }, `${o.what} login failed`);
    throw new HttpError(401, 'wrong user or password', 'unauthenticated');
  }
  o.throttle.succeeded(b.user, from);
  const s = o.sessions.create(account.name, account.role);
  o.log.info({ user: account.name, role: account.role, from }, `${o.what} login`);
  return s;
}

/** The session cookie: HttpOnly, SameSite=Strict, Secure under TLS (or behind a TLS proxy). */
export function sessionCookie(name: string, id: string, secure: boolean, maxH: number): string {
  return `${name}=${id}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}; Max-Age=${maxH * 3600}`;
}

/** The console's headers: a strict CSP (our own scripts and styles only), no framing, no referrer. */
export function securityHeaders(res: ServerResponse, tls: boolean): void {
  res.setHeader('Content-Security-Policy', "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  if (tls) res.setHeader('Strict-Transport-Security', 'max-age=31536000');
}

/** The raw body, at most MAX_BODY bytes (more is a 413). */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY / 1024} KiB`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** A JSON object body of at most MAX_BODY bytes (anything else is a clear 4xx). */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'send JSON (Content-Type: application/json)');
  const raw = await readBody(req);
  if (raw.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'the body must be a JSON object');
  return v as Record<string, unknown>;
}